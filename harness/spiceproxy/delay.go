package spiceproxy

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// chunk is one read, due to be written at due. A nil b with eof set is
// the end of the stream, delayed like the bytes before it.
type chunk struct {
	due time.Time
	b   []byte
	eof bool
}

// delayQueue is a FIFO of chunks bounded in bytes. push blocks while
// the queue is full (so the reader stops reading and TCP pushes back on
// the sender); one chunk is always let in when the queue is empty, so a
// chunk larger than the bound cannot wedge it.
type delayQueue struct {
	mu    sync.Mutex
	items []chunk
	bytes int
	limit int
	avail chan struct{} // a push happened
	space chan struct{} // a pop happened
}

func newDelayQueue(limit int) *delayQueue {
	return &delayQueue{limit: limit, avail: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (q *delayQueue) push(ctx context.Context, c chunk) error {
	for {
		q.mu.Lock()
		if q.bytes == 0 || q.bytes+len(c.b) <= q.limit {
			q.items = append(q.items, c)
			q.bytes += len(c.b)
			q.mu.Unlock()
			signal(q.avail)
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// front waits for the oldest chunk and returns it, still counted
// against the limit: a chunk waiting for its due time is held as much
// as the ones queued behind it.
func (q *delayQueue) front(ctx context.Context) (chunk, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			c := q.items[0]
			q.mu.Unlock()
			return c, nil
		}
		q.mu.Unlock()
		select {
		case <-q.avail:
		case <-ctx.Done():
			return chunk{}, ctx.Err()
		}
	}
}

// drop removes the oldest chunk once it has been written.
func (q *delayQueue) drop() {
	q.mu.Lock()
	q.bytes -= len(q.items[0].b)
	q.items[0] = chunk{}
	q.items = q.items[1:]
	q.mu.Unlock()
	signal(q.space)
}

// copyDelayed forwards src to dst with every byte, and the end of the
// stream, held for d after it was read: a reader stamps each read with
// its due time and queues it; the writer writes each when it is due, in
// order. At most limit bytes wait at once. It returns nil once the
// delayed end of the stream has been passed on (or ctx ended it), and
// the first read or write error otherwise. On an error it calls fail,
// which must unblock both sides (close the sockets), before waiting for
// the reader.
func copyDelayed(ctx context.Context, src io.Reader, dst io.Writer, d time.Duration, limit int, fail func(error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newDelayQueue(limit)
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if rerr = readDelayed(ctx, src, q, d); rerr != nil {
			// Nothing after a failed read would be right to deliver
			// late: end the writer too.
			cancel()
			fail(rerr)
		}
	}()
	werr := writeDelayed(ctx, dst, q)
	if werr != nil {
		cancel()
		fail(werr)
	}
	<-done
	if werr != nil {
		return werr
	}
	return rerr
}

func readDelayed(ctx context.Context, src io.Reader, q *delayQueue, d time.Duration) error {
	buf := make([]byte, copyBuffer)
	for {
		n, err := src.Read(buf)
		now := time.Now()
		if n > 0 {
			if perr := q.push(ctx, chunk{due: now.Add(d), b: append([]byte(nil), buf[:n]...)}); perr != nil {
				return nil // the writer ended first and said why
			}
		}
		if err == io.EOF {
			_ = q.push(ctx, chunk{due: now.Add(d), eof: true})
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
}

func writeDelayed(ctx context.Context, dst io.Writer, q *delayQueue) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		c, err := q.front(ctx)
		if err != nil {
			return nil // ended by the reader or the connection
		}
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
		}
		if c.eof {
			return nil
		}
		if _, err := dst.Write(c.b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		q.drop()
	}
}
