package main

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// parentAtStart is the parent as the process began, read before anything
// else, to catch a parent that died before dieWithParent took effect.
var parentAtStart = os.Getppid()

// dieWithParent asks the kernel to send sig when the parent dies (make
// killed alone, a runner's shell gone), so the run is stopped, not
// orphaned. The signal goes when the parent thread that started us
// exits; make and shells have one thread.
func dieWithParent(sig syscall.Signal) error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sig), 0, 0, 0); err != nil {
		return fmt.Errorf("set the parent-death signal: %w", err)
	}
	if os.Getppid() != parentAtStart {
		// Gone already: the kernel will not tell us.
		return syscall.Kill(os.Getpid(), sig)
	}
	return nil
}
