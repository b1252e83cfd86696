package sim

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func line(i int) []byte { return fmt.Appendf(nil, "e%d\n", i) }

// drain pops everything, returning event lines and dropped counts in order.
func drain(q *eventQueue) (lines []string, drops []uint64, order []string) {
	for {
		it, ok := q.pop()
		if !ok {
			return
		}
		if it.dropped {
			drops = append(drops, it.count)
			order = append(order, "dropped")
			continue
		}
		lines = append(lines, string(it.line))
		order = append(order, "event")
	}
}

func TestQueueDropsOldestAndReportsOnDrain(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	q := newEventQueue(DropOldest, clk.now)
	for i := range 300 {
		q.push(line(i))
	}
	lines, drops, order := drain(q)
	require.Len(t, lines, QueueCapacity)
	assert.Equal(t, "e44\n", lines[0], "the oldest 44 went")
	assert.Equal(t, "e299\n", lines[len(lines)-1])
	assert.Equal(t, []uint64{44}, drops, "one dropped event for the episode")
	assert.Equal(t, "dropped", order[len(order)-1], "reported when the queue drains")
	assert.Equal(t, uint64(44), q.dropped())

	// A new episode counts from zero.
	for i := range QueueCapacity + 3 {
		q.push(line(i))
	}
	_, drops, _ = drain(q)
	assert.Equal(t, []uint64{3}, drops)
	assert.Equal(t, uint64(47), q.dropped())
}

func TestQueueNoDropsNoDroppedEvent(t *testing.T) {
	q := newEventQueue(DropOldest, nil)
	for i := range QueueCapacity {
		q.push(line(i))
	}
	lines, drops, _ := drain(q)
	assert.Len(t, lines, QueueCapacity)
	assert.Empty(t, drops)
}

func TestQueueReportsUnderSustainedPressure(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	q := newEventQueue(DropOldest, clk.now)
	for i := range QueueCapacity + 10 {
		q.push(line(i))
	}
	// The queue never drains; after the bounded delay a marker is queued.
	clk.advance(droppedFlushDelay)
	q.push(line(1000))
	// More drops while the marker waits are added to it in place, and the
	// marker itself is never dropped, however much is pushed.
	for i := range 5 * QueueCapacity {
		q.push(line(2000 + i))
	}
	lines, drops, order := drain(q)
	require.Len(t, drops, 1, "one marker, never a second: %v", drops)
	assert.Len(t, lines, QueueCapacity-1, "the marker occupies one slot")
	assert.Equal(t, q.dropped(), drops[0], "every drop counted once")
	assert.Equal(t, "dropped", order[0], "the marker survived at the head while newer events displaced older ones")
}

func TestQueueCountsSumToDrops(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	q := newEventQueue(DropOldest, clk.now)
	var reported uint64
	for round := range 50 {
		for i := range 100 + round*13 {
			q.push(line(i))
			clk.advance(time.Millisecond)
		}
		// Read a little, as a slow client would.
		for range 40 {
			if it, ok := q.pop(); ok && it.dropped {
				reported += it.count
			}
		}
	}
	_, drops, _ := drain(q)
	for _, d := range drops {
		reported += d
	}
	assert.Equal(t, q.dropped(), reported)
	assert.Positive(t, reported)
}

func TestQueuePushNeverBlocksWithoutReader(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	q := newEventQueue(DropOldest, clk.now)
	for i := range 10_000 {
		q.push(line(i)) // would deadlock the test if push waited for a reader
	}
	assert.Equal(t, uint64(10_000-QueueCapacity), q.dropped())
	lines, drops, _ := drain(q)
	assert.Equal(t, "e9744\n", lines[0])
	assert.Equal(t, []uint64{10_000 - QueueCapacity}, drops)
}

func TestQueueMarkerInTheMiddle(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	q := newEventQueue(DropOldest, clk.now)
	for i := range QueueCapacity + 1 {
		q.push(line(i)) // one drop: e0
	}
	clk.advance(droppedFlushDelay)
	q.push(line(1000)) // drops e1, then e2 to make room for the marker
	for i := range 3 {
		q.push(line(2000 + i)) // drops e3..e5, counted on the marker
	}
	lines, drops, order := drain(q)
	assert.Equal(t, []uint64{6}, drops)
	assert.Equal(t, "e6\n", lines[0])
	assert.Equal(t, "e2002\n", lines[len(lines)-1])
	assert.Equal(t, "dropped", order[len(order)-4], "the marker sits where it was queued")
	assert.Equal(t, uint64(6), q.dropped())
}

func TestClampU32(t *testing.T) {
	assert.Equal(t, uint64(5), clampU32(5))
	assert.Equal(t, uint64(1<<32-1), clampU32(1<<40))
}

// TestQueueNewestRefusesTheNewAndWaitsForAnEvent is ryll's code: the
// events that do not fit are the new ones; draining reports nothing by
// itself; the next event into a (nearly) empty queue is followed by one
// dropped marker for every client.
func TestQueueNewestRefusesTheNewAndWaitsForAnEvent(t *testing.T) {
	q := newEventQueue(DropNewest, nil)
	for i := range 300 {
		q.push(line(i))
	}
	lines, drops, _ := drain(q)
	require.Len(t, lines, QueueCapacity)
	assert.Equal(t, "e0\n", lines[0], "the oldest kept")
	assert.Equal(t, "e255\n", lines[QueueCapacity-1], "e256 onwards refused")
	assert.Empty(t, drops, "no timer, no report on drain")
	assert.Equal(t, uint64(44), q.dropped())

	q.push(line(1000))
	it, ok := q.pop()
	require.True(t, ok)
	assert.Equal(t, "e1000\n", string(it.line))
	it, ok = q.pop()
	require.True(t, ok)
	assert.True(t, it.dropped)
	assert.True(t, it.always, "sent whether or not the client subscribed to dropped")
	assert.Equal(t, uint64(44), it.count)
	_, ok = q.pop()
	assert.False(t, ok, "one marker per episode")
}

func TestQueueNewestReportsOnlyWhenNearlyEmpty(t *testing.T) {
	q := newEventQueue(DropNewest, nil)
	for i := range QueueCapacity + 5 {
		q.push(line(i))
	}
	for range QueueCapacity - 1 {
		_, _ = q.pop()
	}
	q.push(line(999)) // two in the queue now: not nearly empty
	_, drops, order := drain(q)
	assert.Empty(t, drops)
	assert.Equal(t, []string{"event", "event"}, order)
	q.push(line(1000)) // alone in the queue: the count follows it
	_, drops, order = drain(q)
	assert.Equal(t, []uint64{5}, drops)
	assert.Equal(t, []string{"event", "dropped"}, order)
}

// TestQueuePushWait: a response queues behind events and waits for a
// slot; it is never dropped; the client going away releases it.
func TestQueuePushWait(t *testing.T) {
	q := newEventQueue(DropNewest, nil)
	q.push(line(0))
	written, err := q.pushWait(t.Context(), []byte("r1\n"))
	require.NoError(t, err)
	it, _ := q.pop()
	assert.Equal(t, "e0\n", string(it.line), "events queued earlier go first")
	it, _ = q.pop()
	assert.Equal(t, "r1\n", string(it.line))
	assert.Equal(t, (<-chan struct{})(it.written), written)

	synctest.Test(t, func(t *testing.T) {
		q := newEventQueue(DropNewest, nil) // its channels belong to the bubble
		for i := range QueueCapacity {
			q.push(line(i))
		}
		got := make(chan error, 1)
		go func() {
			_, err := q.pushWait(t.Context(), []byte("r2\n"))
			got <- err
		}()
		synctest.Wait() // the goroutine is blocked, or has returned
		select {
		case err := <-got:
			require.FailNow(t, "pushWait did not wait for a slot", "%v", err)
		default:
		}
		_, _ = q.pop()
		require.NoError(t, <-got, "a freed slot takes the response")
		lines, _, _ := drain(q)
		assert.Equal(t, "r2\n", lines[len(lines)-1])
		assert.Equal(t, uint64(0), q.dropped(), "responses are never dropped")
	})

	for i := range QueueCapacity {
		q.push(line(i))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = q.pushWait(ctx, []byte("r3\n"))
	assert.ErrorIs(t, err, context.Canceled)
}
