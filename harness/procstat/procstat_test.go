package procstat

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process may name
	// itself; utime 250, stime 30.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 12345 1000000 200 18446744073709551615\n"
	state, ticks, err := parseStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, "S", state)
	assert.Equal(t, int64(280), ticks)

	for _, bad := range []string{"", "4242 no paren S 1", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 3 0"} {
		_, _, err := parseStat([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

func TestParseRSS(t *testing.T) {
	rss, err := parseRSS([]byte("Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n"))
	require.NoError(t, err)
	assert.Equal(t, int64(2048*1024), rss)
	rss, err = parseRSS([]byte("Name:\tzombie\nState:\tZ (zombie)\n"))
	require.NoError(t, err)
	assert.Zero(t, rss, "a zombie has no VmRSS")
	_, err = parseRSS([]byte("VmRSS:\t12 MB\n"))
	assert.Error(t, err)
}

// TestSelfCountsCPU: the process's CPU time grows by at least most of a
// busy loop's own CPU time (read from getrusage, the kernel's other
// account of the same thing), and its RSS is above zero.
func TestSelfCountsCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("procstat reads /proc: Linux only")
	}
	before, err := Self()
	require.NoError(t, err)
	assert.Positive(t, before.RSS)
	r0 := rusage(t)
	for rusage(t)-r0 < 200*time.Millisecond {
		spin()
	}
	after, err := Self()
	require.NoError(t, err)
	// /proc counts in 10 ms ticks: allow two ticks of rounding.
	assert.GreaterOrEqual(t, after.CPU-before.CPU, 200*time.Millisecond-20*time.Millisecond)
	p := after.Process("harness")
	assert.Equal(t, "harness", p.Role)
	assert.Equal(t, after.CPU, p.CPU)
}

func TestGoneProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("procstat reads /proc: Linux only")
	}
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	_, err := Read(cmd.Process.Pid)
	assert.True(t, errors.Is(err, ErrNoProcess), "%v", err)
}

var sink uint64

func spin() {
	x := sink
	for i := range 100000 {
		x = x*6364136223846793005 + uint64(i)
	}
	sink = x
}

func rusage(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
