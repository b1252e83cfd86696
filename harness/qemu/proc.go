package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

const (
	// drainGrace bounds how long, after QEMU exited, we keep reading its
	// output. Only a process that inherited the pipe and outlived QEMU
	// can make us wait this long.
	drainGrace = 2 * time.Second
	// maxLine is the longest output line kept whole; a longer one is
	// recorded in pieces.
	maxLine = 64 << 10
)

// logSink is QEMU's log file, shared by every process a VM starts (a
// retried boot appends to the same file), behind a Redactor that hides
// the SPICE password should QEMU ever print it.
type logSink struct {
	path string
	file *os.File
	red  *secret.Redactor

	mu  sync.Mutex
	err error // the first write error
}

func openLog(path string, secrets ...string) (*logSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open QEMU log: %w", err)
	}
	return &logSink{path: path, file: f, red: secret.NewRedactor(f, secrets...)}, nil
}

// line writes one whole line and returns it scrubbed, for the tail.
func (s *logSink) line(text string) string {
	if _, err := s.red.Write([]byte(text + "\n")); err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = fmt.Errorf("write QEMU log %s: %w", s.path, err)
		}
		s.mu.Unlock()
	}
	return s.red.Scrub(text)
}

// close flushes and closes the file and reports the first error seen.
func (s *logSink) close() error {
	err := s.red.Flush()
	if cerr := s.file.Close(); err == nil {
		err = cerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err != nil {
		return fmt.Errorf("close QEMU log %s: %w", s.path, err)
	}
	return nil
}

// proc is one QEMU process. A VM may start several while booting (a
// SPICE port taken between picking it and QEMU binding it means a new
// process on a new port), and keeps the one that became ready.
type proc struct {
	cmd    *exec.Cmd
	reaped chan struct{} // closed once QEMU was waited for (releases the thread that ties it)
	pid    int
	tail   *childproc.Tail
	log    *slog.Logger
	exited chan struct{} // closed once reaped and drained; exitErr is set
	// exitErr is written once, before exited closes.
	exitErr *ExitError
}

// launch starts QEMU with its stdout and stderr on one pipe, drained into
// sink and a tail of tailLines lines. phase is asked, when QEMU exits,
// where in the VM's life that happened.
func launch(path string, args []string, dir string, sink *logSink, tailLines int,
	log *slog.Logger, phase func() Phase) (*proc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create QEMU output pipe: %w", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = childEnv()
	cmd.Dir = dir
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = procAttr()
	reaped := make(chan struct{})
	if err := childproc.StartTied(cmd, reaped); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	// Only QEMU keeps the write end; ours must go or the drain never
	// sees EOF.
	_ = w.Close()
	p := &proc{
		cmd:    cmd,
		reaped: reaped,
		pid:    cmd.Process.Pid,
		tail:   childproc.NewTail(tailLines),
		log:    log,
		exited: make(chan struct{}),
	}
	drained := make(chan struct{})
	go p.drain(r, sink, drained)
	go p.wait(r, sink, drained, phase)
	return p, nil
}

// drain records QEMU's output line by line until EOF. It must always
// run: QEMU blocks once the pipe is full.
func (p *proc) drain(r *os.File, sink *logSink, done chan<- struct{}) {
	defer close(done)
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			p.tail.Add(sink.line(strings.TrimRight(string(line), "\r\n")))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// wait reaps QEMU, lets the drain finish (bounded) and publishes the
// exit. exited fires only after that, so the ExitError's tail holds
// QEMU's last words.
func (p *proc) wait(r *os.File, sink *logSink, drained <-chan struct{}, phase func() Phase) {
	_ = p.cmd.Wait() // the outcome is read from ProcessState below
	close(p.reaped)
	timer := time.NewTimer(drainGrace)
	select {
	case <-drained:
	case <-timer.C:
		p.log.Warn("QEMU output still open after it exited; closing", "pid", p.pid, "after", drainGrace)
		_ = r.Close()
		<-drained
	}
	timer.Stop()
	_ = r.Close()
	_ = sink.red.Flush()

	ee := &ExitError{Pid: p.pid, Status: -1, Tail: p.tail.Snapshot(), Phase: phase()}
	if st := p.cmd.ProcessState; st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ee.Signal = signalName(ws.Signal())
		} else {
			ee.Status = st.ExitCode()
		}
	}
	p.exitErr = ee
	level := slog.LevelWarn
	if ee.Phase == PhaseStopping {
		level = slog.LevelInfo
	}
	p.log.Log(context.Background(), level, "QEMU exited", "pid", p.pid, "status", ee.Status, "signal", ee.Signal, "phase", ee.Phase.String())
	close(p.exited)
}

// gone reports whether QEMU has exited and been reaped.
func (p *proc) gone() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// signal sends sig to QEMU, or with group to its whole process group so
// nothing it spawned survives. A QEMU already reaped is not signalled:
// its pid (and group id) may belong to someone else by now.
func (p *proc) signal(sig syscall.Signal, group bool) error {
	if p.gone() {
		return nil
	}
	var err error
	if group {
		err = syscall.Kill(-p.pid, sig)
	} else {
		err = p.cmd.Process.Signal(sig)
	}
	if err == nil || errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("send %s to QEMU (pid %d): %w", signalName(sig), p.pid, err)
}

// kill is the rollback of a failed start: SIGKILL to the group, then a
// bounded wait for the reaper.
func (p *proc) kill(grace time.Duration) {
	_ = p.signal(syscall.SIGKILL, true)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		p.log.Warn("QEMU still running after SIGKILL", "pid", p.pid, "grace", grace)
	}
}
