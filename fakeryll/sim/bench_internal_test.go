package sim

import (
	"testing"
)

// BenchmarkQueuePushFull measures the cost the simulated session pays per
// event when the client is not reading at all (every push drops one).
func BenchmarkQueuePushFull(b *testing.B) {
	q := newEventQueue(DropNewest, nil)
	ln := []byte(`{"event":"surface_drawn","data":{"display_channel_id":0,"surface_id":0,"produced_at_secs":1.5,"wallclock_us":1717000000123456}}` + "\n")
	for range QueueCapacity {
		q.push(ln)
	}
	b.ReportAllocs()
	for b.Loop() {
		q.push(ln)
	}
}

// BenchmarkRenderPNG measures a 1024x768 PNG screenshot's encode.
func BenchmarkRenderPNG(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodePNG(renderSurface(1024, 768, 3)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRequest measures envelope validation of a typical send_key.
func BenchmarkParseRequest(b *testing.B) {
	line := []byte(`{"id": 12345, "method": "send_key", "params": {"scancode": 28, "state": "down"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, werr := parseRequest(line); werr != nil {
			b.Fatal(werr)
		}
	}
}
