package sim

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpicePingPattern(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	seq := &pingSeq{pattern: PingPattern{Mode: PingSpice}, start: start, rng: rand.New(rand.NewPCG(1, 3))}
	var at []time.Time
	for range 11 {
		ti, ok := seq.next()
		require.True(t, ok)
		at = append(at, ti)
	}
	assert.Equal(t, start, at[0])
	var samples []time.Duration
	for i := 1; i < len(at); i++ {
		samples = append(samples, at[i].Sub(at[i-1]))
	}
	// Three PINGs at connect: two near-zero samples. Then pairs about 15 s
	// apart: the samples alternate near 15 000 ms and near 0 ms.
	for i, s := range samples {
		near15s := i >= 2 && i%2 == 0
		if near15s {
			assert.InDelta(t, 15*time.Second, s, float64(100*time.Millisecond), "sample %d", i)
		} else {
			assert.Less(t, s, 2*time.Millisecond, "sample %d", i)
			assert.Positive(t, s)
		}
	}
	// Pairs start on the 15 s grid, plus a little jitter.
	assert.InDelta(t, 15*time.Second, at[3].Sub(start), float64(50*time.Millisecond))
	assert.InDelta(t, 60*time.Second, at[9].Sub(start), float64(50*time.Millisecond))

	again := &pingSeq{pattern: PingPattern{Mode: PingSpice}, start: start, rng: rand.New(rand.NewPCG(1, 3))}
	for i := range at {
		ti, _ := again.next()
		assert.Equal(t, at[i], ti, "same seed, same PINGs")
	}
}

func TestSteadyAndNoPings(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	seq := &pingSeq{pattern: PingPattern{Mode: PingSteady, Interval: 200 * time.Millisecond}, start: start}
	for i := range 5 {
		ti, ok := seq.next()
		require.True(t, ok)
		assert.Equal(t, start.Add(time.Duration(i)*200*time.Millisecond), ti)
	}
	none := &pingSeq{pattern: PingPattern{Mode: PingNone}, start: start}
	_, ok := none.next()
	assert.False(t, ok)
}

func TestOnTick(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SocketPath = "unused"
	s, err := New(cfg)
	require.NoError(t, err)
	start := time.Unix(1_700_000_000, 123_000)
	s.start = start
	for _, tc := range []struct {
		name      string
		refresh   time.Duration
		off, want time.Duration
	}{
		{"on a tick stays", 30 * time.Millisecond, 60 * time.Millisecond, 60 * time.Millisecond},
		{"just after a tick waits a whole period", 30 * time.Millisecond, 60*time.Millisecond + time.Microsecond, 90 * time.Millisecond},
		{"just before a tick", 30 * time.Millisecond, 89999 * time.Microsecond, 90 * time.Millisecond},
		{"refresh off", 0, 12345 * time.Microsecond, 12345 * time.Microsecond},
		{"before start", 30 * time.Millisecond, -time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.cfg.DisplayRefresh = tc.refresh
			got := s.onTick(start.Add(tc.off))
			want := start.Add(tc.want)
			if tc.refresh == 0 {
				want = start.Add(tc.off)
			}
			assert.Equal(t, want, got)
		})
	}
}

func TestAlignMicroKeepsMonotonic(t *testing.T) {
	now := time.Now()
	a := alignMicro(now)
	assert.Zero(t, a.Nanosecond()%1000)
	assert.LessOrEqual(t, now.Sub(a), time.Microsecond)
	assert.Contains(t, a.String(), "m=", "the monotonic reading survives")
}
