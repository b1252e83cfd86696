package link

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run one direction of a link on synctest's fake clock over
// net.Pipe, so every delay is exact: they state what the model does, to
// the nanosecond. The real-socket tests (link_test.go) only check lower
// bounds, which a busy machine cannot break.

// arrival is one read at the receiver: when, and what.
type arrival struct {
	at time.Duration
	b  string
}

// pipeShaper runs a shaper for p between a sender pipe and a receiver
// pipe. It returns the sender's end, the receiver's end and the
// shaper's result; the receiver end is closed when the shaper
// half-closes it.
func pipeShaper(t *testing.T, ctx context.Context, p Profile) (*shaper, net.Conn, net.Conn, <-chan error) {
	t.Helper()
	require.NoError(t, p.Validate())
	s := newShaper(p, 1)
	inW, inR := net.Pipe()
	outW, outR := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- s.run(ctx, inR, outW, outW.Close, func(error) { inR.Close(); outW.Close() })
		inR.Close()
		outW.Close()
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	return s, inW, outR, done
}

// collect reads r to its end, stamping each read with the fake time
// since start.
func collect(r io.Reader, start time.Time) ([]arrival, error) {
	var got []arrival
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			got = append(got, arrival{time.Since(start), string(buf[:n])})
		}
		if err == io.EOF {
			got = append(got, arrival{time.Since(start), "EOF"})
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

// TestDelayHoldsEachByte: every byte, and the end of the stream, arrive
// exactly RTT/2 after the link read them.
func TestDelayHoldsEachByte(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, in, out, done := pipeShaper(t, t.Context(), Profile{RTT: 80 * time.Millisecond})
		start := time.Now()
		go func() {
			in.Write([]byte("a"))
			time.Sleep(10 * time.Millisecond)
			in.Write([]byte("bc"))
			time.Sleep(5 * time.Millisecond)
			in.Close()
		}()
		got, err := collect(out, start)
		require.NoError(t, err)
		assert.NoError(t, <-done)
		assert.Equal(t, []arrival{{40 * time.Millisecond, "a"}, {50 * time.Millisecond, "bc"}, {55 * time.Millisecond, "EOF"}}, got)
	})
}

// TestRateSerialisesPackets: at 1 Mbit/s a 1500-byte packet takes 12 ms
// to send, the next one starts when it is sent, and each then crosses
// the wire's RTT/2.
func TestRateSerialisesPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, in, out, done := pipeShaper(t, t.Context(), Profile{RTT: 20 * time.Millisecond, Rate: 1_000_000, Queue: 64 << 10})
		start := time.Now()
		payload := bytes.Repeat([]byte("x"), 3000)
		go func() {
			in.Write(payload)
			in.Close()
		}()
		got, err := collect(out, start)
		require.NoError(t, err)
		assert.NoError(t, <-done)
		assert.Equal(t, []arrival{{22 * time.Millisecond, string(payload[:1500])}, {34 * time.Millisecond, string(payload[1500:])}, {34 * time.Millisecond, "EOF"}}, got)
		st := s.stats()
		assert.Equal(t, int64(3000), st.Bytes)
		assert.Equal(t, int64(1), st.Reads)
		assert.Equal(t, int64(2), st.Writes)
		assert.Equal(t, int64(3000), st.QueueHighWater, "both packets were in the bottleneck at once")
		assert.InDelta(t, 0.012, st.QueuedS, 1e-9, "the second packet waited while the first was sent")
		assert.InDelta(t, 0.012, st.QueueWaitMaxS, 1e-9)
		assert.Zero(t, st.BlockedS)
	})
}

// TestQueueIsFIFO: a key press behind a big write waits for it, as on a
// real bottleneck, and the link says how long.
func TestQueueIsFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, in, out, done := pipeShaper(t, t.Context(), Profile{Rate: 1_000_000, Queue: 64 << 10})
		start := time.Now()
		go func() {
			in.Write(bytes.Repeat([]byte("x"), 15000)) // 120 ms of sending
			time.Sleep(time.Millisecond)
			in.Write([]byte("k"))
			in.Close()
		}()
		got, err := collect(out, start)
		require.NoError(t, err)
		assert.NoError(t, <-done)
		last := got[len(got)-2]
		assert.Equal(t, arrival{120*time.Millisecond + 8*time.Microsecond, "k"}, last, "sent after the 15000 bytes, in 8 µs")
		st := s.stats()
		assert.InDelta(t, 0.119, st.QueueWaitMaxS, 1e-9, "k waited from 1 ms to 120 ms")
		assert.InDelta(t, 0.120, st.QueuedS, 1e-9, "bytes stood queued from 0 to 120 ms")
		assert.Equal(t, int64(15000), st.QueueHighWater, "the 15000 bytes were all in the bottleneck at 0")
	})
}

// TestJitterBounds: with jitter J every byte's delay is within RTT/2±J,
// the delays differ, and the stream is never reordered, even for packets
// sent back to back.
func TestJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay, jitter = 40 * time.Millisecond, 10 * time.Millisecond
		_, in, out, done := pipeShaper(t, t.Context(), Profile{RTT: 2 * oneWay, Jitter: jitter})
		var sent []byte
		sentAt := make([]time.Time, 100) // each written before its byte is sent
		go func() {
			// 100 single bytes 25 ms apart (more than 2J: no clamping),
			// then a burst of 50 written one by one at the same instant.
			for i := range 100 {
				b := []byte{byte(i)}
				sentAt[i] = time.Now()
				sent = append(sent, b...)
				in.Write(b)
				time.Sleep(25 * time.Millisecond)
			}
			for i := range 50 {
				b := []byte{byte(200 + i)}
				sent = append(sent, b...)
				in.Write(b)
			}
			in.Close()
		}()
		var got []byte
		var delays []time.Duration
		buf := make([]byte, 1)
		for {
			_, err := out.Read(buf)
			if err != nil {
				require.ErrorIs(t, err, io.EOF)
				break
			}
			if len(got) < 100 {
				delays = append(delays, time.Since(sentAt[len(got)]))
			}
			got = append(got, buf[0])
		}
		assert.NoError(t, <-done)
		assert.Equal(t, sent, got, "every byte, in order")
		lo, hi := delays[0], delays[0]
		for i, d := range delays {
			assert.GreaterOrEqual(t, d, oneWay-jitter, "byte %d", i)
			assert.LessOrEqual(t, d, oneWay+jitter, "byte %d", i)
			lo, hi = min(lo, d), max(hi, d)
		}
		assert.Greater(t, hi-lo, jitter, "the delays spread over the jitter range (%s to %s)", lo, hi)
	})
}

// TestQueueBackPressure: when the bottleneck's queue is full the link
// stops reading, so the sender's writes block; the queue never holds more
// than its bound; and the bytes still all arrive, in order, at the rate.
func TestQueueBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate, queue, total = 8000, 4096, 64 << 10 // 1000 bytes/s
		s, in, out, done := pipeShaper(t, t.Context(), Profile{Rate: rate, Queue: queue})
		start := time.Now()
		var mu sync.Mutex
		var wrote int
		var lastWrite time.Duration
		payload := make([]byte, total)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		go func() {
			for off := 0; off < total; off += 1024 {
				in.Write(payload[off : off+1024])
				mu.Lock()
				wrote += 1024
				lastWrite = time.Since(start)
				mu.Unlock()
			}
			in.Close()
		}()
		var got []byte
		var last time.Duration
		var rerr error
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			var arrivals []arrival
			arrivals, rerr = collect(out, start)
			for _, a := range arrivals[:len(arrivals)-1] {
				got = append(got, a.b...)
			}
			last = arrivals[len(arrivals)-1].at
		}()
		synctest.Wait()
		mu.Lock()
		accepted := wrote
		mu.Unlock()
		assert.Equal(t, 3*1024, accepted, "at 0 the link took three writes (half the queue must stay free for a read) and the sender blocked")
		<-readDone
		require.NoError(t, rerr)
		assert.NoError(t, <-done)
		assert.Equal(t, payload, got, "every byte, in order")
		assert.Equal(t, time.Duration(total)*time.Second/1000, last, "the last byte left at exactly total/rate")
		st := s.stats()
		assert.LessOrEqual(t, st.QueueHighWater, int64(queue), "the queue held at most its bound")
		assert.Greater(t, st.QueueHighWater, int64(queue/2))
		assert.GreaterOrEqual(t, lastWrite, time.Duration(total-queue)*time.Second/1000, "the sender was held back until the queue had room for its last write")
		assert.GreaterOrEqual(t, st.BlockedS, lastWrite.Seconds(), "blocked_s covers the time the sender was held back")
		assert.LessOrEqual(t, st.BlockedS, last.Seconds(), "and no more than the whole transfer")
	})
}

// TestReceiverThatStopsReadingPushesBack: a receiver that reads nothing
// fills the link's bound, and then the sender blocks; once it reads,
// everything arrives in order.
func TestReceiverThatStopsReadingPushesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Profile{RTT: 80 * time.Millisecond, Rate: 1_000_000, Queue: 4096}
		s, in, out, done := pipeShaper(t, t.Context(), p)
		const total = 256 << 10
		payload := bytes.Repeat([]byte("0123456789abcdef"), total/16)
		var mu sync.Mutex
		wrote := 0
		go func() {
			for off := 0; off < total; off += 1024 {
				in.Write(payload[off : off+1024])
				mu.Lock()
				wrote += 1024
				mu.Unlock()
			}
			in.Close()
		}()
		time.Sleep(10 * time.Second) // far longer than the link needs to send what it holds
		synctest.Wait()
		mu.Lock()
		accepted := wrote
		mu.Unlock()
		assert.LessOrEqual(t, int64(accepted), s.maxHeld, "the sender blocked once the link held its bound")
		assert.Positive(t, accepted)
		got, err := io.ReadAll(out)
		require.NoError(t, err)
		assert.NoError(t, <-done)
		assert.Equal(t, payload, got)
	})
}

// TestCancelEndsADirection: a context that ends stops both loops, with
// bytes still on the link, and run returns nil.
func TestCancelEndsADirection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		_, in, _, done := pipeShaper(t, ctx, Profile{RTT: 2 * time.Second})
		_, err := in.Write([]byte("held"))
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond)
		cancel()
		assert.NoError(t, <-done)
	})
}

// TestReadErrorFails: a read that fails calls fail (which closes the
// sockets) and is returned.
func TestReadErrorFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("connection reset")
		s := newShaper(Profile{RTT: 10 * time.Millisecond}, 1)
		var failed error
		outW, outR := net.Pipe()
		defer outR.Close()
		err := s.run(t.Context(), io.MultiReader(bytes.NewReader([]byte("x")), errReader{boom}), outW, outW.Close,
			func(err error) { failed = err; outW.Close() })
		assert.ErrorIs(t, err, boom)
		assert.ErrorIs(t, failed, boom)
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
