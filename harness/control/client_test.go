package control

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

// Tests of the client's machinery (events, concurrency, the connection
// ending, contexts, Close) against the simulator.

func TestSlowEventConsumerDoesNotDelayResponses(t *testing.T) {
	const burst, keys = 200, 25 // a burst fits the simulator's 256-event queue
	const sent = burst * keys
	for _, tc := range []struct {
		name      string
		queue     int
		wantDrops bool
	}{
		{"queue overflows", 100, true},
		{"default queue holds them", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, func(c *sim.Config) { c.DrawsPerKey = burst })
			c, _ := s.hello(t, Options{EventQueue: tc.queue})
			s.settle(t, c)
			_, err := c.Subscribe(t.Context(), EventSurfaceDrawn)
			require.NoError(t, err)
			var sentAt []time.Time
			for k := 1; k <= keys; k++ {
				at, err := c.SendKey(t.Context(), 0x1C, KeyPress)
				require.NoError(t, err)
				sentAt = append(sentAt, at)
				// One burst at a time, so the simulator never drops: every
				// event it produces reaches this client, which nobody reads.
				eventually(t, "the burst reaches the client", func() bool { return c.Stats().Events == uint64(burst*k) })
			}
			_, err = c.Status(t.Context())
			require.NoError(t, err, "the response arrives although no one consumes events")

			dropped := c.DroppedEvents()
			assert.Equal(t, tc.wantDrops, dropped > 0)
			assert.Equal(t, dropped, c.Stats().EventsDropped)
			assert.Equal(t, uint64(sent), c.Stats().Events)
			assert.Zero(t, s.Stats().Dropped, "the simulator kept up; drops, if any, are the client's")
			var last uint64
			var got []SurfaceDrawn
			for range sent - int(dropped) {
				ev, ok := nextEvent(t, c)
				require.True(t, ok)
				d, err := ev.SurfaceDrawn()
				require.NoError(t, err)
				assert.GreaterOrEqual(t, d.WallclockUS, last, "events stay in order")
				last = d.WallclockUS
				got = append(got, d)
			}
			require.NotEmpty(t, got)
			lastKey := sentAt[keys-1].UnixMicro()
			assert.GreaterOrEqual(t, int64(last), lastKey, "the newest event survives")
			if tc.wantDrops {
				fromLastKey := 0
				for _, d := range got {
					if int64(d.WallclockUS) >= lastKey {
						fromLastKey++
					}
				}
				assert.GreaterOrEqual(t, fromLastKey, tc.queue, "the queue keeps the newest events, dropping older ones")
			} else {
				assert.Less(t, int64(got[0].WallclockUS), sentAt[1].UnixMicro(), "the first key's draws are kept")
			}
		})
	}
}

// TestServerDropsReachTheClient floods the simulator past its 256-event
// queue. Whichever events it drops, and whenever it reports them, the
// client must hand over every dropped event it gets, and the counts must
// add up to what the server dropped. ryll reports drops only when a
// later event finds its queue nearly empty, so steady PINGs go on after
// the flood is unsubscribed to carry the report.
func TestServerDropsReachTheClient(t *testing.T) {
	s := startSim(t, func(c *sim.Config) {
		c.Flood = 1e6
		c.Ping = sim.PingPattern{Mode: sim.PingSteady, Interval: 20 * time.Millisecond}
	})
	c, _ := s.hello(t, Options{})
	// A server under a flood may be slow to answer, or (if it queues
	// answers behind events and drops) never: bound every call.
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	var reported, drawn atomic.Uint64
	var consumer sync.WaitGroup
	consumer.Go(func() { // keep up, so the client itself drops nothing
		for ev := range c.Events() {
			switch ev.Name {
			case EventDropped:
				if d, err := ev.Dropped(); err == nil && d.Count > 0 {
					reported.Add(uint64(d.Count))
				}
			case EventSurfaceDrawn:
				drawn.Add(1)
			}
		}
	})
	subs, err := c.Subscribe(ctx, EventSurfaceDrawn, EventDropped, EventLatency)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{EventSurfaceDrawn, EventDropped, EventLatency}, subs)
	eventually(t, "the simulator drops events", func() bool { return s.Stats().Dropped > 0 })
	_, err = c.unsubscribe(ctx, EventSurfaceDrawn) // the flood no longer reaches the queue
	require.NoError(t, err)
	eventually(t, "dropped events account for every drop", func() bool {
		return reported.Load() >= s.Stats().Dropped
	})
	assert.Equal(t, s.Stats().Dropped, reported.Load(), "each drop reported once")
	assert.Positive(t, drawn.Load())
	_, err = c.Status(ctx)
	assert.NoError(t, err, "the connection still works")
	st := c.Stats()
	assert.Zero(t, st.EventsDropped, "the client kept up; the drops were the server's")
	assert.Zero(t, st.Malformed+st.Oversized+st.Unmatched)
	require.NoError(t, c.Close())
	consumer.Wait()
}

// TestSessionEndClosesTheClient stops the simulator the way SIGINT stops
// ryll (crash-after looks the same from the socket: closed, unlinked).
func TestSessionEndClosesTheClient(t *testing.T) {
	s := startSim(t, nil)
	c, _ := s.hello(t, Options{})
	_, err := c.Subscribe(t.Context(), EventSurfaceDrawn)
	require.NoError(t, err)
	_, err = c.SendKey(t.Context(), 0x1C, KeyPress)
	require.NoError(t, err)
	eventually(t, "draws read before the loss", func() bool { return c.Stats().Events >= 1 })

	require.NoError(t, s.stop())
	waitDone(t, c)
	assert.ErrorIs(t, c.Err(), ErrClosed)
	assert.ErrorIs(t, c.Err(), io.EOF, "the cause is kept")
	_, err = c.Status(t.Context())
	assert.ErrorIs(t, err, ErrClosed, "later calls fail at once")

	evs := drainEvents(t, c)
	assert.Len(t, evs, int(c.Stats().Events), "events read before the loss are still delivered, then Events is closed")
	for _, ev := range evs {
		assert.Equal(t, EventSurfaceDrawn, ev.Name)
	}

	_, err = Dial(t.Context(), s.path, Options{BusyRetryInterval: time.Millisecond})
	require.Error(t, err, "the socket is gone")
	assert.NotErrorIs(t, err, ErrBusy)
}

func TestPendingCallsFailWhenTheServerGoes(t *testing.T) {
	s := startHungSim(t)
	c, w := s.connect(t, Options{})
	var calls []async[Status]
	for range 10 {
		calls = append(calls, goCall(func() (Status, error) { return c.Status(t.Context()) }))
	}
	eventually(t, "ten calls written and waiting", func() bool {
		return w.count("status") == 10 && pendingCalls(c) == 10
	})
	require.NoError(t, s.stop())
	for _, call := range calls {
		_, err := call.wait(t)
		assert.ErrorIs(t, err, ErrClosed)
		// The hung server went with our requests unread: a reset, which
		// the error still names.
		assert.ErrorIs(t, err, syscall.ECONNRESET, "the cause is kept")
	}
}

func TestHungServer(t *testing.T) {
	s := startHungSim(t)
	t.Run("a call waits for its context", func(t *testing.T) {
		c, _ := s.connect(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		res := goCall(func() (Status, error) { return c.Status(ctx) })
		eventually(t, "the call waiting", func() bool { return pendingCalls(c) == 1 })
		cancel()
		_, err := res.wait(t)
		assert.ErrorIs(t, err, context.Canceled)
		assert.NoError(t, c.Err(), "giving up on a call does not end the connection")
	})
	t.Run("Dial gives up on a hello never answered", func(t *testing.T) {
		// Whenever the deadline falls, the server answers nothing before it.
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := Dial(ctx, s.path, Options{})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, ErrBusy)
		assert.Contains(t, err.Error(), s.path)
	})
}

func TestAlreadyCancelledCallWritesNothing(t *testing.T) {
	s := startSim(t, nil)
	c, w := s.hello(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.SendKey(ctx, 0x1C, KeyPress)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, w.count("send_key"))
	assert.Zero(t, s.Stats().KeyDowns)
}

func TestCloseIsIdempotentAndFailsPendingCalls(t *testing.T) {
	s := startHungSim(t)
	c, _ := s.connect(t, Options{})
	res := goCall(func() (Status, error) { return c.Status(t.Context()) })
	eventually(t, "the call waiting", func() bool { return pendingCalls(c) == 1 })
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err := res.wait(t)
	assert.ErrorIs(t, err, ErrClosed)
	waitDone(t, c)
	assert.ErrorIs(t, c.Err(), ErrClosed)
	_, ok := <-c.Events()
	assert.False(t, ok, "Events is closed after Close")
	_, err = c.Status(t.Context())
	assert.ErrorIs(t, err, ErrClosed)
}

func TestCloseWhileEventsUnread(t *testing.T) {
	s := startSim(t, func(c *sim.Config) { c.DrawsPerKey = 200 })
	c, _ := s.hello(t, Options{})
	_, err := c.Subscribe(t.Context(), EventSurfaceDrawn)
	require.NoError(t, err)
	_, err = c.SendKey(t.Context(), 0x1C, KeyPress)
	require.NoError(t, err)
	// More than the Events channel buffers: the pump is stuck handing over.
	eventually(t, "the burst read", func() bool { return c.Stats().Events >= 200 })
	require.NoError(t, c.Close(), "Close does not wait for a consumer")
}

func TestSecondClientIsRefusedBusy(t *testing.T) {
	s := startSim(t, nil)
	first, _ := s.hello(t, Options{})
	nc, err := net.DialTimeout("unix", s.path, hangGuard)
	require.NoError(t, err)
	second := NewClient(nc, Options{})
	t.Cleanup(func() { _ = second.Close() })
	waitDone(t, second)
	assert.ErrorIs(t, second.Err(), ErrBusy)
	assert.ErrorIs(t, second.Err(), ErrClosed)
	var pe *ProtocolError
	require.ErrorAs(t, second.Err(), &pe)
	assert.Equal(t, CodeBusy, pe.Code)
	assert.Equal(t, uint64(1), s.Stats().Busy)
	_, err = first.Status(t.Context())
	assert.NoError(t, err, "the first client keeps the socket")
}

func TestManyGoroutinesOverUnixSocket(t *testing.T) {
	s := startSim(t, nil)
	c, _ := s.hello(t, Options{})
	_, err := c.Subscribe(t.Context(), EventSurfaceDrawn)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				var err error
				if i%2 == 0 {
					_, err = c.Status(t.Context())
				} else {
					_, err = c.SendKey(t.Context(), uint16(0x10+g), KeyPress) // each key draws: events interleave
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	assert.Empty(t, errs)
	s1 := c.Stats()
	assert.Equal(t, uint64(16*20+2), s1.Responses, "hello + subscribe + every call")
	assert.Zero(t, s1.Malformed+s1.Oversized+s1.Unmatched)
	assert.Equal(t, uint64(16*10), s.Stats().KeyDowns)
}
