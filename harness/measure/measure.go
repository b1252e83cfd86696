// Package measure takes the loadtest's latency samples from control-socket
// events: keypress-to-screen (a key press paired with the first screen
// update after it), keypress-to-repaint (the same press to the last draw
// of the repaint it caused) or the ping interval reported by ryll's
// "latency" event.
//
// It knows nothing about the control socket itself: the caller adapts its
// client to the small Keyboard interface and feeds events in as Draw, Ping
// and dropped-count channels. That keeps the pairing logic testable with
// fakes and lets it be reused for any client that can press a key and
// report draws. Run returns a complete Result, with one Press record per
// key press, whatever happens.
//
// # Never another press's draw
//
// One press is open at a time. Its window is [sentAt, sentAt+Window] by
// draw wall clock; the first draw in it is the press's first draw. A
// draw may only answer a press if it cannot belong to an earlier one, so
// the next press is sent only when all of these hold:
//   - its cadence slot has come (Cadence plus a uniformly random Jitter
//     after the previous press, so that presses do not phase-lock with
//     QEMU's ~30 ms display refresh);
//   - the previous press's window has closed (and Grace has passed for
//     draw events in flight);
//   - no draw at all has been drawn for Quiet, counted from the later of
//     the previous window's end and the last draw seen;
//   - after a press that got no draw, its late draw has arrived or
//     LateWait has passed since its window closed (once per run of
//     misses).
//
// A draw that comes after the window of a press that got none is late: it
// resets the quiet gap, is counted, and is never paired. A console slower
// than the window therefore gives misses (verdict late), not fast
// samples, as long as it is faster than Window+LateWait (Window+Quiet
// within a run of misses). MaxMisses misses in a row end the run with
// StopLateDraws or StopNoDraws and an error that says what it means. The
// quiet rule may push a press past its cadence slot; Press.QuietWait
// records by how much.
//
// # The burst
//
// A press's burst starts with its first draw and takes every following
// draw that comes within Settle of the one before it, inside the window.
// The burst's last draw is the end of the repaint: Press.Repaint, the
// sample of KeypressToRepaint. Both figures are measured whatever the
// metric. A press's verdict is decided once the window has closed and the
// burst has settled (local clock past both plus Grace, after the queued
// draws have been judged):
//   - sample: it had a first draw and nothing below applies;
//   - suspect: it had a first draw, but a dropped event arrived between
//     its key down and its decision (the first or last draw may be lost),
//     or its burst was still going when the window closed, or a draw
//     turned up afterwards stamped less than Quiet before the key (the gap
//     was not quiet after all): not a sample, counted;
//   - miss: no draw in the window;
//   - late: a miss whose draw came after the window, before the next
//     press.
//
// # The background
//
// Draws no key caused are counted while no press is open: before the
// first press (for at least Baseline) and from each sampled burst's end
// (last draw plus Settle) to the next key down. Background holds their
// number, the time observed, the rate and the pattern: the coefficient of
// variation (CV) of their gaps, measured in observed time with the press
// windows cut out, is below 0.5 for a steady source (a clock, a blinking
// cursor), near 1 for a random one, and above 1.5 for a bursty one; with
// fewer than 5 gaps the pattern is unknown.
//
// A sample is contaminated when a background draw falls inside its
// exposure: [sentAt, first draw] for KeypressToScreen, [sentAt, last
// draw + Settle] for KeypressToRepaint (an unrelated draw there moves the
// start or the end of the burst). The estimated share is rate times the
// median exposure, capped at 1: the expected number of background draws
// in one exposure, which bounds the probability of at least one for any
// stationary background (Markov's inequality) and equals it for a steady
// one, where the Poisson 1-exp(-rate*exposure) would be slightly low.
// Above MaxContamination the run fails with StopBackground; so does a
// screen that never stays quiet for Quiet within MaxQuietWait, counted
// from when nothing else held the press back (a wait for a late draw that
// then came is not a screen that would not stay quiet).
//
// # Stalls
//
// A console that answered presses in time and then draws nothing for a
// press for a second or more, and then sends the held-back draws at once,
// stalled (a QEMU under SIGSTOP, a frozen host): Result.Stalls records
// the press, how long and the catch-up burst. The stalled presses are
// late, never samples, and the run continues; at its end a stall fails
// it with StopStall (ErrStall), because its figures do not show it. A
// console that answered in time and then draws nothing at all for
// MaxMisses presses in a row has stalled too (and not caught up): that is
// StopStall, not StopNoDraws.
package measure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// Metric names what a sample measures. The values are written to the
// results sidecar and must not change. This package is the one home of
// the metric vocabulary: ParseMetric reads both the long names and the
// short ones users type (LATENCY_METRIC), and Short gives the short one.
type Metric string

const (
	// KeypressToScreen is the time from a key press to the first screen
	// update after it. It is the default: the legacy CSV keeps its meaning.
	KeypressToScreen Metric = "keypress_to_screen"
	// KeypressToRepaint is the time from a key press to the last draw of
	// the burst it caused: when the screen is complete, which is what a
	// person sees. Through a proxy that stalls on Nagle's algorithm it is
	// about 40 ms longer than KeypressToScreen.
	KeypressToRepaint Metric = "keypress_to_repaint"
	// PingInterval is ryll's "latency" event. Despite the name it is not a
	// round-trip time: it is the gap between two consecutive SPICE server
	// PINGs as ryll saw them, so samples alternate near 0 s and near 15 s.
	PingInterval Metric = "ping_interval"
)

// AllMetrics lists every metric, for validation and documentation.
func AllMetrics() []Metric { return []Metric{KeypressToScreen, KeypressToRepaint, PingInterval} }

// shortNames are the names users type; the index matches AllMetrics.
var shortNames = []string{"keypress", "repaint", "ping"}

// Short is the name a user types for m (keypress, repaint, ping), or ""
// for an unknown metric.
func (m Metric) Short() string {
	for i, k := range AllMetrics() {
		if k == m {
			return shortNames[i]
		}
	}
	return ""
}

// ParseMetric reads a metric by its short name (keypress, repaint, ping)
// or its long name (keypress_to_screen, ...), ignoring case and spaces
// around it.
func ParseMetric(s string) (Metric, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, m := range AllMetrics() {
		if s == shortNames[i] || s == string(m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown metric %q: want %s", s, strings.Join(shortNames, ", "))
}

// Keypress reports whether m is measured by pressing keys.
func (m Metric) Keypress() bool { return m == KeypressToScreen || m == KeypressToRepaint }

// Definition says in words what one sample of m is, for the sidecar, so
// that nobody compares CSVs of different metrics unknowingly.
func (m Metric) Definition() string {
	const rules = " A press is sent only after the previous press's window has closed and no draw has " +
		"come for the quiet gap, so a late draw is never taken for a later press. A press with no draw " +
		"within the window is a miss, and one that saw dropped events is suspect; neither gives a sample."
	switch m {
	case KeypressToScreen:
		return "Keypress-to-screen latency in seconds: the surface_drawn wallclock_us of the first " +
			"draw at or after a send_key down, minus the host wall clock taken just before that " +
			"request was written (both clocks are the same host's)." + rules
	case KeypressToRepaint:
		return "Keypress-to-repaint latency in seconds: the surface_drawn wallclock_us of the last " +
			"draw of the burst that starts with the first draw after a send_key down (the burst ends " +
			"when no draw has come for the settle time), minus the host wall clock taken just before " +
			"that request was written. It is when the repaint is complete." + rules
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

// StopReason says why a run ended. The values are written to the results
// sidecar and must not change; this package is their one home
// (AllStopReasons lists them).
type StopReason string

const (
	// StopSamplesReached: the sample target was reached.
	StopSamplesReached StopReason = "samples_reached"
	// StopMaxDuration: the maximum duration passed first.
	StopMaxDuration StopReason = "max_duration"
	// StopInterrupted: the context was cancelled (a signal).
	StopInterrupted StopReason = "interrupted"
	// StopError: a key request, the event source, the sink or the
	// configuration failed.
	StopError StopReason = "error"
	// StopNoDraws: MaxMisses presses in a row got no draw at all, and
	// none before them had either (else it is StopStall).
	StopNoDraws StopReason = "no_draws"
	// StopLateDraws: MaxMisses presses in a row got no draw in the window,
	// most of them a late one: the console is slower than the window.
	StopLateDraws StopReason = "late_draws"
	// StopBackground: the guest draws on its own too often to measure:
	// the estimated contamination exceeds MaxContamination, or the screen
	// never stayed quiet for Quiet.
	StopBackground StopReason = "background"
	// StopStall: the console stopped drawing for presses it had answered
	// promptly before, then caught up with a burst of the held-back
	// draws (Result.Stalls). The stalled presses are never samples, so a
	// run with a stall cannot pass on its figures.
	StopStall StopReason = "stall"
)

// AllStopReasons lists every stop reason.
func AllStopReasons() []StopReason {
	return []StopReason{StopSamplesReached, StopMaxDuration, StopInterrupted, StopError,
		StopNoDraws, StopLateDraws, StopBackground, StopStall}
}

// Failed reports whether a run that stopped for r failed: every reason
// but reaching the sample target or the maximum duration.
func (r StopReason) Failed() bool { return r != StopSamplesReached && r != StopMaxDuration }

var (
	// ErrSourceClosed is wrapped by Run's error when an event channel
	// closes, which the caller does when the control connection is lost.
	ErrSourceClosed = errors.New("event source closed")
	// ErrNoDraws is wrapped by Run's error for StopNoDraws.
	ErrNoDraws = errors.New("no draw follows a key press")
	// ErrLateDraws is wrapped by Run's error for StopLateDraws.
	ErrLateDraws = errors.New("draws come after the window")
	// ErrBackground is wrapped by Run's error for StopBackground.
	ErrBackground = errors.New("the guest draws on its own")
	// ErrStall is wrapped by Run's error for StopStall.
	ErrStall = errors.New("the console stalled")
)

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
	// Rect is the box the client said the draw damaged, when HasRect
	// (ryll 1.2 reports none; fakeryll's SPICE client and a patched ryll
	// do). With Config.KeyRegion, a draw whose box does not touch the
	// region never answers a press (see Activity).
	Rect    Rect
	HasRect bool
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
	// (ping). Gaps in Seq between samples are presses that gave none.
	Seq int
	// At is the press's sentAt (keypress) or the event's wall clock (ping).
	At time.Time
	// Value is in seconds: the metric's figure.
	Value float64
}

// Miss is a press that got no draw within its window.
type Miss struct {
	Seq int
	At  time.Time
	// Late is true when a draw came after the window, before the next
	// press (the press's verdict is VerdictLate).
	Late bool
}

// Verdict is what became of one press. The values are written to the
// presses CSV and must not change.
type Verdict string

const (
	// VerdictSample: the press gave a sample.
	VerdictSample Verdict = "sample"
	// VerdictMiss: no draw in the window, and none after it before the
	// next press.
	VerdictMiss Verdict = "miss"
	// VerdictLate: no draw in the window, but one after it before the
	// next press (probably its own: the console is slower than the
	// window). A late press is a miss.
	VerdictLate Verdict = "late"
	// VerdictSuspect: the press had a first draw, but its figures cannot
	// be trusted (Press.Reason says why). Not a sample.
	VerdictSuspect Verdict = "suspect"
	// VerdictUnfinished: the run stopped before the press was decided.
	VerdictUnfinished Verdict = "unfinished"
)

// AllVerdicts lists every verdict.
func AllVerdicts() []Verdict {
	return []Verdict{VerdictSample, VerdictMiss, VerdictLate, VerdictSuspect, VerdictUnfinished}
}

// Press is the record of one key press, for latency-<run>-presses.csv.
type Press struct {
	// Number is 1-based and matches Sample.Seq and a simulator's truth.
	Number int
	// SentAt is the host wall clock just before the key down was written.
	SentAt time.Time
	// Verdict is what became of the press; Reason says why for a suspect.
	Verdict Verdict
	Reason  string
	// Answered is true when the press had a first draw in its window;
	// FirstDraw, Repaint and Draws mean nothing otherwise (leave the
	// CSV cells empty).
	Answered bool
	// FirstDraw is from SentAt to the first draw (keypress_to_screen).
	FirstDraw time.Duration
	// Repaint is from SentAt to the last draw of the burst
	// (keypress_to_repaint).
	Repaint time.Duration
	// Draws is the number of draws in the burst.
	Draws int
	// Background is the number of background draws counted in the gap
	// before this press (for press 1: the baseline).
	Background int
	// LateDraws counts draws after the window of an unanswered press;
	// Overrun counts draws that continued the burst past the window.
	LateDraws int
	Overrun   int
	// Dropped is the sum of dropped-event counts that arrived between the
	// key down and the decision.
	Dropped int
	// QuietWait is how much later than its cadence slot the press was
	// sent because the previous window, the quiet gap or a late draw had
	// to be waited for.
	QuietWait time.Duration
}

// Stall is a stretch in which a console that had answered presses
// promptly drew nothing for a press for at least a second (a draw just
// past its window is a late press), then sent the held-back draws in one
// burst: the console catching up (a stopped or starved QEMU, a host that
// froze, a paused network), not a guest drawing on its own and not a
// console slower than the window.
type Stall struct {
	// Press is the first press held back; SentAt is its key down.
	Press  int
	SentAt time.Time
	// Duration is from that key down to the first draw after it.
	Duration time.Duration
	// Presses is how many presses in a row got no draw in their window.
	Presses int
	// Draws counts the late draws of the catch-up burst.
	Draws int
}

// Pattern is how background draws come.
type Pattern string

const (
	// PatternNone: no background draw was seen.
	PatternNone Pattern = "none"
	// PatternUnknown: too few gaps (under 5) to say.
	PatternUnknown Pattern = "unknown"
	// PatternSteady: gaps nearly equal (CV < 0.5): a clock, a cursor.
	PatternSteady Pattern = "steady"
	// PatternRandom: gaps like a Poisson process (0.5 <= CV <= 1.5).
	PatternRandom Pattern = "random"
	// PatternBursty: clustered draws (CV > 1.5).
	PatternBursty Pattern = "bursty"
)

// Background describes the draws no key caused.
type Background struct {
	// Draws were seen in Observed: before the first press and in the
	// quiet gaps after sampled bursts.
	Draws    int
	Observed time.Duration
	// Rate is Draws per second of Observed (0 when nothing was observed).
	Rate float64
	// Pattern and GapCV describe the gaps between background draws, in
	// observed time; Gaps is how many gaps GapCV is taken from.
	Pattern Pattern
	GapCV   float64
	Gaps    int
	// Exposure is the median time per sample in which a background draw
	// would have changed it (the metric's figure, plus Settle for the
	// repaint).
	Exposure time.Duration
	// Contamination is the estimated share of samples taken from (or
	// changed by) a background draw: min(1, Rate * Exposure). Zero when
	// there are no samples.
	Contamination float64
}

// Defaults for Config fields. A zero field in Config takes its default,
// except Jitter and Grace, where zero means none; DefaultConfig sets them.
const (
	DefaultCadence          = 2 * time.Second
	DefaultJitter           = 200 * time.Millisecond
	DefaultHold             = 100 * time.Millisecond
	DefaultMaxWindow        = time.Second
	DefaultGrace            = 100 * time.Millisecond
	DefaultProgressInterval = 10 * time.Second
	// DefaultQuiet is the quiet gap at the default window: it costs
	// nothing at the default cadence (window 1 s + quiet 1 s = the 2 s
	// cadence). A zero Config.Quiet is the window, at least
	// minDefaultQuiet and at most DefaultQuiet: a fast cadence is not
	// slowed to a second per press, and the gap still outlasts the gaps
	// inside a burst, so the rest of a late repaint cannot spill into the
	// next window.
	DefaultQuiet = time.Second
	// minDefaultQuiet is the shortest derived quiet gap: twice the
	// default settle.
	minDefaultQuiet = 2 * DefaultSettle
	// DefaultLateWait lets the first miss of a run of misses wait for a
	// draw up to 5 s after its window before the next press, so a console
	// up to Window+5 s slow is caught as late.
	DefaultLateWait = 5 * time.Second
	// DefaultSettle ends a burst: the boot-sector guest's 23 draws come
	// within a few ms directly, and a Nagle stall (delayed ACK, ~40 ms on
	// Linux) puts the last ones about 40 ms later. 150 ms is well above
	// that gap, far below the quiet gap, and adds little to the repaint's
	// exposure to background draws.
	DefaultSettle = 150 * time.Millisecond
	// DefaultMaxMisses presses in a row without a draw end the run.
	DefaultMaxMisses = 10
	// DefaultMaxContamination is the share of samples that may have come
	// from an unrelated draw before the run fails.
	DefaultMaxContamination = 0.01
	// quietWaitFactor: MaxQuietWait defaults to this many Quiet gaps.
	quietWaitFactor = 10
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
	// counts as the press's first draw. Zero means min(Cadence, 1 s).
	Window time.Duration
	// Grace is how long past a deadline (window end, burst settle) the
	// local clock must be before it is decided, to let a draw event in
	// flight arrive.
	Grace time.Duration
	// Quiet is the gap with no draw at all, after the previous window has
	// closed, before the next press (> Settle). Zero means the window,
	// at least 300 ms and at most 1 s.
	Quiet time.Duration
	// LateWait is how long after the window of a press that got no draw
	// the next press waits for its late draw (once per run of misses).
	// Zero means 5 s.
	LateWait time.Duration
	// Settle ends a burst: no draw for Settle after its last one
	// (< Quiet). Zero means 150 ms.
	Settle time.Duration
	// Baseline is how long the background is observed before the first
	// press (which also needs Quiet without a draw). Zero means Quiet.
	Baseline time.Duration
	// MaxQuietWait is how long past its slot a press may wait for a quiet
	// gap before the run fails with StopBackground. Zero means 10*Quiet.
	MaxQuietWait time.Duration
	// MaxMisses is the number of misses in a row (late or not) that end
	// the run. Zero means 10.
	MaxMisses int
	// MaxContamination is the largest estimated share of samples that
	// may come from background draws, in (0, 1]. Zero means 0.01.
	MaxContamination float64
	// KeyRegion, when not zero, is where the key's repaint draws: only
	// draws whose box touches it answer a press; draws with a box outside
	// it are the guest's activity (Result.Activity), neither background
	// nor part of a burst. Draws without a box are judged as before.
	KeyRegion Rect
	// Seed seeds the jitter; zero picks one at random. Result.Config.Seed
	// holds the seed used, so a run's gaps can be reproduced.
	Seed uint64

	// ProgressInterval is the period of the progress log line.
	ProgressInterval time.Duration
	// OnSample receives each sample the moment it is taken (from Run's
	// goroutine, so it must not block for long), typically to append it
	// to the CSV. An error ends the run with that error.
	OnSample func(Sample) error
	// OnMiss, if set, receives each miss once it is known whether it was
	// late: when the next press is decided, or when the run stops.
	OnMiss func(Miss)
	// OnPress, if set, receives each press record when it is complete (a
	// sample's at its decision, just before OnSample gets the sample;
	// others at the same moments as OnMiss), in press order, typically to
	// append it to the presses CSV.
	OnPress func(Press)
	// Logger receives progress and warnings; nil means slog.Default().
	Logger *slog.Logger

	// progressTicks replaces the progress ticker in tests.
	progressTicks <-chan time.Time
}

// DefaultConfig returns the loadtest's defaults for metric: the legacy 2 s
// cadence with jitter, a 100 ms hold, a 1 s window, a 150 ms settle, 15
// minutes at most, and 100 samples for the keypress metrics (60 for the
// PING metric, whose samples come every ~15 s). 100, not the legacy 60:
// an A/B passes only when the upper end of the 95 % interval of B−A lies
// below its threshold, and on the real lane's spread (first draws spread
// over QEMU's ~30 ms refresh) 60 samples a leg left 6-12 % of equivalent
// runs inconclusive, 100 left 1.5-3 % (resampled from real runs). Quiet, Baseline and MaxQuietWait are
// left zero so that Run derives them from the window the caller ends up
// with (1 s, 1 s and 10 s at the default window); Result.Config holds the
// values used.
func DefaultConfig(metric Metric) Config {
	samples := 100
	if !metric.Keypress() {
		samples = 60
	}
	return Config{
		Metric:           metric,
		Samples:          samples,
		MaxDuration:      15 * time.Minute,
		Cadence:          DefaultCadence,
		Jitter:           DefaultJitter,
		Hold:             DefaultHold,
		Window:           min(DefaultCadence, DefaultMaxWindow),
		Grace:            DefaultGrace,
		LateWait:         DefaultLateWait,
		Settle:           DefaultSettle,
		MaxMisses:        DefaultMaxMisses,
		MaxContamination: DefaultMaxContamination,
		ProgressInterval: DefaultProgressInterval,
	}
}

// Sources are the run's inputs. The caller closes Draws or Pings when the
// control connection is lost.
type Sources struct {
	// Keyboard and Draws are required for the keypress metrics.
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
	// Misses are the presses with verdict miss or late.
	Misses []Miss
	// Presses holds one record per successful key down, in order.
	Presses []Press
	// Suspects counts presses with verdict suspect.
	Suspects int
	// FirstDraw and Repaint summarise, in seconds, both keypress figures
	// of the sampled presses, whichever the metric.
	FirstDraw, Repaint stats.Summary
	// Background describes the draws no key caused.
	Background Background
	// UnpairedDraws counts draws that were in no press's burst:
	// background, late, overrun and those beyond the pending bound.
	UnpairedDraws int
	// LateDraws counts draws after the window of a press with no draw.
	LateDraws int
	// QuietDelayed counts presses sent after their cadence slot because
	// of the window, quiet or late-draw rule; QuietWait is the sum.
	QuietDelayed int
	QuietWait    time.Duration
	// Dropped is the sum of the dropped-event counts received.
	Dropped int
	// KeyErrors counts failed key requests: a failure during the run ends
	// it; a failure of the final release only adds to this count.
	KeyErrors int
	// InvalidPings counts latency events whose sample_ms was negative or
	// not finite; they are not samples.
	InvalidPings int
	// Activity counts the draws by where they were (Config.KeyRegion).
	Activity Activity
	// Stalls are the console's stalls, in order (see Stall).
	Stalls []Stall
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

// Count returns the number of presses with verdict v.
func (r Result) Count(v Verdict) int {
	n := 0
	for _, p := range r.Presses {
		if p.Verdict == v {
			n++
		}
	}
	return n
}

// withDefaults fills zero settings (not the Logger, which Run fills: a
// configuration defaulted once, up front, holds no logger).
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
	if c.Quiet == 0 {
		c.Quiet = min(max(c.Window, minDefaultQuiet), DefaultQuiet)
	}
	if c.LateWait == 0 {
		c.LateWait = DefaultLateWait
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.Baseline == 0 {
		c.Baseline = c.Quiet
	}
	if c.MaxQuietWait == 0 {
		c.MaxQuietWait = quietWaitFactor * c.Quiet
	}
	if c.MaxMisses == 0 {
		c.MaxMisses = DefaultMaxMisses
	}
	if c.MaxContamination == 0 {
		c.MaxContamination = DefaultMaxContamination
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	return c
}

// Field names a setting of Config that a rule is about, so that a caller
// that reads the settings from elsewhere (harness/config reads them from
// LATENCY_* variables) can name its own setting in the message while the
// rule itself lives here only.
type Field string

// The fields a Problem can name.
const (
	FieldMetric           Field = "Metric"
	FieldSamples          Field = "Samples"
	FieldMaxDuration      Field = "MaxDuration"
	FieldCadence          Field = "Cadence"
	FieldJitter           Field = "Jitter"
	FieldHold             Field = "Hold"
	FieldWindow           Field = "Window"
	FieldGrace            Field = "Grace"
	FieldQuiet            Field = "Quiet"
	FieldLateWait         Field = "LateWait"
	FieldSettle           Field = "Settle"
	FieldBaseline         Field = "Baseline"
	FieldMaxQuietWait     Field = "MaxQuietWait"
	FieldMaxMisses        Field = "MaxMisses"
	FieldMaxContamination Field = "MaxContamination"
	FieldProgressInterval Field = "ProgressInterval"
	FieldKeyRegion        Field = "KeyRegion"
)

// AllFields lists every Field, for callers that map them to their own
// names (a test there checks the map is complete).
func AllFields() []Field {
	return []Field{FieldMetric, FieldSamples, FieldMaxDuration, FieldCadence, FieldJitter, FieldHold,
		FieldWindow, FieldGrace, FieldQuiet, FieldLateWait, FieldSettle, FieldBaseline, FieldMaxQuietWait,
		FieldMaxMisses, FieldMaxContamination, FieldProgressInterval, FieldKeyRegion}
}

// Problem is one rule of the measurement that a Config breaks. Fields are
// the settings involved, the one to change first; Msg says what is wrong
// in the measurement's own words.
type Problem struct {
	Fields []Field
	Msg    string
}

func (p Problem) Error() string { return p.Msg }

// Problems lists every rule of the measurement that c breaks, its zero
// fields first filled in as Run fills them (so a derived quiet gap is
// judged as the run would use it). Empty means Run accepts c (given
// sources). The configuration calls it before anything is provisioned,
// so a run is refused once, up front, by the same rules Run applies.
func (c Config) Problems() []Problem {
	c = c.withDefaults()
	var out []Problem
	bad := func(fields []Field, format string, args ...any) {
		out = append(out, Problem{Fields: fields, Msg: fmt.Sprintf(format, args...)})
	}
	one := func(f Field) []Field { return []Field{f} }
	if c.Samples < 1 {
		bad(one(FieldSamples), "samples is %d, want at least 1", c.Samples)
	}
	if c.MaxDuration <= 0 {
		bad(one(FieldMaxDuration), "max duration is %v, want more than 0", c.MaxDuration)
	}
	if c.ProgressInterval < 0 {
		bad(one(FieldProgressInterval), "progress interval is %v, want more than 0", c.ProgressInterval)
	}
	switch {
	case c.Metric.Keypress():
		if c.Cadence < 0 {
			bad(one(FieldCadence), "cadence is %v, want more than 0", c.Cadence)
		}
		if c.Jitter < 0 {
			bad(one(FieldJitter), "jitter is %v, want 0 or more", c.Jitter)
		}
		if c.Hold < 0 || c.Hold >= c.Cadence {
			bad([]Field{FieldHold, FieldCadence}, "hold is %v, want more than 0 and less than the cadence %v", c.Hold, c.Cadence)
		}
		if c.Window < 0 {
			bad(one(FieldWindow), "window is %v, want more than 0", c.Window)
		}
		if c.Grace < 0 {
			bad(one(FieldGrace), "grace is %v, want 0 or more", c.Grace)
		}
		if c.Settle < 0 || c.Settle >= c.Quiet {
			bad([]Field{FieldSettle, FieldQuiet}, "settle is %v, want more than 0 and less than the quiet gap %v", c.Settle, c.Quiet)
		}
		if c.Quiet < 0 {
			bad(one(FieldQuiet), "quiet gap is %v, want more than 0", c.Quiet)
		}
		if c.LateWait < 0 {
			bad(one(FieldLateWait), "late wait is %v, want more than 0", c.LateWait)
		}
		if c.Baseline < 0 {
			bad(one(FieldBaseline), "baseline is %v, want more than 0", c.Baseline)
		}
		if c.MaxQuietWait < c.Quiet {
			bad([]Field{FieldMaxQuietWait, FieldQuiet}, "max quiet wait is %v, want at least the quiet gap %v", c.MaxQuietWait, c.Quiet)
		}
		if c.MaxMisses < 1 {
			bad(one(FieldMaxMisses), "max misses is %d, want at least 1", c.MaxMisses)
		}
		if !(c.MaxContamination > 0 && c.MaxContamination <= 1) {
			bad(one(FieldMaxContamination), "max contamination is %v, want more than 0 and at most 1", c.MaxContamination)
		}
		if !c.KeyRegion.IsZero() {
			if err := c.KeyRegion.Check(); err != nil {
				bad(one(FieldKeyRegion), "key %v", err)
			}
		}
	case c.Metric == PingInterval:
	default:
		bad(one(FieldMetric), "unknown metric %q (want %q, %q or %q)", c.Metric, KeypressToScreen, KeypressToRepaint, PingInterval)
	}
	return out
}

// Validate is Problems as one error (nil when there is none).
func (c Config) Validate() error {
	return joinProblems(c.Problems(), nil)
}

// joinProblems wraps every problem, and the sources' own, in one error.
func joinProblems(ps []Problem, more []error) error {
	errs := make([]error, 0, len(ps)+len(more))
	for _, p := range ps {
		errs = append(errs, p)
	}
	if err := errors.Join(append(errs, more...)...); err != nil {
		return fmt.Errorf("invalid measurement configuration: %w", err)
	}
	return nil
}

// validate reports every problem with c and src at once.
func validate(c Config, src Sources) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.Metric.Keypress():
		if src.Keyboard == nil {
			bad("keypress metric needs a keyboard")
		}
		if src.Draws == nil {
			bad("keypress metric needs a draw channel")
		}
	case c.Metric == PingInterval:
		if src.Pings == nil {
			bad("ping metric needs a latency event channel")
		}
	}
	return joinProblems(c.Problems(), errs)
}

// validPing reports whether a latency event's value can be a sample.
func validPing(ms float64) bool {
	return !math.IsNaN(ms) && !math.IsInf(ms, 0) && ms >= 0
}

// WithDefaults returns c with every zero setting filled in as Run fills
// it, so that a caller (the configuration, which defaults once and hands
// the loadtest the result) holds the quiet gap and the other derived
// values the run will use, and records them. Run on such a Config
// changes nothing.
func (c Config) WithDefaults() Config { return c.withDefaults() }

// MinPressInterval is the shortest time from one key press to the next
// that the rules allow: a cadence, and at least the window plus the quiet
// gap (a console that never draws in the background). Samples times this
// is the least a keypress run can take.
func (c Config) MinPressInterval() time.Duration {
	c = c.withDefaults()
	return max(c.Cadence, c.Window+c.Quiet)
}
