package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/shakenfist/kerbside-latency/harness/atomicfile"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// RunSummaryFormatVersion is the run summary format written by this
// package. As with FormatVersion, bump it when a field changes meaning or
// is removed; adding a field does not need a bump.
const RunSummaryFormatVersion = 1

// PooledRowLabel labels the row of the summary table that pools every
// console's samples.
const PooledRowLabel = "pooled"

// ConsoleRun is what BuildRunSummary needs of one console: its sidecar
// and its samples. The samples are passed separately, rather than taken
// from the sidecar's summary, because the CSV (or the loadtest's memory)
// is the truth: a sidecar may have been written before the last samples,
// and the pooled figures need the samples themselves.
type ConsoleRun struct {
	// Label names the console in the summary, e.g. "c0" or "p3-c1". An
	// empty label becomes "c<index>".
	Label string
	// Sidecar is the console's own sidecar.
	Sidecar Sidecar
	// Samples are the console's latencies in seconds, in the order taken.
	Samples []float64
}

// RunSummary is the latency-<run>-summary.json file: one row per console
// of a run with several consoles (or of several runs or pods merged),
// the figures of all samples pooled, and which consoles failed. It lets a
// reader judge a whole load test from one file, while each console's
// sidecar and CSV stay the detailed record. JSON field names are part of
// the file format and must not change.
type RunSummary struct {
	FormatVersion int `json:"format_version"`
	// RunID is the <run> shared by the consoles' run ids (or "merged").
	RunID string `json:"run_id"`
	// Metric is what every console measured; a summary never mixes two.
	Metric string `json:"metric"`
	// Unit of every value in the summaries; always "s".
	Unit string `json:"unit"`
	// CreatedTime is when the summary was built, RFC 3339 in UTC.
	CreatedTime time.Time `json:"created_time"`
	// Consoles holds one row per console, in the order given.
	Consoles []ConsoleSummary `json:"consoles"`
	// Pooled describes all consoles' samples taken together.
	Pooled PooledSummary `json:"pooled"`
	// Failed lists the labels of the consoles whose Failed is true.
	Failed []string `json:"failed"`
}

// ConsoleSummary is one console's row of a RunSummary.
type ConsoleSummary struct {
	// Label names the console in tables and plots.
	Label string `json:"label"`
	// RunID is the console's own run id, the <run> of its files.
	RunID string `json:"run_id"`
	// CSVFile and SidecarFile are the base names of the console's files.
	CSVFile     string `json:"csv_file"`
	SidecarFile string `json:"sidecar_file"`
	Provider    string `json:"provider"`

	SamplesRequested int `json:"samples_requested"`
	// SamplesCollected is the number of samples the summary was built
	// from (the CSV's lines), which wins over the sidecar's count.
	SamplesCollected int    `json:"samples_collected"`
	Misses           int    `json:"misses"`
	DroppedEvents    int    `json:"dropped_events"`
	StopReason       string `json:"stop_reason"`

	// Link is the profile of the console's link (LATENCY_LINK), as the
	// sidecar records it; empty without one.
	Link string `json:"link,omitempty"`

	// Summary is computed from the samples, not copied from the sidecar.
	Summary stats.Summary `json:"summary"`
	// SanityVerdict is the sidecar's verdict (VerdictPass or VerdictFail).
	SanityVerdict string `json:"sanity_verdict"`
	// Errors are the sidecar's error messages.
	Errors []string `json:"errors"`
	// Notes are discrepancies worth a reader's attention that do not fail
	// the console, e.g. a CSV with fewer lines than the sidecar counted.
	Notes []string `json:"notes,omitempty"`
	// Failed says the console's result cannot be trusted on its own. Its
	// samples still count in the pooled figures.
	Failed bool `json:"failed"`
	// FailReasons says why Failed is set, one reason per entry.
	FailReasons []string `json:"fail_reasons,omitempty"`
}

// PooledSummary describes every console's samples taken together.
type PooledSummary struct {
	Summary stats.Summary `json:"summary"`
	// Samples is the total number of samples (Summary.Count).
	Samples          int `json:"samples"`
	SamplesRequested int `json:"samples_requested"`
	Misses           int `json:"misses"`
	DroppedEvents    int `json:"dropped_events"`
}

// BuildRunSummary summarises the consoles of run runID. It refuses an
// invalid run id, no consoles, a console without a metric or run id, two
// metrics in one summary (pooling a keypress latency with a PING interval
// would be meaningless), duplicate labels or run ids (the same console
// counted twice), and samples that are not finite.
//
// A console fails when its sidecar records an error, its stop reason is
// "error", its sanity verdict is not "pass", or it has no samples. A
// failed console is listed in Failed, but its samples still count in the
// pooled figures: they are real measurements, and leaving them out would
// hide what the failing console saw.
func BuildRunSummary(runID string, consoles []ConsoleRun) (RunSummary, error) {
	if err := ValidateRunID(runID); err != nil {
		return RunSummary{}, fmt.Errorf("build run summary: %w", err)
	}
	if len(consoles) == 0 {
		return RunSummary{}, fmt.Errorf("build run summary of run %q: no consoles given", runID)
	}
	rs := RunSummary{
		FormatVersion: RunSummaryFormatVersion,
		RunID:         runID,
		Unit:          "s",
		CreatedTime:   time.Now().UTC(),
		Consoles:      make([]ConsoleSummary, 0, len(consoles)),
		Failed:        []string{},
	}
	labels := map[string]int{}
	runIDs := map[string]int{}
	var pooled []float64
	for i, c := range consoles {
		sc := c.Sidecar
		label := strings.TrimSpace(c.Label)
		if label == "" {
			label = fmt.Sprintf("c%d", i)
		}
		where := fmt.Sprintf("build run summary of run %q: console %d (%s)", runID, i, label)
		if strings.ContainsAny(label, "\r\n\t") {
			return RunSummary{}, fmt.Errorf("%s: label must be one line without tabs", where)
		}
		if j, dup := labels[label]; dup {
			return RunSummary{}, fmt.Errorf("%s: label %q is also console %d's", where, label, j)
		}
		labels[label] = i
		if sc.RunID == "" {
			return RunSummary{}, fmt.Errorf("%s: sidecar has no run id", where)
		}
		if j, dup := runIDs[sc.RunID]; dup {
			return RunSummary{}, fmt.Errorf("%s: run id %q is also console %d's: the same console would be counted twice", where, sc.RunID, j)
		}
		runIDs[sc.RunID] = i
		metric := strings.TrimSpace(sc.Metric)
		switch {
		case metric == "":
			return RunSummary{}, fmt.Errorf("%s: sidecar of run %q names no metric, so it cannot be pooled with anything", where, sc.RunID)
		case rs.Metric == "":
			rs.Metric = metric
		case metric != rs.Metric:
			return RunSummary{}, fmt.Errorf("%s: metric %q differs from %q of console %d: refusing to pool different metrics", where, metric, rs.Metric, 0)
		}
		for j, v := range c.Samples {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return RunSummary{}, fmt.Errorf("%s: sample %d is %v, not a finite number of seconds", where, j, v)
			}
		}
		for _, n := range []struct {
			name string
			v    int
		}{{"samples_requested", sc.SamplesRequested}, {"misses", sc.Misses}, {"dropped_events", sc.DroppedEvents}} {
			if n.v < 0 {
				return RunSummary{}, fmt.Errorf("%s: negative %s %d", where, n.name, n.v)
			}
		}

		row := consoleRow(label, sc, c.Samples)
		if row.Failed {
			rs.Failed = append(rs.Failed, label)
		}
		rs.Consoles = append(rs.Consoles, row)
		pooled = append(pooled, c.Samples...)
		rs.Pooled.SamplesRequested += sc.SamplesRequested
		rs.Pooled.Misses += sc.Misses
		rs.Pooled.DroppedEvents += sc.DroppedEvents
	}
	rs.Pooled.Summary = stats.Summarize(pooled)
	rs.Pooled.Samples = rs.Pooled.Summary.Count
	return rs, nil
}

// consoleRow builds one console's row and decides whether it failed.
func consoleRow(label string, sc Sidecar, samples []float64) ConsoleSummary {
	csv := sc.CSVFile
	if csv == "" {
		csv = CSVName(sc.RunID)
	}
	row := ConsoleSummary{
		Label:            label,
		RunID:            sc.RunID,
		CSVFile:          csv,
		SidecarFile:      SidecarName(sc.RunID),
		Provider:         sc.Provider,
		SamplesRequested: sc.SamplesRequested,
		SamplesCollected: len(samples),
		Misses:           sc.Misses,
		DroppedEvents:    sc.DroppedEvents,
		StopReason:       sc.StopReason,
		Summary:          stats.Summarize(samples),
		SanityVerdict:    sc.Sanity.Verdict,
		Errors:           append([]string{}, sc.Errors...),
	}
	if sc.Link != nil {
		row.Link = sc.Link.Profile.String()
	}
	if sc.SamplesCollected != len(samples) {
		row.Notes = append(row.Notes, fmt.Sprintf("sidecar counts %d samples collected but %d were read (the CSV is the truth)", sc.SamplesCollected, len(samples)))
	}
	var why []string
	if len(sc.Errors) > 0 {
		why = append(why, fmt.Sprintf("%d error(s): %s", len(sc.Errors), oneLine(strings.Join(sc.Errors, "; "))))
	}
	if sc.StopReason == StopError && len(sc.Errors) == 0 {
		why = append(why, "stopped on an error")
	}
	if len(samples) == 0 {
		why = append(why, "no samples")
	}
	switch sc.Sanity.Verdict {
	case VerdictPass:
	case VerdictFail:
		if len(samples) == 0 && sc.Sanity.Note == "no samples" {
			break // already said
		}
		reason := "sanity check failed"
		if sc.Sanity.Note != "" {
			reason += ": " + oneLine(sc.Sanity.Note)
		}
		why = append(why, reason)
	case "":
		why = append(why, "no sanity verdict")
	default:
		why = append(why, fmt.Sprintf("unknown sanity verdict %q", sc.Sanity.Verdict))
	}
	row.Failed = len(why) > 0
	row.FailReasons = why
	return row
}

// oneLine flattens s so that a message cannot break a table's alignment.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ").Replace(s)
}

// normalized returns a copy ready to encode: nil slices become empty so
// the file has [] rather than null, and zero fields get their defaults.
func (rs RunSummary) normalized() RunSummary {
	if rs.FormatVersion == 0 {
		rs.FormatVersion = RunSummaryFormatVersion
	}
	if rs.Unit == "" {
		rs.Unit = "s"
	}
	if rs.Failed == nil {
		rs.Failed = []string{}
	}
	consoles := make([]ConsoleSummary, len(rs.Consoles))
	for i, c := range rs.Consoles {
		if c.Errors == nil {
			c.Errors = []string{}
		}
		consoles[i] = c
	}
	rs.Consoles = consoles
	rs.CreatedTime = rs.CreatedTime.UTC()
	return rs
}

// MarshalRunSummary encodes rs as indented JSON with a trailing newline,
// in the form WriteRunSummary stores.
func MarshalRunSummary(rs RunSummary) ([]byte, error) {
	b, err := json.MarshalIndent(rs.normalized(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode run summary of run %q: %w", rs.RunID, err)
	}
	return append(b, '\n'), nil
}

// WriteRunSummary writes rs to path atomically (a temporary file in the
// same directory, synced and renamed over path), so a reader or a kill
// mid-write never leaves half a summary. The directory is created if
// needed.
func WriteRunSummary(path string, rs RunSummary) error {
	b, err := MarshalRunSummary(rs)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, 0o644, b); err != nil {
		return fmt.Errorf("write run summary %s: %w", path, err)
	}
	return nil
}

// ReadRunSummary reads a file written by WriteRunSummary. Unknown fields
// are ignored so newer files stay readable; a missing or newer
// format_version is an error because the fields may mean something else.
func ReadRunSummary(path string) (RunSummary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return RunSummary{}, fmt.Errorf("read run summary: %w", err)
	}
	var rs RunSummary
	if err := json.Unmarshal(b, &rs); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return RunSummary{}, fmt.Errorf("read run summary %s: invalid JSON at byte %d: %w", path, syn.Offset, err)
		}
		return RunSummary{}, fmt.Errorf("read run summary %s: %w", path, err)
	}
	if rs.FormatVersion < 1 || rs.FormatVersion > RunSummaryFormatVersion {
		return RunSummary{}, fmt.Errorf("read run summary %s: format_version %d is not supported (this reader knows 1 to %d)", path, rs.FormatVersion, RunSummaryFormatVersion)
	}
	return rs, nil
}

// WriteRunSummaryTable prints rs as an aligned table for the console and
// the CI log: a heading line, one row per console and a pooled row, with
// latencies in milliseconds, then one line per failed console saying
// why. Values that do not exist (no samples) print as "-".
func WriteRunSummaryTable(w io.Writer, rs RunSummary) error {
	rs = rs.normalized()
	fail := func(err error) error { return fmt.Errorf("write summary table of run %q: %w", rs.RunID, err) }
	nFailed := len(rs.Failed)
	if _, err := fmt.Fprintf(w, "run %s: %s (%s), %d console(s), %d failed\n", rs.RunID, rs.Metric, rs.Unit, len(rs.Consoles), nFailed); err != nil {
		return fail(err)
	}
	rows := [][]string{{"console", "samples", "misses", "dropped", "min ms", "mean ms", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "sanity", "stop", "status"}}
	for _, c := range rs.Consoles {
		status := "ok"
		if c.Failed {
			status = "FAILED"
		}
		rows = append(rows, append(append([]string{oneLine(c.Label), fmt.Sprintf("%d/%d", c.SamplesCollected, c.SamplesRequested),
			fmt.Sprint(c.Misses), fmt.Sprint(c.DroppedEvents)}, msCells(c.Summary)...),
			dash(c.SanityVerdict), dash(c.StopReason), status))
	}
	p := rs.Pooled
	status := "ok"
	if nFailed > 0 {
		status = fmt.Sprintf("%d failed", nFailed)
	}
	rows = append(rows, append(append([]string{PooledRowLabel, fmt.Sprintf("%d/%d", p.Samples, p.SamplesRequested),
		fmt.Sprint(p.Misses), fmt.Sprint(p.DroppedEvents)}, msCells(p.Summary)...),
		"-", "-", status))
	// Numbers are right-aligned by the tabwriter; the text columns (the
	// first and the last three) are padded here so they read left-aligned.
	leftAligned := []int{0, 11, 12, 13}
	for _, col := range leftAligned {
		width := 0
		for _, r := range rows {
			width = max(width, utf8.RuneCountInString(r[col]))
		}
		for _, r := range rows {
			r[col] += strings.Repeat(" ", width-utf8.RuneCountInString(r[col]))
		}
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range rows {
		// AlignRight pads a cell on its left, and only cells ended by a
		// tab are aligned, so every cell, the last one too, ends with one.
		fmt.Fprint(tw, strings.Join(r, "\t")+"\t\n")
	}
	if err := tw.Flush(); err != nil {
		return fail(err)
	}
	// The padding of the left-aligned last column trails, and every line
	// starts with the first column's padding: trim both.
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if l == "" {
			continue
		}
		l = strings.TrimRight(strings.TrimPrefix(l, "  "), " \n") + "\n"
		if _, err := io.WriteString(w, l); err != nil {
			return fail(err)
		}
	}
	for _, c := range rs.Consoles {
		var err error
		if c.Link != "" {
			_, err = fmt.Fprintf(w, "link %s (run %s): %s\n", oneLine(c.Label), c.RunID, oneLine(c.Link))
		}
		if c.Failed && err == nil {
			_, err = fmt.Fprintf(w, "FAILED %s (run %s): %s\n", oneLine(c.Label), c.RunID, oneLine(strings.Join(c.FailReasons, "; ")))
		}
		for _, n := range c.Notes {
			if err == nil {
				_, err = fmt.Fprintf(w, "note %s (run %s): %s\n", oneLine(c.Label), c.RunID, oneLine(n))
			}
		}
		if err != nil {
			return fail(err)
		}
	}
	return nil
}

// msCells formats a summary's seven figures in milliseconds.
func msCells(s stats.Summary) []string {
	vals := []float64{s.Min, s.Mean, s.P50, s.P90, s.P95, s.P99, s.Max}
	out := make([]string, len(vals))
	for i, v := range vals {
		if s.Count == 0 {
			out[i] = "-"
			continue
		}
		out[i] = fmt.Sprintf("%.3f", v*1000)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return oneLine(s)
}
