package link

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

const (
	// PacketSize is the unit the link serialises and jitters: a read is
	// cut into packets of at most this many bytes, as an Ethernet link
	// with a 1500-byte MTU would carry it. At 1 Mbit/s one packet takes
	// 12 ms to send, so a small message is never held behind a whole read.
	PacketSize = 1500
	// maxRead bounds one read from the sender.
	maxRead = 32 << 10
	// maxWrite bounds the bytes coalesced into one write to the
	// receiver: packets due at the same moment go out together.
	maxWrite = 64 << 10
	// unlimitedWire bounds the bytes a link without a rate holds in its
	// delay line (bytes read, not yet delivered). At loopback speeds a
	// 40 ms delay could otherwise hold gigabytes; SPICE never comes
	// close. Past it the link stops reading, and says so in BlockedS.
	unlimitedWire = 32 << 20
)

// packet is one unit on the link: bytes due at the receiver at due. A
// packet with eof set is the sender's end of stream, delayed like the
// bytes before it.
type packet struct {
	b   []byte
	due time.Time
	eof bool
}

// shaper is one direction of a link: the sender's bytes go through a
// bottleneck queue, are serialised at the rate and cross a delay line.
// The reader computes each packet's departure from the queue as a FIFO
// server does (it starts when it arrives or when the packet ahead of it
// has been sent, whichever is later, and takes len/rate), so the queue
// needs no clock of its own; the writer delivers each packet when due.
type shaper struct {
	p       Profile
	oneWay  time.Duration
	rng     *rand.Rand
	read    int   // the size of one read
	maxHeld int64 // bytes read but not yet written, at most

	// Owned by the reader.
	lastFinish time.Time // the bottleneck has sent every admitted byte
	lastDue    time.Time // the last packet's delivery time
	queuedEnd  time.Time // the end of the last span in which bytes waited

	mu     sync.Mutex
	line   []packet // admitted, not yet written, in order
	held   int64
	avail  chan struct{} // a packet was admitted
	space  chan struct{} // a packet was written
	counts DirStats
}

func newShaper(p Profile, seed uint64) *shaper {
	s := &shaper{
		p:      p,
		oneWay: p.OneWay(),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		read:   maxRead,
		avail:  make(chan struct{}, 1),
		space:  make(chan struct{}, 1),
	}
	if p.Rate > 0 {
		// Read at most half the queue at once, so a read waiting for
		// room never lets the bottleneck run dry.
		s.read = int(min(int64(maxRead), p.Queue/2))
		s.maxHeld = p.Queue + s.bytesIn(s.oneWay+p.Jitter) + 2*int64(s.read)
	} else {
		s.maxHeld = unlimitedWire
	}
	return s
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// txTime is how long the bottleneck takes to send n bytes.
func (s *shaper) txTime(n int) time.Duration {
	return time.Duration(float64(n) * 8 * float64(time.Second) / float64(s.p.Rate))
}

// bytesIn is how many bytes the rate sends in d.
func (s *shaper) bytesIn(d time.Duration) int64 {
	return int64(d.Seconds() * float64(s.p.Rate) / 8)
}

// backlog is the bytes in the bottleneck (waiting or being sent) at now.
func (s *shaper) backlog(now time.Time) int64 {
	if s.p.Rate == 0 || !s.lastFinish.After(now) {
		return 0
	}
	return s.bytesIn(s.lastFinish.Sub(now))
}

// waitRoom blocks until one more read fits: the bottleneck queue has
// room for it and the link holds less than maxHeld. The time it waited
// is back-pressure on the sender (BlockedS).
func (s *shaper) waitRoom(ctx context.Context) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var started time.Time
	defer func() {
		if !started.IsZero() {
			s.mu.Lock()
			s.counts.BlockedS += time.Since(started).Seconds()
			s.mu.Unlock()
		}
	}()
	for {
		now := time.Now()
		var wait time.Duration
		if s.p.Rate > 0 {
			if over := s.backlog(now) + int64(s.read) - s.p.Queue; over > 0 {
				wait = max(s.txTime(int(over)), time.Microsecond)
			}
		}
		s.mu.Lock()
		full := s.held+int64(s.read) > s.maxHeld && s.held > 0
		s.mu.Unlock()
		if wait == 0 && !full {
			return nil
		}
		if started.IsZero() {
			started = now
		}
		var tc <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tc = timer.C
		}
		select {
		case <-tc:
		case <-s.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// admit puts what was read at now on the link, cut into packets, or
// (eof set, b empty) the end of the stream.
func (s *shaper) admit(now time.Time, b []byte, eof bool) {
	var pkts []packet
	var queued, wait time.Duration
	high := int64(0)
	for len(b) > 0 || eof {
		n := min(len(b), PacketSize)
		finish := now
		if s.p.Rate > 0 {
			start := now
			if s.lastFinish.After(now) {
				start = s.lastFinish
			}
			if start.After(now) && !eof { // an end of stream is no bytes
				// Bytes waited in the queue over [now, start]: count the
				// part no earlier span covered.
				from := now
				if s.queuedEnd.After(from) {
					from = s.queuedEnd
				}
				if start.After(from) {
					queued += start.Sub(from)
					s.queuedEnd = start
				}
				wait = max(wait, start.Sub(now))
			}
			high = max(high, s.backlog(now)+int64(n))
			finish = start.Add(s.txTime(n))
			s.lastFinish = finish
		}
		due := finish.Add(s.oneWay)
		if s.p.Jitter > 0 {
			due = due.Add(time.Duration(s.rng.Int64N(2*int64(s.p.Jitter)+1)) - s.p.Jitter)
		}
		if due.Before(s.lastDue) {
			due = s.lastDue // never reorder
		}
		s.lastDue = due
		pkts = append(pkts, packet{b: b[:n], due: due, eof: eof})
		if eof {
			break
		}
		b = b[n:]
	}
	s.mu.Lock()
	for _, p := range pkts {
		s.line = append(s.line, p)
		s.held += int64(len(p.b))
	}
	if !eof {
		s.counts.Reads++
	}
	s.counts.QueueHighWater = max(s.counts.QueueHighWater, high)
	s.counts.QueuedS += queued.Seconds()
	s.counts.QueueWaitMaxS = max(s.counts.QueueWaitMaxS, wait.Seconds())
	s.mu.Unlock()
	signal(s.avail)
}

// readLoop reads the sender until its end of stream (nil) or a read
// error, admitting what it reads. It returns nil, too, when ctx ends.
func (s *shaper) readLoop(ctx context.Context, src io.Reader) error {
	buf := make([]byte, s.read)
	for {
		if err := s.waitRoom(ctx); err != nil {
			return nil
		}
		n, err := src.Read(buf)
		now := time.Now()
		if n > 0 {
			s.admit(now, append([]byte(nil), buf[:n]...), false)
		}
		if err == io.EOF {
			s.admit(now, nil, true)
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // the socket was closed because the link ended
			}
			return fmt.Errorf("read: %w", err)
		}
	}
}

// writeLoop delivers every packet when it is due, coalescing the packets
// due together into one write, and half-closes dst at the delayed end of
// stream. It returns nil at the end of stream or when ctx ends, and the
// first write error otherwise.
func (s *shaper) writeLoop(ctx context.Context, dst io.Writer, closeWrite func() error) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	out := make([]byte, 0, maxWrite)
	for {
		s.mu.Lock()
		var head packet
		ok := len(s.line) > 0
		if ok {
			head = s.line[0]
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-s.avail:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if wait := time.Until(head.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
		}
		// Gather every packet due by now, up to maxWrite bytes.
		now := time.Now()
		out = out[:0]
		eof := false
		k := 0
		s.mu.Lock()
		for k < len(s.line) && !s.line[k].due.After(now) {
			p := s.line[k]
			if p.eof {
				eof = true
				k++
				break
			}
			if len(out) > 0 && len(out)+len(p.b) > maxWrite {
				break
			}
			out = append(out, p.b...)
			k++
		}
		s.mu.Unlock()
		if len(out) > 0 {
			n, err := dst.Write(out)
			s.mu.Lock()
			s.counts.Bytes += int64(n)
			s.counts.Writes++
			s.mu.Unlock()
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		s.mu.Lock()
		clear(s.line[:k])
		s.line = s.line[k:]
		s.held -= int64(len(out))
		s.mu.Unlock()
		signal(s.space)
		if eof {
			if err := closeWrite(); err != nil {
				return fmt.Errorf("half-close: %w", err)
			}
			return nil
		}
	}
}

// stats is a copy of the direction's counters.
func (s *shaper) stats() DirStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// run forwards src to dst through the shaper until the delayed end of
// stream has been passed on (nil), ctx ends (nil) or a socket fails. On
// a failure, or when ctx ends, it calls fail, which must unblock both
// sides (close the sockets), before it waits for the reader.
func (s *shaper) run(ctx context.Context, src io.Reader, dst io.Writer, closeWrite func() error, fail func(error)) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if rerr = s.readLoop(ctx, src); rerr != nil {
			// Nothing after a failed read would be right to deliver.
			cancel()
			fail(rerr)
		}
	}()
	werr := s.writeLoop(ctx, dst, closeWrite)
	switch {
	case werr != nil:
		cancel()
		fail(werr)
	case parent.Err() != nil:
		// Ended from outside: the reader may be blocked in a read that
		// only closing the socket ends.
		fail(context.Cause(parent))
	}
	<-done
	if werr != nil {
		return werr
	}
	return rerr
}
