package suite

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/loadtest"
)

// fakeM stands in for *testing.M: it records what the tests would see.
type fakeM struct {
	seen state
	runs int
}

func (m *fakeM) Run() int {
	m.runs++
	m.seen = run
	return 7
}

// TestAnInvalidConfigurationReachesTheTestAndNothingElse: nothing is
// wired or provisioned, and the test gets one message that names the
// variable.
func TestAnInvalidConfigurationReachesTheTestAndNothingElse(t *testing.T) {
	t.Setenv("LATENCY_CADENCE", "-2s")
	t.Setenv("LATENCY_RESULTS_DIR", t.TempDir())
	wired := false
	m := &fakeM{}
	code := runMain(m, func(context.Context, *config.Config, *loadtest.Options) (Wiring, error) {
		wired = true
		return Wiring{}, nil
	})
	assert.Equal(t, 7, code, "the tests decide the exit code")
	assert.Equal(t, 1, m.runs)
	assert.False(t, wired, "nothing is wired for an invalid configuration")
	require.Error(t, m.seen.setupErr)
	assert.Contains(t, m.seen.setupErr.Error(), "invalid configuration; nothing was set up")
	assert.Contains(t, m.seen.setupErr.Error(), "LATENCY_CADENCE")
	assert.Nil(t, m.seen.fleet)
}

// TestAWiringFailureIsSaidOnce: the stand-ins' error reaches the test
// with what failed, and nothing is provisioned.
func TestAWiringFailureIsSaidOnce(t *testing.T) {
	t.Setenv("LATENCY_PROVIDER", "fake")
	t.Setenv("LATENCY_RESULTS_DIR", t.TempDir())
	m := &fakeM{}
	runMain(m, func(context.Context, *config.Config, *loadtest.Options) (Wiring, error) {
		return Wiring{}, errors.New("no toolchain")
	})
	require.Error(t, m.seen.setupErr)
	assert.Contains(t, m.seen.setupErr.Error(), "the stand-ins did not start; nothing was set up")
	assert.Contains(t, m.seen.setupErr.Error(), "no toolchain")
	require.NotNil(t, m.seen.fleet, "a fleet that never started, so that its sidecar says why")
	for _, mb := range m.seen.fleet.Members {
		assert.ErrorContains(t, mb.SetupErr, "no toolchain")
		assert.Nil(t, mb.Session.Console, "nothing was provisioned")
	}
	assert.Nil(t, m.seen.ab)
}

func TestAbsPath(t *testing.T) {
	t.Chdir(t.TempDir())
	got := absPath("results")
	assert.True(t, len(got) > len("results") && got[0] == '/', got)
	assert.Equal(t, "/x/y", absPath("/x/y"))
}
