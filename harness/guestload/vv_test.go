package guestload

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/kerbside"
)

const testVVPassword = "one-time-Pa55word"

// kerbsideVV is a .vv as Kerbside's endpoint writes it (the stand-in's
// own writer), with its CA.
func kerbsideVV(t *testing.T) ([]byte, *kerbside.CA) {
	t.Helper()
	ca, err := kerbside.NewCA("vv-test")
	require.NoError(t, err)
	return kerbside.VV{Host: "127.0.0.1", Port: 5900, TLSPort: 5901, Password: testVVPassword, CA: string(ca.PEM),
		HostSubject: kerbside.HostSubject, Title: "busy"}.Bytes(), ca
}

func TestParseVVOfKerbside(t *testing.T) {
	b, ca := kerbsideVV(t)
	v, err := parseVV(b)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", v.Host)
	assert.Equal(t, 5900, v.Port)
	assert.Equal(t, 5901, v.TLSPort)
	assert.Equal(t, "127.0.0.1:5901", v.addr(), "the TLS port: Kerbside's plain port answers NEED_SECURED")
	assert.Equal(t, testVVPassword, v.Password.Reveal())
	assert.Equal(t, strings.TrimSpace(string(ca.PEM)), strings.TrimSpace(string(v.CA)), "the escaped PEM is whole again")
	require.NotNil(t, v.HostSubject)

	// The TLS configuration verifies the chain and the pinned subject.
	tc, err := v.tlsConfig()
	require.NoError(t, err)
	proxy, err := ca.Issue(kerbside.ProxySubject, []string{"localhost"}, nil)
	require.NoError(t, err)
	other, err := ca.Issue(pkix.Name{Country: []string{"US"}, Organization: []string{"Shaken Fist"}, CommonName: "Someone Else"}, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	stranger, err := kerbside.NewCA("stranger")
	require.NoError(t, err)
	forged, err := stranger.Issue(kerbside.ProxySubject, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	verify := func(l *kerbside.Leaf) error {
		return tc.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{l.TLS.Leaf}})
	}
	assert.NoError(t, verify(proxy), "Kerbside's certificate: the CA's, subject C=US,O=Shaken Fist,CN=Kerbside Proxy")
	assert.ErrorContains(t, verify(other), "host-subject", "another subject from the same CA")
	assert.ErrorContains(t, verify(forged), "against the CA", "the right subject from another CA")

	noTLS, err := parseVV([]byte("[virt-viewer]\nhost=10.0.0.1\nport=5900\n"))
	require.NoError(t, err)
	tc, err = noTLS.tlsConfig()
	require.NoError(t, err)
	assert.Nil(t, tc, "no tls-port: plain SPICE")
	assert.Equal(t, "10.0.0.1:5900", noTLS.addr())
}

func TestParseVVHostName(t *testing.T) {
	ca, err := kerbside.NewCA("vv-test")
	require.NoError(t, err)
	b := kerbside.VV{Host: "console.example", TLSPort: 443, Password: "x", CA: string(ca.PEM)}.Bytes()
	v, err := parseVV(b)
	require.NoError(t, err)
	tc, err := v.tlsConfig()
	require.NoError(t, err)
	assert.Equal(t, "console.example", tc.ServerName)
	right, err := ca.Issue(pkix.Name{CommonName: "x"}, []string{"console.example"}, nil)
	require.NoError(t, err)
	wrong, err := ca.Issue(pkix.Name{CommonName: "x"}, []string{"elsewhere.example"}, nil)
	require.NoError(t, err)
	assert.NoError(t, tc.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{right.TLS.Leaf}}))
	assert.ErrorContains(t, tc.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{wrong.TLS.Leaf}}),
		`does not name "console.example"`)
}

// TestParseVVHostile: every malformed .vv fails with an error that names
// what is wrong, and never the password.
func TestParseVVHostile(t *testing.T) {
	good, _ := kerbsideVV(t)
	replace := func(pairs ...string) string {
		s := string(good)
		for i := 0; i+1 < len(pairs); i += 2 {
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		return s
	}
	long := strings.Repeat("p", 61)
	for _, tc := range []struct {
		name, vv, want string
	}{
		{"empty", "", "no [virt-viewer] section"},
		{"an HTML error page", "<html><body>502 Bad Gateway</body></html>", "no [virt-viewer] section"},
		{"another section only", "[other]\nhost=1.2.3.4\nport=1\n", "no [virt-viewer] section"},
		{"header without bracket", "[virt-viewer\nhost=1.2.3.4\n", "without ']'"},
		{"no host", replace("host=127.0.0.1\n", ""), "no host"},
		{"host None", replace("host=127.0.0.1", "host=None"), "no host"},
		{"host with a path", replace("host=127.0.0.1", "host=evil/../x"), "not a host name"},
		{"ports zero", replace("port=5900", "port=0", "tls-port=5901", "tls-port=0"), "neither port nor tls-port"},
		{"port negative", replace("tls-port=5901", "tls-port=-1"), "tls-port=\"-1\""},
		{"port too large", replace("port=5900", "port=70000"), "port=\"70000\""},
		{"port not a number", replace("port=5900", "port=59OO"), "want a port"},
		{"no port at all", replace("\nport=5900\n", "\n", "tls-port=5901\n", ""), "neither port nor tls-port"},
		{"not spice", replace("type=spice", "type=vnc"), "only spice"},
		{"a line that is no key", replace("title=busy", "garbage line"), "not a key=value line"},
		{"password too long", replace(testVVPassword, long), "more than SPICE's 60"},
		{"ca not PEM", replace("-----BEGIN CERTIFICATE-----", "-----BEGIN NOTHING-----"), "ca:"},
		{"ca garbage", "[virt-viewer]\nhost=h\nport=1\nca=not a certificate\n", "no PEM certificate"},
		{"ca holds a key", "[virt-viewer]\nhost=h\nport=1\nca=-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\n", "PRIVATE KEY"},
		{"host-subject unknown key", replace(kerbside.HostSubject, "C=US,XX=1"), `unknown key "XX"`},
		{"host-subject without =", replace(kerbside.HostSubject, "C=US,Kerbside"), "has no '='"},
		{"host-subject empty value", replace(kerbside.HostSubject, "C=,O=x"), "empty value"},
		{"host-subject bad escape", replace(kerbside.HostSubject, `CN=a\b`), "backslash"},
		{"too large", "[virt-viewer]\nhost=h\nport=1\ntitle=" + strings.Repeat("x", maxVV), "not a .vv file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseVV([]byte(tc.vv))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), testVVPassword, "the password is never in an error")
			assert.NotContains(t, err.Error(), long)
		})
	}
}
