package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/atomicfile"
	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/link"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// FormatVersion is the sidecar format written by this package. Bump it
// when a field changes meaning or is removed; adding a field does not need
// a bump (readers ignore fields they do not know).
const FormatVersion = 1

// Stop reasons recorded in Sidecar.StopReason. They are the values of
// measure.StopReason: results does not import measure, so that the file
// format does not depend on the measuring code, and a test pins the two
// lists together.
const (
	StopSamplesReached = "samples_reached"
	StopMaxDuration    = "max_duration"
	StopInterrupted    = "interrupted"
	StopError          = "error"
	StopNoDraws        = "no_draws"
	StopLateDraws      = "late_draws"
	StopBackground     = "background"
	StopStall          = "stall"
)

// Lanes recorded in Sidecar.Lane: the values of loadtest.Lane.Name.
const (
	LaneReal      = "real"
	LaneSimulated = "simulated"
)

// LaneOf is the lane of a run's sidecar. Sidecars written before the
// lane was recorded say so only through the provider: "fake" was always
// the simulator.
func LaneOf(s Sidecar) string {
	switch {
	case s.Lane != "":
		return s.Lane
	case s.Provider == "fake":
		return LaneSimulated
	default:
		return LaneReal
	}
}

// Settings are the measurement settings of a run, as the sidecar
// records them. The loadtest fills them from its one measurement
// configuration (config.Config.Measure, defaulted and judged once), so
// that what the sidecar says is what the run used; results does not
// import measure (see the stop reasons above).
type Settings struct {
	// Keypress is false for the ping metric, which presses no key: its
	// key settings are then not recorded.
	Keypress    bool
	Samples     int
	Cadence     time.Duration
	Jitter      time.Duration
	Hold        time.Duration
	Window      time.Duration
	MaxDuration time.Duration
	Quiet       time.Duration
	Settle      time.Duration
	MaxMisses   int
	// MaxContamination is a share in (0, 1].
	MaxContamination float64
	// Seed is the jitter seed the run drew (zero before it measured).
	Seed uint64
}

// SetSettings records st, every setting in one place.
func (s *Sidecar) SetSettings(st Settings) {
	s.SamplesRequested = st.Samples
	s.CadenceS = st.Cadence.Seconds()
	s.MaxDurationS = st.MaxDuration.Seconds()
	s.JitterSeed = st.Seed
	s.JitterS, s.HoldS, s.WindowS, s.QuietS, s.SettleS, s.MaxMisses, s.MaxContamination = 0, 0, 0, 0, 0, 0, 0
	if !st.Keypress {
		return
	}
	s.JitterS, s.HoldS, s.WindowS = st.Jitter.Seconds(), st.Hold.Seconds(), st.Window.Seconds()
	s.QuietS, s.SettleS = st.Quiet.Seconds(), st.Settle.Seconds()
	s.MaxMisses, s.MaxContamination = st.MaxMisses, st.MaxContamination
}

// TitleFor marks a plot's title when its numbers are simulated, so a
// picture taken out of its directory still says so.
func TitleFor(lane, title string) string {
	if lane == LaneSimulated {
		return "SIMULATED (no SPICE session): " + title
	}
	return title
}

// Sanity verdicts.
const (
	VerdictPass = "pass"
	VerdictFail = "fail"
)

// Sidecar is the latency-<run>.json file written next to the CSV. It makes
// a CSV self-describing: which metric the column holds, how it was taken,
// what was lost on the way, and whether the run looks sane. JSON field
// names are part of the file format and must not change.
//
// Durations are float seconds in fields ending in _s; times are RFC 3339
// in UTC.
type Sidecar struct {
	FormatVersion int `json:"format_version"`
	// RunID is the <run> in the file names.
	RunID string `json:"run_id"`
	// Metric names what the CSV holds, e.g. "keypress_to_screen".
	Metric string `json:"metric"`
	// MetricDefinition says in words what one sample measures.
	MetricDefinition string `json:"metric_definition"`
	// Unit of every value in the CSV and in Summary; always "s".
	Unit string `json:"unit"`
	// CSVFile is the CSV's base name (latency-<run>.csv).
	CSVFile string `json:"csv_file"`

	SamplesRequested int `json:"samples_requested"`
	SamplesCollected int `json:"samples_collected"`
	// Misses are key presses with no draw in their window; never samples.
	Misses int `json:"misses"`
	// UnpairedDraws are draws in no press's repaint: background draws,
	// late draws, and draws that ran on past a window. A repaint's own
	// draws are not unpaired.
	UnpairedDraws int `json:"unpaired_draws"`
	// DroppedEvents is the sum of the control socket's "dropped" counts:
	// events the server discarded because the client read too slowly.
	DroppedEvents int `json:"dropped_events"`
	// KeyErrors counts failed send_key requests.
	KeyErrors int `json:"key_errors"`

	CadenceS     float64 `json:"cadence_s"`
	JitterS      float64 `json:"jitter_s"`
	HoldS        float64 `json:"hold_s"`
	WindowS      float64 `json:"window_s"`
	MaxDurationS float64 `json:"max_duration_s"`
	// JitterSeed reproduces the sequence of press gaps.
	JitterSeed uint64 `json:"jitter_seed"`
	// Scancode is the AT set-1 make code pressed, as "0x39".
	Scancode string `json:"scancode"`

	ProtocolVersionRequested string `json:"protocol_version_requested"`
	ProtocolVersionAnswered  string `json:"protocol_version_answered"`
	// ServerName is the control socket server's self-description from hello.
	ServerName string `json:"server_name"`
	// CloudServerName and CloudServerID name the server booted for the
	// run (openstack), kept even when the run failed after the boot.
	CloudServerName string `json:"cloud_server_name,omitempty"`
	CloudServerID   string `json:"cloud_server_id,omitempty"`
	// Provider says where the console came from (e.g. "openstack", "direct").
	Provider string `json:"provider"`
	// Lane is "real" when the numbers come from a real SPICE session and
	// "simulated" when they come from fakeryll's simulator; Client names
	// what ran in ryll's place. Readers that combine runs refuse to mix
	// the lanes.
	Lane   string `json:"lane,omitempty"`
	Client string `json:"client,omitempty"`
	// ResultsDir is where the files are, as an absolute path, for the
	// summary printed to a person; the file does not hold it (it is
	// written there).
	ResultsDir  string `json:"-"`
	RyllBinary  string `json:"ryll_binary"`
	RyllVersion string `json:"ryll_version"`

	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	// StopReason is one of the Stop* constants.
	StopReason string `json:"stop_reason"`

	Summary stats.Summary `json:"summary"`
	Sanity  Sanity        `json:"sanity"`

	// The keypress metrics' own record (absent for the ping metric).
	// FirstDraw and Repaint summarise both keypress figures over the
	// sampled presses, whichever one the CSV holds.
	FirstDraw *stats.Summary `json:"first_draw,omitempty"`
	Repaint   *stats.Summary `json:"repaint,omitempty"`
	// Presses counts key presses sent; LatePresses those whose draw came
	// after their window; Suspects those whose first draw may have been
	// lost (a dropped event) or may not be theirs. None is a sample.
	Presses     int `json:"presses,omitempty"`
	LatePresses int `json:"late_presses,omitempty"`
	Suspects    int `json:"suspects,omitempty"`
	// LateDraws counts draws after the window of a press without a draw.
	LateDraws int `json:"late_draws,omitempty"`
	// QuietDelayed counts presses sent later than their cadence slot to
	// wait for the quiet gap; QuietWaitS is the total wait.
	QuietDelayed int     `json:"quiet_delayed,omitempty"`
	QuietWaitS   float64 `json:"quiet_wait_s,omitempty"`
	// The rules the pairing used.
	QuietS           float64 `json:"quiet_s,omitempty"`
	SettleS          float64 `json:"settle_s,omitempty"`
	MaxMisses        int     `json:"max_misses,omitempty"`
	MaxContamination float64 `json:"max_contamination,omitempty"`
	// Background is what was seen of the draws no key caused.
	Background *Background `json:"background,omitempty"`
	// Activity is what the guest did by itself and where its draws were
	// against the key's region (LATENCY_ACTIVITY, LATENCY_KEY_REGION).
	Activity *Activity `json:"activity,omitempty"`
	// Stalls are the console's stalls (stop reason stall): a press that
	// got no draw for a second or more from a console that had answered in
	// time, then the held-back draws at once.
	Stalls []Stall `json:"stalls,omitempty"`
	// PressesFile is latency-<run>-presses.csv, one row per press.
	PressesFile string `json:"presses_file,omitempty"`

	// A guest of our own (the qemu provider): the QEMU that ran it, its
	// accelerator, and the key presses the guest itself counted against
	// those sent (they must be equal).
	QemuVersion     string `json:"qemu_version,omitempty"`
	Accelerator     string `json:"accelerator,omitempty"`
	KeysSent        *int   `json:"keys_sent,omitempty"`
	KeysSeenByGuest *int   `json:"keys_seen_by_guest,omitempty"`
	// Host is what the host did to the measurement while it ran: the
	// harness's timer lag, the CPU time of the harness, ryll and QEMU,
	// load, runnable tasks and steal, pooled and per block.
	Host *HostRecord `json:"host,omitempty"`
	// Link is what the link between the client and the console did
	// (LATENCY_LINK; LATENCY_B_LINK for an A/B's B leg): its profile,
	// its connections (every SPICE channel, every port) and, per
	// direction, bytes, reads, writes, the queue's high-water mark, the
	// time bytes stood queued, the longest wait and the time the sender
	// was pushed back (link.Stats). Absent without a link.
	Link *link.Stats `json:"link,omitempty"`
	// ABVerdict is, for a leg of an A/B run, the run's verdict (ABPass,
	// ABFail, ABInconclusive or ABIncomplete; latency-<run>-ab.json says
	// why).
	ABVerdict string `json:"ab_verdict,omitempty"`
	// Errors are the run's error messages, already free of secrets.
	Errors []string `json:"errors"`
	// Files are the base names of every file the run left in the results
	// directory (CSV, sidecar, plot, benchmark file, ryll log).
	Files []string `json:"files,omitempty"`
}

// HostRecord is what the host did to a measurement (package host): the
// figures pooled over every block, each block's own, and the samples
// taken while the harness itself was late.
type HostRecord struct {
	host.Figures
	// Samples is how many samples the record covers; LateSamples how
	// many of them were taken while the harness was late (a timer tick
	// more than host.MaxLagP99 late between the key press and the end
	// of its repaint), LatePresses their press numbers.
	Samples     int   `json:"samples"`
	LateSamples int   `json:"late_samples"`
	LatePresses []int `json:"late_presses,omitempty"`
	// MaxDrawLagS is the largest time from a draw to the harness reading
	// it (measure's max_draw_lag).
	MaxDrawLagS float64 `json:"max_draw_lag_s"`
	// BusyReasons say why the host was too busy to measure to a few
	// milliseconds (host.Figures.Judge and the late samples); empty when
	// it was not.
	BusyReasons []string `json:"busy_reasons,omitempty"`
	// Blocks are the records of each block of an A/B leg, in order.
	Blocks []HostBlock `json:"blocks,omitempty"`
}

// HostBlock is one block's host record.
type HostBlock struct {
	// Block is 1-based.
	Block int `json:"block"`
	host.Figures
	Samples     int      `json:"samples"`
	LateSamples int      `json:"late_samples"`
	LatePresses []int    `json:"late_presses,omitempty"`
	MaxDrawLagS float64  `json:"max_draw_lag_s"`
	BusyReasons []string `json:"busy_reasons,omitempty"`
}

// NewHostBlock records one block: its figures, judged, and which of its
// presses (numbered across the leg) were taken while the harness was
// late. late gives the press numbers; samples counts the block's samples.
func NewHostBlock(block int, f host.Figures, samples int, late []int, maxDrawLag float64) HostBlock {
	b := HostBlock{Block: block, Figures: f, Samples: samples, LateSamples: len(late), LatePresses: late, MaxDrawLagS: maxDrawLag}
	b.BusyReasons = busy(f, samples, len(late))
	return b
}

// NewHostRecord pools the blocks of a leg (or the one stretch of a run)
// into its record, judged over all of them.
func NewHostRecord(blocks ...HostBlock) *HostRecord {
	if len(blocks) == 0 {
		return nil
	}
	figs := make([]host.Figures, len(blocks))
	r := &HostRecord{Blocks: blocks}
	for i, b := range blocks {
		figs[i] = b.Figures
		r.Samples += b.Samples
		r.LateSamples += b.LateSamples
		r.LatePresses = append(r.LatePresses, b.LatePresses...)
		r.MaxDrawLagS = max(r.MaxDrawLagS, b.MaxDrawLagS)
	}
	r.Figures = host.Merge(figs...)
	r.BusyReasons = busy(r.Figures, r.Samples, r.LateSamples)
	return r
}

// busy is the host's own judgement plus the share of samples taken while
// the harness was late.
func busy(f host.Figures, samples, late int) []string {
	why := f.Judge()
	if samples > 0 && float64(late) > host.MaxLateShare*float64(samples) {
		why = append(why, fmt.Sprintf("%d of %d samples were taken while the harness was more than %s late, above %.0f%%",
			late, samples, host.MaxLagP99, 100*host.MaxLateShare))
	}
	return why
}

// Background describes the draws no key caused, observed before the
// first press and in the quiet gaps.
type Background struct {
	Draws     int     `json:"draws"`
	ObservedS float64 `json:"observed_s"`
	RatePerS  float64 `json:"rate_per_s"`
	// Pattern is none, unknown (too few gaps), steady, random or bursty.
	Pattern string  `json:"pattern"`
	GapCV   float64 `json:"gap_cv"`
	// Contamination is the estimated share of samples taken from, or
	// changed by, a draw no key caused.
	Contamination float64 `json:"contamination"`
}

// Activity is a run's record of the guest's own activity: which one, the
// key's region, the draws the client reported in it and outside it (and
// without a rect), and the activity's traffic at a real SPICE client.
type Activity struct {
	// Activity is LATENCY_ACTIVITY: idle, typing, scroll or video.
	Activity string `json:"activity"`
	// KeyRegion is [left, top, right, bottom] in pixels; absent for none.
	KeyRegion []int `json:"key_region,omitempty"`
	// DrawsInKey, DrawsOutside and DrawsNoRect count the draws the
	// client reported during the measurement (DurationS), by where their
	// rect was; the rates are per second. Outside is the activity; with
	// no key region every draw with a rect counts as in it.
	DurationS    float64 `json:"duration_s"`
	DrawsInKey   int     `json:"draws_in_key"`
	DrawsOutside int     `json:"draws_outside"`
	DrawsNoRect  int     `json:"draws_no_rect"`
	InKeyPerS    float64 `json:"draws_in_key_per_s"`
	OutsidePerS  float64 `json:"draws_outside_per_s"`
	NoRectPerS   float64 `json:"draws_no_rect_per_s"`
	// Probe is the activity alone (no key) at a real SPICE client that
	// reads and ACKs the guest's display, before ryll connected; absent
	// for an idle guest, which draws nothing without a key.
	Probe *ActivityProbe `json:"probe,omitempty"`
}

// ActivityProbe is the guest's display traffic at a SPICE client.
type ActivityProbe struct {
	// Client names what read the display.
	Client       string  `json:"client"`
	DurationS    float64 `json:"duration_s"`
	Messages     uint64  `json:"messages"`
	Draws        uint64  `json:"draws"`
	Bytes        uint64  `json:"bytes"`
	MessagesPerS float64 `json:"messages_per_s"`
	DrawsPerS    float64 `json:"draws_per_s"`
	BytesPerS    float64 `json:"bytes_per_s"`
}

// Stall is one stall of the console: the first press it held back, how
// long that press saw no draw, how many presses in a row got none in their
// window, and the late draws of the catch-up burst.
type Stall struct {
	Press     int     `json:"press"`
	DurationS float64 `json:"duration_s"`
	Presses   int     `json:"presses"`
	Draws     int     `json:"draws"`
}

// Sanity records the bounds every sample was checked against and the
// outcome.
type Sanity struct {
	MinS float64 `json:"min_s"`
	MaxS float64 `json:"max_s"`
	// Verdict is VerdictPass or VerdictFail.
	Verdict string `json:"verdict"`
	// OutOfRange lists the samples outside [MinS, MaxS].
	OutOfRange []OutOfRange `json:"out_of_range"`
	// Note explains a failure that OutOfRange does not, e.g. no samples.
	Note string `json:"note,omitempty"`
}

// OutOfRange is one sample outside the sanity bounds.
type OutOfRange struct {
	// Index is 0-based: the sample on line Index+1 of the CSV.
	Index int     `json:"index"`
	Value float64 `json:"value"`
}

// CheckSanity reports whether every sample lies in [min, max] and lists
// those that do not. It is deliberately dumb: a bound set for one metric
// (a keypress takes tens of milliseconds; a ping interval alternates near
// 0 and 15 s) will fail the other, which is the point. An empty input is
// ok (nothing is out of range); use NewSanity for a verdict that also
// fails an empty run. NaN is always out of range; min > max makes every
// sample out of range.
func CheckSanity(samples []float64, min, max float64) (ok bool, outOfRange []OutOfRange) {
	for i, v := range samples {
		if !(v >= min && v <= max) {
			outOfRange = append(outOfRange, OutOfRange{Index: i, Value: v})
		}
	}
	return len(outOfRange) == 0, outOfRange
}

// NewSanity runs CheckSanity and turns it into the sidecar's record. A run
// with no samples fails: a loadtest that measured nothing has not shown
// that latency is sane.
func NewSanity(samples []float64, min, max float64) Sanity {
	ok, bad := CheckSanity(samples, min, max)
	s := Sanity{MinS: min, MaxS: max, Verdict: VerdictPass, OutOfRange: bad}
	switch {
	case len(samples) == 0:
		s.Verdict, s.Note = VerdictFail, "no samples"
	case !ok:
		s.Verdict = VerdictFail
		s.Note = fmt.Sprintf("%d of %d samples outside [%g s, %g s]", len(bad), len(samples), min, max)
	}
	return s
}

// normalized returns a copy ready to encode: nil slices become empty so
// the file always has [] rather than null, times are UTC, and the format
// version and unit are filled in when left zero.
func (s Sidecar) normalized() Sidecar {
	if s.FormatVersion == 0 {
		s.FormatVersion = FormatVersion
	}
	if s.Unit == "" {
		s.Unit = "s"
	}
	if s.Errors == nil {
		s.Errors = []string{}
	}
	if s.Sanity.OutOfRange == nil {
		s.Sanity.OutOfRange = []OutOfRange{}
	}
	s.StartTime = s.StartTime.UTC()
	s.EndTime = s.EndTime.UTC()
	return s
}

// MarshalSidecar encodes s as indented JSON with a trailing newline, in
// the form WriteSidecar stores.
func MarshalSidecar(s Sidecar) ([]byte, error) {
	if err := checkFinite(s); err != nil {
		return nil, fmt.Errorf("encode sidecar for run %q: %w", s.RunID, err)
	}
	b, err := json.MarshalIndent(s.normalized(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode sidecar for run %q: %w", s.RunID, err)
	}
	return append(b, '\n'), nil
}

// checkFinite names the first non-finite float, which encoding/json would
// otherwise reject with a message that does not say which field.
func checkFinite(s Sidecar) error {
	fields := []struct {
		name string
		v    float64
	}{
		{"cadence_s", s.CadenceS}, {"jitter_s", s.JitterS}, {"hold_s", s.HoldS},
		{"window_s", s.WindowS}, {"max_duration_s", s.MaxDurationS},
		{"sanity.min_s", s.Sanity.MinS}, {"sanity.max_s", s.Sanity.MaxS},
		{"summary.min", s.Summary.Min}, {"summary.mean", s.Summary.Mean},
		{"summary.p50", s.Summary.P50}, {"summary.p90", s.Summary.P90},
		{"summary.p95", s.Summary.P95}, {"summary.p99", s.Summary.P99},
		{"summary.max", s.Summary.Max},
	}
	for _, f := range fields {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("field %s is %v, which JSON cannot hold", f.name, f.v)
		}
	}
	for _, o := range s.Sanity.OutOfRange {
		if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) {
			return fmt.Errorf("sanity.out_of_range[index %d] is %v, which JSON cannot hold", o.Index, o.Value)
		}
	}
	return nil
}

// WriteSidecar writes s to path atomically: it writes a temporary file in
// the same directory, syncs it and renames it over path, so a reader (or a
// kill mid-write) never sees half a file. The directory is created if
// needed.
func WriteSidecar(path string, s Sidecar) (err error) {
	b, err := MarshalSidecar(s)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write sidecar %s: create directory: %w", path, err)
	}
	if err := atomicfile.WriteBytes(path, 0o644, b); err != nil {
		return fmt.Errorf("write sidecar %s: %w", path, err)
	}
	return nil
}

// ReadSidecar reads a sidecar written by WriteSidecar. Unknown fields are
// ignored so that newer files stay readable; a missing or newer
// format_version is an error because the fields may mean something else.
func ReadSidecar(path string) (Sidecar, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Sidecar{}, fmt.Errorf("read sidecar: %w", err)
	}
	var s Sidecar
	if err := json.Unmarshal(b, &s); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return Sidecar{}, fmt.Errorf("read sidecar %s: invalid JSON at byte %d: %w", path, syn.Offset, err)
		}
		return Sidecar{}, fmt.Errorf("read sidecar %s: %w", path, err)
	}
	if s.FormatVersion < 1 || s.FormatVersion > FormatVersion {
		return Sidecar{}, fmt.Errorf("read sidecar %s: format_version %d is not supported (this reader knows 1 to %d)", path, s.FormatVersion, FormatVersion)
	}
	return s, nil
}
