package results

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// LoadSuffix ends latency-<run>-load.json; LoadPlotSuffix its curve.
const (
	LoadSuffix     = "-load.json"
	LoadPlotSuffix = "-load.png"
)

// LoadName is the record of a load ramp: latency-<run>-load.json.
func LoadName(run string) string { return FilePrefix + run + LoadSuffix }

// LoadPlotName is the curve of a load ramp: latency-<run>-load.png.
func LoadPlotName(run string) string { return FilePrefix + run + LoadPlotSuffix }

// LoadFormatVersion is the format of latency-<run>-load.json. 2 added
// the overloaded step (Load.Overloaded, LoadStep.Failure, Overloaded,
// NotRun) and the verdict "overloaded"; a format 1 record reads as one
// without them.
const LoadFormatVersion = 2

// loadFormatsRead are the formats ReadLoad reads.
var loadFormatsRead = []int{1, LoadFormatVersion}

// Load is the latency-<run>-load.json file: the measured console's two
// keypress figures at each step of busy sessions beside it, what the
// sessions moved through the proxy and what each process cost, the knee
// and the verdict. Durations are float seconds in fields ending in _s.
type Load struct {
	FormatVersion int    `json:"format_version"`
	RunID         string `json:"run_id"`
	// Lane is "simulated" when fakeryll's simulator measured.
	Lane string `json:"lane,omitempty"`
	// Console is a secret-free description of the measured console.
	Console string `json:"console"`
	// Source makes the busy sessions (synthetic, qemu); Activity is
	// what their displays do; RateBitsPerS each synthetic session's
	// display rate.
	Source       string `json:"source"`
	Activity     string `json:"activity"`
	RateBitsPerS int64  `json:"rate_bits_per_s"`
	// Proxy is the proxy under test (LATENCY_PROXY), in front of the
	// measured console and every busy session.
	Proxy string `json:"proxy"`
	// Rounds is how many interleaved rounds over the steps the ramp
	// took; SamplesPerStep what each step was to take in all.
	Rounds         int `json:"rounds"`
	SamplesPerStep int `json:"samples_per_step"`
	// Order is the sessions of each block, in the order taken.
	Order []int `json:"order"`
	// MaxAddedS is LATENCY_LOAD_MAX_ADDED; Target LATENCY_LOAD_TARGET
	// (absent when unset).
	MaxAddedS  float64 `json:"max_added_s"`
	Target     *int    `json:"target,omitempty"`
	Confidence float64 `json:"confidence"`
	// Cores are the host's CPUs.
	Cores int        `json:"cores"`
	Steps []LoadStep `json:"steps"`
	// Knee is the sessions of the first step whose repaint p95 is proven
	// above the baseline's by MaxAddedS; null when none is.
	Knee *int `json:"knee"`
	// Overloaded is the sessions of the lowest step the proxy could not
	// carry (the measured console could not be measured there, on a
	// host that kept up): the knee is at or below it. Absent when none.
	Overloaded *int `json:"overloaded,omitempty"`
	// Verdict is no-knee, knee, overloaded, host-bound or inconclusive
	// (package ramp); Fails whether the run fails; Reasons say it in
	// words.
	Verdict string   `json:"verdict"`
	Fails   bool     `json:"fails"`
	Reasons []string `json:"reasons,omitempty"`
	// Errors are what ended the ramp early or went wrong on the way.
	Errors []string `json:"errors,omitempty"`
	// Plot is the curve, latency-<run>-load.png; Sidecar the measured
	// console's own sidecar (its CSV and presses as any run's).
	Plot    string `json:"plot,omitempty"`
	Sidecar string `json:"sidecar"`
}

// LoadStep is one step of a ramp, over all its blocks.
type LoadStep struct {
	Sessions int `json:"sessions"`
	Blocks   int `json:"blocks"`
	// FirstDraw and Repaint are the two keypress figures.
	FirstDraw LoadFigure `json:"keypress_to_screen"`
	Repaint   LoadFigure `json:"keypress_to_repaint"`
	// Misses are presses without a draw in the window; Suspects presses
	// whose draws may not be theirs (not samples).
	Misses   int `json:"misses"`
	Suspects int `json:"suspects"`
	// P95AddedS is the repaint p95 less the baseline's, P95AddedCIS its
	// bootstrap interval; Above marks a step proven above MaxAddedS,
	// Within one proven below it; TooFew one too short to judge.
	P95AddedS   float64    `json:"p95_added_s"`
	P95AddedCIS [2]float64 `json:"p95_added_ci_s"`
	Above       bool       `json:"above"`
	Within      bool       `json:"within"`
	TooFew      bool       `json:"too_few_samples"`
	// BytesPerS and MessagesPerS are the display traffic the busy
	// sessions' clients read through the proxy, per second of the
	// step's blocks; AckWaitS the time their servers were stopped by
	// the ACK window.
	BytesPerS    float64 `json:"bytes_per_s"`
	MessagesPerS float64 `json:"messages_per_s"`
	AckWaitS     float64 `json:"ack_wait_s"`
	// SecondsMeasured is the time the step's blocks took.
	SecondsMeasured float64 `json:"seconds"`
	// CPU is each role's usage over the step: proxy, qemu, harness,
	// generator, ryll.
	CPU []LoadCPU `json:"cpu"`
	// LoadCores is the cores everything but the proxy took; Saturated
	// why the host saturated during the step ("" when it did not).
	LoadCores float64 `json:"load_cores"`
	Saturated string  `json:"saturated,omitempty"`
	// Host is what the host did during each of the step's blocks.
	Host *HostRecord `json:"host,omitempty"`
	// Failure is why a block of the step failed because of its load:
	// the measured console could not be measured with that many
	// sessions ("" when none did); FailureError that block's error in
	// full. Overloaded says the host kept up during it, so the proxy
	// could not carry the step; without it the host was saturated and
	// the ramp is host-bound. A failed step is not judged against the
	// margin.
	Failure      string `json:"failure,omitempty"`
	FailureError string `json:"failure_error,omitempty"`
	Overloaded   bool   `json:"overloaded,omitempty"`
	// NotRun says some or all of the step's blocks were not taken: it
	// or a step below it failed at its load, and load only grows.
	NotRun bool `json:"not_run,omitempty"`
}

// LoadFigure is one keypress figure at one step: percentiles with
// bootstrap intervals.
type LoadFigure struct {
	Samples int        `json:"samples"`
	P50S    float64    `json:"p50_s"`
	P95S    float64    `json:"p95_s"`
	P99S    float64    `json:"p99_s"`
	P50CIS  [2]float64 `json:"p50_ci_s"`
	P95CIS  [2]float64 `json:"p95_ci_s"`
	P99CIS  [2]float64 `json:"p99_ci_s"`
}

// LoadCPU is one role's processes' usage over a step.
type LoadCPU struct {
	Role string `json:"role"`
	// CPUS is user plus system time; CoreShare CPUS over the step's
	// time (1 is a core busy all along); RSSBytes the resident memory
	// at the step's end (0 when unknown).
	CPUS      float64 `json:"cpu_s"`
	CoreShare float64 `json:"core_share"`
	RSSBytes  int64   `json:"rss_bytes,omitempty"`
}

// WriteLoad writes latency-<run>-load.json atomically.
func WriteLoad(path string, l Load) error {
	l.FormatVersion = LoadFormatVersion
	return writeRecord(path, "the load ramp", l)
}

// ReadLoad reads a file written by WriteLoad.
func ReadLoad(path string) (Load, error) {
	var l Load
	if err := readRecord(path, "the load ramp", &l); err != nil {
		return Load{}, err
	}
	if !slices.Contains(loadFormatsRead, l.FormatVersion) {
		return Load{}, fmt.Errorf("read the load ramp %s: format_version %d is not supported (this reader knows %v)", path, l.FormatVersion, loadFormatsRead)
	}
	return l, nil
}

// WriteLoadTable prints the ramp for the console and the CI log: one
// row per step, then the verdict.
func WriteLoadTable(w io.Writer, l Load) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rate := bitRate(l.RateBitsPerS) + " each"
	if l.RateBitsPerS == 0 {
		rate = "each at its own rate" // busy servers: what their image draws
	}
	fmt.Fprintf(tw, "load ramp\t%s: %s busy sessions (%s, %s) beside the measured console, all through the proxy %s; %d rounds, knee margin %.1f ms\n",
		l.RunID, l.Source, l.Activity, rate, l.Proxy, l.Rounds, 1000*l.MaxAddedS)
	fmt.Fprintf(tw, "sessions\tsamples\tfirst p50\tp95\trepaint p50\tp95\tp95 added [%.0f%% CI]\tmisses\tMB/s\tCPU (cores)\thost\n", 100*l.Confidence)
	failedBelow := false // a step below this one failed at its load
	for i, s := range l.Steps {
		added := fmt.Sprintf("%+.1f [%+.1f, %+.1f]", 1000*s.P95AddedS, 1000*s.P95AddedCIS[0], 1000*s.P95AddedCIS[1])
		switch {
		case i == 0:
			added = "baseline"
		case s.Overloaded:
			added = "OVERLOADED"
		case s.Failure != "":
			added = "failed, host saturated"
		case s.NotRun && s.Blocks == 0:
			added = "not run"
		case s.NotRun:
			added = "not run in full"
		case failedBelow:
			added = "not judged (above a failed step)"
		case s.TooFew:
			added = "too few samples"
		}
		var cpu []string
		for _, c := range s.CPU {
			cpu = append(cpu, fmt.Sprintf("%s %.2f", c.Role, c.CoreShare))
		}
		hostCol := "ok"
		switch {
		case s.Saturated != "":
			hostCol = "SATURATED"
		case s.Blocks == 0:
			hostCol = "-"
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%d\t%.2f\t%s\t%s\n", s.Sessions, s.Repaint.Samples,
			1000*s.FirstDraw.P50S, 1000*s.FirstDraw.P95S, 1000*s.Repaint.P50S, 1000*s.Repaint.P95S, added, s.Misses,
			s.BytesPerS/1e6, strings.Join(cpu, ", "), hostCol)
		failedBelow = failedBelow || s.Failure != ""
	}
	for _, s := range l.Steps {
		switch {
		case s.Overloaded:
			fmt.Fprintf(tw, "%d sessions\toverloaded: %s\n", s.Sessions, oneLine(s.Failure))
		case s.Failure != "":
			fmt.Fprintf(tw, "%d sessions\tfailed on a saturated host (host-bound, not the proxy): %s\n", s.Sessions, oneLine(s.Failure))
		}
	}
	knee := "none"
	switch {
	case l.Knee != nil:
		knee = fmt.Sprintf("%d sessions", *l.Knee)
	case l.Overloaded != nil:
		knee = fmt.Sprintf("at or below %d sessions (the proxy could not carry %d; no step above it was run)", *l.Overloaded, *l.Overloaded)
	}
	fmt.Fprintf(tw, "knee\t%s\n", knee)
	verdict := l.Verdict
	if len(l.Reasons) > 0 {
		verdict += ": " + strings.Join(l.Reasons, "; ")
	}
	fmt.Fprintf(tw, "ramp verdict\t%s\n", oneLine(verdict))
	for _, e := range l.Errors {
		fmt.Fprintf(tw, "ramp error\t%s\n", oneLine(e))
	}
	return tw.Flush()
}

// bitRate prints bits per second as people write them.
func bitRate(b int64) string {
	switch {
	case b >= 1_000_000 && b%1_000_000 == 0:
		return fmt.Sprintf("%dmbit", b/1_000_000)
	case b >= 1000 && b%1000 == 0:
		return fmt.Sprintf("%dkbit", b/1000)
	}
	return fmt.Sprintf("%dbit", b)
}
