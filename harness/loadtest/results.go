package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/console"
	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// Sidecar builds the JSON sidecar of a run from what Setup and Measure
// found. m may be nil (the run never measured); runErrs are the run's
// errors, which are scrubbed of every known secret before they are kept.
func (r *Session) Sidecar(m *Measurement, end time.Time, runErrs ...error) results.Sidecar {
	cfg := r.Cfg
	s := results.Sidecar{
		RunID:                    cfg.RunID,
		Metric:                   string(r.Metric()),
		MetricDefinition:         r.Metric().Definition(),
		Unit:                     "s",
		CSVFile:                  results.CSVName(cfg.RunID),
		Scancode:                 fmt.Sprintf("0x%02X", cfg.Scancode),
		ProtocolVersionRequested: control.ProtocolVersion,
		ProtocolVersionAnswered:  r.Hello.ProtocolVersion,
		ServerName:               r.Hello.ServerName,
		Provider:                 string(cfg.Requested),
		RyllBinary:               r.RyllBinary,
		RyllVersion:              secret.NewRedactor(io.Discard, r.Secrets()...).Scrub(r.RyllVersion),
		StartTime:                r.Start,
		EndTime:                  end,
		StopReason:               string(measure.StopError),
	}
	if r.Lane.Client != "" { // unknown when the run stopped before it was wired
		s.Lane, s.Client = r.Lane.Name(), r.Lane.Client
	}
	if r.Console != nil {
		s.QemuVersion, s.Accelerator = r.Console.QemuVersion, r.Console.Accelerator
		s.CloudServerName, s.CloudServerID = r.Console.ServerName, r.Console.ServerID
		s.Link = r.Console.LinkStats() // what the link did, every block of a leg
	}
	if !cfg.Measure.Metric.Keypress() {
		s.Scancode = ""
	}
	st := settings(cfg.Measure)
	var values []float64
	if m != nil {
		res := m.Result
		values = res.Values()
		s.SamplesCollected = len(res.Samples)
		s.Misses = len(res.Misses)
		s.UnpairedDraws = res.UnpairedDraws
		s.DroppedEvents = res.Dropped
		s.KeyErrors = res.KeyErrors
		st.Seed = res.Config.Seed
		s.StopReason = string(res.StopReason)
		if cfg.Measure.Metric.Keypress() {
			keypressRecord(&s, m)
			s.Activity = r.activityRecord(m)
		}
		if m.Host != nil {
			s.Host = results.NewHostRecord(*m.Host)
		}
		if m.KeysCounted {
			sent, seen := m.KeysSent, m.KeysSeen
			s.KeysSent, s.KeysSeenByGuest = &sent, &seen
		}
		if m.LocalDropped > 0 {
			runErrs = append(runErrs, fmt.Errorf("the loadtest fell behind and dropped %d events itself", m.LocalDropped))
		}
		if m.Malformed > 0 {
			runErrs = append(runErrs, fmt.Errorf("%d lines or events from ryll could not be decoded (skipped; a dropped event among them still made its press suspect)", m.Malformed))
		}
	}
	if m == nil {
		// Nothing was measured: a run stopped by SIGINT/SIGTERM (its
		// context cancelled) during setup was interrupted, not broken.
		for _, err := range runErrs {
			if errors.Is(err, context.Canceled) {
				s.StopReason = string(measure.StopInterrupted)
				break
			}
		}
	}
	s.SetSettings(st)
	s.Summary = stats.Summarize(values)
	s.Sanity = results.NewSanity(values, cfg.SanityMin, cfg.SanityMax)
	red := secret.NewRedactor(io.Discard, r.Secrets()...)
	for _, err := range runErrs {
		if err != nil {
			s.Errors = append(s.Errors, red.Scrub(err.Error()))
		}
	}
	return s
}

// settings are what the sidecar records of the run's one measurement
// configuration.
func settings(mc measure.Config) results.Settings {
	return results.Settings{
		Keypress: mc.Metric.Keypress(), Samples: mc.Samples,
		Cadence: mc.Cadence, Jitter: mc.Jitter, Hold: mc.Hold, Window: mc.Window, MaxDuration: mc.MaxDuration,
		Quiet: mc.Quiet, Settle: mc.Settle, MaxMisses: mc.MaxMisses, MaxContamination: mc.MaxContamination,
	}
}

// keypressRecord fills the sidecar's record of a keypress run: both
// figures, the presses and their verdicts, the background (the rules
// are among the settings).
func keypressRecord(s *results.Sidecar, m *Measurement) {
	res := m.Result
	first, repaint := res.FirstDraw, res.Repaint
	s.FirstDraw, s.Repaint = &first, &repaint
	s.Presses = len(res.Presses)
	s.LatePresses = res.Count(measure.VerdictLate)
	s.Suspects = res.Suspects
	s.LateDraws = res.LateDraws
	s.QuietDelayed = res.QuietDelayed
	s.QuietWaitS = res.QuietWait.Seconds()
	b := res.Background
	s.Background = &results.Background{
		Draws: b.Draws, ObservedS: b.Observed.Seconds(), RatePerS: b.Rate,
		Pattern: string(b.Pattern), GapCV: b.GapCV, Contamination: b.Contamination,
	}
	for _, st := range res.Stalls {
		s.Stalls = append(s.Stalls, results.Stall{Press: st.Press, DurationS: st.Duration.Seconds(), Presses: st.Presses, Draws: st.Draws})
	}
	if m.PressesPath != "" {
		s.PressesFile = filepath.Base(m.PressesPath)
	}
}

// activityRecord is the sidecar's record of the guest's own activity,
// for a run with an activity or a key region (nil otherwise: nothing to
// say that the background does not).
func (r *Session) activityRecord(m *Measurement) *results.Activity {
	res := m.Result
	a := res.Activity
	var probe *console.ActivityProbe
	if r.Console != nil {
		probe = r.Console.ActivityProbe
	}
	activity := r.Cfg.Activity
	if (activity == "" || activity == guest.ActivityIdle) && a.KeyRegion.IsZero() && probe == nil {
		return nil
	}
	d := res.End.Sub(res.Start).Seconds()
	in, out, none := a.Rates(d)
	rec := &results.Activity{Activity: activity, DurationS: d, DrawsInKey: a.InKey, DrawsOutside: a.Outside, DrawsNoRect: a.NoRect,
		InKeyPerS: in, OutsidePerS: out, NoRectPerS: none}
	if r := a.KeyRegion; !r.IsZero() {
		rec.KeyRegion = []int{r.Left, r.Top, r.Right, r.Bottom}
	}
	if probe != nil {
		rec.Probe = &results.ActivityProbe{Client: "harness/loadgen Client (reads and ACKs every display message)",
			DurationS: probe.Duration.Seconds(), Messages: probe.Messages, Draws: probe.Draws, Bytes: probe.Bytes,
			MessagesPerS: probe.MessagesPerS(), DrawsPerS: probe.DrawsPerS(), BytesPerS: probe.BytesPerS()}
	}
	return rec
}

// Files names the files a run leaves in the results directory, for the
// summary.
type Files struct {
	CSV, Presses, Sidecar, Plot, Bench, RyllLog, QemuLog, Transcript string
}

// WriteResults writes the sidecar, the plot and the benchmark file next
// to the CSV, and prints the summary table to w. It writes as much as it
// can: one failing file does not stop the others. The sidecar it returns
// is the one written: its file list names only files that exist, and
// every failure to write one is among its errors.
func (r *Session) WriteResults(w io.Writer, m *Measurement, s results.Sidecar) (Files, results.Sidecar, error) {
	return r.writeResults(w, m, s, true)
}

// writeResults is WriteResults, with the plot left out when plot is
// false (a console of a large run: Fleet.WriteResults).
func (r *Session) writeResults(w io.Writer, m *Measurement, s results.Sidecar, plot bool) (Files, results.Sidecar, error) {
	dir := r.Cfg.ResultsDir
	f := Files{
		CSV:     filepath.Join(dir, results.CSVName(r.Cfg.RunID)),
		Sidecar: filepath.Join(dir, results.SidecarName(r.Cfg.RunID)),
		RyllLog: r.RyllLog,
	}
	var errs []error
	if m != nil && len(m.Result.Samples) > 0 {
		title := results.TitleFor(s.Lane, fmt.Sprintf("%s, run %s (%s)", s.Metric, r.Cfg.RunID, r.Cfg.Requested))
		info := results.BenchInfo{RunID: r.Cfg.RunID, Metric: s.Metric, Provider: string(r.Cfg.Requested), Misses: s.Misses}
		if s.Lane != "" {
			info.Extra = map[string]string{results.ConfigLane: s.Lane}
		}
		var err error
		plotPath := filepath.Join(dir, results.PlotName(r.Cfg.RunID))
		if !plot {
			plotPath = ""
		}
		f.Plot, f.Bench, err = results.WritePlotAndBench(plotPath,
			filepath.Join(dir, results.BenchFileName(r.Cfg.RunID)), title, info, r.series(m))
		if err != nil {
			errs = append(errs, err)
		}
	}
	if m == nil || !exists(f.CSV) {
		f.CSV = ""
	}
	if m != nil && exists(m.PressesPath) {
		f.Presses = m.PressesPath
	} else {
		s.PressesFile = ""
	}
	if !exists(f.RyllLog) {
		f.RyllLog = ""
	}
	if r.Console != nil && exists(r.Console.QemuLog) {
		f.QemuLog = r.Console.QemuLog
	}
	if p := filepath.Join(dir, results.TranscriptName(r.Cfg.RunID)); r.Cfg.Transcript && exists(p) {
		f.Transcript = p
	}
	red := secret.NewRedactor(io.Discard, r.Secrets()...)
	for _, err := range errs {
		s.Errors = append(s.Errors, red.Scrub(err.Error()))
	}
	s.Files = nil
	for _, p := range []string{f.CSV, f.Presses, f.Sidecar, f.Plot, f.Bench, f.RyllLog, f.QemuLog, f.Transcript} {
		if p != "" {
			s.Files = append(s.Files, filepath.Base(p))
		}
	}
	if err := results.WriteSidecar(f.Sidecar, s); err != nil {
		errs = append(errs, fmt.Errorf("sidecar: %w", err))
		f.Sidecar = ""
	}
	if w != nil {
		if abs, err := filepath.Abs(dir); err == nil {
			s.ResultsDir = abs
		}
		if err := results.WriteSummary(w, s); err != nil {
			errs = append(errs, err)
		}
	}
	return f, s, errors.Join(errs...)
}

func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

// series is the run's samples and misses on a time axis from the start
// of the measurement.
func (r *Session) series(m *Measurement) results.Series {
	return seriesFrom(m, m.Result.Start)
}

// seriesFrom puts a measurement on a time axis that starts at start, so
// that several consoles share one axis.
func seriesFrom(m *Measurement, start time.Time) results.Series {
	res := m.Result
	if start.IsZero() && len(res.Samples) > 0 {
		start = res.Samples[0].At
	}
	// c0 names the console in the benchmark file (so that runs line up
	// with earlier ones for benchstat); the plot's legend leaves a single
	// console's label out.
	ser := results.Series{Label: "c0"}
	for _, smp := range res.Samples {
		ser.Samples = append(ser.Samples, results.Point{At: max(smp.At.Sub(start), 0), Value: smp.Value})
	}
	for _, miss := range res.Misses {
		ser.Misses = append(ser.Misses, max(miss.At.Sub(start), 0))
	}
	for _, b := range m.BlockStarts {
		ser.Breaks = append(ser.Breaks, max(b.Sub(start), 0))
	}
	return ser
}
