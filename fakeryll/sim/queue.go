package sim

import (
	"context"
	"math"
	"sync"
	"time"
)

// QueueCapacity is the per-client event queue size the protocol specifies.
const QueueCapacity = 256

// droppedFlushDelay bounds how long a drop episode may go unreported while
// the queue never drains (the protocol's "short bounded delay").
const droppedFlushDelay = 250 * time.Millisecond

// queueItem is one queued event line, or the dropped-count marker.
type queueItem struct {
	line    []byte // encoded event or response line; nil for the marker
	dropped bool   // the marker: report count as a dropped event
	count   uint64 // set on the marker when it is popped (DropNewest: when queued)
	// always: the marker goes out whether or not the client subscribed
	// to dropped (ryll's code).
	always bool
	// written, if set, is closed once the writer has written the line
	// (or given up): a response that must be out before a close.
	written chan struct{}
}

// eventQueue is the bounded per-client event queue, a ring of
// QueueCapacity slots. Producers (the simulated session) push events
// without ever blocking; the writer pops.
//
// With DropNewest (ryll's code) a full queue refuses the new event and
// counts it. After a later event is queued into a queue that then holds
// at most that one line, a marker with the count is queued behind it,
// for every client. Nothing else reports drops: if no event follows the
// drain, the count waits. Responses go through the same queue and wait
// for a free slot (pushWait), so they queue behind events and a full
// queue stalls request handling, as ryll's bounded channel does.
//
// With DropOldest (the protocol document) the oldest event is discarded
// and counted. The count is reported as a single dropped
// marker when the queue next drains, or, under sustained pressure, by a
// marker queued once the episode is older than droppedFlushDelay. At most
// one marker is queued; drops while it waits increase its count in place,
// so the marker itself is never dropped.
type eventQueue struct {
	mu           sync.Mutex
	ring         [QueueCapacity]queueItem
	head, n      int
	pending      uint64 // drops not yet in any marker
	episodeStart time.Time
	marker       bool   // the marker is queued
	markerCount  uint64 // its count so far
	now          func() time.Time
	ready        chan struct{} // signalled (capacity 1) when an item is pushed
	space        chan struct{} // signalled (capacity 1) when an item is popped
	totalDropped uint64
	mode         QueueDrop
}

func newEventQueue(mode QueueDrop, now func() time.Time) *eventQueue {
	if now == nil {
		now = time.Now
	}
	return &eventQueue{mode: mode, now: now, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (q *eventQueue) at(i int) *queueItem { return &q.ring[(q.head+i)%QueueCapacity] }

// push queues one encoded event line. It never blocks.
func (q *eventQueue) push(line []byte) {
	if q.mode == DropNewest {
		q.pushNewest(line)
		return
	}
	q.mu.Lock()
	if q.n == QueueCapacity {
		q.dropOldestLocked()
	}
	*q.at(q.n) = queueItem{line: line}
	q.n++
	if q.pending > 0 && !q.marker && q.now().Sub(q.episodeStart) >= droppedFlushDelay {
		if q.n == QueueCapacity {
			q.dropOldestLocked() // counted in this episode too
		}
		*q.at(q.n) = queueItem{dropped: true}
		q.n++
		q.marker, q.markerCount, q.pending = true, q.pending, 0
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *eventQueue) pushNewest(line []byte) {
	q.mu.Lock()
	if q.n == QueueCapacity {
		q.pending++
		q.totalDropped++
		q.mu.Unlock()
		return
	}
	*q.at(q.n) = queueItem{line: line}
	q.n++
	// ryll checks, after each event it queued, whether the queue is now
	// nearly empty (that event alone in it) and only then reports.
	if q.pending > 0 && q.n <= 1 {
		*q.at(q.n) = queueItem{dropped: true, always: true, count: q.pending}
		q.n++
		q.pending = 0
	}
	q.mu.Unlock()
	signal(q.ready)
}

// lose counts n events lost before they reached the queue, reported like
// the queue's own drops.
func (q *eventQueue) lose(n uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.totalDropped += n
	if q.mode == DropOldest && q.marker {
		q.markerCount += n // the queued marker reports them
		return
	}
	if q.pending == 0 {
		q.episodeStart = q.now()
	}
	q.pending += n
}

// pushWait queues a response line behind everything already queued,
// waiting while the queue is full (DropNewest only). The returned channel
// is closed once the line has been written or the writer stopped. The
// error is ctx's when the client went away first.
func (q *eventQueue) pushWait(ctx context.Context, line []byte) (<-chan struct{}, error) {
	written := make(chan struct{})
	for {
		q.mu.Lock()
		if q.n < QueueCapacity {
			*q.at(q.n) = queueItem{line: line, written: written}
			q.n++
			q.mu.Unlock()
			signal(q.ready)
			return written, nil
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.space:
		}
	}
}

// dropOldestLocked discards the oldest event that is not the marker. The
// queue is full, so there is always one.
func (q *eventQueue) dropOldestLocked() {
	if q.at(0).dropped {
		// The marker is the oldest: the event after it goes, and the
		// marker moves up into its slot, keeping its place in line.
		*q.at(1) = *q.at(0)
	}
	*q.at(0) = queueItem{}
	q.head = (q.head + 1) % QueueCapacity
	q.n--
	q.totalDropped++
	if q.marker {
		q.markerCount++
		return
	}
	if q.pending == 0 {
		q.episodeStart = q.now()
	}
	q.pending++
}

// pop returns the next item. With DropOldest, when the queue has drained
// to empty and drops are unreported it returns a marker carrying their
// count.
func (q *eventQueue) pop() (queueItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n > 0 {
		it := *q.at(0)
		*q.at(0) = queueItem{}
		q.head = (q.head + 1) % QueueCapacity
		q.n--
		if it.dropped && q.mode == DropOldest {
			it.count = q.markerCount
			q.marker, q.markerCount = false, 0
		}
		signal(q.space)
		return it, true
	}
	if q.pending > 0 && q.mode == DropOldest {
		it := queueItem{dropped: true, count: q.pending}
		q.pending = 0
		return it, true
	}
	return queueItem{}, false
}

// abandon releases every response still waiting to be written, once the
// writer has stopped.
func (q *eventQueue) abandon() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.n {
		if w := q.at(i).written; w != nil {
			close(w)
			q.at(i).written = nil
		}
	}
}

// dropped returns how many events were discarded in total.
func (q *eventQueue) dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.totalDropped
}

// clampU32 converts a count to the wire's u32.
func clampU32(n uint64) uint64 { return min(n, math.MaxUint32) }
