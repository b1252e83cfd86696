package controltest_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/control/controltest"
)

// Against fakeryll's simulator: a verb's result, a refusal as a
// *control.ProtocolError, and a second call after the first client left.
func TestCallAgainstTheSimulator(t *testing.T) {
	dir, err := os.MkdirTemp("", "ctt-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg := sim.DefaultConfig()
	cfg.SocketPath = filepath.Join(dir, "s")
	s, err := sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-s.Ready():
	case <-ctx.Done():
		require.FailNow(t, "simulator not ready")
	}

	res, err := controltest.Call(ctx, cfg.SocketPath, "status", nil)
	require.NoError(t, err)
	var st struct {
		SpiceConnected bool `json:"spice_connected"`
	}
	require.NoError(t, json.Unmarshal(res, &st))
	assert.True(t, st.SpiceConnected)

	_, err = controltest.Call(ctx, cfg.SocketPath, "screenshot", map[string]any{"surface_id": 99})
	var pe *control.ProtocolError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "no_such_surface", pe.Code)
	assert.Equal(t, "screenshot", pe.Method)
}
