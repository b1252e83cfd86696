// Linux delivers the parent-death signal when the thread that forked the
// child exits, not the process, and Go moves goroutines between threads
// and retires a thread when a goroutine that locked it ends. So every
// tied child is forked on a goroutine locked to a thread of its own, and
// that thread lives until the child is reaped. A child forked on an
// ordinary thread could be killed the moment some other tied child's
// goroutine retired that thread: all tied children must start here.
package childproc

import (
	"os/exec"
	"runtime"
	"syscall"
)

// StartTied starts cmd so that the kernel kills it (SIGKILL) when the
// harness dies. reaped must be closed once the caller has waited for the
// child (or the start failed and the child was killed and waited for):
// it releases the thread that holds the tie.
func StartTied(cmd *exec.Cmd, reaped <-chan struct{}) error {
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
