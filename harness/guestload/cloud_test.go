package guestload

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/fixtures/kerbside"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/loadgen"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
)

// kerbsideLane is the cloud lane in one process: the fake cloud's Nova
// answers every console token with one hypervisor, a loadgen Server
// behind a TLS port whose certificate the lane's CA signed (QEMU's
// tls-port, as Nova's fake driver points it); the Kerbside stand-in
// serves the spice-direct URLs (resolving tokens with the fake Nova) and
// proxies each console over TLS with a one-time password.
type kerbsideLane struct {
	fc  *fakecloud.Cloud
	ks  *kerbside.Kerbside
	hv  *loadgen.Server
	env map[string]string
	// http fetches console URLs: Nova's spice_direct_proxy_base_url is
	// the stand-in's, so the fake cloud's Kerbside path goes there.
	http *http.Client
}

func newKerbsideLane(t *testing.T) *kerbsideLane {
	t.Helper()
	ca, err := kerbside.NewCA("guestload-lane")
	require.NoError(t, err)
	leaf, err := ca.Issue(pkix.Name{CommonName: "hypervisor"}, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	// Nova's fake driver runs SPICE without a ticket: the stand-in sends
	// an empty one.
	hv, err := loadgen.Serve(t.Context(), ln, loadgen.ServerConfig{BitsPerSecond: 2_000_000, DrawSize: 2000, Width: 320, Height: 200})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, hv.Close()) })
	l := newKerbsideLaneTo(t, ca, ln.Addr().(*net.TCPAddr).Port)
	l.hv = hv
	return l
}

// newKerbsideLaneTo is the lane with the hypervisor's TLS port at
// hvPort, its certificate from ca.
func newKerbsideLaneTo(t *testing.T, ca *kerbside.CA, hvPort int) *kerbsideLane {
	t.Helper()
	fc := fakecloud.New(t, fakecloud.Options{VVHost: "127.0.0.1", VVPort: 1, VVTLSPort: hvPort, Images: []string{"busy-guest"}})
	env := fc.Env()
	ks, err := kerbside.Start(t.Context(), kerbside.Config{Credentials: env, CA: ca})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ks.Close()) })
	fcURL, err := url.Parse(fc.URL())
	require.NoError(t, err)
	ksURL, err := url.Parse(ks.BaseURL())
	require.NoError(t, err)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &kerbsideLane{fc: fc, ks: ks, env: env, http: &http.Client{Timeout: 10 * time.Second,
		Transport: rewrite{from: fcURL.Host, to: ksURL.Host, path: fakecloud.KerbsidePath, rt: tr}}}
}

// rewrite sends requests for from's path to to: Nova configured with the
// stand-in as its spice_direct_proxy_base_url.
type rewrite struct {
	from, to, path string
	rt             http.RoundTripper
}

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == r.from && req.URL.Path == r.path {
		req = req.Clone(req.Context())
		req.URL.Host, req.Host = r.to, ""
	}
	return r.rt.RoundTrip(req)
}

func (l *kerbsideLane) config(runID string, log *slog.Logger) CloudConfig {
	return CloudConfig{
		Getenv:       func(k string) string { return l.env[k] },
		CloudOptions: []cloud.Option{cloud.WithPollInterval(10 * time.Millisecond), cloud.WithRetries(1, 10*time.Millisecond)},
		Image:        "busy-guest", Flavor: "m1.tiny", RunID: runID, HTTPClient: l.http, Parallel: 2,
		StopTimeout: 30 * time.Second, Logger: log,
	}
}

// alive lists the servers that are not being deleted, by name.
func (l *kerbsideLane) alive() []string {
	var names []string
	for _, s := range l.fc.Servers() {
		if !s.Deleting {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	return names
}

// syncBuffer is a log sink safe for the source's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCloudSourceThroughKerbside: Set boots servers named after the run,
// tagged for make sweep; each viewer fetches its .vv through Kerbside
// and links over TLS with the one-time password, and display traffic
// flows from the hypervisor; down to one deletes the newest; Close
// deletes the rest; no console URL or password reaches the log.
func TestCloudSourceThroughKerbside(t *testing.T) {
	l := newKerbsideLane(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var logs syncBuffer
	src, err := NewCloud(l.config("t-run", slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			assert.NoError(t, src.Close(context.Background()))
		}
	}()
	assert.Equal(t, "openstack", src.Name())

	require.NoError(t, src.Set(ctx, 2))
	assert.Equal(t, []string{"latency-t-run-l0", "latency-t-run-l1"}, l.alive())
	for _, s := range l.fc.Servers() {
		assert.Contains(t, s.Tags, cloud.Tag, "make sweep lists by the tag")
		assert.Equal(t, cloud.MetaLoadtestValue, s.Metadata[cloud.MetaLoadtest])
		assert.True(t, strings.HasPrefix(s.Metadata[cloud.MetaRunID], "t-run-l"), "the run id in the metadata")
	}
	st := l.ks.Stats()
	assert.Equal(t, 4, st.Linked, "main and display channel of each console through Kerbside's TLS port")
	assert.Zero(t, st.Denied)
	assert.Zero(t, st.NeedSecured, "the viewers used the tls-port, never the plain one")
	assert.Equal(t, 2, l.ks.Fetches().VV, "one .vv per server")

	s2, err := src.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, s2.Sessions)
	assert.Empty(t, s2.Processes, "the servers' processes are the cloud's")
	require.Eventually(t, func() bool {
		s, err := src.Sample(ctx)
		return err == nil && s.Bytes > 100_000
	}, 30*time.Second, 20*time.Millisecond, "display traffic flows from the hypervisor through Kerbside")
	hv := l.hv.Stats()
	assert.Equal(t, 2, hv.Sessions, "two sessions reached the hypervisor")

	require.NoError(t, src.Set(ctx, 1))
	assert.Equal(t, []string{"latency-t-run-l0"}, l.alive(), "the newest server was deleted")
	s1, err := src.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s1.Sessions)
	assert.GreaterOrEqual(t, s1.Bytes, s2.Bytes, "cumulative")

	require.NoError(t, src.Close(ctx))
	closed = true
	assert.Empty(t, l.alive(), "Close deleted every busy server")
	require.NoError(t, src.Close(ctx), "Close twice")

	secrets := src.Secrets()
	require.NotEmpty(t, secrets)
	for _, pw := range l.ks.Secrets() { // console tokens and .vv passwords
		assert.Contains(t, secrets, pw, "the source reports every secret it handled")
		assert.NotContains(t, logs.String(), pw, "no token or password in the log")
	}
	assert.NotContains(t, logs.String(), l.env["OS_PASSWORD"])
}

// TestCloudSourceFailedSet: a server that goes to ERROR fails Set with
// Nova's fault and every server that Set made is deleted; the count is
// what it was; Close deletes the rest.
func TestCloudSourceFailedSet(t *testing.T) {
	l := newKerbsideLane(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src, err := NewCloud(l.config("t-fail", nil))
	require.NoError(t, err)
	require.NoError(t, src.Set(ctx, 1))

	l.fc.BootError("No valid host was found. There are not enough hosts available.")
	err = src.Set(ctx, 3)
	require.Error(t, err)
	assert.ErrorContains(t, err, "No valid host was found")
	assert.ErrorContains(t, err, "all stopped again")
	assert.Equal(t, []string{"latency-t-fail-l0"}, l.alive(), "the failed Set's servers were deleted")
	s, err := src.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Sessions)

	l.fc.ClearFaults()
	require.NoError(t, src.Close(ctx))
	assert.Empty(t, l.alive())
	assert.Zero(t, l.fc.ServersAlive(), "gone, not only being deleted")
}

// TestCloudSourceRefusesAUsedConsole: a console whose .vv was already
// fetched (Kerbside's tokens are one-time) fails with the hint, and the
// server is deleted.
func TestCloudSourceRefusesAUsedConsole(t *testing.T) {
	l := newKerbsideLane(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cfg := l.config("t-used", nil)
	// A client that fetches every console URL once before the source
	// does, as a leaked URL would be used.
	inner := cfg.HTTPClient
	cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := inner.Do(req.Clone(req.Context()))
		if err == nil {
			resp.Body.Close()
		}
		return inner.Transport.RoundTrip(req)
	})}
	src, err := NewCloud(cfg)
	require.NoError(t, err)
	defer func() { assert.NoError(t, src.Close(context.Background())) }()
	err = src.Set(ctx, 1)
	require.Error(t, err)
	assert.ErrorContains(t, err, "HTTP 403: the console token is unknown, used or expired")
	for _, s := range l.ks.Secrets() {
		assert.NotContains(t, err.Error(), s, "no token in the error")
	}
	assert.Empty(t, l.alive())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestCloudSourceRoutesThroughTheRouter: with a Router, each viewer
// dials the address it gives for the console's TLS port.
func TestCloudSourceRoutesThroughTheRouter(t *testing.T) {
	l := newKerbsideLane(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := &proxyRouter{t: t}
	var targets []netip.AddrPort
	cfg := l.config("t-route", nil)
	cfg.Router = func(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error) {
		targets = append(targets, target)
		return r.route(ctx, target)
	}
	src, err := NewCloud(cfg)
	require.NoError(t, err)
	defer func() { assert.NoError(t, src.Close(context.Background())) }()
	require.NoError(t, src.Set(ctx, 1))
	require.Len(t, targets, 1)
	assert.Equal(t, "127.0.0.1", targets[0].Addr().String())
	conns, through := r.bytesThrough()
	assert.Equal(t, 2, conns, "main and display channels crossed the route")
	assert.Positive(t, through)
	assert.Zero(t, l.ks.Stats().NeedSecured, "the route led to the TLS port")
}

func TestNewCloudRefuses(t *testing.T) {
	_, err := NewCloud(CloudConfig{RunID: "r"})
	assert.ErrorContains(t, err, "LATENCY_LOAD_IMAGE")
	_, err = NewCloud(CloudConfig{Image: "i", RunID: strings.Repeat("r", 60)})
	assert.ErrorContains(t, err, "invalid run id")
	_, err = NewCloud(CloudConfig{Image: "i", RunID: "../x"})
	assert.ErrorContains(t, err, "invalid run id")
}

// TestCloudSourceCancelledMidBoot: a Set whose context ends while its
// server is still building returns, and the server is deleted anyway.
func TestCloudSourceCancelledMidBoot(t *testing.T) {
	l := newKerbsideLane(t)
	l.fc.BuildForever()
	src, err := NewCloud(l.config("t-cancel", nil))
	require.NoError(t, err)
	defer func() { assert.NoError(t, src.Close(context.Background())) }()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err = src.Set(ctx, 1)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, l.alive(), "the building server was deleted with a context of its own")
}

// TestCloudConfigFrom: the busy servers boot LATENCY_LOAD_IMAGE with the
// measured console's flavor, network and boot timeout; the image is
// uploaded from LATENCY_IMAGE_URL only when it is the console's own.
func TestCloudConfigFrom(t *testing.T) {
	c, err := config.Load([]string{"LATENCY_PROVIDER=openstack", "LATENCY_IMAGE=guest", "LATENCY_IMAGE_URL=https://images.example/guest.qcow2",
		"LATENCY_FLAVOR=f1", "LATENCY_NETWORK=n1", "LATENCY_BOOT_TIMEOUT=3m", "LATENCY_RUN_ID=r-1"})
	require.NoError(t, err)
	cc := CloudConfigFrom(c)
	assert.Equal(t, "guest", cc.Image)
	assert.Equal(t, "https://images.example/guest.qcow2", cc.ImageURL)
	assert.Equal(t, "f1", cc.Flavor)
	assert.Equal(t, "n1", cc.Network)
	assert.Equal(t, 3*time.Minute, cc.BootTimeout)
	assert.Equal(t, "r-1", cc.RunID)

	c, err = config.Load([]string{"LATENCY_PROVIDER=openstack", "LATENCY_IMAGE=guest", "LATENCY_LOAD_IMAGE=busy-video"})
	require.NoError(t, err)
	cc = CloudConfigFrom(c)
	assert.Equal(t, "busy-video", cc.Image)
	assert.Empty(t, cc.ImageURL, "another image is never uploaded from the console's URL")
}

// TestCloudSourceToQEMUThroughKerbside: the far end is QEMU's own
// spice-server on its TLS port (as the dev cloud's fake driver points
// it): the busy server's viewer links through Kerbside over TLS, the
// stand-in links to QEMU over TLS, and the guest's first paint arrives.
func TestCloudSourceToQEMUThroughKerbside(t *testing.T) {
	needQemu(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ca, err := kerbside.NewCA("guestload-qemu-lane")
	require.NoError(t, err)
	leaf, err := ca.Issue(pkix.Name{CommonName: "hypervisor"}, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	dir := t.TempDir()
	x509Dir := filepath.Join(dir, "x509")
	require.NoError(t, os.Mkdir(x509Dir, 0o700))
	require.NoError(t, ca.WriteQEMUDir(x509Dir, leaf))
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tlsPort := free.Addr().(*net.TCPAddr).Port
	require.NoError(t, free.Close())
	vm, err := qemu.Start(ctx, qemu.Spec{Image: guest.Image, Name: "guestload-far-end", TLSPort: tlsPort, X509Dir: x509Dir,
		LogPath: filepath.Join(dir, "qemu.log")})
	require.NoError(t, err)
	defer func() { assert.NoError(t, vm.Stop(context.WithoutCancel(ctx))) }()

	l := newKerbsideLaneTo(t, ca, tlsPort)
	src, err := NewCloud(l.config("t-qemu", nil))
	require.NoError(t, err)
	defer func() { assert.NoError(t, src.Close(context.Background())) }()
	require.NoError(t, src.Set(ctx, 1), "a busy server whose console is QEMU behind Kerbside")
	s, err := src.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Sessions)
	assert.Positive(t, s.Messages, "spice-server's display traffic through two TLS legs")
	assert.Equal(t, 2, l.ks.Stats().Linked)
	require.NoError(t, src.Close(ctx))
	assert.Empty(t, l.alive())
}
