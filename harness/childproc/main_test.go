package childproc

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/shakenfist/kerbside-latency/harness/childproc/childtest"
)

// childPidFileVar names a file where "spawn" writes its holder's pid,
// for a test that cannot read the child's output while it runs.
const childPidFileVar = "CHILDPROC_TEST_PIDFILE"

// TestMain makes this test binary the children the tests supervise:
//
//	lines N S   print N numbered lines (colour on stdout, plain on
//	            stderr), then exit S
//	serve       print "ready", then wait: SIGINT, SIGTERM and SIGUSR1
//	            each make it say so and exit 0 (unless ignored:
//	            childtest.Ignore)
//	spawn W     start a holder grandchild (childtest.SpawnHolder; W is
//	            "group" to keep it in the child's group, "session" for a
//	            session of its own), then serve
//	spawn-exit  the same, then exit 0 at once
func TestMain(m *testing.M) {
	childtest.Main(m, map[string]childtest.Mode{
		"lines": func(args []string) int {
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
		},
		"serve": func([]string) int { return serve() },
		"spawn": func(args []string) int {
			holder, err := childtest.SpawnHolder(args[0] == "session")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if f := os.Getenv(childPidFileVar); f != "" {
				_ = os.WriteFile(f+".tmp", []byte(strconv.Itoa(holder)), 0o600)
				_ = os.Rename(f+".tmp", f)
			}
			return serve()
		},
		"spawn-exit": func(args []string) int {
			if _, err := childtest.SpawnHolder(args[0] == "session"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		},
	})
}

func serve() int {
	sigs := childtest.Signals(syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	// Signals are set up before "ready", so a test that saw it knows they
	// are in force.
	fmt.Println("ready")
	s := <-sigs
	fmt.Printf("got %s, exiting\n", SignalName(s.(syscall.Signal)))
	return 0
}
