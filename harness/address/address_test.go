package address

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDirect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Direct
		ryll string // "" when ryll cannot take it as --direct
	}{
		{"hv1:5900", Direct{Host: "hv1", Port: 5900}, "hv1:5900"},
		{"10.0.0.1:5900:5901", Direct{Host: "10.0.0.1", Port: 5900, TLSPort: 5901}, "10.0.0.1:5900:5901"},
		{"[::1]:5900", Direct{Host: "::1", Port: 5900}, ""},
		{"[fd00::2]:5900:5901", Direct{Host: "fd00::2", Port: 5900, TLSPort: 5901}, ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseDirect(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, d)
			assert.Equal(t, tc.in, d.String(), "String reads back")
			arg, ok := d.RyllArg()
			assert.Equal(t, tc.ryll != "", ok)
			assert.Equal(t, tc.ryll, arg)
			assert.Equal(t, tc.want.IsIPv6(), d.IsIPv6())
		})
	}
	d, _ := ParseDirect("[::1]:5900:5901")
	assert.Equal(t, "[::1]:5900", d.HostPort())
	assert.Equal(t, "[::1]:5901", d.TLSHostPort())
	d, _ = ParseDirect("h:1")
	assert.Empty(t, d.TLSHostPort())
}

func TestParseDirectErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                "empty",
		"host":            "no port",
		":5900":           "empty host",
		"h:99999":         "not a port",
		"h:0":             "not a port",
		"h:x":             "not a port",
		"h:5900:abc":      "tls port",
		"::1:5900":        "in brackets, e.g. [::1]",
		"[::1:5900":       "no closing ]",
		"[::1]5900":       "want [ipv6]:port",
		"[10.0.0.1]:5900": "not an IPv6 address",
		"[::1]:1:2:3":     "want host:port or host:port:tls_port",
		"h:1:2:3":         "too many colons",
	} {
		_, err := ParseDirect(in)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), want, in)
		}
	}
}

func FuzzParseDirect(f *testing.F) {
	for _, s := range []string{"h:1", "[::1]:5900:5901", "a:b:c", "[", "]:", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDirect(s)
		if err != nil {
			return
		}
		back, err := ParseDirect(d.String())
		require.NoError(t, err, "String of %q = %q must parse", s, d.String())
		assert.Equal(t, d, back)
	})
}

func TestValidateAgreesWithParse(t *testing.T) {
	for _, s := range []string{"127.0.0.1:5900", "hv1:5900:5901", "[::1]:5900", "[fe80::1]:1:2"} {
		d, err := ParseDirect(s)
		require.NoError(t, err, s)
		assert.NoError(t, d.Validate(), "what ParseDirect gives is valid: %s", s)
		assert.False(t, d.IsZero())
	}
	for _, d := range []Direct{{}, {Host: "h"}, {Port: 1}, {Host: "[::1]", Port: 1}, {Host: "a b", Port: 1}, {Host: "x:y", Port: 1}} {
		assert.Error(t, d.Validate(), "%#v", d)
	}
	assert.True(t, Direct{}.IsZero())
	assert.Empty(t, Direct{}.String())
}

func TestFromTCPAddr(t *testing.T) {
	d, err := FromTCPAddr(&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5930})
	require.NoError(t, err)
	assert.Equal(t, Direct{Host: "127.0.0.1", Port: 5930}, d)
	d, err = FromTCPAddr(&net.TCPAddr{IP: net.ParseIP("::1"), Port: 5930})
	require.NoError(t, err)
	assert.Equal(t, "[::1]:5930", d.String(), "as ParseDirect reads it back")
	assert.NoError(t, d.Validate())
	_, err = FromTCPAddr(&net.UnixAddr{Name: "/tmp/s", Net: "unix"})
	assert.Error(t, err)
	_, err = FromTCPAddr(&net.TCPAddr{IP: net.ParseIP("127.0.0.1")})
	assert.Error(t, err, "no port")
}
