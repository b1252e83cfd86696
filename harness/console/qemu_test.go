package console

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
)

func needQemu(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(config.DefaultQemu); err != nil {
		t.Skip("qemu-system-x86_64 not found: apt-get install -y qemu-system-x86 to run the real SPICE lane")
	}
}

// TestQemuProviderBootsTheGuest boots the latency guest, hands ryll a
// private 0600 .vv file with the password, and cleans everything up.
func TestQemuProviderBootsTheGuest(t *testing.T) {
	needQemu(t)
	var logs bytes.Buffer
	cfg := load(t, map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_RESULTS_DIR": t.TempDir()})
	c, err := Open(t.Context(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })

	require.NotEmpty(t, c.File)
	st, err := os.Stat(c.File)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the .vv carries the password")
	vv, err := os.ReadFile(c.File)
	require.NoError(t, err)
	require.Len(t, c.Secrets, 1, "the SPICE password")
	pw := c.Secrets[0]
	assert.Contains(t, string(vv), "password="+pw)
	assert.Contains(t, string(vv), "host=127.0.0.1")
	assert.NotEmpty(t, c.QemuVersion)
	assert.Equal(t, "tcg", c.Accelerator)
	assert.True(t, c.CountsKeys())

	pids := qemuPids(t)
	require.NotEmpty(t, pids, "QEMU runs")
	for _, p := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", p, "cmdline"))
		if err == nil {
			assert.NotContains(t, string(b), pw, "the password is never on QEMU's command line")
		}
	}
	n, err := c.KeysSeen(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 0, n, "no key was pressed yet")
	assert.NotContains(t, logs.String(), pw)
	assert.NotContains(t, c.Describe(), pw)

	dir := filepath.Dir(c.File)
	ctx, cancel := cloud.CleanupContext(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Close(ctx))
	assert.NoDirExists(t, dir, "the .vv file and its directory are removed")
	select {
	case <-c.Exited():
		t.Fatal("Exited must be nil after Close drops the VM")
	default:
	}
	require.NoError(t, c.Close(ctx), "Close twice")
	log, err := os.ReadFile(c.QemuLog)
	require.NoError(t, err)
	assert.NotContains(t, string(log), pw)
}

// qemuPids lists the pids of running QEMUs.
func qemuPids(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", config.DefaultQemu).Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

func TestQemuProviderWithABrokenQemuFailsClearly(t *testing.T) {
	cfg := load(t, map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_QEMU": "/bin/true", "LATENCY_RESULTS_DIR": t.TempDir()})
	_, err := Open(t.Context(), cfg, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LATENCY_QEMU=/bin/true")
}
