package ryll

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startTied starts cmd so that the kernel kills it when the harness
// dies, even by SIGKILL, when nothing of ours runs to stop it.
//
// Linux delivers the parent-death signal when the thread that forked the
// child exits, not the process, and Go moves goroutines between threads
// and retires threads. So the fork happens on a goroutine locked to its
// thread, and that goroutine (with its thread) stays until the child is
// reaped: the thread outlives the child, and dies only with the process.
func startTied(cmd *exec.Cmd, reaped <-chan struct{}) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-reaped
		}
		// Never unlocked: the goroutine ends, and its thread with it,
		// rather than going back to the pool carrying this duty.
	}()
	return <-errc
}
