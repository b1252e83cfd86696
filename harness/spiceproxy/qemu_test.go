package spiceproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests and the benchmark drive a real spice-server (QEMU with the
// repaint-on-key guest) through the proxy with the project's SPICE
// client, fakeryll/spice.

const (
	// burstQuiet ends a key's repaint: no draw for this long.
	burstQuiet = 150 * time.Millisecond
	// firstDrawWait bounds the wait for a key's first draw.
	firstDrawWait = 3 * time.Second
	spaceBar      = 0x39
)

// bootGuest boots the guest under QEMU, or skips saying how to get QEMU.
func bootGuest(tb testing.TB) *qemu.VM {
	tb.Helper()
	if _, err := qemu.LookBinary(""); err != nil {
		if errors.Is(err, qemu.ErrNotFound) {
			tb.Skipf("real SPICE check: %v", err)
		}
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 60*time.Second)
	defer cancel()
	vm, err := qemu.Start(ctx, qemu.Spec{Image: guest.Image, LogPath: filepath.Join(tb.TempDir(), "qemu.log")})
	require.NoError(tb, err, "boot the guest")
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		assert.NoError(tb, vm.Stop(ctx))
	})
	return vm
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
	deadline := time.After(15 * time.Second)
	for painted := false; !painted; {
		select {
		case ev, ok := <-s.Events():
			require.True(tb, ok, "session ended before the screen appeared: %v", s.Err())
			if sc, ok := ev.(spice.SurfaceCreated); ok && sc.Width == 720 && sc.Height == 400 {
				painted = true
			}
		case <-deadline:
			tb.Fatalf("%s: no 720x400 surface within 15s", l.name)
		}
	}
	if _, err := burst(s, 2*time.Second); err != nil {
		tb.Fatal(err)
	}
	return s, p
}

// burst collects draws until none has come for burstQuiet (or, before
// the first, for first).
func burst(s *spice.Session, first time.Duration) ([]spice.Draw, error) {
	var draws []spice.Draw
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return draws, fmt.Errorf("session ended: %w", s.Err())
			}
			if d, ok := ev.(spice.Draw); ok {
				draws = append(draws, d)
				timer.Reset(burstQuiet)
			}
		case <-timer.C:
			return draws, nil
		}
	}
}

// unionOf is the box covering u (unless empty) and every draw's.
func unionOf(u spice.Rect, draws []spice.Draw) spice.Rect {
	for _, d := range draws {
		if u == (spice.Rect{}) {
			u = d.Box
			continue
		}
		u = spice.Rect{Top: min(u.Top, d.Box.Top), Left: min(u.Left, d.Box.Left),
			Bottom: max(u.Bottom, d.Box.Bottom), Right: max(u.Right, d.Box.Right)}
	}
	return u
}

// repaint is one key press's first and last draw, from just before the
// key went out.
type repaint struct {
	first, last time.Duration
	draws       []spice.Draw
}

// press types the space bar and collects the repaint it causes.
func press(ctx context.Context, s *spice.Session) (repaint, error) {
	// The screen quiet first: what is left of the last repaint is not
	// this key's.
	if _, err := burst(s, burstQuiet); err != nil {
		return repaint{}, err
	}
	sent := time.Now()
	if err := s.KeyDown(ctx, spaceBar); err != nil {
		return repaint{}, err
	}
	if err := s.KeyUp(ctx, spaceBar); err != nil {
		return repaint{}, err
	}
	draws, err := burst(s, firstDrawWait)
	if err != nil {
		return repaint{}, err
	}
	if len(draws) == 0 {
		return repaint{}, fmt.Errorf("no draw within %s of the key", firstDrawWait)
	}
	return repaint{first: draws[0].Received.Sub(sent), last: draws[len(draws)-1].Received.Sub(sent), draws: draws}, nil
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
				r, err := press(t.Context(), s)
				require.NoError(t, err, "key %d", i)
				whole := spice.Rect{Bottom: 400, Right: 720}
				union := unionOf(spice.Rect{}, r.draws)
				// A loaded host spreads a repaint's pieces wider than
				// burstQuiet (beside a second make test: rows 2-31 of the
				// left half, then the rest): take pieces until the screen
				// is covered or none comes for firstDrawWait.
				for union != whole {
					more, err := burst(s, firstDrawWait)
					require.NoError(t, err)
					if len(more) == 0 {
						break
					}
					union = unionOf(union, more)
				}
				assert.Equal(t, whole, union, "key %d repaints the whole screen", i)
				t.Logf("key %d: %d draws, first %s, last %s", i, len(r.draws), r.first.Round(time.Millisecond), r.last.Round(time.Millisecond))
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
				r, err := press(b.Context(), s)
				if err != nil {
					b.Fatal(err)
				}
				first = append(first, ms(r.first))
				last = append(last, ms(r.last))
				draws += len(r.draws)
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
