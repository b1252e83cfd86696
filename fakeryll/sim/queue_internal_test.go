package sim

import (
	"fmt"
	"testing"
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
