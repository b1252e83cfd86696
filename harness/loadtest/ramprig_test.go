package loadtest

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/link"
	"github.com/shakenfist/kerbside-latency/harness/ramp"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// An openstack ramp's record says that the proxy under test is Kerbside,
// remote and unmeasured, that the host figures are the harness's host
// only, and never gives Kerbside a CPU figure or calls it a proxy inside
// the harness.
func TestRemoteProxyRecordSaysKerbsideIsNotMeasured(t *testing.T) {
	cpu := []host.ProcessCPU{{Role: "harness", CPUS: 0.1}, {Role: "ryll", CPUS: 0.05}}
	r := rampWith(t, []int{0, 2}, map[int]float64{0: 0.020, 2: 0.021}, 30, cpu, false)
	r.Cfg.Ramp.Source, r.Cfg.Ramp.Remote, r.Cfg.Ramp.Activity, r.Cfg.Ramp.Rate = config.LoadOpenStack, true, "as the image busy does", 0
	r.Rig.Proxy = newRemoteProxy(t.Context(), nil, slog.New(slog.DiscardHandler))
	l := r.Judge()
	assert.Equal(t, "openstack", l.Source)
	assert.Contains(t, l.Proxy, "Kerbside (remote")
	assert.Contains(t, l.Proxy, "its CPU is not measured")
	reasons := strings.Join(l.Reasons, "; ")
	assert.Contains(t, reasons, "Kerbside, remote: its CPU is not measured")
	assert.Contains(t, reasons, "cover this harness's host only")
	assert.NotContains(t, reasons, "ran inside the harness", "Kerbside is not a proxy inside the harness")
	for _, s := range l.Steps {
		for _, c := range s.CPU {
			assert.NotEqual(t, ramp.ProxyRole, c.Role, "%d sessions: no CPU figure for a proxy nobody measured", s.Sessions)
		}
	}
	var table strings.Builder
	require.NoError(t, results.WriteLoadTable(&table, l))
	assert.Contains(t, table.String(), "each at its own rate", "no 0bit rate that looks set")

	// A rig that never started still names Kerbside, not LATENCY_PROXY's
	// default.
	r.Rig.Proxy = nil
	assert.Contains(t, r.Judge().Proxy, "Kerbside (remote")
}

// The remote proxy's router gives the console itself, or with a link
// profile one link per console address in front of it; it is no process
// of this host.
func TestRemoteProxyRoutes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	target := netip.MustParseAddrPort(ln.Addr().String())
	log := slog.New(slog.DiscardHandler)

	plain := newRemoteProxy(t.Context(), nil, log)
	got, err := plain.Router()(t.Context(), target)
	require.NoError(t, err)
	assert.Equal(t, target, got, "no link: the console itself")
	assert.Equal(t, RemotePid, plain.Pid())
	assert.Negative(t, plain.Pid(), "never the 0 of a proxy inside the harness")
	_, err = plain.Process()
	assert.ErrorContains(t, err, "not measured")
	require.NoError(t, plain.Close(t.Context()))

	prof, err := link.Parse("rtt=2ms")
	require.NoError(t, err)
	px := newRemoteProxy(t.Context(), &prof, log)
	via, err := px.Router()(t.Context(), target)
	require.NoError(t, err)
	assert.NotEqual(t, target, via, "a link in front of the console")
	again, err := px.Router()(t.Context(), target)
	require.NoError(t, err)
	assert.Equal(t, via, again, "one link per console address")
	c, err := net.DialTimeout("tcp", via.String(), 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf), "the link forwards to the console")
	_ = c.Close()
	require.NoError(t, px.Close(t.Context()))
	require.NoError(t, px.Close(t.Context()), "safe twice")
	_, err = px.Router()(t.Context(), target)
	assert.Error(t, err, "no route once closed")
}

// An openstack configuration gets the cloud rig: Kerbside as the proxy,
// busy servers as the source; every other one loadrig's processes.
func TestRigForOpenStack(t *testing.T) {
	cfg := &config.Config{RunID: "rig", Ramp: &config.Ramp{Steps: []int{0, 2}, Source: config.LoadOpenStack, Remote: true},
		Cloud: config.Cloud{Image: "guest", LoadImage: "busy"}}
	rig, err := rigFor(cfg, Options{Getenv: func(string) string { return "" }})(t.Context(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, rig.Source.Close(t.Context()))
		assert.NoError(t, rig.Proxy.Close(t.Context()))
	})
	assert.Equal(t, "openstack", rig.Source.Name())
	assert.Contains(t, rig.Proxy.Describe(), "Kerbside")
	assert.Equal(t, RemotePid, rig.Proxy.Pid())
}
