package cloud_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

func directConfig(e *env, runID string) cloud.Config {
	cfg := e.config(runID)
	cfg.Console = cloud.ConsoleDirect
	return cfg
}

// assertNothingCreated: no image, flavor or server was asked for.
func assertNothingCreated(t *testing.T, fc *fakecloud.Cloud) {
	t.Helper()
	assert.Zero(t, countCalls(fc, http.MethodPost, fakecloud.ComputePrefix), "no flavor or server created")
	assert.Zero(t, countCalls(fc, http.MethodPost, fakecloud.ImagePrefix), "no image created")
	assert.Zero(t, fc.ServersAlive())
}

// serverCreates are the POST /servers calls.
func serverCreates(fc *fakecloud.Cloud) []fakecloud.Call {
	var out []fakecloud.Call
	for _, c := range fc.CallsTo(http.MethodPost, fakecloud.ComputePrefix+"/servers") {
		if c.Path == fakecloud.ComputePrefix+"/servers" {
			out = append(out, c)
		}
	}
	return out
}

func TestDirectLeg(t *testing.T) {
	for _, tc := range []struct {
		name, maxMV       string
		wantType, wantDir string
		wantTokenMV       string
	}{
		// 2025.1 and later: a spice-direct console's token, resolved at
		// 2.99, which gives the TLS port too.
		{"spice-direct cloud", "", "spice-direct", "127.0.0.1:5900:5901", "2.99"},
		// Zed (2.93): a spice-html5 console's token, resolved at 2.31,
		// whose answer has no TLS port.
		{"Zed", "2.93", "spice-html5", "127.0.0.1:5900", "2.31"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakecloud.Options{MaxMicroversion: tc.maxMV})
			con, err := e.c.Provision(t.Context(), directConfig(e, "direct"))
			require.NoError(t, err)
			assert.Equal(t, tc.wantDir, con.Direct.String())
			assert.Equal(t, tc.wantType, con.ConsoleType)
			assert.True(t, con.URL.IsZero(), "the direct leg hands back no Kerbside URL")
			lookups := e.fc.CallsTo(http.MethodGet, fakecloud.ComputePrefix+"/os-console-auth-tokens/")
			require.Len(t, lookups, 2, "the admin probe and the console's token")
			assert.Equal(t, []int{404, 200}, statuses(lookups))
			assert.Equal(t, "compute "+tc.wantTokenMV, lookups[1].Header.Get("OpenStack-API-Version"))
			assertNoSecrets(t, e.fc, map[string]string{"log": e.logs.String()})
			require.NoError(t, e.cleanup(t))
			assert.Zero(t, e.fc.ServersAlive())
		})
	}
}

func TestDirectLegWithoutAdminFailsAtOnce(t *testing.T) {
	e := setup(t, fakecloud.Options{MaxMicroversion: "2.93"}, (*fakecloud.Cloud).NotAdmin)
	_, err := e.c.Provision(t.Context(), directConfig(e, "member"))
	require.Error(t, err)
	assert.ErrorIs(t, err, cloud.ErrNotAdmin)
	assert.Contains(t, err.Error(), "admin")
	assert.Contains(t, err.Error(), "Policy doesn't allow os_compute_api:os-console-auth-tokens to be performed.")
	assertNothingCreated(t, e.fc)
	require.NoError(t, e.cleanup(t))
}

func TestDirectLegNeeds231(t *testing.T) {
	e := setup(t, fakecloud.Options{MaxMicroversion: "2.30"})
	_, err := e.c.Provision(t.Context(), directConfig(e, "old"))
	require.Error(t, err)
	assert.ErrorIs(t, err, cloud.ErrMicroversion)
	assert.Contains(t, err.Error(), "2.31")
	assertNothingCreated(t, e.fc)
}

func TestUnknownConsoleMode(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	cfg := e.config("mode")
	cfg.Console = "vnc"
	_, err := e.c.Provision(t.Context(), cfg)
	require.ErrorContains(t, err, `console mode "vnc"`)
	assertNothingCreated(t, e.fc)
}

func TestQuotaRefusalHasAHint(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	e.fc.SetInstanceQuota(0)
	_, err := e.c.Provision(t.Context(), e.config("quota"))
	require.Error(t, err)
	assert.ErrorIs(t, err, cloud.ErrQuota)
	assert.Contains(t, err.Error(), "Quota exceeded for instances: Requested 1, but already used 0 of 0 instances")
	assert.Contains(t, err.Error(), "openstack quota set --instances")
	assert.Contains(t, err.Error(), "make sweep")
	assert.Len(t, serverCreates(e.fc), 1, "a refusal is not retried")
	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive())
}

// TestUnknownMicroversionRange: when version discovery fails, every call
// is sent at the microversion it needs, never at 2.99 unless it is the
// spice-direct console itself.
func TestUnknownMicroversionRange(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{MaxMicroversion: "2.93"})
	fc.FailNext(fakecloud.Failure{Count: 20, Status: http.StatusInternalServerError, Method: http.MethodGet, Path: fakecloud.ComputePrefix + "/"})
	log, buf := newLogger()
	c, err := cloud.Connect(t.Context(), cloud.EnvFromMap(fc.Env()), fastOptions(log)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	fc.ClearFaults()
	require.NoError(t, fc.SetMaxMicroversion("2.93"))
	assert.Contains(t, buf.String(), "could not read the compute API's microversion range")

	cfg := cloud.Config{ImageURL: fc.ImageURL(), RunID: "unknown-mv", Flavor: "new-flavor", Console: cloud.ConsoleDirect}
	con, err := c.Provision(t.Context(), cfg)
	require.NoError(t, err, "a 2.93 cloud can give the direct leg when each call asks for what it needs")
	assert.Equal(t, "spice-html5", con.ConsoleType, "spice-direct refused at 2.99, spice-html5 at 2.6 taken")
	for _, call := range fc.CallsTo("", fakecloud.ComputePrefix) {
		mv := call.Header.Get("OpenStack-API-Version")
		if strings.HasSuffix(call.Path, "/remote-consoles") && mv == "compute 2.99" {
			continue // spice-direct is tried first; 2.99 is what it needs
		}
		assert.NotEqual(t, "compute 2.99", mv, "%s %s was sent at 2.99", call.Method, call.Path)
		assert.NotEqual(t, 406, call.Status, "%s %s was refused its microversion", call.Method, call.Path)
	}
	creates := serverCreates(fc)
	require.Len(t, creates, 1)
	assert.Equal(t, "compute 2.52", creates[0].Header.Get("OpenStack-API-Version"), "tags at create need 2.52")
	ctx, cancel := cloud.CleanupContext(t.Context(), cloud.DefaultCleanupTimeout)
	defer cancel()
	require.NoError(t, c.Cleanup(ctx))
	assert.Zero(t, fc.ServersAlive())
}

func TestImageFromFileURL(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	path := filepath.Join(t.TempDir(), "guest.qcow2")
	content := append([]byte("QFI\xfb"), make([]byte, 200_000)...)
	require.NoError(t, os.WriteFile(path, content, 0o600))
	cfg := e.config("file-url")
	cfg.ImageURL = "file://" + path
	_, err := e.c.Provision(t.Context(), cfg)
	require.NoError(t, err)
	ims := e.fc.Images()
	require.Len(t, ims, 1)
	assert.Equal(t, int64(len(content)), ims[0].Size)
	assert.Equal(t, "uefi", ims[0].Properties["hw_firmware_type"])
	require.NoError(t, e.cleanup(t))

	for _, tc := range []struct{ url, want string }{
		{"file://" + path + ".missing", "no such file"},
		{"file://" + filepath.Dir(path), "not a regular file"},
		{"file://otherhost" + path, "host"},
		{"ftp://example.com/guest.qcow2", "unsupported URL scheme"},
	} {
		e := setup(t, fakecloud.Options{})
		cfg := e.config("bad-url")
		cfg.ImageURL = tc.url
		_, err := e.c.Provision(t.Context(), cfg)
		require.Error(t, err, tc.url)
		assert.Contains(t, err.Error(), tc.want, tc.url)
		assert.Zero(t, countCalls(e.fc, http.MethodPost, fakecloud.ImagePrefix), "no image is created when the source cannot be read")
	}
}
