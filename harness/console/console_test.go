package console

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	environ := make([]string, 0, len(env))
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(environ)
	require.NoError(t, err)
	return cfg
}

var fast = []cloud.Option{cloud.WithPollInterval(20 * time.Millisecond), cloud.WithRetries(2, 10*time.Millisecond)}

func TestNoCloudProviders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("[virt-viewer]\ntype=spice\nhost=h\nport=5900\npassword=one-time-pw\n"))
	}))
	t.Cleanup(srv.Close)
	consoleURL := srv.URL + "/nova?token=tok-123456"
	vv := filepath.Join(t.TempDir(), "c.vv")
	require.NoError(t, os.WriteFile(vv, []byte("[virt-viewer]\nhost=h\nport=5900\npassword = s3cr3t-vv\n"), 0o600))
	for _, tc := range []struct {
		env     map[string]string
		check   func(*testing.T, *Console)
		secrets int
	}{
		{map[string]string{"LATENCY_PROVIDER": "url", "LATENCY_CONSOLE": consoleURL},
			func(t *testing.T, c *Console) {
				assert.Equal(t, consoleURL, c.URL.Reveal())
				assert.NotContains(t, c.Describe(), "tok-123456")
				u, file, direct := c.RyllSource()
				assert.True(t, u.IsZero(), "ryll never gets the URL: its token would show in ps")
				assert.Empty(t, direct)
				st, err := os.Stat(file)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
				b, err := os.ReadFile(file)
				require.NoError(t, err)
				assert.Contains(t, string(b), "password=one-time-pw")
				assert.Contains(t, c.Secrets, "one-time-pw", "the .vv password is a secret of the run")
			}, 4}, // the URL, its query, its token (secret.URL.Parts) and the password
		{map[string]string{"LATENCY_PROVIDER": "file", "LATENCY_CONSOLE": vv},
			func(t *testing.T, c *Console) {
				assert.Equal(t, vv, c.File)
				assert.Equal(t, []string{"s3cr3t-vv"}, c.Secrets, "the .vv password is scrubbed from ryll's log")
			}, 1},
		{map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "hv1:5900"},
			func(t *testing.T, c *Console) { assert.Equal(t, "hv1:5900", c.Direct.String()) }, 0},
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

func TestConsoleURLThatDoesNotAnswerAVVFailsClearly(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
		want   string
	}{
		"used token":  {http.StatusForbidden, "console token already used", "HTTP 403: the console token is unknown, used or expired"},
		"server busy": {http.StatusServiceUnavailable, "[virt-viewer]\nhost=h\n", "HTTP 503"},
		"not a vv":    {http.StatusOK, "<html>login</html>", "no [virt-viewer] section"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			_, err := Open(t.Context(), load(t, map[string]string{"LATENCY_PROVIDER": "url", "LATENCY_CONSOLE": srv.URL + "/c?token=tok-abcdef"}), Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "tok-abcdef", "the token is never in an error")
		})
	}
}
