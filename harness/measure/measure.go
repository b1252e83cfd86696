// Package measure takes the loadtest's latency samples from control-socket
// events: keypress-to-screen (a key press paired with the first screen
// update after it) or the ping interval reported by ryll's "latency"
// event.
//
// It knows nothing about the control socket itself: the caller adapts its
// client to the small Keyboard interface and feeds events in as Draw, Ping
// and dropped-count channels. That keeps the pairing logic testable with
// fakes and lets it be reused for any client that can press a key and
// report draws.
//
// # Keypress pairing
//
// One press is outstanding at a time. A press's sample is the first draw
// whose server wall clock is at or after the press's sentAt and no later
// than sentAt+Window; its value is Wallclock-sentAt. A press with no such
// draw is a miss: counted and reported, never a sample. A press is judged
// only by draw wall clocks, and each press is finished (paired or missed)
// before the next is sent, so a lost draw can never shift the samples of
// later presses (the failure of FIFO pairing), and a late draw of an
// earlier press can never be taken for a later one. Because ryll sends a
// draw event at its wall clock and it needs time to arrive, a miss is
// decided only when the local clock passes sentAt+Window+Grace, and draws
// already queued are examined before deciding.
//
// Presses are spaced Cadence plus a uniformly random Jitter apart,
// measured press to press, so that they do not phase-lock with the
// guest's display refresh (about 30 ms in QEMU).
package measure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Metric names what a sample measures. The values are written to the
// results sidecar and must not change.
type Metric string

const (
	// KeypressToScreen is the time from a key press to the first screen
	// update after it: what a user perceives.
	KeypressToScreen Metric = "keypress_to_screen"
	// PingInterval is ryll's "latency" event. Despite the name it is not a
	// round-trip time: it is the gap between two consecutive SPICE server
	// PINGs as ryll saw them, so samples alternate near 0 s and near 15 s.
	PingInterval Metric = "ping_interval"
)

// Definition says in words what one sample of m is, for the sidecar, so
// that nobody compares CSVs of different metrics unknowingly.
func (m Metric) Definition() string {
	switch m {
	case KeypressToScreen:
		return "Keypress-to-screen latency in seconds: the surface_drawn wallclock_us of the first " +
			"draw at or after a send_key down, minus the host wall clock taken just before that " +
			"request was written (both clocks are the same host's). A press with no draw within " +
			"the window is a miss and gives no sample."
	case PingInterval:
		return "Ping interval in seconds: the control socket latency event's sample_ms / 1000, " +
			"the gap between two consecutive SPICE server PINGs as ryll saw them. It is not a " +
			"round-trip time and not comparable with keypress-to-screen: QEMU sends a burst of " +
			"PINGs after connect and then a pair about every 15 s, so values alternate near 0 s " +
			"and near 15 s."
	default:
		return "unknown metric " + string(m)
	}
}

// StopReason says why a run ended. The values match the results
// package's Stop* constants.
type StopReason string

const (
	StopSamplesReached StopReason = "samples_reached"
	StopMaxDuration    StopReason = "max_duration"
	StopInterrupted    StopReason = "interrupted"
	StopError          StopReason = "error"
)

// ErrSourceClosed is wrapped by Run's error when an event channel closes,
// which the caller does when the control connection is lost.
var ErrSourceClosed = errors.New("event source closed")

// Keyboard presses and releases the measured key. The control-socket
// adapter implements it with send_key down and up.
type Keyboard interface {
	// KeyDown presses the key. sentAt is the wall clock taken just before
	// the request was written, the start of the measured interval.
	KeyDown(ctx context.Context) (sentAt time.Time, err error)
	// KeyUp releases the key.
	KeyUp(ctx context.Context) error
}

// Draw is a surface_drawn event.
type Draw struct {
	// Wallclock is the server's wallclock_us: when the draw happened.
	Wallclock time.Time
	// Received is when the client read the event; zero if unknown. Used
	// only to report how late events arrive (Result.MaxDrawLag).
	Received time.Time
}

// Ping is a latency event.
type Ping struct {
	SampleMS  float64
	Wallclock time.Time
	Received  time.Time
}

// Sample is one measured value.
type Sample struct {
	// Index is 0-based and counts samples: the value is on line Index+1
	// of the CSV.
	Index int
	// Seq is the 1-based press number (keypress) or latency event number
	// (ping). Gaps in Seq between samples are misses.
	Seq int
	// At is the press's sentAt (keypress) or the event's wall clock (ping).
	At time.Time
	// Value is in seconds.
	Value float64
}

// Miss is a press that got no draw within its window.
type Miss struct {
	Seq int
	At  time.Time
}

// Defaults for Config fields. A zero field in Config takes its default,
// except Jitter, where zero means none; DefaultConfig sets it.
const (
	DefaultCadence          = 2 * time.Second
	DefaultJitter           = 200 * time.Millisecond
	DefaultHold             = 100 * time.Millisecond
	DefaultMaxWindow        = time.Second
	DefaultGrace            = 100 * time.Millisecond
	DefaultProgressInterval = 10 * time.Second
)

// Config controls a run. Build it from DefaultConfig and override fields.
type Config struct {
	Metric Metric
	// Samples is the number of samples after which the run stops (> 0).
	Samples int
	// MaxDuration bounds the run however few samples arrive (> 0).
	MaxDuration time.Duration

	// Cadence is the minimum press-to-press gap (keypress only).
	Cadence time.Duration
	// Jitter is added to each gap, uniformly random in [0, Jitter).
	// Zero disables it.
	Jitter time.Duration
	// Hold is how long the key stays down; less than Cadence.
	Hold time.Duration
	// Window is how long after sentAt (by draw wall clock) a draw still
	// counts for the press; at most Cadence. Zero means min(Cadence, 1 s).
	Window time.Duration
	// Grace is how long past the window the local clock must be before a
	// miss is decided, to let a draw event in flight arrive. If
	// Window+Grace exceeds the gap, the next press waits for the decision.
	Grace time.Duration
	// Seed seeds the jitter; zero picks one at random. Result.Config.Seed
	// holds the seed used, so a run's gaps can be reproduced.
	Seed uint64

	// ProgressInterval is the period of the progress log line.
	ProgressInterval time.Duration
	// OnSample receives each sample the moment it is taken (from Run's
	// goroutine, so it must not block for long), typically to append it
	// to the CSV. An error ends the run with that error.
	OnSample func(Sample) error
	// OnMiss, if set, receives each miss.
	OnMiss func(Miss)
	// Logger receives progress and warnings; nil means slog.Default().
	Logger *slog.Logger

	// progressTicks replaces the progress ticker in tests.
	progressTicks <-chan time.Time
}

// DefaultConfig returns the loadtest's defaults for metric: the legacy 2 s
// cadence with jitter, a 100 ms hold, a 1 s window, 60 samples and 10
// minutes at most.
func DefaultConfig(metric Metric) Config {
	return Config{
		Metric:           metric,
		Samples:          60,
		MaxDuration:      10 * time.Minute,
		Cadence:          DefaultCadence,
		Jitter:           DefaultJitter,
		Hold:             DefaultHold,
		Window:           min(DefaultCadence, DefaultMaxWindow),
		Grace:            DefaultGrace,
		ProgressInterval: DefaultProgressInterval,
	}
}

// Sources are the run's inputs. The caller closes Draws or Pings when the
// control connection is lost.
type Sources struct {
	// Keyboard and Draws are required for KeypressToScreen.
	Keyboard Keyboard
	Draws    <-chan Draw
	// Pings is required for PingInterval. No key is pressed in that mode
	// and Draws is not read.
	Pings <-chan Ping
	// Dropped, optional, carries the count of each "dropped" event.
	Dropped <-chan int
}

// Result is what a run collected. It is returned complete even when Run
// returns an error.
type Result struct {
	// Config is the configuration used, defaults filled in.
	Config  Config
	Samples []Sample
	Misses  []Miss
	// Presses counts successful key downs; a press still open when the
	// run stopped is neither a sample nor a miss.
	Presses int
	// UnpairedDraws counts draws that answered no press: with no press
	// open, before the open press's sentAt, after its window, or after
	// its first draw.
	UnpairedDraws int
	// Dropped is the sum of the dropped-event counts received.
	Dropped int
	// KeyErrors counts failed key requests: a failure during the run ends
	// it; a failure of the final release only adds to this count.
	KeyErrors int
	// InvalidPings counts latency events whose sample_ms was negative or
	// not finite; they are not samples.
	InvalidPings int
	// MaxDrawLag is the largest Received-Wallclock seen on a draw, to
	// check that Grace is large enough.
	MaxDrawLag time.Duration
	Start, End time.Time
	StopReason StopReason
}

// Values returns the sample values in order, as written to the CSV.
func (r Result) Values() []float64 {
	v := make([]float64, len(r.Samples))
	for i, s := range r.Samples {
		v[i] = s.Value
	}
	return v
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Cadence == 0 {
		c.Cadence = DefaultCadence
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.Window == 0 {
		c.Window = min(c.Cadence, DefaultMaxWindow)
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every problem with c and src at once.
func validate(c Config, src Sources) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Samples < 1 {
		bad("samples is %d, want at least 1", c.Samples)
	}
	if c.MaxDuration <= 0 {
		bad("max duration is %v, want more than 0", c.MaxDuration)
	}
	if c.ProgressInterval < 0 {
		bad("progress interval is %v, want more than 0", c.ProgressInterval)
	}
	switch c.Metric {
	case KeypressToScreen:
		if src.Keyboard == nil {
			bad("keypress metric needs a keyboard")
		}
		if src.Draws == nil {
			bad("keypress metric needs a draw channel")
		}
		if c.Cadence < 0 {
			bad("cadence is %v, want more than 0", c.Cadence)
		}
		if c.Jitter < 0 {
			bad("jitter is %v, want 0 or more", c.Jitter)
		}
		if c.Hold < 0 || c.Hold >= c.Cadence {
			bad("hold is %v, want more than 0 and less than the cadence %v", c.Hold, c.Cadence)
		}
		if c.Window < 0 || c.Window > c.Cadence {
			bad("window is %v, want more than 0 and at most the cadence %v", c.Window, c.Cadence)
		}
		if c.Grace < 0 {
			bad("grace is %v, want 0 or more", c.Grace)
		}
	case PingInterval:
		if src.Pings == nil {
			bad("ping metric needs a latency event channel")
		}
	default:
		bad("unknown metric %q (want %q or %q)", c.Metric, KeypressToScreen, PingInterval)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid measurement configuration: %w", err)
	}
	return nil
}

// validPing reports whether a latency event's value can be a sample.
func validPing(ms float64) bool {
	return !math.IsNaN(ms) && !math.IsInf(ms, 0) && ms >= 0
}
