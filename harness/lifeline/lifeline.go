// Package lifeline ties a loadtest to the launcher that started it
// (cmd/latency-run), across the programs between them (gotestsum,
// test2json) and whatever kills the launcher.
//
// The launcher puts its command out of reach of a signal to its process
// group, so that a cancel keeps the results; the price is that a launcher
// killed outright (SIGKILL to the whole group) can pass nothing on, and
// the loadtest, ryll and QEMU ran on for minutes with nobody to report
// to. So the launcher holds the only write end of a named pipe (the
// lifeline) and never writes to it; the loadtest reads it. The kernel
// closes the write end when the launcher dies, however it dies, and the
// loadtest's read returns end-of-file: the loadtest then stops as it
// does on SIGTERM, keeping what it collected. A named pipe rather than an
// inherited descriptor, because the programs in between need not pass
// descriptors on; its path travels in LATENCY_LIFELINE, which they do
// pass on.
//
// The loadtest also writes its pid to LATENCY_PID_FILE, so the launcher
// can send a stop to it alone.
package lifeline

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Var names the named pipe whose end-of-file means the launcher is gone.
const Var = "LATENCY_LIFELINE"

// PIDFileVar names the file the loadtest writes its pid to.
const PIDFileVar = "LATENCY_PID_FILE"

// Line is the launcher's end: the pipe, held open for writing, and the
// pid file's path.
type Line struct {
	pipe    string
	pidFile string
	w       *os.File
}

// Make creates the lifeline and the pid file's place in dir (a private
// directory of the launcher) and holds the pipe's write end open until
// Close, or until the process dies.
func Make(dir string) (*Line, error) {
	l := &Line{pipe: filepath.Join(dir, "lifeline"), pidFile: filepath.Join(dir, "loadtest.pid")}
	if err := syscall.Mkfifo(l.pipe, 0o600); err != nil {
		return nil, fmt.Errorf("create the lifeline %s: %w", l.pipe, err)
	}
	// Read and write, so that the open does not wait for a reader and a
	// reader that comes and goes never makes our end fail. Nothing is
	// ever written.
	w, err := os.OpenFile(l.pipe, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open the lifeline %s: %w", l.pipe, err)
	}
	l.w = w
	return l, nil
}

// Env is what the command's environment needs to find the lifeline and
// the pid file.
func (l *Line) Env() []string {
	return []string{Var + "=" + l.pipe, PIDFileVar + "=" + l.pidFile}
}

// PIDFile is where the loadtest writes its pid.
func (l *Line) PIDFile() string { return l.pidFile }

// Close cuts the lifeline: every loadtest holding it stops. A launcher
// calls it only once its command has exited (the kernel cuts it anyway
// when the launcher dies).
func (l *Line) Close() error { return l.w.Close() }

// ReadPID returns the pid in the pid file at path, if there is one.
func ReadPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, true
}

// Attach is the loadtest's end, called once it handles SIGTERM. Without
// a launcher (the variables unset) it does nothing. Otherwise it writes
// this process's pid to the pid file (whole, by rename, so the launcher
// never reads half a pid) and watches the lifeline: when the launcher is
// gone, cut is called once, from a goroutine of its own. A launcher that
// died before Attach is found at once. Problems are logged, never fatal:
// the run goes on as it would without a launcher.
func Attach(logger *slog.Logger, getenv func(string) string, cut func()) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path := getenv(PIDFileVar); path != "" {
		if err := writePID(path); err != nil {
			logger.Warn("could not write "+PIDFileVar+": a stop through latency-run will signal the whole command instead", "path", path, "err", err)
		}
	}
	path := getenv(Var)
	if path == "" {
		return
	}
	// Non-blocking, so that the open returns even when no launcher holds
	// the other end any more; reads then wait in the runtime's poller.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		// No lifeline at all: the launcher's directory is gone, so is it.
		logger.Warn("the launcher's lifeline cannot be opened: it is gone", "path", path, "err", err)
		go cut()
		return
	}
	go watch(f, cut)
}

// watch reads the lifeline until end-of-file (or any error: no launcher
// writes, so nothing else ends a read), then calls cut.
func watch(f *os.File, cut func()) {
	defer f.Close()
	var b [64]byte
	for {
		if _, err := f.Read(b[:]); err != nil {
			cut()
			return
		}
	}
}

func writePID(path string) error {
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
