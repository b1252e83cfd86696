package loadrig

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

func startTestProxy(t *testing.T, mode string, gomaxprocs int) *Proxy {
	t.Helper()
	m, err := spiceproxy.Parse(mode)
	require.NoError(t, err)
	p, err := StartProxy(t.Context(), ProxyConfig{Mode: m, ChildConfig: ChildConfig{GOMAXPROCS: gomaxprocs}})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, p.Close(context.Background()))
		assertGone(t, p.Pid())
	})
	return p
}

// echoServer accepts connections and echoes what it reads.
func echoServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestRoutesForwardBytes: a route is a listener of the proxy process
// that forwards to its target; a second Route to the same target is the
// same route; the proxy counts what it forwarded and reads its own
// usage from /proc.
func TestRoutesForwardBytes(t *testing.T) {
	p := startTestProxy(t, "nodelay", 1)
	a, b := echoServer(t), echoServer(t)
	ra, err := p.Router()(t.Context(), a)
	require.NoError(t, err)
	rb, err := p.Route(t.Context(), b)
	require.NoError(t, err)
	again, err := p.Route(t.Context(), a)
	require.NoError(t, err)
	assert.Equal(t, ra, again, "one route per target")
	assert.NotEqual(t, ra, rb)
	assert.NotEqual(t, a, ra, "the route is the proxy's, not the target")

	for _, via := range []netip.AddrPort{ra, rb} {
		c, err := net.Dial("tcp", via.String())
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		msg := []byte("REDQ through the proxy process")
		_, err = c.Write(msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, msg, got)
		c.Close()
	}
	// The proxy counts a write once it returned, which may be just after
	// the echo reached us: read its totals until they settle.
	var tot ProxyTotals
	assert.Eventually(t, func() bool {
		tot, err = p.Totals(t.Context())
		return err == nil && tot.ToServer == 2*30 && tot.ToClient == 2*30
	}, 10*time.Second, 10*time.Millisecond, "every byte each way counted")
	require.NoError(t, err)
	assert.Equal(t, 2, tot.Routes)
	assert.Equal(t, int64(2), tot.Conns)
	assert.Equal(t, int64(2*30), tot.ToServer)
	assert.Equal(t, int64(2*30), tot.ToClient)

	proc, err := p.Process()
	require.NoError(t, err)
	assert.Equal(t, "proxy", proc.Role)
	assert.Equal(t, p.Pid(), proc.Pid)
	assert.Positive(t, proc.RSS)

	_, err = p.Route(t.Context(), netip.MustParseAddrPort("0.0.0.0:0"))
	assert.Error(t, err, "a route to port 0 is refused")
}

func TestStartProxyRefusesABadMode(t *testing.T) {
	_, err := StartProxy(t.Context(), ProxyConfig{})
	assert.ErrorContains(t, err, "no mode set")
	_, err = StartProxy(t.Context(), ProxyConfig{Mode: spiceproxy.Mode{Kind: spiceproxy.NoDelay}, ChildConfig: ChildConfig{GOMAXPROCS: -1}})
	assert.ErrorContains(t, err, "negative")
}

func startTestSynthetic(t *testing.T, cfg SyntheticConfig) *Synthetic {
	t.Helper()
	s, err := StartSynthetic(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, s.Close(context.Background()))
		assertGone(t, s.Pid())
	})
	return s
}

// TestSyntheticThroughTheProxy: Set goes up and down, each session's
// display crosses the proxy process, Samples grow, and Close leaves no
// process behind.
func TestSyntheticThroughTheProxy(t *testing.T) {
	p := startTestProxy(t, "nodelay", 1)
	s := startTestSynthetic(t, SyntheticConfig{
		Activity:          Activity{Name: "test", DrawSize: 4096, DrawsPerSecond: 50},
		SessionsPerServer: 2, Router: p.Router(), ChildConfig: ChildConfig{GOMAXPROCS: 1},
	})
	assert.Equal(t, "synthetic", s.Name())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	s0, err := s.Sample(ctx)
	require.NoError(t, err)
	assert.Zero(t, s0.Sessions)
	assert.Zero(t, s0.Bytes)

	require.NoError(t, s.Set(ctx, 5))
	s1, err := s.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, s1.Sessions)
	assert.GreaterOrEqual(t, s1.Messages, int64(5), "every session read a draw")
	require.Len(t, s1.Processes, 1)
	assert.Equal(t, "generator", s1.Processes[0].Role)
	assert.Equal(t, s.Pid(), s1.Processes[0].Pid)
	assert.Positive(t, s1.Processes[0].RSS)

	tot, err := p.Totals(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, tot.Routes, "5 sessions at 2 per server: 3 servers, each routed")
	assert.GreaterOrEqual(t, tot.Conns, int64(5*2), "main and display channels of every session crossed the proxy")

	// Counts grow while the sessions run (each sends 50 draws a second).
	var s2 = s1
	waitUntil(t, 20*time.Second, "the counts to grow", func() bool {
		s2, err = s.Sample(ctx)
		require.NoError(t, err)
		return s2.Messages >= s1.Messages+5*10
	})
	assert.Greater(t, s2.Bytes, s1.Bytes)
	assert.True(t, s2.At.After(s1.At))
	tot2, err := p.Totals(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, tot2.ToClient, s2.Bytes, "what the sessions read crossed the proxy")

	require.NoError(t, s.Set(ctx, 2))
	s3, err := s.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, s3.Sessions)
	assert.GreaterOrEqual(t, s3.Bytes, s2.Bytes, "stopped sessions stay counted")

	require.NoError(t, s.Set(ctx, 4))
	s4, err := s.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4, s4.Sessions)

	require.NoError(t, s.Set(ctx, 0))
	s5, err := s.Sample(ctx)
	require.NoError(t, err)
	assert.Zero(t, s5.Sessions)
	assert.GreaterOrEqual(t, s5.Messages, s4.Messages)

	assert.Error(t, s.Set(ctx, -1))
}

// TestSessionsLostAreLoud: when the proxy goes away under running
// sessions, Sample says so (ErrSessionsLost) and still counts.
func TestSessionsLostAreLoud(t *testing.T) {
	m, _ := spiceproxy.Parse("nodelay")
	p, err := StartProxy(t.Context(), ProxyConfig{Mode: m})
	require.NoError(t, err)
	s := startTestSynthetic(t, SyntheticConfig{Router: p.Router()})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, s.Set(ctx, 3))
	require.NoError(t, p.Close(ctx))
	waitUntil(t, 20*time.Second, "the lost sessions to show", func() bool {
		got, err := s.Sample(ctx)
		if err == nil {
			return false
		}
		assert.ErrorIs(t, err, ErrSessionsLost)
		assert.Zero(t, got.Sessions)
		assert.Positive(t, got.Messages)
		return true
	})
	// A Set replaces them, but the route is gone: it must fail, not hang.
	assert.Error(t, s.Set(ctx, 3))
}

// TestCPUModeCostsTheProxyCPU: through cpu:DUR, the proxy process spends
// at least half of DUR of CPU time per message it forwards (a relation
// with a margin no busy host can cross: the cost is busy work counted
// on its own thread's CPU clock).
func TestCPUModeCostsTheProxyCPU(t *testing.T) {
	const cost = 2 * time.Millisecond
	p := startTestProxy(t, "cpu:"+cost.String(), 1)
	s := startTestSynthetic(t, SyntheticConfig{
		Activity: Activity{Name: "test", DrawSize: 4096, DrawsPerSecond: 40}, Router: p.Router(),
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, s.Set(ctx, 4))
	t0, err := p.Totals(ctx)
	require.NoError(t, err)
	u0, err := p.Process()
	require.NoError(t, err)
	var t1 ProxyTotals
	waitUntil(t, 30*time.Second, "200 messages through the proxy", func() bool {
		t1, err = p.Totals(ctx)
		require.NoError(t, err)
		return t1.Messages-t0.Messages >= 200
	})
	u1, err := p.Process()
	require.NoError(t, err)
	msgs := t1.Messages - t0.Messages
	// Messages counted before the usage was read: the CPU read after
	// covers at least their cost.
	perMsg := (u1.CPU - u0.CPU) / time.Duration(msgs)
	t.Logf("%d messages, proxy CPU %s, %s per message (cost %s)", msgs, u1.CPU-u0.CPU, perMsg, cost)
	assert.GreaterOrEqual(t, perMsg, cost/2)
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestActivities: every preset parses by name, starts a generator and
// flows; an unknown name says which exist.
func TestActivities(t *testing.T) {
	prev := int64(0)
	for _, a := range Activities {
		t.Run(a.Name, func(t *testing.T) {
			got, err := ParseActivity(a.Name)
			require.NoError(t, err)
			assert.Equal(t, a, got)
			assert.Greater(t, a.BitsPerSecond(), prev, "presets go from light to heavy")
			prev = a.BitsPerSecond()
			s := startTestSynthetic(t, SyntheticConfig{Activity: a})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			require.NoError(t, s.Set(ctx, 1))
			smp, err := s.Sample(ctx)
			require.NoError(t, err)
			assert.GreaterOrEqual(t, smp.Bytes, int64(a.DrawSize), "a whole draw was read")
		})
	}
	_, err := ParseActivity("idle")
	assert.ErrorIs(t, err, ErrBadActivity)
	assert.ErrorContains(t, err, "typing, scroll, video")
}

// TestCPUModeRunsOutOfCPU: a cpu:DUR proxy on one core forwards at most
// 1/DUR messages a second, however many its sessions ask for: here they
// ask three times that, and get no more than half again the cap (a busy
// host can only lower the count). The servers are held back by the ACK
// window meanwhile: that is how a proxy out of CPU shows to a session.
func TestCPUModeRunsOutOfCPU(t *testing.T) {
	const cost = 10 * time.Millisecond // a cap of 100 messages a second
	p := startTestProxy(t, "cpu:"+cost.String(), 1)
	s := startTestSynthetic(t, SyntheticConfig{
		Activity: Activity{Name: "test", DrawSize: 4096, DrawsPerSecond: 75}, Router: p.Router(),
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, s.Set(ctx, 4)) // 300 draws a second asked for
	start := time.Now()
	t0, err := p.Totals(ctx)
	require.NoError(t, err)
	s0, err := s.Sample(ctx)
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	t1, err := p.Totals(ctx)
	require.NoError(t, err)
	wall := time.Since(start)
	s1, err := s.Sample(ctx)
	require.NoError(t, err)
	msgs := t1.Messages - t0.Messages
	capacity := wall.Seconds() / cost.Seconds()
	t.Logf("%d messages in %s (cap %.0f, 300/s asked); ACK wait %s", msgs, wall.Round(time.Millisecond), capacity, s1.AckWait-s0.AckWait)
	assert.Positive(t, msgs)
	assert.LessOrEqual(t, float64(msgs), 1.5*capacity+8, "one core at %s a message", cost)
}
