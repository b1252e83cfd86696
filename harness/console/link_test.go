package console

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/link"
)

// echoServer stands in for a SPICE server's port: it sends back what it
// reads, on every connection, until the test ends.
func echoServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c); _ = c.Close() })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// roundTrip sends msg to addr and reads it back, and says how long that took.
func roundTrip(t *testing.T, addr string, msg string) time.Duration {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	start := time.Now()
	_, err = c.Write([]byte(msg))
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	took := time.Since(start)
	assert.Equal(t, msg, string(got))
	return took
}

func TestRewriteVV(t *testing.T) {
	in := "[virt-viewer]\r\ntype=spice\r\nhost=hv1.example\r\nport=5900\r\ntls-port = 5901\r\npassword=pw-1\r\n" +
		"ca=-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\r\nhost-subject=CN=hv1\r\ndelete-this-file=1\r\n" +
		"[ovirt]\r\nhost=engine.example\r\n"
	ep, err := vvEndpoint([]byte(in))
	require.NoError(t, err)
	assert.Equal(t, vvAddr{host: "hv1.example", port: 5900, tlsPort: 5901}, ep)

	out := string(rewriteVV([]byte(in), vvAddr{host: "127.0.0.1", port: 40001, tlsPort: 40002}))
	want := "[virt-viewer]\r\ntype=spice\r\nhost=127.0.0.1\r\nport=40001\r\ntls-port=40002\r\npassword=pw-1\r\n" +
		"ca=-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\r\nhost-subject=CN=hv1\r\ndelete-this-file=1\r\n" +
		"[ovirt]\r\nhost=engine.example\r\n"
	assert.Equal(t, want, out, "only host, port and tls-port of [virt-viewer] change; every other line (the CA, host-subject, another section's host) stays")

	for name, bad := range map[string]string{
		"no host":  "[virt-viewer]\nport=5900\npassword=pw-2\n",
		"no port":  "[virt-viewer]\nhost=h\npassword=pw-2\n",
		"bad port": "[virt-viewer]\nhost=h\nport=59x\npassword=pw-2\n",
		"other":    "[ovirt]\nhost=h\nport=5900\npassword=pw-2\n",
	} {
		_, err := vvEndpoint([]byte(bad))
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), "pw-2", "never quotes the password")
	}
}

func TestLinkOnAFileConsoleKeepsTheUsersFile(t *testing.T) {
	plain, tls := echoServer(t), echoServer(t)
	vv := filepath.Join(t.TempDir(), "c.vv")
	orig := "[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport=" + strconv.Itoa(plain) + "\ntls-port=" + strconv.Itoa(tls) +
		"\npassword=s3cr3t-vv\nhost-subject=CN=hv1\n"
	require.NoError(t, os.WriteFile(vv, []byte(orig), 0o600))
	var logs bytes.Buffer
	c, err := Open(t.Context(), load(t, map[string]string{"LATENCY_PROVIDER": "file", "LATENCY_CONSOLE": vv, "LATENCY_LINK": "lan"}),
		Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })

	_, file, _ := c.RyllSource()
	assert.NotEqual(t, vv, file, "the client gets a copy pointing at the link")
	b, err := os.ReadFile(vv)
	require.NoError(t, err)
	assert.Equal(t, orig, string(b), "the user's own .vv is never changed")
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err = os.ReadFile(file)
	require.NoError(t, err)
	ep, err := vvEndpoint(b)
	require.NoError(t, err)
	assert.NotEqual(t, plain, ep.port)
	assert.NotEqual(t, tls, ep.tlsPort)
	assert.Contains(t, string(b), "password=s3cr3t-vv\nhost-subject=CN=hv1\n", "every other field kept")

	roundTrip(t, net.JoinHostPort(ep.host, strconv.Itoa(ep.port)), "plain channel")
	roundTrip(t, net.JoinHostPort(ep.host, strconv.Itoa(ep.tlsPort)), "tls bytes pass untouched")
	require.NoError(t, c.Close(t.Context()))

	stats := c.LinkStats()
	require.NotNil(t, stats, "what the link did outlives it")
	assert.Equal(t, 2, stats.Connections, "one connection on each port")
	assert.Equal(t, int64(len("plain channel")+len("tls bytes pass untouched")), stats.ToServer.Bytes)
	assert.Equal(t, stats.ToServer.Bytes, stats.ToClient.Bytes)
	assert.Equal(t, "lan", stats.Profile.Name)
	assert.Contains(t, c.Describe(), "through the link lan")
	assert.Contains(t, logs.String(), "link in front of the console")
	assert.NotContains(t, logs.String(), "s3cr3t-vv", "the .vv password is never logged")
	assert.NotContains(t, c.Describe(), "s3cr3t-vv")
}

func TestLinkOnADirectConsoleWithATLSPort(t *testing.T) {
	plain, tls := echoServer(t), echoServer(t)
	const rtt = 40 * time.Millisecond
	c, err := Open(t.Context(), load(t, map[string]string{"LATENCY_PROVIDER": "direct",
		"LATENCY_CONSOLE": "127.0.0.1:" + strconv.Itoa(plain) + ":" + strconv.Itoa(tls), "LATENCY_LINK": "rtt=40ms"}), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })
	_, file, d := c.RyllSource()
	require.Empty(t, file)
	require.NotZero(t, d.TLSPort, "a link on the TLS port too")
	assert.NotEqual(t, plain, int(d.Port))
	assert.NotEqual(t, tls, int(d.TLSPort))
	// The link can only add to its profile, never less: a lower bound
	// no scheduler delay can cross.
	assert.GreaterOrEqual(t, roundTrip(t, d.HostPort(), "hello"), rtt)
	assert.GreaterOrEqual(t, roundTrip(t, d.TLSHostPort(), "tls"), rtt)

	require.ErrorContains(t, c.PutLink(t.Context(), link.Profile{}), "already has one", "one link per console")

	addr := d.HostPort()
	require.NoError(t, c.Close(t.Context()))
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "Close stops the link: nothing listens any more")
	require.NoError(t, c.Close(t.Context()), "safe twice")
}

func TestLinkOnAURLConsoleRewritesTheFetchedVV(t *testing.T) {
	port := echoServer(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport=" + strconv.Itoa(port) + "\npassword=one-time-pw\n"))
	}))
	t.Cleanup(srv.Close)
	c, err := Open(t.Context(), load(t, map[string]string{"LATENCY_PROVIDER": "url", "LATENCY_CONSOLE": srv.URL + "/nova?token=tok-1",
		"LATENCY_LINK": "wan-20ms-50mbit"}), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })
	u, file, _ := c.RyllSource()
	assert.True(t, u.IsZero())
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	ep, err := vvEndpoint(b)
	require.NoError(t, err)
	assert.NotEqual(t, port, ep.port)
	assert.Contains(t, string(b), "password=one-time-pw")
	roundTrip(t, net.JoinHostPort(ep.host, strconv.Itoa(ep.port)), "x")
	assert.Equal(t, 1, c.LinkStats().Connections)
	assert.Equal(t, int64(50_000_000), c.LinkProfile().Rate)
}

func TestPutLinkRefusesNothingToLinkAndABadProfile(t *testing.T) {
	c := &Console{Provider: "direct", logger: slog.New(slog.DiscardHandler)}
	err := c.PutLink(t.Context(), link.Profile{})
	require.ErrorContains(t, err, "neither a .vv file nor an address")
	assert.Nil(t, c.LinkStats(), "no link left behind")
	err = c.PutLink(t.Context(), link.Profile{RTT: -1})
	require.ErrorIs(t, err, link.ErrBadProfile)
}
