package loadrig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/procstat"
)

// Defaults for the bounds of a child.
const (
	// DefaultStartTimeout bounds a child's start: the binary loading and
	// answering its first command.
	DefaultStartTimeout = 30 * time.Second
	// DefaultCallTimeout bounds every command but Set's.
	DefaultCallTimeout = 30 * time.Second
	// closeGrace is how long a child has to end by itself once its stdin
	// is closed, before SIGTERM.
	closeGrace = 10 * time.Second
)

// Exec says which binary is re-executed as a child. The zero value is
// the running binary (os.Executable): the loadtest, or a package's test
// binary whose TestMain calls Child first.
type Exec struct {
	// Path is the binary; empty means os.Executable().
	Path string
	// Args are its arguments (without argv[0]).
	Args []string
	// Env is added to the child's environment, which is otherwise only
	// RoleVar and GOMAXPROCS: nothing else of the loadtest's (its
	// credentials included) is passed on.
	Env []string
}

// ChildConfig is what every child takes.
type ChildConfig struct {
	Exec Exec
	// GOMAXPROCS caps the cores the child's Go code runs on at once; 0
	// leaves the Go runtime's default (every core).
	GOMAXPROCS int
	// Output receives the child's log lines (a childproc.Log in the
	// results directory, typically); nil keeps the last ones for error
	// messages only.
	Output childproc.Sink
	// Logger receives the supervisor's lines (start, stop, exit); nil
	// discards them.
	Logger *slog.Logger
	// StartTimeout bounds the start; 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// CallTimeout bounds each command but Set; 0 means
	// DefaultCallTimeout.
	CallTimeout time.Duration
}

// proc is the parent's side of one child: it owns the process (through
// childproc), writes commands to its stdin, and reads answers from its
// stdout, one call at a time or many (calls are matched by id).
type proc struct {
	role  string
	cfg   ChildConfig
	child *childproc.Child
	stdin *os.File // our end; closing it asks the child to end

	wmu    sync.Mutex // serialises writes of whole lines
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan answer
	// abandoned are calls whose caller stopped waiting (its ctx ended):
	// their late answers are dropped, not taken for a broken child.
	abandoned map[uint64]bool
	broken    error         // why no call can succeed any more
	gone      chan struct{} // closed with broken
	closing   bool
	watched   chan struct{} // closed once the exit watcher has run
}

// startProc re-executes the binary as role and returns once it answered
// its first command (op "config", with args). On any error nothing is
// left running.
func startProc(ctx context.Context, role string, cfg ChildConfig, args any, result any) (_ *proc, err error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.GOMAXPROCS < 0 {
		return nil, fmt.Errorf("start %s child: GOMAXPROCS %d is negative", role, cfg.GOMAXPROCS)
	}
	path := cfg.Exec.Path
	if path == "" {
		if path, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("start %s child: find the running binary: %w", role, err)
		}
	}
	env := append([]string{RoleVar + "=" + role}, cfg.Exec.Env...)
	if cfg.GOMAXPROCS > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(cfg.GOMAXPROCS))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s child: stdin pipe: %w", role, err)
	}
	p := &proc{
		role: role, cfg: cfg, stdin: w,
		pending:   map[uint64]chan answer{},
		abandoned: map[uint64]bool{},
		gone:      make(chan struct{}),
		watched:   make(chan struct{}),
	}
	p.child = childproc.New(childproc.Spec{
		Words:  childproc.Words{Name: "loadrig " + role, Ready: "it answered its first command"},
		Logger: cfg.Logger,
		Ladder: childproc.Ladder{Rungs: []childproc.Rung{
			{Name: "close its stdin", Ask: p.closeStdin, Grace: closeGrace},
			{Signal: syscall.SIGTERM, Grace: 2 * time.Second},
		}},
	})
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	err = p.child.Start(sctx, childproc.Command{Path: path, Args: cfg.Exec.Args, Env: env, Stdin: r, Output: (*procSink)(p)})
	_ = r.Close() // the child has its copy
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("start %s child: %w", role, err)
	}
	go p.watch()
	defer func() {
		if err != nil {
			_ = p.close(context.Background())
		}
	}()
	if err := p.call(sctx, "config", args, result); err != nil {
		return nil, fmt.Errorf("start %s child (%s): %w", role, path, err)
	}
	p.child.MarkReady()
	return p, nil
}

// Pid is the child's process id.
func (p *proc) Pid() int { return p.child.Pid() }

// usage reads the child's CPU time and RSS from /proc.
func (p *proc) usage() (load.Process, error) {
	u, err := procstat.Read(p.Pid())
	if err != nil {
		return load.Process{Role: p.role, Pid: p.Pid()}, fmt.Errorf("%s child: %w", p.role, err)
	}
	return u.Process(p.role), nil
}

// call sends op with args and decodes the answer's result into result
// (unless nil). ctx bounds the wait, and CallTimeout when ctx has no
// sooner deadline.
func (p *proc) call(ctx context.Context, op string, args, result any) error {
	return p.callFor(ctx, p.cfg.CallTimeout, op, args, result)
}

func (p *proc) callFor(ctx context.Context, bound time.Duration, op string, args, result any) error {
	ctx, cancel := context.WithTimeoutCause(ctx, bound, fmt.Errorf("no answer to %s within %s", op, bound))
	defer cancel()
	c := command{ID: p.nextID.Add(1), Op: op}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("%s child: encode %s: %w", p.role, op, err)
		}
		c.Args = b
	}
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("%s child: encode %s: %w", p.role, op, err)
	}
	ch := make(chan answer, 1)
	p.mu.Lock()
	if p.broken != nil {
		err := p.broken
		p.mu.Unlock()
		return err
	}
	p.pending[c.ID] = ch
	p.mu.Unlock()
	answered := false
	defer func() {
		p.mu.Lock()
		delete(p.pending, c.ID)
		if !answered {
			p.abandoned[c.ID] = true
		}
		p.mu.Unlock()
	}()
	if err := p.write(ctx, append(line, '\n')); err != nil {
		// A closed pipe most likely means the child exited: say how,
		// with its last words, once the watcher knows (bounded).
		timer := time.NewTimer(childproc.DefaultDrainGrace + time.Second)
		defer timer.Stop()
		select {
		case <-p.gone:
			p.mu.Lock()
			defer p.mu.Unlock()
			return fmt.Errorf("%s child: send %s: %w", p.role, op, p.broken)
		case <-timer.C:
		case <-ctx.Done():
		}
		return fmt.Errorf("%s child: send %s: %w", p.role, op, err)
	}
	select {
	case a := <-ch:
		answered = true
		if a.Error != "" {
			return &RemoteError{Role: p.role, Op: op, Message: a.Error}
		}
		if result != nil {
			if err := json.Unmarshal(a.Result, result); err != nil {
				return fmt.Errorf("%s child: the answer to %s does not decode: %w", p.role, op, err)
			}
		}
		return nil
	case <-p.gone:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.broken
	case <-ctx.Done():
		return fmt.Errorf("%s child (pid %d): %w", p.role, p.Pid(), context.Cause(ctx))
	}
}

// write writes one whole line to the child's stdin, bounded by ctx (a
// child that stopped reading fills the pipe).
func (p *proc) write(ctx context.Context, line []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		_ = p.stdin.SetWriteDeadline(dl)
	}
	_, err := p.stdin.Write(line)
	return err
}

// closeStdin is the gentle rung of the stop ladder: the child ends when
// its commands end.
func (p *proc) closeStdin(context.Context) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	err := p.stdin.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// fail marks the child unusable for why; the first reason stays.
func (p *proc) fail(why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return
	}
	p.broken = fmt.Errorf("%w: %w", ErrChildGone, why)
	close(p.gone)
}

// watch waits for the child's exit: an exit nobody asked for fails
// every call, with the child's last words.
func (p *proc) watch() {
	defer close(p.watched)
	<-p.child.Done()
	p.mu.Lock()
	closing := p.closing
	p.mu.Unlock()
	err := p.child.Err()
	if closing {
		p.fail(fmt.Errorf("%s child closed", p.role))
		return
	}
	p.fail(fmt.Errorf("%s child exited unasked: %w", p.role, err))
}

// close ends the child (stdin closed, then SIGTERM, then SIGKILL, each
// bounded) and reports a child that had died or broke the protocol
// before, or that did not end cleanly.
func (p *proc) close(ctx context.Context) error {
	p.mu.Lock()
	before := p.broken
	p.closing = true
	p.mu.Unlock()
	stopErr := p.child.Stop(ctx)
	<-p.watched
	_ = p.stdin.Close()
	var errs []error
	if before != nil {
		errs = append(errs, before)
	}
	if stopErr != nil {
		errs = append(errs, stopErr)
	}
	if ee := p.child.ExitError(); before == nil && ee != nil && (ee.Signal != "" || ee.Status != 0) {
		errs = append(errs, fmt.Errorf("%s child did not end cleanly when closed: %w", p.role, ee))
	}
	return errors.Join(errs...)
}

// procSink reads the child's output: answers go to their calls, log
// lines to the configured Output.
type procSink proc

func (s *procSink) Line(text string) string {
	p := (*proc)(s)
	if !strings.HasPrefix(text, "{") {
		if p.cfg.Output != nil {
			return p.cfg.Output.Line(text)
		}
		return text
	}
	var a answer
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		p.fail(fmt.Errorf("%s child (pid %d) wrote a line that is not an answer (%v): %q", p.role, p.Pid(), err, clip([]byte(text), 120)))
		return text
	}
	p.mu.Lock()
	if p.broken != nil {
		// A child that broke the protocol is not believed again: an
		// answer after that must not pass for the call's (the call
		// fails with why the child broke).
		p.mu.Unlock()
		return clip([]byte(text), 200)
	}
	ch, ok := p.pending[a.ID]
	late := p.abandoned[a.ID]
	delete(p.abandoned, a.ID)
	p.mu.Unlock()
	if late {
		return clip([]byte(text), 200) // its caller gave up waiting
	}
	if !ok {
		msg := fmt.Sprintf("%s child (pid %d) answered a command that is not waiting (id %d)", p.role, p.Pid(), a.ID)
		if a.Error != "" {
			msg += ": " + a.Error
		}
		p.fail(errors.New(msg))
		return text
	}
	select {
	case ch <- a:
	default:
		p.fail(fmt.Errorf("%s child (pid %d) answered command %d twice", p.role, p.Pid(), a.ID))
	}
	return clip([]byte(text), 200)
}
