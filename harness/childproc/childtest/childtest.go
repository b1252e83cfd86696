// Package childtest lets a package's test binary stand in for the child
// processes its tests supervise (the TestMain re-exec pattern), so those
// tests need no program of their own: Main dispatches a re-executed
// binary to a mode, and Env selects one for a child's explicit
// environment. Only tests import it.
package childtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// ModeVar names the variable that makes a test binary run as a child.
const ModeVar = "CHILDTEST_MODE"

// IgnoreVar lists the signals ("INT", "TERM") a child ignores (see
// Signals).
const IgnoreVar = "CHILDTEST_IGNORE"

// holdMode is the built-in mode of SpawnHolder's grandchild.
const holdMode = "childtest-hold"

// Watchdog ends every child after this long, so a crashed test run does
// not leave children behind.
const Watchdog = time.Minute

// A Mode is one behaviour of the stand-in child: it gets the child's
// arguments and returns its exit status.
type Mode func(args []string) int

// Main runs the test binary as the child named by ModeVar when it is set
// (and exits with its status), else runs the tests with goleak's check
// for leaked goroutines.
func Main(m *testing.M, modes map[string]Mode) {
	name, ok := os.LookupEnv(ModeVar)
	if !ok {
		goleak.VerifyTestMain(m)
		return
	}
	go func() {
		time.Sleep(Watchdog)
		fmt.Fprintln(os.Stderr, "test child: watchdog expired")
		os.Exit(99)
	}()
	if name == holdMode {
		hold()
	}
	mode, ok := modes[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "test child: unknown mode %q\n", name)
		os.Exit(98)
	}
	os.Exit(mode(os.Args[1:]))
}

// Env is the environment that makes the test binary run mode: ModeVar,
// and GORACE so a -race child does not sleep a second on exit.
func Env(mode string) []string {
	return []string{ModeVar + "=" + mode, "GORACE=atexit_sleep_ms=0"}
}

// SpawnHolder, called in a child, starts a grandchild that inherits the
// child's stdout and stderr, ignores SIGINT and SIGTERM, prints
// "holding" and sleeps until killed (or the watchdog). With session it
// leads a session of its own, out of reach of a kill of the child's
// process group; else it stays in the child's group. It prints "holder
// PID" and returns the pid, for the test to find it (and kill it).
func SpawnHolder(session bool) (int, error) {
	h := exec.Command(os.Args[0])
	h.Env = append(os.Environ(), ModeVar+"="+holdMode)
	h.Stdout, h.Stderr = os.Stdout, os.Stderr
	if session {
		h.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := h.Start(); err != nil {
		return 0, fmt.Errorf("spawn holder: %w", err)
	}
	fmt.Printf("holder %d\n", h.Process.Pid)
	return h.Process.Pid, nil
}

// Ignore is the environment entry that makes a child ignore the signals
// named in names ("INT,TERM"), to test a stop ladder's escalation.
func Ignore(names string) string { return IgnoreVar + "=" + names }

// Signals, called in a child, ignores the signals IgnoreVar names and
// delivers the others of notify on the returned channel (a signal
// neither ignored nor in notify keeps its default action).
func Signals(notify ...os.Signal) <-chan os.Signal {
	ignored := map[os.Signal]bool{}
	for _, name := range strings.Split(os.Getenv(IgnoreVar), ",") {
		switch name {
		case "INT":
			ignored[syscall.SIGINT] = true
		case "TERM":
			ignored[syscall.SIGTERM] = true
		}
	}
	for sig := range ignored {
		signal.Ignore(sig)
	}
	ch := make(chan os.Signal, 1)
	for _, sig := range notify {
		if !ignored[sig] {
			signal.Notify(ch, sig)
		}
	}
	return ch
}

func hold() {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	fmt.Println("holding")
	select {}
}

// Running reports whether pid is a live process: not gone, and not a
// zombie waiting for a parent that exited.
func Running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: the best we can do
	}
	// The state follows the command name, which is in parentheses.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 >= len(b) || b[i+2] != 'Z'
		}
	}
	return true
}
