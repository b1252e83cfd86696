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
