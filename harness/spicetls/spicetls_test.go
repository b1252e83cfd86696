package spicetls

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/kerbside"
)

func TestParseHostSubject(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string // key=normalised value
		wantErr string
	}{
		{in: kerbside.HostSubject, want: []string{"C=us", "O=shaken fist", "CN=kerbside proxy"}},
		{in: "  CN=a, O=b", want: []string{"CN=a", "O=b"}},
		{in: `O=Acme\, Inc,CN=hv`, want: []string{"O=acme, inc", "CN=hv"}},
		{in: `CN=back\\slash`, want: []string{`CN=back\slash`}},
		{in: "CN=a,", want: []string{"CN=a"}},
		{in: "emailAddress=x@y,DC=example", want: []string{"emailAddress=x@y", "DC=example"}},
		{in: "", wantErr: "no entries"},
		{in: `CN=a\b`, wantErr: "backslash"},
		{in: `CN=a\`, wantErr: "backslash"},
		{in: "CN=", wantErr: "empty value"},
		{in: "CN,O=x", wantErr: "no '='"},
		{in: "CN=a,O", wantErr: "no '='"},
		{in: "cn=a", wantErr: "unknown key"},
		{in: "XX=a", wantErr: "unknown key"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			hs, err := ParseHostSubject(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.Contains(t, err.Error(), "host-subject", "the error names what it parsed")
				return
			}
			require.NoError(t, err)
			var got []string
			for _, e := range hs.entries {
				got = append(got, e.key+"="+e.value)
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.in, hs.String())
		})
	}
}

// verifier is ClientConfig's check of a server that presents leaf.
func verifier(t *testing.T, host string, ca *kerbside.CA, subject string) func(*kerbside.Leaf) error {
	t.Helper()
	var hs *HostSubject
	if subject != "" {
		h, err := ParseHostSubject(subject)
		require.NoError(t, err)
		hs = &h
	}
	cfg, err := ClientConfig(host, ca.PEM, hs)
	require.NoError(t, err)
	assert.True(t, cfg.InsecureSkipVerify && cfg.VerifyConnection != nil, "the check is VerifyConnection's")
	return func(l *kerbside.Leaf) error {
		return cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{l.TLS.Leaf}})
	}
}

func issue(t *testing.T, ca *kerbside.CA, subject pkix.Name, dns []string, ips ...net.IP) *kerbside.Leaf {
	t.Helper()
	l, err := ca.Issue(subject, dns, ips)
	require.NoError(t, err)
	return l
}

func TestClientConfigPinnedSubject(t *testing.T) {
	ca, err := kerbside.NewCA("spicetls-test")
	require.NoError(t, err)
	stranger, err := kerbside.NewCA("stranger")
	require.NoError(t, err)
	localhost := net.IPv4(127, 0, 0, 1)
	verify := verifier(t, "127.0.0.1", ca, kerbside.HostSubject)

	assert.NoError(t, verify(issue(t, ca, kerbside.ProxySubject, nil)), "the pinned subject from the CA, whatever names it carries")
	spaced := verifier(t, "127.0.0.1", ca, "C=us, O=shaken  fist, CN=KERBSIDE PROXY")
	assert.NoError(t, spaced(issue(t, ca, kerbside.ProxySubject, nil)), "values compare trimmed, collapsed and case-folded")

	for name, subject := range map[string]pkix.Name{
		"another CN":        {Country: []string{"US"}, Organization: []string{"Shaken Fist"}, CommonName: "Someone Else"},
		"an attribute less": {Organization: []string{"Shaken Fist"}, CommonName: "Kerbside Proxy"},
	} {
		err := verify(issue(t, ca, subject, nil, localhost))
		assert.ErrorIs(t, err, ErrSubjectMismatch, name)
		assert.ErrorContains(t, err, kerbside.HostSubject, "%s: the error names the pin", name)
	}
	reordered := verifier(t, "127.0.0.1", ca, "CN=Kerbside Proxy,O=Shaken Fist,C=US")
	assert.ErrorIs(t, reordered(issue(t, ca, kerbside.ProxySubject, nil)), ErrSubjectMismatch, "the order of the attributes counts")

	err = verify(issue(t, stranger, kerbside.ProxySubject, nil, localhost))
	assert.ErrorContains(t, err, "against the CA", "the right subject from another CA")
	assert.False(t, errors.Is(err, ErrSubjectMismatch))
}

func TestClientConfigHostName(t *testing.T) {
	ca, err := kerbside.NewCA("spicetls-test")
	require.NoError(t, err)
	verify := verifier(t, "console.example", ca, "")
	cfg, err := ClientConfig("console.example", ca.PEM, nil)
	require.NoError(t, err)
	assert.Equal(t, "console.example", cfg.ServerName)
	byIP, err := ClientConfig("127.0.0.1", ca.PEM, nil)
	require.NoError(t, err)
	assert.Empty(t, byIP.ServerName, "an address is no server name")

	assert.NoError(t, verify(issue(t, ca, pkix.Name{CommonName: "x"}, []string{"console.example"})), "named in subjectAltName")
	assert.NoError(t, verify(issue(t, ca, pkix.Name{CommonName: "Console.Example"}, nil)), "no subjectAltName: the common name, case-folded")
	assert.ErrorContains(t, verify(issue(t, ca, pkix.Name{CommonName: "console.example"}, []string{"elsewhere.example"})),
		`does not name "console.example"`, "a subjectAltName that names another host outranks the common name")
	assert.ErrorContains(t, verify(issue(t, ca, pkix.Name{CommonName: "x"}, []string{"elsewhere.example"})), `does not name "console.example"`)

	ipVerify := verifier(t, "127.0.0.1", ca, "")
	assert.NoError(t, ipVerify(issue(t, ca, pkix.Name{CommonName: "x"}, nil, net.IPv4(127, 0, 0, 1))), "named by an IP subjectAltName")
}

func TestClientConfigRefusals(t *testing.T) {
	_, err := ClientConfig("h", []byte("not pem"), nil)
	assert.ErrorContains(t, err, "no PEM certificate")
	cfg, err := ClientConfig("h", nil, nil)
	require.NoError(t, err)
	assert.ErrorContains(t, cfg.VerifyConnection(tls.ConnectionState{}), "no certificate")
	ca, err := kerbside.NewCA("spicetls-test")
	require.NoError(t, err)
	l := issue(t, ca, pkix.Name{CommonName: "h"}, []string{"h"})
	err = cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{l.TLS.Leaf}})
	assert.True(t, err != nil && strings.Contains(err.Error(), "against the CA"), "no CA given: the system's roots, which do not hold a test CA: %v", err)
}
