package qemu

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpecValidateReportsEverything(t *testing.T) {
	pw := "hunter2-very-secret"
	s := Spec{
		Password:  secret.NewString(pw),
		Name:      "bad,name",
		ExtraArgs: []string{"-object", "secret,id=x,data=" + pw},
		TailLines: -1,
	}.withDefaults()
	s.MemoryMiB = -4
	err := s.validate()
	require.Error(t, err)
	for _, want := range []string{
		"no guest image", `name "bad,name"`, "MemoryMiB -4", "no LogPath", "TailLines -1",
		"ExtraArgs[1] holds the SPICE password",
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), pw)
}

func TestSpecValidatePassword(t *testing.T) {
	base := Spec{Image: standinImage(), LogPath: "x.log"}
	for _, tc := range []struct {
		name, pw, wantErr string
	}{
		{"none", "", ""},
		{"generated", NewPassword().Reveal(), ""},
		{"at the limit", strings.Repeat("a", MaxPasswordLen), ""},
		{"too long", strings.Repeat("a", MaxPasswordLen+1), "over spice-server's limit"},
		{"NUL", "ab\x00cd", "NUL or line break"},
		{"newline", "abcd\n", "NUL or line break"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			s.Password = secret.NewString(tc.pw)
			err := s.withDefaults().validate()
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			if tc.pw != "" {
				assert.NotContains(t, err.Error(), tc.pw)
			}
		})
	}
}

func TestSpecImageBounds(t *testing.T) {
	s := Spec{Image: make([]byte, maxImage+1), LogPath: "x.log"}.withDefaults()
	err := s.validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over the")
}

func TestArgs(t *testing.T) {
	dir := "/tmp/qemu-123"
	t.Run("no password", func(t *testing.T) {
		a := Spec{}.withDefaults().args(dir, 5930)
		assert.Contains(t, a, "port=5930,addr=127.0.0.1,disable-ticketing=on")
		assert.NotContains(t, strings.Join(a, " "), "secret")
		assertFlag(t, a, "-accel", "tcg")
		assertFlag(t, a, "-qmp", "unix:/tmp/qemu-123/qmp.sock,server=on,wait=off")
		assertFlag(t, a, "-drive", "format=raw,file=/tmp/qemu-123/guest.img,if=floppy")
		assertFlag(t, a, "-vga", "std")
		assertFlag(t, a, "-name", DefaultName)
	})
	t.Run("password", func(t *testing.T) {
		pw := NewPassword()
		s := Spec{Password: pw, Name: "g-1", ExtraArgs: []string{"-S"}}.withDefaults()
		a := s.args(dir, 5931)
		assertFlag(t, a, "-object", "secret,id=spicepw,file=/tmp/qemu-123/spice.pw")
		assertFlag(t, a, "-spice", "port=5931,addr=127.0.0.1,password-secret=spicepw")
		assert.NotContains(t, strings.Join(a, " "), pw.Reveal())
		assert.Equal(t, "-S", a[len(a)-1], "ExtraArgs come last")
	})
	t.Run("TLS port", func(t *testing.T) {
		a := Spec{SpicePort: 6969, TLSPort: 6970, X509Dir: "/tmp/x509"}.withDefaults().args(dir, 6969)
		assertFlag(t, a, "-spice", "port=6969,addr=127.0.0.1,tls-port=6970,x509-dir=/tmp/x509,disable-ticketing=on")
	})
	t.Run("TLS port without its directory", func(t *testing.T) {
		err := Spec{Image: []byte{0}, LogPath: "x", TLSPort: 6970}.withDefaults().validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "TLSPort and X509Dir go together")
	})
}

// assertFlag checks that flag appears in a, followed by value.
func assertFlag(t *testing.T, a []string, flag, value string) {
	t.Helper()
	i := slices.Index(a, flag)
	if assert.GreaterOrEqual(t, i, 0, "flag %s missing from %q", flag, a) && assert.Less(t, i+1, len(a)) {
		assert.Equal(t, value, a[i+1], fmt.Sprintf("value of %s", flag))
	}
}

func TestChildEnvIsAllowListed(t *testing.T) {
	t.Setenv("OS_PASSWORD", "cloud-secret")
	t.Setenv("LANG", "C.UTF-8")
	env := childEnv()
	assert.Contains(t, env, "LANG=C.UTF-8")
	for _, kv := range env {
		assert.False(t, strings.HasPrefix(kv, "OS_"), "QEMU got %s", kv)
	}
}
