package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

const benchDrawnLine = `{"event": "surface_drawn", "data": {"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1.234, "wallclock_us": 1717000000123456}}` + "\n"

// floodServer accepts one client on a Unix socket, answers its hello, waits
// for start, then writes n copies of line as fast as the socket takes them.
// The returned channel yields the server's error once the client has gone.
//
// It is a minimal writer rather than the simulator on purpose: the
// simulator writes one line per syscall through a 256-event queue that
// drops under load, so it would measure itself (and lose events), not
// this client's read path.
func floodServer(b *testing.B, n int, line string, start <-chan struct{}) (string, <-chan error) {
	b.Helper()
	dir, err := os.MkdirTemp("", "ctl-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer ln.Close()
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		reqLine, err := r.ReadBytes('\n')
		if err != nil {
			done <- fmt.Errorf("read hello: %w", err)
			return
		}
		var req struct{ ID json.RawMessage }
		if err := json.Unmarshal(reqLine, &req); err != nil {
			done <- err
			return
		}
		hello := okLine(req.ID, `{"server_name": "ryll", "protocol_version": "1.2", "supported_methods": [], "supported_events": ["surface_drawn"]}`) + "\n"
		if _, err := io.WriteString(conn, hello); err != nil {
			done <- err
			return
		}
		<-start
		chunk := bytes.Repeat([]byte(line), 512)
		for left := n; left > 0; {
			k := min(left, 512)
			if _, err := conn.Write(chunk[:k*len(line)]); err != nil {
				done <- fmt.Errorf("write events: %w", err)
				return
			}
			left -= k
		}
		_, _ = io.Copy(io.Discard, conn) // until the client closes
		done <- nil
	}()
	return path, done
}

// BenchmarkEventsUnixSocket measures the whole event path: socket read,
// line split, decode, queue, channel. allocs/op is per event.
func BenchmarkEventsUnixSocket(b *testing.B) { benchEvents(b, Options{}) }

// BenchmarkEventsUnixSocketTranscript is the same path with a transcript
// (LATENCY_TRANSCRIPT) written to io.Discard, with two secrets to
// replace: what troubleshooting costs per event.
func BenchmarkEventsUnixSocketTranscript(b *testing.B) {
	benchEvents(b, Options{Transcript: io.Discard, Secrets: []string{"tok-3f9a-SECRET", "vv-password"}})
}

func benchEvents(b *testing.B, opts Options) {
	start := make(chan struct{})
	path, done := floodServer(b, b.N, benchDrawnLine, start)
	ctx, cancel := benchContext(b)
	defer cancel()
	opts.EventQueue = b.N + 1
	c, err := Dial(ctx, path, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchDrawnLine)))
	b.ResetTimer()
	close(start)
	for range b.N {
		if _, ok := <-c.Events(); !ok {
			b.Fatalf("events closed early: %v", c.Err())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if s := c.Stats(); s.Malformed+s.Oversized+s.EventsDropped != 0 {
		b.Fatalf("bad stats %+v", s)
	}
	_ = c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDecodeLine is the decoder alone on a surface_drawn line.
func BenchmarkDecodeLine(b *testing.B) {
	line := []byte(benchDrawnLine[:len(benchDrawnLine)-1])
	var env envelope
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeLine(&env, line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSurfaceDrawnDecode is the consumer's typed decode of one event.
func BenchmarkSurfaceDrawnDecode(b *testing.B) {
	ev := Event{Name: EventSurfaceDrawn, Data: json.RawMessage(`{"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1.234, "wallclock_us": 1717000000123456}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.SurfaceDrawn(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendKeyRoundTrip is one send_key request and response through
// the simulator over a Unix socket (its allocations are counted too: it
// runs in this process). Keys draw nothing, so only the round trip costs.
func BenchmarkSendKeyRoundTrip(b *testing.B) {
	s := startSim(b, func(c *sim.Config) { c.DrawsPerKey = 0 })
	ctx, cancel := benchContext(b)
	defer cancel()
	c, err := Dial(ctx, s.path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.SendKey(ctx, 0x1C, KeyPress); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScreenshotRGBA1024x768 moves a 3 MiB raw screenshot (4 MiB of
// base64) from the simulator over a Unix socket, the simulator rendering
// and encoding it included.
func BenchmarkScreenshotRGBA1024x768(b *testing.B) {
	const w, h = 1024, 768
	s := startSim(b, func(c *sim.Config) { c.SurfaceWidth, c.SurfaceHeight = w, h })
	ctx, cancel := benchContext(b)
	defer cancel()
	c, err := Dial(ctx, s.path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.SetBytes(w * h * 4)
	for b.Loop() {
		if _, err := c.screenshot(ctx, nil, formatRGBA); err != nil {
			b.Fatal(err)
		}
	}
}

// benchContext bounds a benchmark's waits so a broken run fails instead of
// hanging; it is generous enough never to cut a healthy run.
func benchContext(b *testing.B) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.Context(), 10*hangGuard)
}
