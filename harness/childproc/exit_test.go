package childproc

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTailKeepsTheLastLines(t *testing.T) {
	tb := NewTail(3)
	for i := range 10 {
		tb.Add(fmt.Sprint(i))
	}
	assert.Equal(t, []string{"7", "8", "9"}, tb.Snapshot())
	short := NewTail(5)
	short.Add("a")
	assert.Equal(t, []string{"a"}, short.Snapshot())
}

func TestFormatTailAndSignalNames(t *testing.T) {
	assert.Equal(t, "no output from QEMU", FormatTail("QEMU", nil))
	assert.Equal(t, "last 2 lines of output:\n\ta\n\tb", FormatTail("ryll", []string{"a", "b"}))
	assert.Equal(t, "SIGKILL", SignalName(syscall.SIGKILL))
	assert.Equal(t, "SIGINT", SignalName(syscall.SIGINT))
	assert.Equal(t, "starting", PhaseStarting.String())
	assert.Equal(t, "Phase(9)", Phase(9).String())
}

func TestExitErrorMessages(t *testing.T) {
	w := Words{Name: "svc", Ready: "its port answered", ZeroNote: "svc exits 0 on a lost peer"}
	cases := []struct {
		name string
		err  ExitError
		want string
	}{
		{"zero before ready", ExitError{Pid: 7, Status: 0, Tail: []string{"a", "b"}, Phase: PhaseStarting},
			"svc exited (status 0) before its port answered (svc exits 0 on a lost peer): last 2 lines of output (pid 7):\n\ta\n\tb"},
		{"nonzero mid-run", ExitError{Status: 1, Phase: PhaseRunning},
			"svc exited mid-run (status 1): no output from svc"},
		{"signal on stop", ExitError{Pid: 7, Status: -1, Signal: "SIGKILL", Phase: PhaseStopping},
			"svc exited on Stop (signal SIGKILL): no output from svc (pid 7)"},
		{"zero on stop, held", ExitError{Phase: PhaseStopping, HeldBy: []int{8, 9}},
			"svc exited on Stop (status 0) (after it exited, pids [8 9] still held its output open): no output from svc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.err.Message(w))
		})
	}
	assert.Equal(t, "child exited (status 2) before it was ready: no output from child", (&ExitError{Status: 2}).Error())
}
