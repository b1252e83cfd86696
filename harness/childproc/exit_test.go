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
	w := Words{Name: "ryll", Ready: "the control socket was ready", ZeroNote: "ryll exits 0 when its SPICE session fails"}
	tail := []string{"line one", "line two"}
	cases := []struct {
		name string
		err  ExitError
		want []string
		not  []string
	}{
		{"zero before ready", ExitError{Pid: 7, Status: 0, Tail: tail, Phase: PhaseStarting},
			[]string{"ryll exited (status 0) before the control socket was ready (ryll exits 0 when its SPICE session fails): last 2 lines of output (pid 7):\n\tline one\n\tline two"}, nil},
		{"mid-run", ExitError{Status: 0, Tail: tail, Phase: PhaseRunning},
			[]string{"ryll exited mid-run (status 0)", "line two"}, nil},
		{"signal on stop", ExitError{Pid: 7, Status: -1, Signal: "SIGKILL", Phase: PhaseStopping},
			[]string{"ryll exited on Stop (signal SIGKILL): no output from ryll (pid 7)"}, []string{"status", "SPICE session"}},
		{"nonzero", ExitError{Status: 1, Phase: PhaseRunning},
			[]string{"mid-run (status 1)"}, []string{"SPICE session fails"}},
		{"held", ExitError{Status: 0, Phase: PhaseStopping, HeldBy: []int{8, 9}},
			[]string{"on Stop (status 0) (after it exited, pids [8 9] still held its output open)"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Message(w)
			for _, s := range tc.want {
				assert.Contains(t, msg, s)
			}
			for _, s := range tc.not {
				assert.NotContains(t, msg, s)
			}
		})
	}
	assert.Equal(t, "child exited mid-run (status 2): no output from child", (&ExitError{Status: 2, Phase: PhaseRunning}).Error())
}
