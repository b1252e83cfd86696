//go:build !loadtest

package latency

import (
	"maps"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/results"
)

// TestRealLaneRampShort is a short load ramp on the real lane, for make
// test-ab: the qemu guest through a nodelay proxy, with 0 and 8 synthetic
// busy sessions (1 Mbit/s each) through the same proxy, 20 samples a
// step over two interleaved rounds (0,8,8,0). What it checks holds
// whatever the shared host does: the record's shape (each step its
// samples, the order, traffic only when sessions run, the curve), and a
// verdict the data proves: on a host the run found saturated it is
// host-bound and the run fails; otherwise there is no knee (8 sessions
// at 1 Mbit/s are nothing to a nodelay proxy) and the run passes.
func TestRealLaneRampShort(t *testing.T) {
	_, env := realLane(t)
	env = maps.Clone(env)
	delete(env, "LATENCY_AB_BLOCK")
	env["LATENCY_LOAD"] = "0,8"
	env["LATENCY_SAMPLES"] = "20"
	cmd, out, o := startLoadtest(t, env)
	o.exitCode = wait(t, cmd, 3*time.Minute)
	o.output = out.String()
	t.Logf("loadtest exit %d; output:\n%s", o.exitCode, o.output)

	l, err := results.ReadLoad(filepath.Join(o.dir, results.LoadName(o.runID)))
	require.NoError(t, err)
	assert.Equal(t, []int{0, 8, 8, 0}, l.Order, "two rounds, the second reversed")
	require.Len(t, l.Steps, 2)
	for _, s := range l.Steps {
		assert.Equal(t, 20, s.Repaint.Samples, "%d sessions: LATENCY_SAMPLES per step", s.Sessions)
		assert.Equal(t, 2, s.Blocks)
		assert.NotNil(t, s.Host, "host figures per step")
		assert.LessOrEqual(t, s.Repaint.P95CIS[0], s.Repaint.P95S)
		assert.GreaterOrEqual(t, s.Repaint.P95CIS[1], s.Repaint.P95S)
		assert.NotEmpty(t, s.CPU)
	}
	assert.Zero(t, l.Steps[0].BytesPerS, "no busy session at the baseline")
	// 8 sessions at 1 Mbit/s read about 1 MB/s; a quarter of it is a
	// margin no scheduler delay crosses.
	assert.Greater(t, l.Steps[1].BytesPerS, 8*1e6/8/4, "the busy sessions' traffic through the proxy")
	assert.Contains(t, l.Proxy, "nodelay")
	assert.FileExists(t, filepath.Join(o.dir, results.LoadPlotName(o.runID)))
	assert.FileExists(t, filepath.Join(o.dir, results.CSVName(o.runID)), "the measured console's CSV as any run's")
	assert.Contains(t, o.output, "ramp verdict")
	sc := o.sidecar(t)
	assert.Equal(t, 40, len(o.csv(t)), "the measured console's CSV holds every step's samples")
	assert.NotEmpty(t, sc.Files)

	switch l.Verdict {
	case "host-bound":
		assert.NotEqual(t, 0, o.exitCode, "a host-bound ramp is no pass")
		assert.Contains(t, o.output, "host-bound")
	case "no-knee":
		assert.Equal(t, 0, o.exitCode, "%v", l.Reasons)
		assert.Nil(t, l.Knee)
	default:
		t.Errorf("verdict %s (%v): want no-knee, or host-bound on a busy host", l.Verdict, l.Reasons)
	}
	m := regexp.MustCompile(`msg="started QEMU".* pid=(\d+)`).FindStringSubmatch(o.output)
	require.NotNil(t, m, "the log names the QEMU it started")
	pid, _ := strconv.Atoi(m[1])
	assert.False(t, running(pid), "QEMU is gone after the ramp")
	assertNoRyllLeft(t, o.output)
	// The proxy and the generator are processes of their own, gone too.
	rig := regexp.MustCompile(`msg="stopping loadrig (proxy|generator)".* pid=(\d+)`).FindAllStringSubmatch(o.output, -1)
	assert.Len(t, rig, 2, "the log names the proxy and generator it stopped")
	for _, m := range rig {
		pid, _ := strconv.Atoi(m[2])
		assert.False(t, running(pid), "the %s (pid %d) is gone after the ramp", m[1], pid)
	}
	for _, s := range l.Steps {
		var roles []string
		for _, c := range s.CPU {
			roles = append(roles, c.Role)
		}
		assert.Subset(t, roles, []string{"harness", "qemu", "proxy", "generator"}, "%d sessions: the CPU of each, apart", s.Sessions)
	}
}
