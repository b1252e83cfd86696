package measure

import (
	"context"
	"testing"
	"time"
)

// BenchmarkPairerOffer measures the per-draw pairing decision on a mix of
// draws before, inside and after the window. Run with -benchmem: it must
// not allocate.
func BenchmarkPairerOffer(b *testing.B) {
	sentAt := time.Now()
	draws := []Draw{
		{Wallclock: sentAt.Add(-time.Millisecond)},
		{Wallclock: sentAt.Add(2 * time.Second)},
		{Wallclock: sentAt.Add(17 * time.Millisecond)},
		{Wallclock: sentAt.Add(18 * time.Millisecond)},
	}
	var p pairer
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%len(draws) == 0 {
			p.start(n, sentAt, time.Second)
		}
		p.offer(draws[n%len(draws)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "draws/s")
}

// idleKeyboard presses without causing draws.
type idleKeyboard struct{}

func (idleKeyboard) KeyDown(context.Context) (time.Time, error) { return time.Now(), nil }
func (idleKeyboard) KeyUp(context.Context) error                { return nil }

// BenchmarkRunDraws pushes b.N unrelated draws through Run's event loop
// (channel receive, select, pairing decision): the cost of a screen that
// redraws constantly. allocs/op is per draw.
func BenchmarkRunDraws(b *testing.B) {
	draws := make(chan Draw, 1024)
	cfg := Config{
		Metric: KeypressToScreen, Samples: 1, MaxDuration: time.Hour,
		Cadence: time.Hour, Hold: time.Minute, Window: time.Minute, Seed: 1,
		Logger: discardLogger(),
	}
	old := Draw{Wallclock: time.Unix(0, 0)}
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			draws <- old
		}
		close(draws)
	}()
	res, _ := Run(context.Background(), cfg, Sources{Keyboard: idleKeyboard{}, Draws: draws})
	b.StopTimer()
	if res.UnpairedDraws != b.N {
		b.Fatalf("unpaired draws = %d, want %d", res.UnpairedDraws, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "draws/s")
}
