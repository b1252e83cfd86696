package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/kerbside"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// startTLSServer serves a Server on a TLS listener whose certificate the
// returned CA signed (subject CN=loadgen, for 127.0.0.1), as a Kerbside
// TLS port or QEMU's tls-port would.
func startTLSServer(tb testing.TB, cfg ServerConfig) (*Server, *kerbside.CA) {
	tb.Helper()
	ca, err := kerbside.NewCA("loadgen-test")
	require.NoError(tb, err)
	leaf, err := ca.Issue(pkix.Name{CommonName: "loadgen"}, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12})
	require.NoError(tb, err)
	s, err := Serve(tb.Context(), ln, cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, s.Close()) })
	return s, ca
}

// TestClientOverTLS: with ClientConfig.TLS every channel links inside
// TLS, the ticket is checked, and display traffic flows past the ACK
// window; without TLS, or with a CA that did not sign the server, the
// link fails and says where.
func TestClientOverTLS(t *testing.T) {
	srv, ca := startTLSServer(t, ServerConfig{Password: testPassword, DrawSize: 1000, Width: 320, Height: 200})
	addr := srv.Addr().String()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	good := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	cl, err := Dial(ctx, ClientConfig{Addr: addr, Password: testPassword, TLS: good})
	require.NoError(t, err, "link over TLS")
	defer cl.Close()
	waitFor(t, 15*time.Second, "messages past the ACK window over TLS", func() bool {
		return cl.Stats().Draws > 3*DefaultAckWindow
	})
	require.NoError(t, cl.Err())
	st := cl.Stats()
	assert.NotZero(t, st.Session)
	assert.GreaterOrEqual(t, st.Acks, uint64(3), "ACKs went back over TLS")
	require.NoError(t, cl.Close())
	sst := srv.Stats()
	require.Len(t, sst.PerSession, 1)
	assert.Equal(t, st.Session, sst.PerSession[0].Session)

	_, err = Dial(ctx, ClientConfig{Addr: addr, Password: secret.NewString("wrong"), TLS: good})
	assert.ErrorIs(t, err, ErrPermissionDenied, "the ticket is still checked inside TLS")

	other, err := kerbside.NewCA("someone-else")
	require.NoError(t, err)
	_, err = Dial(ctx, ClientConfig{Addr: addr, Password: testPassword, LinkTimeout: 5 * time.Second,
		TLS: &tls.Config{RootCAs: other.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	require.Error(t, err, "a server certificate the CA did not sign")
	assert.Contains(t, err.Error(), "TLS for channel type 1")
	assert.Contains(t, err.Error(), "certificate")

	_, err = Dial(ctx, ClientConfig{Addr: addr, Password: testPassword, LinkTimeout: 3 * time.Second})
	require.Error(t, err, "plain SPICE against a TLS port")
	assert.NotContains(t, err.Error(), testPassword.Reveal())
}
