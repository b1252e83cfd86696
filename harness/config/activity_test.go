package config

import (
	"testing"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestActivityAndKeyRegion(t *testing.T) {
	guestRegion := measure.Rect{Left: guest.KeyRegion.Left, Top: guest.KeyRegion.Top, Right: guest.KeyRegion.Right, Bottom: guest.KeyRegion.Bottom}
	wholeScreen := measure.Rect{Right: guest.ScreenWidth, Bottom: guest.ScreenHeight}
	for _, tc := range []struct {
		name         string
		vars         map[string]string
		wantActivity string
		wantRegion   measure.Rect
	}{
		{"defaults: idle, no region", map[string]string{"LATENCY_PROVIDER": "fake"}, "idle", measure.Rect{}},
		{"qemu idle: the whole screen, which its key repaints", map[string]string{"LATENCY_PROVIDER": "qemu"}, "idle", wholeScreen},
		{"qemu video", map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_ACTIVITY": "Video"}, "video", guestRegion},
		{"a region of one's own", map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "127.0.0.1:5900",
			"LATENCY_KEY_REGION": " 0, 0 ,640,32"}, "idle", measure.Rect{Right: 640, Bottom: 32}},
		{"it overrides the guest's", map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_KEY_REGION": "10,20,30,40"},
			"idle", measure.Rect{Left: 10, Top: 20, Right: 30, Bottom: 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(tc.vars))
			require.NoError(t, err)
			assert.Equal(t, tc.wantActivity, c.Activity)
			assert.Equal(t, tc.wantRegion, c.Measure.KeyRegion)
		})
	}
}

func TestActivityAndKeyRegionProblems(t *testing.T) {
	for name, tc := range map[string]struct {
		vars map[string]string
		want string
	}{
		"unknown activity":       {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_ACTIVITY": "busy"}, "LATENCY_ACTIVITY=\"busy\": want idle, typing, scroll, video"},
		"activity on a fake":     {map[string]string{"LATENCY_PROVIDER": "fake", "LATENCY_ACTIVITY": "video"}, "LATENCY_PROVIDER=qemu"},
		"three numbers":          {map[string]string{"LATENCY_KEY_REGION": "0,0,720"}, "LATENCY_KEY_REGION"},
		"not numbers":            {map[string]string{"LATENCY_KEY_REGION": "a,b,c,d"}, "LATENCY_KEY_REGION"},
		"inside out":             {map[string]string{"LATENCY_KEY_REGION": "720,0,0,48"}, "left < right"},
		"negative":               {map[string]string{"LATENCY_KEY_REGION": "-1,0,720,48"}, "LATENCY_KEY_REGION"},
		"huge":                   {map[string]string{"LATENCY_KEY_REGION": "0,0,99999999999999999999,48"}, "LATENCY_KEY_REGION"},
		"empty area":             {map[string]string{"LATENCY_KEY_REGION": "0,0,0,0"}, "LATENCY_KEY_REGION"},
		"beyond any surface":     {map[string]string{"LATENCY_KEY_REGION": "0,0,70000,48"}, "LATENCY_KEY_REGION"},
		"activity on a direct's": {map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "127.0.0.1:5900", "LATENCY_ACTIVITY": "scroll"}, "LATENCY_ACTIVITY=scroll"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(tc.vars))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
