package measure

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// simConsole is a guest behind a console on the bubble's fake clock: each
// key down schedules the key's repaint (draws that arrive when they are
// drawn, not before), and a background source can draw on its own. Unlike
// fakeGuest it models time, so it can show what a slow console, a
// background clock or a Nagle stall does to the measurement. It must run
// inside a synctest bubble; stop ends every goroutine it started.
type simConsole struct {
	draws   chan Draw
	dropped chan int
	done    chan struct{}
	wg      sync.WaitGroup

	// delay is press n's (1-based) latency to its first draw; nil means
	// the guest never draws.
	delay func(n int) time.Duration
	// strips is the number of draws in a repaint (at least 1), spread
	// apart; the last tailN of them come tail later (a Nagle stall).
	strips int
	spread time.Duration
	tailN  int
	tail   time.Duration
	// dropAt, if set, reports a dropped event that long after press n's
	// key down when it returns true.
	dropAt func(n int) (time.Duration, bool)
	// refresh, if set, puts every first draw on the next tick of a
	// display refresh timer of this period (as QEMU's ~30 ms one), after
	// delay.
	refresh time.Duration
	// stallFrom and stallTo, if set, stop the console in between: a
	// draw due then is held back and sent when it resumes, with the
	// other held-back draws, as a QEMU under SIGSTOP does.
	stallFrom, stallTo time.Time

	mu    sync.Mutex
	truth []simPress
}

// simPress is what the console modelled for one press.
type simPress struct {
	sentAt      time.Time
	first, last time.Duration // zero when the press draws nothing
}

func newSimConsole(delay func(n int) time.Duration) *simConsole {
	return &simConsole{
		draws:   make(chan Draw, 1<<16),
		dropped: make(chan int, 64),
		done:    make(chan struct{}),
		delay:   delay,
		strips:  1,
	}
}

// fixedDelay is a console whose every press draws d after the key.
func fixedDelay(d time.Duration) func(int) time.Duration {
	return func(int) time.Duration { return d }
}

func (c *simConsole) sources() Sources {
	return Sources{Keyboard: c, Draws: c.draws, Dropped: c.dropped}
}

func (c *simConsole) KeyDown(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	sentAt := time.Now()
	c.mu.Lock()
	n := len(c.truth) + 1
	p := simPress{sentAt: sentAt}
	var at []time.Duration
	if c.delay != nil {
		base := c.delay(n)
		if c.refresh > 0 {
			at := sentAt.Add(base)
			if rem := at.UnixNano() % int64(c.refresh); rem != 0 {
				base += c.refresh - time.Duration(rem)
			}
		}
		for i := range max(c.strips, 1) {
			off := base + time.Duration(i)*c.spread
			if i >= c.strips-c.tailN {
				off += c.tail
			}
			if d := sentAt.Add(off); !c.stallTo.IsZero() && !d.Before(c.stallFrom) && d.Before(c.stallTo) {
				off = c.stallTo.Sub(sentAt) + time.Duration(i)*time.Microsecond
			}
			at = append(at, off)
		}
		p.first, p.last = at[0], at[len(at)-1]
	}
	c.truth = append(c.truth, p)
	c.mu.Unlock()
	if len(at) > 0 {
		c.after(func() bool {
			for _, off := range at {
				if !c.sleepUntil(sentAt.Add(off)) {
					return false
				}
				c.draws <- Draw{Wallclock: sentAt.Add(off), Received: time.Now()}
			}
			return true
		})
	}
	if c.dropAt != nil {
		if off, ok := c.dropAt(n); ok {
			c.after(func() bool {
				if c.sleepUntil(sentAt.Add(off)) {
					c.dropped <- 1
				}
				return true
			})
		}
	}
	return sentAt, nil
}

func (c *simConsole) KeyUp(ctx context.Context) error { return ctx.Err() }

// background draws on its own until stop: every period (steady), or at
// exponentially distributed gaps of that mean (poisson).
func (c *simConsole) background(period time.Duration, poisson bool, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	c.after(func() bool {
		for {
			gap := period
			if poisson {
				gap = time.Duration(rng.ExpFloat64() * float64(period))
			}
			at := time.Now().Add(gap)
			if !c.sleepUntil(at) {
				return false
			}
			select {
			case c.draws <- Draw{Wallclock: at, Received: at}:
			case <-c.done:
				return false
			}
		}
	})
}

func (c *simConsole) after(f func() bool) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// sleepUntil waits for at, or returns false when the console stops.
func (c *simConsole) sleepUntil(at time.Time) bool {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// stop ends every goroutine the console started.
func (c *simConsole) stop() {
	close(c.done)
	c.wg.Wait()
}

func (c *simConsole) presses() []simPress {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]simPress(nil), c.truth...)
}

// runSim runs a measurement against c inside the caller's bubble and
// stops c afterwards.
func runSim(t *testing.T, cfg Config, c *simConsole) (Result, error) {
	t.Helper()
	cfg.Logger = discardLogger()
	res, err := Run(t.Context(), cfg, c.sources())
	c.stop()
	return res, err
}

// wrongSamples returns the samples whose value is not press Seq's
// modelled first draw, to the microsecond.
func wrongSamples(res Result, truth []simPress) []Sample {
	var wrong []Sample
	for _, s := range res.Samples {
		if s.Seq < 1 || s.Seq > len(truth) {
			wrong = append(wrong, s)
			continue
		}
		want := truth[s.Seq-1].first
		if truth[s.Seq-1].first == 0 && truth[s.Seq-1].last == 0 {
			wrong = append(wrong, s)
			continue
		}
		if d := time.Duration(s.Value*1e9) - want; d > time.Microsecond || d < -time.Microsecond {
			wrong = append(wrong, s)
		}
	}
	return wrong
}

// simConfig is the loadtest's default keypress configuration with a
// fixed seed and room for a long run on the fake clock.
func simConfig(samples int) Config {
	cfg := DefaultConfig(KeypressToScreen)
	cfg.Samples = samples
	cfg.MaxDuration = time.Hour
	cfg.Seed = 1
	return cfg
}
