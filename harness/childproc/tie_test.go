package childproc

import (
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestATiedChildOutlivesOtherTiedChildren: each tied child holds a
// thread of its own, so reaping other tied children (which retires their
// threads) never fires the parent-death signal of one still running. A
// child forked on a shared thread was killed exactly that way (QEMU, when
// a block's ryll ended).
func TestATiedChildOutlivesOtherTiedChildren(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	keep := exec.Command("sleep", "60")
	keepReaped := make(chan struct{})
	require.NoError(t, StartTied(keep, keepReaped))
	t.Cleanup(func() {
		_ = keep.Process.Kill()
		_ = keep.Wait()
		close(keepReaped)
	})
	for range 30 {
		c := exec.Command("true")
		reaped := make(chan struct{})
		require.NoError(t, StartTied(c, reaped))
		_ = c.Wait()
		close(reaped)
	}
	time.Sleep(100 * time.Millisecond) // let a wrongly fired signal land
	assert.NoError(t, keep.Process.Signal(syscall.Signal(0)), "the first child still runs")
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(keep.Process.Pid, &ws, syscall.WNOHANG, nil)
	require.NoError(t, err)
	assert.Zero(t, pid, "the first child has not exited")
}

func TestStartFailsCleanly(t *testing.T) {
	err := StartTied(exec.Command("/nonexistent/binary"), make(chan struct{}))
	require.Error(t, err)
}
