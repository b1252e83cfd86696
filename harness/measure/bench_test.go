package measure

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// BenchmarkPairerOffer measures the per-draw classification on a mix of
// draws before, inside (first, burst, after the burst) and after the
// window. Run with -benchmem: it must not allocate.
func BenchmarkPairerOffer(b *testing.B) {
	sentAt := time.Now()
	draws := []Draw{
		{Wallclock: sentAt.Add(-time.Millisecond)},
		{Wallclock: sentAt.Add(17 * time.Millisecond)},
		{Wallclock: sentAt.Add(18 * time.Millisecond)},
		{Wallclock: sentAt.Add(500 * time.Millisecond)},
		{Wallclock: sentAt.Add(2 * time.Second)},
	}
	var p pressState
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%len(draws) == 0 {
			p.start(n, sentAt, time.Second, DefaultSettle)
		}
		p.classify(draws[n%len(draws)])
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

// BenchmarkAccuracy measures, press by press against simConsole's truth,
// how far both keypress figures are from the modelled first draw and end
// of repaint: a 5-draw repaint with a 2 ms tail on 2 of them, and a
// random background of 2 draws/s that the measurement must not mistake
// for a key's draws. It runs on the real clock with short times (about
// half a second per op); the sim stamps draws exactly, so any error is
// the pairing's, not the timer's. Reported: p50/p99/max |error| in µs
// for each figure, the share of samples with an error in each, and the
// contamination the run estimated for its metric (keypress_to_screen),
// to compare with first_wrong_share.
func BenchmarkAccuracy(b *testing.B) {
	var firstErr, repaintErr []float64
	firstWrong, repaintWrong, samples := 0, 0, 0
	est := 0.0
	runs := 0
	for b.Loop() {
		c := newSimConsole(func(n int) time.Duration { return 3*time.Millisecond + time.Duration(n%7)*300*time.Microsecond })
		c.strips, c.spread, c.tailN, c.tail = 5, 200*time.Microsecond, 2, 2*time.Millisecond
		c.background(500*time.Millisecond, true, uint64(runs)+1)
		cfg := fastConfig(20)
		cfg.Logger = discardLogger()
		cfg.Settle = 4 * time.Millisecond
		cfg.MaxContamination = 1 // observe, do not fail
		cfg.Seed = uint64(runs) + 1
		res, err := Run(context.Background(), cfg, c.sources())
		c.stop()
		if err != nil {
			b.Fatalf("run %d: %v", runs, err)
		}
		truth := c.presses()
		for _, p := range res.Presses {
			if p.Verdict != VerdictSample {
				continue
			}
			tr := truth[p.Number-1]
			fe := math.Abs(float64(p.FirstDraw-tr.first)) / 1e3
			re := math.Abs(float64(p.Repaint-tr.last)) / 1e3
			firstErr, repaintErr = append(firstErr, fe), append(repaintErr, re)
			samples++
			if fe > 1 {
				firstWrong++
			}
			if re > 1 {
				repaintWrong++
			}
		}
		est += res.Background.Contamination
		runs++
	}
	f, r := stats.Summarize(firstErr), stats.Summarize(repaintErr)
	b.ReportMetric(f.P50, "first_p50_us")
	b.ReportMetric(f.P99, "first_p99_us")
	b.ReportMetric(f.Max, "first_max_us")
	b.ReportMetric(r.P50, "repaint_p50_us")
	b.ReportMetric(r.P99, "repaint_p99_us")
	b.ReportMetric(r.Max, "repaint_max_us")
	b.ReportMetric(float64(firstWrong)/float64(max(samples, 1)), "first_wrong_share")
	b.ReportMetric(float64(repaintWrong)/float64(max(samples, 1)), "repaint_wrong_share")
	b.ReportMetric(est/float64(max(runs, 1)), "est_contamination")
}
