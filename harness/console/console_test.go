package console

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func load(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	return cfg
}

var fast = []cloud.Option{cloud.WithPollInterval(20 * time.Millisecond), cloud.WithRetries(2, 10*time.Millisecond)}

func TestNoCloudProviders(t *testing.T) {
	vv := filepath.Join(t.TempDir(), "c.vv")
	require.NoError(t, os.WriteFile(vv, []byte("[virt-viewer]\nhost=h\nport=5900\npassword = s3cr3t-vv\n"), 0o600))
	for _, tc := range []struct {
		env     map[string]string
		check   func(*testing.T, *Console)
		secrets int
	}{
		{map[string]string{"LATENCY_PROVIDER": "url", "LATENCY_CONSOLE": "https://kerbside.example/nova?token=tok-123456"},
			func(t *testing.T, c *Console) {
				assert.Equal(t, "https://kerbside.example/nova?token=tok-123456", c.URL.Reveal())
				assert.NotContains(t, c.Describe(), "tok-123456")
			}, 1},
		{map[string]string{"LATENCY_PROVIDER": "file", "LATENCY_CONSOLE": vv},
			func(t *testing.T, c *Console) {
				assert.Equal(t, vv, c.File)
				assert.Equal(t, []string{"s3cr3t-vv"}, c.Secrets, "the .vv password is scrubbed from ryll's log")
			}, 1},
		{map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "hv1:5900"},
			func(t *testing.T, c *Console) { assert.Equal(t, "hv1:5900", c.Direct) }, 0},
	} {
		t.Run(tc.env["LATENCY_PROVIDER"], func(t *testing.T) {
			c, err := Open(t.Context(), load(t, tc.env), Options{})
			require.NoError(t, err)
			tc.check(t, c)
			assert.Len(t, c.Secrets, tc.secrets)
			assert.Empty(t, c.ServerID)
			require.NoError(t, c.Close(t.Context()))
		})
	}
}

func TestFakeProviderIsRefusedUnwired(t *testing.T) {
	// The composition root translates the fake provider before it gets
	// here; were it not, running the openstack code with the caller's
	// OS_* could boot a server on a real cloud.
	_, err := Open(t.Context(), load(t, nil), Options{Getenv: func(string) string { return "http://real.example" }})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "composition root")
}

func TestOpenStackProviderLogsNoSecret(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{})
	env := fc.Env()
	var logs bytes.Buffer
	cfg := load(t, map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_IMAGE_URL": fc.ImageURL()})
	c, err := Open(t.Context(), cfg, Options{Getenv: func(k string) string { return env[k] },
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), CloudOptions: fast})
	require.NoError(t, err)
	assert.Equal(t, "latency-"+cfg.RunID, c.ServerName)
	assert.Contains(t, c.Secrets, c.URL.Reveal())
	assert.NotEmpty(t, fc.CallsTo("PUT", "/image/v2/images/"), "the missing image was streamed into Glance")
	require.NoError(t, c.Close(t.Context()))
	require.NoError(t, c.Close(t.Context()), "Close twice")
	for _, s := range append(c.Secrets, fc.Secrets()...) {
		assert.NotContains(t, logs.String(), s)
	}
}

func TestOpenStackProviderAgainstFakeCloud(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{Images: []string{"uefi-latency-guest"}})
	env := fc.Env()
	c, err := Open(t.Context(), load(t, map[string]string{"LATENCY_PROVIDER": "openstack"}),
		Options{Getenv: func(k string) string { return env[k] }, CloudOptions: fast})
	require.NoError(t, err)
	assert.Equal(t, 1, fc.ServersAlive())
	assert.Contains(t, c.Secrets, fc.Password(), "OS_PASSWORD is a secret of the run")
	require.NoError(t, c.Close(t.Context()))
	assert.Equal(t, 0, fc.ServersAlive())
}

func TestFailedProvisioningLeavesNothing(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{Images: []string{"uefi-latency-guest"}})
	fc.BootError("No valid host was found.")
	env := fc.Env()
	_, err := Open(t.Context(), load(t, map[string]string{"LATENCY_PROVIDER": "openstack"}),
		Options{Getenv: func(k string) string { return env[k] }, CloudOptions: fast})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "No valid host was found.")
	assert.Equal(t, 0, fc.ServersAlive(), "the server that went to ERROR was deleted")
}

func TestKeepServer(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{Images: []string{"uefi-latency-guest"}})
	env := fc.Env()
	c, err := Open(t.Context(), load(t, map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_KEEP_SERVER": "1"}),
		Options{Getenv: func(k string) string { return env[k] }, CloudOptions: fast})
	require.NoError(t, err)
	require.NoError(t, c.Close(t.Context()))
	assert.Equal(t, 1, fc.ServersAlive())
}
