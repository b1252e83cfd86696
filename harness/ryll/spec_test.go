package ryll

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

const testToken = "tok-a1b2c3"

// direct is s parsed as the configuration parses it.
func direct(t testing.TB, s string) address.Direct {
	t.Helper()
	d, err := address.ParseDirect(s)
	require.NoError(t, err)
	return d
}

func mustURL(t testing.TB) secret.URL {
	t.Helper()
	u, err := secret.ParseURL("https://kerbside.example:13002/nova?token=" + testToken)
	require.NoError(t, err)
	return u
}

func TestArgsPerSource(t *testing.T) {
	u := mustURL(t)
	const sock = "/tmp/ryll-1/c.sock"
	cases := []struct {
		name     string
		spec     Spec
		want     []string
		redacted []string
	}{
		{"url", Spec{URL: u},
			[]string{"--headless", "--url", u.Reveal(), "--control-socket", sock},
			[]string{"--headless", "--url", "https://kerbside.example:13002/" + secret.Redacted, "--control-socket", sock}},
		{"file verbose", Spec{File: "/r/console.vv", Verbose: true},
			[]string{"--headless", "--file", "/r/console.vv", "--control-socket", sock, "-v"}, nil},
		{"direct", Spec{Direct: direct(t, "10.0.0.1:5900")},
			[]string{"--headless", "--direct", "10.0.0.1:5900", "--control-socket", sock}, nil},
		{"direct with tls port", Spec{Direct: direct(t, "10.0.0.1:5900:5901")},
			[]string{"--headless", "--direct", "10.0.0.1:5900:5901", "--control-socket", sock}, nil},
		{"direct ipv6 goes through a .vv file", Spec{Direct: direct(t, "[::1]:5900")},
			[]string{"--headless", "--file", "/tmp/ryll-1/direct.vv", "--control-socket", sock}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.spec.args("/tmp/ryll-1", sock))
			red := tc.redacted
			if red == nil {
				red = tc.want
			}
			assert.Equal(t, red, tc.spec.redactedArgs("/tmp/ryll-1", sock))
		})
	}
}

func TestSpecValidation(t *testing.T) {
	valid := Spec{Binary: "ryll", Direct: direct(t, "h:5900"), LogPath: "ryll.log"}
	cases := []struct {
		name string
		edit func(*Spec)
		want []string
	}{
		{"valid", func(*Spec) {}, nil},
		{"no binary", func(s *Spec) { s.Binary = "" }, []string{"no ryll binary"}},
		{"no source", func(s *Spec) { s.Direct = address.Direct{} }, []string{"no console source"}},
		{"two sources", func(s *Spec) { s.URL = mustURL(t) }, []string{"2 console sources (URL, Direct)"}},
		{"three sources", func(s *Spec) { s.URL = mustURL(t); s.File = "x.vv" }, []string{"3 console sources"}},
		{"direct without port", func(s *Spec) { s.Direct = address.Direct{Host: "host"} }, []string{"no port"}},
		{"direct empty host", func(s *Spec) { s.Direct = address.Direct{Port: 5900} }, []string{"empty host"}},
		{"direct host in brackets", func(s *Spec) { s.Direct = address.Direct{Host: "[::1]", Port: 5900} }, []string{"not a name or an IP address"}},
		{"no log", func(s *Spec) { s.LogPath = "" }, []string{"no LogPath"}},
		{"openstack env", func(s *Spec) { s.ExtraEnv = []string{"OS_PASSWORD=x"} }, []string{"ExtraEnv OS_PASSWORD refused"}},
		{"malformed env", func(s *Spec) { s.ExtraEnv = []string{"A=1", "NOEQUALS"} }, []string{"ExtraEnv entry 1 is not NAME=VALUE"}},
		{"negative tail", func(s *Spec) { s.TailLines = -1 }, []string{"TailLines -1"}},
		{"every problem at once", func(s *Spec) { *s = Spec{} }, []string{"no ryll binary", "no console source", "no LogPath"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := valid
			tc.edit(&s)
			_, err := New(s)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), testToken)
		})
	}
}

func TestChildEnvIsAnAllowList(t *testing.T) {
	parent := map[string]string{
		"PATH": "/usr/bin", "HOME": "/home/ci", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
		"RUST_LOG": "debug", "OS_PASSWORD": "pw", "OS_CLOUD": "ci", "AWS_SECRET_ACCESS_KEY": "k",
		"GITHUB_TOKEN": "t",
	}
	lookup := func(k string) (string, bool) { v, ok := parent[k]; return v, ok }

	env, err := childEnv(lookup, []string{"FAKERYLL_DELAY_MS=5", "RUST_LOG=trace"})

	require.NoError(t, err)
	assert.ElementsMatch(t, []string{
		"PATH=/usr/bin", "HOME=/home/ci", "LANG=C.UTF-8", "TMPDIR=/tmp",
		"RUST_LOG=trace", "FAKERYLL_DELAY_MS=5",
	}, env, "ExtraEnv overrides, nothing outside the allow-list passes")

	_, err = childEnv(lookup, []string{"os_password=x"})
	assert.ErrorContains(t, err, "refused", "OS_ names are refused whatever their case")
}

// shortTempDir is a private TMPDIR for a test that makes a control
// socket: t.TempDir's path carries the test's name, and under a TMPDIR of
// some length (CI's, a nested mktemp) the socket's path would pass the
// 103-byte limit that makeSocketDir refuses.
func shortTempDir(t *testing.T) {
	t.Helper()
	dir, err := os.MkdirTemp("", "s")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	t.Setenv("TMPDIR", dir)
}

func TestMakeSocketDirIsPrivate(t *testing.T) {
	shortTempDir(t)
	dir, path, err := makeSocketDir()
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	assert.Equal(t, filepath.Join(dir, socketName), path)
	assert.True(t, strings.HasPrefix(filepath.Base(dir), "ryll-"))
}

func TestConsoleFileForIPv6(t *testing.T) {
	assert.Empty(t, Spec{Direct: direct(t, "h:5900")}.consoleFile(), "ryll's --direct takes it")
	assert.Equal(t, "[virt-viewer]\ntype=spice\nhost=::1\nport=5900\ntls-port=5901\n", Spec{Direct: direct(t, "[::1]:5900:5901")}.consoleFile())
}

// TestStaleSocketDirsOfDeadHarnessesAreSwept: a new socket directory is
// made only after those of harnesses that died are removed (the sweep
// itself is harness/tmpdir's, tested there).
func TestStaleSocketDirsOfDeadHarnessesAreSwept(t *testing.T) {
	shortTempDir(t)
	// A pid that is surely dead: a child we started and reaped.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	stale := filepath.Join(os.TempDir(), "ryll-stale")
	require.NoError(t, os.Mkdir(stale, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(stale, tmpdir.OwnerFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600))

	dir, _, err := makeSocketDir()
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	assert.NoDirExists(t, stale, "a dead harness's directory is removed")
	b, err := os.ReadFile(filepath.Join(dir, tmpdir.OwnerFile))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid()), string(b), "the new directory names its owner")
}
