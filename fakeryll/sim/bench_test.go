package sim_test

import (
	"testing"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

// BenchmarkKeyToDraw is the simulator's own overhead on the measured path:
// send_key down over the socket until its surface_drawn is read back, with
// no modelled delay. The loadtest's error budget must be well above it.
func BenchmarkKeyToDraw(b *testing.B) {
	r := startSim(b, func(c *sim.Config) { c.DrawDelay, c.DisplayRefresh, c.DrawsPerKey = 0, 0, 1 })
	c := dialHello(b, r.path)
	c.subscribe("surface_drawn")
	for b.Loop() {
		before, _ := c.keyDown(30)
		c.drawnAfter(before)
	}
}

// BenchmarkStatusRoundTrip is one request/response over the socket.
func BenchmarkStatusRoundTrip(b *testing.B) {
	r := startSim(b, nil)
	c := dialHello(b, r.path)
	for b.Loop() {
		if m := c.call("status", map[string]any{}); !m.ok() {
			b.Fatal(string(m.raw))
		}
	}
}

// BenchmarkScreenshotRGBA is a full 1024x768 rgba screenshot, about 4 MB
// of base64 on one line.
func BenchmarkScreenshotRGBA(b *testing.B) {
	r := startSim(b, nil)
	c := dialHello(b, r.path)
	b.SetBytes(1024 * 768 * 4)
	for b.Loop() {
		if m := c.call("screenshot", map[string]any{"format": "rgba"}); !m.ok() {
			b.Fatal(string(m.raw))
		}
	}
}
