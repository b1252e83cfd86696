package loadtest

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/measure"
)

// TestAnswersKey: before the first press, a draw boxed outside the key
// region is the guest's activity (it must not hold the first press back);
// a draw in it, or with no box, or with no region, may be the key's.
func TestAnswersKey(t *testing.T) {
	region := measure.Rect{Right: 720, Bottom: 48}
	below := &control.Rect{Left: 0, Top: 64, Right: 32, Bottom: 400}
	in := &control.Rect{Left: 0, Top: 0, Right: 32, Bottom: 48}
	for _, tc := range []struct {
		name   string
		region measure.Rect
		rect   *control.Rect
		want   bool
	}{
		{"boxed below the region", region, below, false},
		{"boxed in the region", region, in, true},
		{"no box", region, nil, true},
		{"no region", measure.Rect{}, below, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Session{Cfg: &config.Config{Measure: measure.Config{KeyRegion: tc.region}}}
			assert.Equal(t, tc.want, r.answersKey(control.SurfaceDrawn{Rect: tc.rect}))
		})
	}
}

// TestBusyHint: a busy guest whose draws cannot be placed is told what
// to do; an idle one is not told about activity it does not have.
func TestBusyHint(t *testing.T) {
	busy := &Session{Cfg: &config.Config{Activity: "video", Measure: measure.Config{KeyRegion: measure.Rect{Right: 720, Bottom: 48}}}}
	assert.Contains(t, busy.busyHint(12), "no rect on 12")
	assert.Contains(t, busy.busyHint(12), "LATENCY_ACTIVITY=idle")
	assert.Contains(t, busy.busyHint(0), "LATENCY_ACTIVITY=idle")
	idle := &Session{Cfg: &config.Config{Activity: "idle"}}
	assert.Empty(t, idle.busyHint(5))
}
