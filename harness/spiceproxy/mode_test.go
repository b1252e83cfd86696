package spiceproxy

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParse(t *testing.T) {
	good := []struct {
		in   string
		want Mode
	}{
		{"nodelay", Mode{Kind: NoDelay}},
		{"nagle", Mode{Kind: Nagle}},
		{"delay:30ms", Mode{Kind: Delay, Delay: 30 * time.Millisecond}},
		{"delay:1.1s", Mode{Kind: Delay, Delay: 1100 * time.Millisecond}},
		{"delay:1m", Mode{Kind: Delay, Delay: time.Minute}},
		{"cpu:200us", Mode{Kind: CPU, Delay: 200 * time.Microsecond}},
		{"cpu:100ms", Mode{Kind: CPU, Delay: 100 * time.Millisecond}},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			assert.NoError(t, err)
			assert.Equal(t, tc.want, got)
			back, err := Parse(got.String())
			assert.NoError(t, err, "String reads back")
			assert.Equal(t, got, back)
		})
	}
	bad := []struct{ in, says string }{
		{"", `""`},
		{"NAGLE", `"NAGLE"`},
		{"nagle ", `"nagle "`},
		{"delay", `"delay"`},
		{"delay:", `"" is not a duration`},
		{"delay:30", `"30" is not a duration`},
		{"delay:0s", "above zero (for no delay use nodelay)"},
		{"delay:-5ms", "above zero"},
		{"delay:2m", "above the 1m0s limit"},
		{"slow", `"slow"`},
		{"cpu", `"cpu"`},
		{"cpu:", `"" is not a duration`},
		{"cpu:0s", "above zero (for no cost use nodelay)"},
		{"cpu:1s", "above the 100ms limit"},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			if !assert.Error(t, err) {
				return
			}
			assert.True(t, errors.Is(err, ErrBadMode), "errors.Is(err, ErrBadMode): %v", err)
			assert.Contains(t, err.Error(), tc.says)
			assert.Contains(t, err.Error(), "LATENCY_B_PROXY", "names the variable's forms")
			assert.Contains(t, err.Error(), `"nodelay", "nagle", "delay:DUR" or "cpu:DUR"`)
		})
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		says string
	}{
		{"no mode", Config{Target: "127.0.0.1:5900"}, "no mode set"},
		{"nagle with a delay", Config{Target: "127.0.0.1:5900", Mode: Mode{Kind: Nagle, Delay: time.Second}}, "takes no delay"},
		{"cpu without a cost", Config{Target: "127.0.0.1:5900", Mode: Mode{Kind: CPU}}, "cpu 0s must be above zero"},
		{"no target", Config{Mode: Mode{Kind: NoDelay}}, "no target"},
		{"bad target", Config{Target: "localhost", Mode: Mode{Kind: NoDelay}}, "target"},
		{"two ports", Config{Target: "127.0.0.1:5900:5901", Mode: Mode{Kind: NoDelay}}, "one per port"},
		{"bad listen", Config{Listen: "127.0.0.1:http-x", Target: "127.0.0.1:5900", Mode: Mode{Kind: NoDelay}}, "listen on"},
		{"negative buffer", Config{Target: "127.0.0.1:5900", Mode: Mode{Kind: NoDelay}, DelayBuffer: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(t.Context(), tc.cfg)
			if p != nil {
				p.Close()
			}
			if assert.Error(t, err) {
				assert.Contains(t, err.Error(), tc.says)
			}
		})
	}
}
