package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// ErrReadyTimeout is wrapped by Start when QMP and SPICE did not both
// answer within Spec.ReadyTimeout.
var ErrReadyTimeout = errors.New("QEMU not ready")

const (
	// portAttempts bounds the boots Start tries when the SPICE port it
	// picked was taken before QEMU could bind it.
	portAttempts = 5
	// probeTimeout bounds one readiness probe, so a socket that accepts
	// but never answers cannot use up the whole wait silently.
	probeTimeout = 2 * time.Second
	// probeMinBackoff and probeMaxBackoff bound the pause between failed
	// probes: QEMU's sockets appear within tens of milliseconds.
	probeMinBackoff = 5 * time.Millisecond
	probeMaxBackoff = 200 * time.Millisecond
	// queryTimeout bounds the questions Start asks once QEMU is ready.
	queryTimeout = 10 * time.Second
)

// portTakenMarks are what spice-server prints when it cannot bind its
// port (it does not quote the errno): "reds_init_socket: binding socket
// to 127.0.0.1:P failed", then "Failed to open SPICE sockets".
var portTakenMarks = []string{"binding socket to", "Failed to open SPICE sockets"}

// Info names the QEMU that runs a guest, for the results sidecar.
type Info struct {
	// QEMU is "MAJOR.MINOR.MICRO" from query-version.
	QEMU string `json:"qemu"`
	// Package is the distribution build, e.g. "Debian 1:7.2+dfsg-7".
	Package string `json:"package,omitempty"`
	// Accel is the accelerator in use, "tcg" (or "kvm" if ExtraArgs
	// asked for it), from query-kvm.
	Accel string `json:"accel"`
}

// VM is one running QEMU guest with a SPICE server on a loopback port.
// It owns a private 0700 directory (image copy, password file, QMP
// socket), a QMP connection and the log; the process itself is owned by
// a childproc.Child. Stop must always be called (typically from
// t.Cleanup) and removes all of it.
type VM struct {
	spec Spec
	log  *slog.Logger
	dir  string
	port int
	p    *childproc.Child
	qmp  *QMP
	sink *childproc.Log
	info Info

	screens  atomic.Uint64
	stopOnce childproc.Once
}

// Start boots a guest as spec describes and returns once QMP answers and
// the SPICE port accepts connections. ctx bounds the boot only. On every
// error path everything already acquired is released: the process is
// killed, the private directory removed, the log closed. A QEMU that
// exits during boot is an *ExitError quoting its last output lines.
func Start(ctx context.Context, spec Spec) (*VM, error) {
	if spec.SpicePort != 0 {
		return start(ctx, spec, func() (int, error) { return spec.SpicePort, nil })
	}
	return start(ctx, spec, freePort)
}

// start is Start with the SPICE port picker given, so a test can hand
// out a taken port first.
func start(ctx context.Context, spec Spec, pickPort func() (int, error)) (_ *VM, err error) {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start QEMU: %w", context.Cause(ctx))
	}
	path, err := LookBinary(spec.Binary)
	if err != nil {
		return nil, err
	}
	vm := &VM{spec: spec, log: spec.Logger.With("component", "qemu", "name", spec.Name)}

	// Everything below is released by this deferred function if Start
	// fails, in reverse order of acquisition.
	var (
		sink *childproc.Log
		dir  string
		p    *childproc.Child
		q    *QMP
	)
	defer func() {
		if err == nil {
			return
		}
		if q != nil {
			_ = q.Close()
		}
		if p != nil {
			_ = p.Kill()
		}
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
		if sink != nil {
			_ = sink.Close()
		}
	}()

	if sink, err = childproc.OpenLog(spec.LogPath, false, spec.Password.Reveal()); err != nil {
		return nil, fmt.Errorf("open QEMU log: %w", err)
	}
	vm.sink = sink
	if dir, err = makeDir(); err != nil {
		return nil, err
	}
	if err = writePrivate(filepath.Join(dir, imageName), spec.Image); err != nil {
		return nil, fmt.Errorf("copy guest image: %w", err)
	}
	if !spec.Password.IsZero() {
		if err = writePrivate(filepath.Join(dir, secretName), []byte(spec.Password.Reveal())); err != nil {
			return nil, fmt.Errorf("write SPICE password file: %w", err)
		}
	}

	for attempt := 1; ; attempt++ {
		var port int
		if port, err = pickPort(); err != nil {
			return nil, err
		}
		args := spec.args(dir, port)
		sink.Line(fmt.Sprintf("--- kerbside-latency: boot attempt %d, SPICE port %d ---", attempt, port))
		if p, err = vm.launch(ctx, path, args, dir); err != nil {
			return nil, err
		}
		vm.log.Info("started QEMU", "pid", p.Pid(), "attempt", attempt, "spice_port", port, "dir", dir, "args", args)
		start := time.Now()
		q, err = vm.waitReady(ctx, p, dir, port)
		if err == nil {
			vm.port = port
			vm.log.Info("QEMU ready", "pid", p.Pid(), "after", time.Since(start).Round(time.Millisecond))
			break
		}
		var ee *ExitError
		if errors.As(err, &ee) && attempt < portAttempts && portTaken(ee.Tail) && spec.SpicePort == 0 {
			vm.log.Warn("SPICE port taken before QEMU bound it; retrying on another", "port", port, "attempt", attempt)
			p = nil // exited and reaped: nothing left to release
			continue
		}
		return nil, fmt.Errorf("boot QEMU %s: %w", path, err)
	}

	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if vm.info, err = queryInfo(qctx, q); err != nil {
		return nil, fmt.Errorf("ask QEMU what it is: %w", err)
	}
	vm.dir, vm.p, vm.qmp = dir, p, q
	p.MarkReady()
	return vm, nil
}

// launch starts one QEMU process under a supervisor whose stop ladder is
// QMP quit (QEMU's own orderly shutdown), SIGTERM, then SIGKILL to its
// process group.
func (vm *VM) launch(ctx context.Context, path string, args []string, dir string) (*childproc.Child, error) {
	g := vm.spec.Grace
	c := childproc.New(childproc.Spec{
		Words:     words,
		Logger:    vm.log,
		TailLines: vm.spec.TailLines,
		Ladder: childproc.Ladder{
			Rungs: []childproc.Rung{
				{Name: "QMP quit", Ask: vm.quit, Grace: g.Quit},
				{Signal: syscall.SIGTERM, Grace: g.Terminate},
			},
			Kill: g.Kill,
		},
	})
	err := c.Start(ctx, childproc.Command{Path: path, Args: args, Env: childEnv(), Dir: dir, Output: vm.sink})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// quit asks QEMU to shut down in order. A QMP connection not yet made,
// or already broken, cannot carry quit: the error moves the ladder on to
// SIGTERM at once instead of waiting out the quit grace.
func (vm *VM) quit(ctx context.Context) error {
	q := vm.qmp
	if q == nil {
		return errors.New("no QMP connection")
	}
	if err := q.Err(); err != nil {
		return fmt.Errorf("QMP connection broken: %w", err)
	}
	// QEMU answers quit and then closes the connection; either is fine.
	if err := q.Execute(ctx, "quit", nil, nil); err != nil && !errors.Is(err, ErrQMPClosed) {
		return err
	}
	return nil
}

// waitReady waits until QMP answers and the SPICE port accepts, QEMU
// exits, Spec.ReadyTimeout passes or ctx ends, whichever comes first.
// It probes with a short backoff: there is no signal to wait for, and
// both sockets appear within tens of milliseconds of the start.
func (vm *VM) waitReady(parent context.Context, p *childproc.Child, dir string, port int) (_ *QMP, err error) {
	ctx, cancel := context.WithTimeoutCause(parent, vm.spec.ReadyTimeout, ErrReadyTimeout)
	defer cancel()
	// A probe in flight when QEMU exits is cut short at once.
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	var q *QMP
	defer func() {
		if err != nil && q != nil {
			_ = q.Close()
		}
	}()
	sock := filepath.Join(dir, qmpName)
	spiceAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	probe := func() error {
		pctx, pcancel := context.WithTimeout(ctx, probeTimeout)
		defer pcancel()
		if q == nil {
			c, err := DialQMP(pctx, sock)
			if err != nil {
				return err
			}
			q = c
		}
		var d net.Dialer
		c, err := d.DialContext(pctx, "tcp", spiceAddr)
		if err != nil {
			return fmt.Errorf("connect to SPICE %s: %w", spiceAddr, err)
		}
		_ = c.Close()
		var st struct {
			Status string `json:"status"`
		}
		if err := q.Execute(pctx, "query-status", nil, &st); err != nil {
			return err
		}
		if st.Status != "running" {
			return fmt.Errorf("guest is %q, not running", st.Status)
		}
		return nil
	}

	backoff := probeMinBackoff
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var lastErr error
	for attempts := 1; ; attempts++ {
		if lastErr = probe(); lastErr == nil {
			return q, nil
		}
		retry.Reset(backoff)
		backoff = min(2*backoff, probeMaxBackoff)
		select {
		case <-retry.C:
			continue
		case <-p.Done():
		case <-ctx.Done():
		}
		if ee := exitErr(p); ee != nil {
			return nil, ee
		}
		if errors.Is(context.Cause(ctx), ErrReadyTimeout) {
			return nil, fmt.Errorf("%w within %s (%d probes, last: %v): %s",
				ErrReadyTimeout, vm.spec.ReadyTimeout, attempts, lastErr, childproc.FormatTail("QEMU", p.Tail()))
		}
		return nil, fmt.Errorf("wait for QMP and SPICE: %w", context.Cause(ctx))
	}
}

// queryInfo asks QEMU its version and accelerator.
func queryInfo(ctx context.Context, q *QMP) (Info, error) {
	var v QMPVersion
	if err := q.Execute(ctx, "query-version", nil, &v); err != nil {
		return Info{}, err
	}
	var kvm struct {
		Enabled bool `json:"enabled"`
	}
	if err := q.Execute(ctx, "query-kvm", nil, &kvm); err != nil {
		return Info{}, err
	}
	info := Info{QEMU: v.String(), Package: v.Package, Accel: "tcg"}
	if kvm.Enabled {
		info.Accel = "kvm"
	}
	return info, nil
}

// portTaken reports whether QEMU's output says the SPICE port was busy.
func portTaken(tail []string) bool {
	for _, line := range tail {
		for _, mark := range portTakenMarks {
			if strings.Contains(line, mark) {
				return true
			}
		}
	}
	return false
}

// freePort asks the kernel for a free loopback port. Another process
// may take it before QEMU binds it; Start retries when that happens.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free SPICE port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("find a free SPICE port: %w", err)
	}
	return port, nil
}

// makeDir creates the VM's private directory. It is 0700 because it
// holds the password file and the QMP socket, which controls the guest.
func makeDir() (string, error) {
	// Owned (tmpdir): a harness killed by SIGKILL takes QEMU with it
	// (childproc), and the next run sweeps the directory it left.
	dir, err := tmpdir.Make("qemu-")
	if err != nil {
		return "", fmt.Errorf("create QEMU directory: %w", err)
	}
	if n := len(filepath.Join(dir, qmpName)); n > maxSocketPath {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("QMP socket path in %s is %d bytes, over the %d-byte limit of Unix socket paths: set TMPDIR to a shorter directory",
			dir, n, maxSocketPath)
	}
	return dir, nil
}

// writePrivate writes a new 0600 file.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SpiceAddr is where the guest's SPICE server listens: always loopback.
func (vm *VM) SpiceAddr() (host string, port int) { return "127.0.0.1", vm.port }

// Password is the SPICE password (zero when ticketing is off).
func (vm *VM) Password() secret.String { return vm.spec.Password }

// Version names the QEMU and accelerator running the guest.
func (vm *VM) Version() Info { return vm.info }

// Pid is QEMU's process id (and process group id), for CPU and memory
// readings.
func (vm *VM) Pid() int { return vm.p.Pid() }

// Exited is closed once QEMU has exited, for any reason, and its output
// has been drained. The loadtest selects on it so a run fails the moment
// the guest goes away.
func (vm *VM) Exited() <-chan struct{} { return vm.p.Done() }

// ExitErr is nil while QEMU runs and an *ExitError once it has exited.
func (vm *VM) ExitErr() error {
	if ee := exitErr(vm.p); ee != nil {
		return ee
	}
	return nil
}

// Execute runs a QMP command (see QMP.Execute). Once QEMU has exited the
// error says how it ended.
func (vm *VM) Execute(ctx context.Context, command string, args, result any) error {
	err := vm.qmp.Execute(ctx, command, args, result)
	if err != nil && errors.Is(err, ErrQMPClosed) {
		if ee := vm.ExitErr(); ee != nil {
			return fmt.Errorf("%w (%w)", err, ee)
		}
	}
	return err
}

// Screendump returns the guest's screen as a PPM image. QEMU writes it to
// a file in the private directory, which is removed once read.
func (vm *VM) Screendump(ctx context.Context) ([]byte, error) {
	path := filepath.Join(vm.dir, fmt.Sprintf("screen-%d.ppm", vm.screens.Add(1)))
	defer func() { _ = os.Remove(path) }()
	if err := vm.Execute(ctx, "screendump", map[string]string{"filename": path}, nil); err != nil {
		return nil, fmt.Errorf("screendump: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("screendump: %w", err)
	}
	return b, nil
}

// Stop shuts QEMU down with a ladder of steps, each followed by a bounded
// wait: QMP quit, then SIGTERM, then SIGKILL to the process group. If ctx
// ends (or has already ended), the gentler steps are skipped and SIGKILL
// is sent at once, so Stop never leaves QEMU behind. It then removes the
// private directory and closes the log.
//
// Stop is safe to call more than once and concurrently: the first call
// does the work, the others wait for it (or their own ctx) and return its
// result. That QEMU needed a signal is not an error; it shows in ExitErr
// and the log.
func (vm *VM) Stop(ctx context.Context) error {
	return vm.stopOnce.Do(ctx, "stop QEMU", func() error { return vm.stop(ctx) })
}

func (vm *VM) stop(ctx context.Context) error {
	var errs []error
	if err := vm.p.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	_ = vm.qmp.Close()
	if err := os.RemoveAll(vm.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove QEMU directory: %w", err))
	}
	if exitErr(vm.p) != nil {
		// A QEMU still running would write to a closed file.
		if err := vm.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("QEMU %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop QEMU: %w", err)
	}
	return nil
}
