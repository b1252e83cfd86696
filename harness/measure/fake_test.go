package measure

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeGuest is a Keyboard and a guest in one: each key down can put draws
// on the draw channel before it returns, stamped relative to its sentAt,
// so the draws a press causes are queued before Run learns of the press.
// That makes every test independent of scheduling: nothing waits for a
// real delay, and the deadline drain sees queued draws first.
type fakeGuest struct {
	draws chan Draw

	// answer gives the draws for press n (1-based), as offsets from
	// sentAt. A negative offset is a draw before the press.
	answer func(n int) []time.Duration
	// answerBoxed, if set, is answer with a box per draw (nil: none).
	answerBoxed func(n int) []boxedDraw
	// downErr, if set, fails press n's key down.
	downErr func(n int, ctx context.Context) error
	// upErr, if set, fails press n's key up.
	upErr func(n int) error
	// onDown runs at press n's key down before the draws are queued.
	onDown func(n int)
	// closeAt closes the draw channel at that press's key down.
	closeAt int
	// backdate moves each sentAt into the past, as if Run had been slow
	// to learn of the press: its miss deadline has already passed when
	// the key down returns, with its draw still queued.
	backdate time.Duration

	mu      sync.Mutex
	downs   int
	ups     int
	sentAts []time.Time
}

// boxedDraw is a draw at an offset from the press, with its box (nil:
// the client reported none).
type boxedDraw struct {
	at  time.Duration
	box *Rect
}

func newFakeGuest() *fakeGuest {
	return &fakeGuest{draws: make(chan Draw, 4096)}
}

func (g *fakeGuest) KeyDown(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.sentAts) + 1
	if g.onDown != nil {
		g.onDown(n)
	}
	if g.downErr != nil {
		if err := g.downErr(n, ctx); err != nil {
			return time.Time{}, err
		}
	}
	if g.closeAt == n {
		close(g.draws)
		g.sentAts = append(g.sentAts, time.Now())
		g.downs++
		return g.sentAts[n-1], nil
	}
	sentAt := time.Now().Add(-g.backdate)
	g.sentAts = append(g.sentAts, sentAt)
	g.downs++
	if g.answer != nil {
		for _, off := range g.answer(n) {
			g.draws <- Draw{Wallclock: sentAt.Add(off), Received: sentAt.Add(off + 2*time.Millisecond)}
		}
	}
	if g.answerBoxed != nil {
		for _, b := range g.answerBoxed(n) {
			d := Draw{Wallclock: sentAt.Add(b.at), Received: sentAt.Add(b.at + 2*time.Millisecond)}
			if b.box != nil {
				d.Rect, d.HasRect = *b.box, true
			}
			g.draws <- d
		}
	}
	return sentAt, nil
}

func (g *fakeGuest) KeyUp(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.sentAts)
	if g.upErr != nil {
		if err := g.upErr(n); err != nil {
			return err
		}
	}
	g.ups++
	return nil
}

func (g *fakeGuest) counts() (downs, ups int, sentAts []time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.downs, g.ups, append([]time.Time(nil), g.sentAts...)
}

// fastConfig is a keypress configuration with short times, so that the
// tests that run on the real clock (ping mode, the benchmarks) stay fast;
// the keypress tests run it on synctest's fake clock.
func fastConfig(samples int) Config {
	return Config{
		Metric:       KeypressToScreen,
		Samples:      samples,
		MaxDuration:  time.Minute,
		Cadence:      20 * time.Millisecond,
		Jitter:       5 * time.Millisecond,
		Hold:         5 * time.Millisecond,
		Window:       15 * time.Millisecond,
		Grace:        5 * time.Millisecond,
		Quiet:        10 * time.Millisecond,
		LateWait:     30 * time.Millisecond,
		Settle:       3 * time.Millisecond,
		MaxQuietWait: 100 * time.Millisecond,
		Seed:         1,
	}
}

// logBuffer returns a logger writing text lines into a buffer read after
// Run returns (Run logs only from its own goroutine).
func logBuffer(t testing.TB) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
