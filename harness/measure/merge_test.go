package measure

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMergeJoinsBlocksAsOneRun(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	press := func(n int, v Verdict, first, repaint time.Duration) Press {
		return Press{Number: n, Verdict: v, Answered: v == VerdictSample, FirstDraw: first, Repaint: repaint}
	}
	a := Result{
		Config:     Config{Metric: KeypressToScreen},
		Start:      t0,
		End:        t0.Add(time.Second),
		Samples:    []Sample{{Index: 0, Seq: 1, Value: 0.020}, {Index: 1, Seq: 3, Value: 0.022}},
		Misses:     []Miss{{Seq: 2}},
		Presses:    []Press{press(1, VerdictSample, 20*time.Millisecond, 60*time.Millisecond), press(2, VerdictMiss, 0, 0), press(3, VerdictSample, 22*time.Millisecond, 62*time.Millisecond)},
		Background: Background{Draws: 2, Observed: 2 * time.Second, Gaps: 1, Exposure: 20 * time.Millisecond},
		StopReason: StopSamplesReached, Dropped: 1,
	}
	b := Result{
		Config:     Config{Metric: KeypressToScreen},
		Start:      t0.Add(2 * time.Second),
		End:        t0.Add(3 * time.Second),
		Samples:    []Sample{{Index: 0, Seq: 1, Value: 0.030}},
		Presses:    []Press{press(1, VerdictSample, 30*time.Millisecond, 70*time.Millisecond)},
		Background: Background{Draws: 0, Observed: 2 * time.Second, Exposure: 30 * time.Millisecond},
		StopReason: StopInterrupted, Dropped: 2,
	}
	m := Merge(a, b)
	assert.Equal(t, []float64{0.020, 0.022, 0.030}, m.Values())
	assert.Equal(t, 2, m.Samples[2].Index)
	assert.Equal(t, 4, m.Samples[2].Seq, "press numbers continue across blocks")
	assert.Equal(t, []int{1, 2, 3, 4}, []int{m.Presses[0].Number, m.Presses[1].Number, m.Presses[2].Number, m.Presses[3].Number})
	assert.Equal(t, 2, m.Misses[0].Seq)
	assert.Equal(t, 3, m.FirstDraw.Count)
	assert.InDelta(t, 0.022, m.FirstDraw.P50, 1e-9)
	assert.InDelta(t, 0.062, m.Repaint.P50, 1e-9)
	assert.Equal(t, 3, m.Dropped)
	assert.Equal(t, StopInterrupted, m.StopReason)
	assert.Equal(t, t0, m.Start)
	assert.Equal(t, t0.Add(3*time.Second), m.End)
	assert.Equal(t, 2, m.Background.Draws)
	assert.Equal(t, 4*time.Second, m.Background.Observed)
	assert.InDelta(t, 0.5, m.Background.Rate, 1e-9)
	assert.InDelta(t, 0.5*0.030, m.Background.Contamination, 1e-9, "rate x the median exposure")
	assert.Equal(t, Result{}, Merge())
}
