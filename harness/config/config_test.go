package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/runid"
)

// env is m as an environment (KEY=VALUE entries), in a stable order.
func env(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, ProviderFake, c.Provider)
	m := c.Measure
	assert.Equal(t, measure.KeypressToScreen, m.Metric)
	assert.Equal(t, 100, m.Samples)
	assert.Equal(t, 2*time.Second, m.Cadence)
	assert.Equal(t, 100*time.Millisecond, m.Hold)
	assert.Equal(t, 200*time.Millisecond, m.Jitter)
	assert.Equal(t, time.Second, m.Window, "min(cadence, 1s)")
	assert.Equal(t, time.Second, m.Quiet, "the window, at most 1s")
	assert.Equal(t, 15*time.Minute, m.MaxDuration)
	assert.Equal(t, 60*time.Second, c.ReadyTimeout)
	assert.Equal(t, uint16(0x39), c.Scancode)
	assert.Equal(t, "results", c.ResultsDir)
	assert.Equal(t, DefaultKeypressMin, c.SanityMin)
	assert.Equal(t, DefaultKeypressMax, c.SanityMax)
	assert.Equal(t, "uefi-latency-guest", c.Cloud.Image)
	assert.Equal(t, DefaultImageURL, c.Cloud.ImageURL)
	assert.Equal(t, "vdi-tiny", c.Cloud.Flavor)
	assert.Equal(t, "public1", c.Cloud.Network)
	assert.Equal(t, 10*time.Minute, c.Cloud.BootTimeout)
	assert.False(t, c.Cloud.KeepServer)
	assert.False(t, c.Transcript)
	assert.Equal(t, 1, c.Consoles)
	assert.Equal(t, 4, c.Parallel)
	assert.NoError(t, runid.Validate(c.RunID))
}

func TestValues(t *testing.T) {
	vv := filepath.Join(t.TempDir(), "c.vv")
	require.NoError(t, os.WriteFile(vv, []byte("[virt-viewer]\n"), 0o600))
	c, err := Load(env(map[string]string{
		"LATENCY_PROVIDER": "file", "LATENCY_CONSOLE": vv,
		"LATENCY_METRIC": "ping", "LATENCY_SAMPLES": "5",
		"LATENCY_CADENCE": "0.5", "LATENCY_KEY_HOLD": "20ms", "LATENCY_CADENCE_JITTER": "0",
		"LATENCY_SCANCODE": "0xE04B", "LATENCY_RUN_ID": "ci-42", "LATENCY_IMAGE_URL": "none",
		"LATENCY_KEEP_SERVER": "1", "LATENCY_TRANSCRIPT": "1",
	}))
	require.NoError(t, err)
	assert.Equal(t, ProviderFile, c.Provider)
	assert.Equal(t, measure.PingInterval, c.Measure.Metric)
	assert.Equal(t, 500*time.Millisecond, c.Measure.Cadence)
	assert.Equal(t, 500*time.Millisecond, c.Measure.Window)
	assert.Equal(t, time.Duration(0), c.Measure.Jitter)
	assert.Equal(t, uint16(0xE04B), c.Scancode)
	assert.Equal(t, "ci-42", c.RunID)
	assert.Equal(t, DefaultPingMax, c.SanityMax)
	assert.Empty(t, c.Cloud.ImageURL)
	assert.True(t, c.Cloud.KeepServer)
	assert.True(t, c.Transcript)
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, err := Load(env(map[string]string{
		"LATENCY_PROVIDER":     "ovirt",
		"LATENCY_METRIC":       "rtt",
		"LATENCY_SAMPLES":      "-3",
		"LATENCY_CADENCE":      "soon",
		"LATENCY_SCANCODE":     "0x1234",
		"LATENCY_RUN_ID":       "../etc",
		"LATENCY_KEEP_SERVER":  "perhaps",
		"LATENCY_BOOT_TIMEOUT": "-1s",
		"LATENCY_TRANSCRIPT":   "yes please",
	}))
	require.Error(t, err)
	for _, want := range []string{
		"LATENCY_PROVIDER", "LATENCY_METRIC", "LATENCY_SAMPLES", "LATENCY_CADENCE",
		"LATENCY_SCANCODE", "LATENCY_RUN_ID", "LATENCY_KEEP_SERVER", "LATENCY_BOOT_TIMEOUT",
		"LATENCY_TRANSCRIPT",
	} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestProblems(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"url without console", map[string]string{"LATENCY_PROVIDER": "url"}, "LATENCY_CONSOLE=http"},
		{"url not http", map[string]string{"LATENCY_PROVIDER": "url", "LATENCY_CONSOLE": "spice://h:5900"}, "LATENCY_CONSOLE=http"},
		{"file missing", map[string]string{"LATENCY_PROVIDER": "file", "LATENCY_CONSOLE": filepath.Join(dir, "nope.vv")}, "no such file"},
		{"file is dir", map[string]string{"LATENCY_PROVIDER": "file", "LATENCY_CONSOLE": dir}, "is a directory"},
		{"direct bad", map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "host"}, "host:port"},
		{"direct bad port", map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:99999"}, "not a port from 1 to 65535"},
		{"direct bad tls port", map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:5900:x"}, "tls port"},
		{"console with fake", map[string]string{"LATENCY_CONSOLE": "h:1"}, "does not use it"},
		{"hold >= cadence", map[string]string{"LATENCY_CADENCE": "100ms", "LATENCY_KEY_HOLD": "100ms"}, "LATENCY_KEY_HOLD"},
		{"quiet not above settle", map[string]string{"LATENCY_QUIET": "100ms", "LATENCY_SETTLE": "150ms"}, "LATENCY_SETTLE=150ms, LATENCY_QUIET=100ms: settle is 150ms, want more than 0 and less than the quiet gap 100ms"},
		{"expect p50 inverted", map[string]string{"LATENCY_EXPECT_P50": "0.05-0.005"}, "LATENCY_EXPECT_P50"},
		{"expect p50 not a range", map[string]string{"LATENCY_EXPECT_P50": "fast"}, "want min-max"},
		{"unknown metric", map[string]string{"LATENCY_METRIC": "fps"}, "want keypress, repaint, ping"},
		{"contamination out of range", map[string]string{"LATENCY_MAX_CONTAMINATION": "2"}, "LATENCY_MAX_CONTAMINATION=2"},
		{"max misses zero", map[string]string{"LATENCY_MAX_MISSES": "0"}, "LATENCY_MAX_MISSES"},
		{"samples cannot fit the quiet gaps", map[string]string{"LATENCY_SAMPLES": "100", "LATENCY_CADENCE": "200ms", "LATENCY_MAX_DURATION": "30s"}, "needs at least 50s"},
		{"sanity inverted", map[string]string{"LATENCY_SANITY_MIN": "0.5", "LATENCY_SANITY_MAX": "0.1"}, "want 0 <= min < max"},
		{"sanity not number", map[string]string{"LATENCY_SANITY_MAX": "fast"}, "LATENCY_SANITY_MAX"},
		{"break code", map[string]string{"LATENCY_SCANCODE": "0xB9"}, "make code"},
		{"zero duration", map[string]string{"LATENCY_MAX_DURATION": "0s"}, "above zero"},
		{"samples cannot fit", map[string]string{"LATENCY_SAMPLES": "600", "LATENCY_CADENCE": "2s"}, "needs at least 20m0s"},
		{"consoles with direct", map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:1", "LATENCY_CONSOLES": "3"}, "a SPICE server serves one client"},
		{"too many consoles", map[string]string{"LATENCY_CONSOLES": "501"}, "at most 500"},
		{"parallel zero", map[string]string{"LATENCY_PARALLEL": "0"}, "LATENCY_PARALLEL"},
		{"run id too long", map[string]string{"LATENCY_RUN_ID": strings.Repeat("a", 49)}, "want 1-48 characters"},
		{"ryll missing", map[string]string{"LATENCY_RYLL": filepath.Join(dir, "ryll")}, "LATENCY_RYLL"},
		{"ryll not executable", map[string]string{"LATENCY_RYLL": dir}, "not an executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestURLConsoleNeverQuoted(t *testing.T) {
	_, err := Load(env(map[string]string{"LATENCY_PROVIDER": "url", "LATENCY_CONSOLE": "ftp://h/x?token=s3cret"}))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestDirectForms(t *testing.T) {
	for _, v := range []string{"127.0.0.1:5900", "hv1:5900:5901", "[::1]:5900"} {
		c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": v}))
		require.NoError(t, err, v)
		assert.Equal(t, v, c.Console.Direct.String(), "parsed once, into the typed address that travels")
	}
}

func TestVarsCoverEveryVariableLoadReads(t *testing.T) {
	p := newParser(nil)
	c := &Config{}
	loadRun(p, c)
	loadSource(p, c)
	loadMeasure(p, c)
	loadActivity(p, c)
	loadSanity(p, c)
	loadConsoles(p, c)
	c.Cloud = loadCloud(p)
	loadLoadImage(p, c)
	loadLink(p, c)
	loadAB(p, c)
	loadLoad(p, c)
	seen := p.read
	documented := map[string]bool{}
	for _, v := range Vars {
		if v.By == "" {
			documented[v.Name] = true
		}
	}
	for k := range seen {
		if k == "PATH" { // where auto looks for QEMU: the system's, not ours to document
			continue
		}
		assert.True(t, documented[k], "%s is read but not in Vars", k)
	}
	for k := range documented {
		assert.True(t, seen[k], "%s is in Vars but never read", k)
	}
}

func TestMeasurementSettingsReachTheMeasurement(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_METRIC": "repaint", "LATENCY_QUIET": "400ms", "LATENCY_SETTLE": "80ms",
		"LATENCY_MAX_MISSES": "3", "LATENCY_MAX_CONTAMINATION": "0.05", "LATENCY_WINDOW": "700ms"}))
	require.NoError(t, err)
	mc := c.Measure
	assert.Equal(t, measure.KeypressToRepaint, mc.Metric)
	assert.Equal(t, 400*time.Millisecond, mc.Quiet)
	assert.Equal(t, 80*time.Millisecond, mc.Settle)
	assert.Equal(t, 3, mc.MaxMisses)
	assert.Equal(t, 0.05, mc.MaxContamination)
	assert.Equal(t, 700*time.Millisecond, mc.Window)
	assert.Equal(t, 0.001, c.SanityMin, "repaint has the keypress sanity range")

	d, err := Load(env(nil))
	require.NoError(t, err)
	def := measure.DefaultConfig(measure.KeypressToScreen).WithDefaults()
	assert.Equal(t, def, d.Measure, "the defaults are the measurement's, filled in once")

	f, err := Load(env(map[string]string{"LATENCY_CADENCE": "500ms"}))
	require.NoError(t, err)
	assert.Equal(t, 500*time.Millisecond, f.Measure.Window, "the measurement derives the window from the cadence")
	assert.Equal(t, 500*time.Millisecond, f.Measure.Quiet, "and the quiet gap from the window")
	assert.Equal(t, f.Measure, f.Measure.WithDefaults(), "nothing is left for Run to default")
}

func TestAutoProviderPicksTheRealLaneWhereQemuIsInstalled(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{"PATH": dir}))
	require.NoError(t, err)
	assert.Equal(t, ProviderFake, c.Provider, "no QEMU on PATH: the fake chain")
	assert.Contains(t, c.AutoReason, "apt-get install -y qemu-system-x86")

	require.NoError(t, os.WriteFile(filepath.Join(dir, DefaultQemu), []byte("#!/bin/sh\n"), 0o755))
	c, err = Load(env(map[string]string{"PATH": "/nonexistent:" + dir}))
	require.NoError(t, err)
	assert.Equal(t, ProviderQemu, c.Provider)
	assert.Equal(t, ProviderQemu, c.Requested)
	assert.Contains(t, c.AutoReason, filepath.Join(dir, DefaultQemu))

	c, err = Load(env(map[string]string{"PATH": dir, "LATENCY_PROVIDER": "fake"}))
	require.NoError(t, err)
	assert.Equal(t, ProviderFake, c.Provider, "a named provider wins")
	assert.Empty(t, c.AutoReason)
}

func TestExpectP50(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_EXPECT_P50": "0.005-0.05"}))
	require.NoError(t, err)
	assert.True(t, c.ExpectP50Set)
	assert.Equal(t, 0.005, c.ExpectP50Min)
	assert.Equal(t, 0.05, c.ExpectP50Max)
	c, err = Load(env(nil))
	require.NoError(t, err)
	assert.False(t, c.ExpectP50Set)
}

func TestABSettings(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "hv1:5900",
		"LATENCY_B_PROVIDER": "url", "LATENCY_B_CONSOLE": "https://kerbside.example/c?token=t0k3n", "LATENCY_AB_BLOCK": "5"}))
	require.NoError(t, err)
	require.NotNil(t, c.AB)
	assert.Equal(t, 5, c.AB.Block)
	assert.Equal(t, 10*time.Millisecond, c.AB.MaxAdded)
	a, b := c.Leg(false), c.Leg(true)
	assert.Equal(t, c.RunID+"-a", a.RunID)
	assert.Equal(t, c.RunID+"-b", b.RunID)
	assert.Equal(t, ProviderDirect, a.Provider)
	assert.Equal(t, ProviderURL, b.Provider)
	assert.Equal(t, "https://kerbside.example/c?token=t0k3n", b.Console.URL.Reveal())
	assert.NotContains(t, fmt.Sprintf("%v %+v", b.Console, b.Console), "t0k3n", "the token never prints")
	assert.Nil(t, a.AB)

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "hv1:5900", "LATENCY_B_CONSOLE": "hv1:5901"}))
	require.NoError(t, err)
	assert.Equal(t, ProviderDirect, c.AB.BProvider, "B defaults to A's provider")

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_B_PROXY": "delay:30ms"}))
	require.NoError(t, err)
	assert.Equal(t, ProviderQemu, c.AB.BProvider)

	c, err = Load(env(nil))
	require.NoError(t, err)
	assert.Nil(t, c.AB, "no B setting: no A/B")
}

func TestABProblems(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"proxy without qemu": {map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:1", "LATENCY_B_PROXY": "nagle"}, "needs LATENCY_PROVIDER=qemu"},
		"bad proxy mode":     {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_B_PROXY": "slow"}, "LATENCY_B_PROXY"},
		"proxy and console":  {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_B_PROXY": "nagle", "LATENCY_B_CONSOLE": "h:1"}, "leave LATENCY_B_PROVIDER and LATENCY_B_CONSOLE unset"},
		"b boots a guest":    {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_B_PROVIDER": "qemu"}, "must reach the same guest"},
		"b url not http":     {map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:1", "LATENCY_B_PROVIDER": "url", "LATENCY_B_CONSOLE": "h:2"}, "LATENCY_B_CONSOLE=http"},
		"ping metric":        {map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:1", "LATENCY_B_CONSOLE": "h:2", "LATENCY_METRIC": "ping"}, "compares keypress figures"},
		"does not fit":       {map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:1", "LATENCY_B_CONSOLE": "h:2", "LATENCY_SAMPLES": "300"}, "for both legs"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestOpenStackConsoleMode(t *testing.T) {
	c, err := Load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, "spice-direct", c.Cloud.Console)
	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_OPENSTACK_CONSOLE": "direct"}))
	require.NoError(t, err)
	assert.Equal(t, "direct", c.Cloud.Console)
	_, err = Load(env(map[string]string{"LATENCY_OPENSTACK_CONSOLE": "vnc"}))
	require.ErrorContains(t, err, `LATENCY_OPENSTACK_CONSOLE="vnc"`)
}

func TestABOnOneServerBothWays(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_OPENSTACK_CONSOLE": "direct", "LATENCY_B_PROVIDER": "openstack"}))
	require.NoError(t, err)
	require.NotNil(t, c.AB)
	assert.True(t, c.AB.SameServer)
	b := c.Leg(true)
	assert.Equal(t, ProviderOpenStack, b.Provider)
	assert.Equal(t, "spice-direct", b.Cloud.Console, "B reaches the server through Kerbside")
	assert.Equal(t, "direct", c.Leg(false).Cloud.Console)

	_, err = Load(env(map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_B_PROVIDER": "openstack"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set LATENCY_OPENSTACK_CONSOLE=direct for the A leg")
}
