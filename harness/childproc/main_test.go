package childproc

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childModeVar makes the test binary act as a child. It reaches the child
// through Command.Env, since the child's environment is explicit.
const childModeVar = "CHILDPROC_TEST_MODE"

// childIgnoreVar lists signals ("INT", "TERM") a child ignores.
const childIgnoreVar = "CHILDPROC_TEST_IGNORE"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(childModeVar); ok {
		os.Exit(runChild(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// runChild is the test child. Modes:
//
//	lines N S   print N numbered lines, half to stderr, then exit S
//	serve       print "ready", then wait: SIGINT, SIGTERM and SIGUSR1
//	            each make it say so and exit 0 (unless ignored)
//	spawn       start a "hold" grandchild in its own group (args[0] is
//	            "group" to keep it in ours, "session" for a new
//	            session), print "holder PID", then serve
//	spawn-exit  the same, then exit 0 at once
//	hold        print "holding", then sleep until killed
//
// A watchdog ends every child after a minute so a crashed test run does
// not leave children behind.
func runChild(mode string, args []string) int {
	go func() {
		time.Sleep(time.Minute)
		fmt.Fprintln(os.Stderr, "test child: watchdog expired")
		os.Exit(99)
	}()
	switch mode {
	case "lines":
		n, _ := strconv.Atoi(args[0])
		status, _ := strconv.Atoi(args[1])
		for i := range n {
			if i%2 == 0 {
				fmt.Printf("\x1b[32mline %d\x1b[0m\n", i)
			} else {
				fmt.Fprintf(os.Stderr, "line %d\n", i)
			}
		}
		return status
	case "serve":
		return serve()
	case "spawn", "spawn-exit":
		h := exec.Command(os.Args[0], "hold")
		h.Env = append(os.Environ(), childModeVar+"=hold")
		h.Stdout, h.Stderr = os.Stdout, os.Stderr
		if args[0] == "session" {
			h.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := h.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			return 1
		}
		fmt.Printf("holder %d\n", h.Process.Pid)
		if mode == "spawn-exit" {
			return 0
		}
		return serve()
	case "hold":
		signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
		fmt.Println("holding")
		select {}
	}
	fmt.Fprintf(os.Stderr, "test child: unknown mode %q\n", mode)
	return 98
}

func serve() int {
	ignored := map[string]bool{}
	for _, name := range strings.Split(os.Getenv(childIgnoreVar), ",") {
		ignored[name] = true
	}
	sigs := make(chan os.Signal, 1)
	for name, sig := range map[string]os.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM} {
		if ignored[name] {
			signal.Ignore(sig)
		} else {
			signal.Notify(sigs, sig)
		}
	}
	signal.Notify(sigs, syscall.SIGUSR1)
	// Signals are set up before "ready", so a test that saw it knows they
	// are in force.
	fmt.Println("ready")
	s := <-sigs
	fmt.Printf("got %s, exiting\n", SignalName(s.(syscall.Signal)))
	return 0
}
