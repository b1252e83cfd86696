package spiceproxy

import (
	"context"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
	"github.com/shakenfist/kerbside-latency/fakeryll/spice/spicetest"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/qemu/qemutest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests and the benchmark drive a real spice-server (QEMU with the
// repaint-on-key guest) through the proxy with the project's SPICE
// client, fakeryll/spice.

// bootGuest boots the guest under QEMU, or skips saying how to get QEMU.
func bootGuest(tb testing.TB) *qemu.VM {
	tb.Helper()
	return qemutest.Boot(tb, "real SPICE check", qemu.Spec{Image: guest.Image})
}

// leg is a way to reach the guest: straight to its SPICE port, or
// through a proxy in a mode.
type leg struct {
	name string
	mode Mode // zero: direct
}

var legs = []leg{
	{"direct", Mode{}},
	{"nodelay", Mode{Kind: NoDelay}},
	{"nagle", Mode{Kind: Nagle}},
	{"delay:30ms", Mode{Kind: Delay, Delay: 30 * time.Millisecond}},
}

// open connects a session along l and waits for the painted text
// screen. The proxy is nil for the direct leg.
func (l leg) open(tb testing.TB, vm *qemu.VM) (*spice.Session, *Proxy) {
	tb.Helper()
	host, port := vm.SpiceAddr()
	var p *Proxy
	if l.mode.Kind != 0 {
		var err error
		p, err = Start(tb.Context(), Config{Target: host + ":" + strconv.Itoa(port), Mode: l.mode})
		require.NoError(tb, err)
		tb.Cleanup(func() { assert.NoError(tb, p.Close()) })
		port = p.Addr().(*net.TCPAddr).Port
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
	defer cancel()
	s, err := spice.Dial(ctx, spice.Config{Host: host, Port: int(port)})
	require.NoError(tb, err, "dial SPICE via %s", l.name)
	tb.Cleanup(func() { s.Close() })
	spicetest.WaitPainted(tb, s, 15*time.Second)
	return s, p
}

// TestQEMURepaintThroughProxy: through every mode, a real spice-server
// session links, every key reaches the guest once and repaints the
// whole screen, and in nagle mode every channel's link was followed.
// Timing is the benchmark's business.
func TestQEMURepaintThroughProxy(t *testing.T) {
	vm := bootGuest(t)
	for _, l := range legs {
		t.Run(l.name, func(t *testing.T) {
			s, p := l.open(t, vm)
			before, err := vm.ReadCounter(t.Context(), guest.CounterAddr, 2)
			require.NoError(t, err)
			const keys = 3
			for i := range keys {
				r, err := spicetest.Press(t.Context(), s)
				require.NoError(t, err, "key %d", i)
				whole := spice.Rect{Bottom: 400, Right: 720}
				union := spicetest.Union(spice.Rect{}, spicetest.Boxes(r.Draws)...)
				// A loaded host spreads a repaint's pieces wider than
				// spicetest.Quiet (beside a second make test: rows 2-31 of the
				// left half, then the rest): take pieces until the screen
				// is covered or none comes for spicetest.FirstDrawWait.
				for union != whole {
					more, err := spicetest.Burst(s, time.Time{}, spicetest.FirstDrawWait)
					require.NoError(t, err)
					if len(more) == 0 {
						break
					}
					union = spicetest.Union(union, spicetest.Boxes(more)...)
				}
				assert.Equal(t, whole, union, "key %d repaints the whole screen", i)
				t.Logf("key %d: %d draws, first %s, last %s", i, len(r.Draws), r.First.Round(time.Millisecond), r.Last.Round(time.Millisecond))
			}
			after, err := vm.ReadCounter(t.Context(), guest.CounterAddr, 2)
			require.NoError(t, err)
			assert.Equal(t, uint64(keys), after-before, "every key reached the guest once")
			require.NoError(t, s.Close())
			if p == nil {
				return
			}
			conns := p.Conns()
			assert.GreaterOrEqual(t, len(conns), 3, "main, display and inputs were proxied")
			for _, cs := range conns {
				assert.Positive(t, cs.ToClient, "connection %d", cs.ID)
				if l.mode.Kind == Nagle {
					assert.Equal(t, "mini header", cs.Framing, "connection %d", cs.ID)
					assert.Positive(t, cs.Messages, "connection %d", cs.ID)
				}
			}
		})
	}
}

// BenchmarkRepaintThroughProxy measures, for the direct leg and each
// proxy mode, key to first draw and key to last draw of the repaint
// (the burst ends after 150 ms without a draw), one key per iteration
// with 0-100 ms of random jitter between keys. Run it with a fixed count:
//
//	go test -run '^$' -bench RepaintThroughProxy -benchtime 30x ./harness/spiceproxy/
//
// first-ms and last-ms are medians; nagle should leave first-ms alone
// and add about the client's delayed-ACK time (~40 ms) to last-ms;
// delay:30ms should add about 60 ms to both (30 ms in each direction).
func BenchmarkRepaintThroughProxy(b *testing.B) {
	vm := bootGuest(b)
	for _, l := range legs {
		b.Run(l.name, func(b *testing.B) {
			s, _ := l.open(b, vm)
			var first, last []float64
			draws := 0
			for b.Loop() {
				b.StopTimer()
				time.Sleep(time.Duration(rand.Int64N(int64(100 * time.Millisecond))))
				b.StartTimer()
				r, err := spicetest.Press(b.Context(), s)
				if err != nil {
					b.Fatal(err)
				}
				first = append(first, ms(r.First))
				last = append(last, ms(r.Last))
				draws += len(r.Draws)
			}
			b.ReportMetric(median(first), "first-ms")
			b.ReportMetric(median(last), "last-ms")
			b.ReportMetric(float64(draws)/float64(len(first)), "draws/key")
			b.ReportMetric(0, "ns/op")
			require.NoError(b, s.Close())
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
