package results

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// WriteSummary prints a short aligned table of a run for the console and
// the CI log: what was measured, how much of it, the latency spread in
// milliseconds, the sanity verdict and where the files are. Values that do
// not exist (no samples) print as "-".
func WriteSummary(w io.Writer, s Sidecar) error {
	s = s.normalized()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }

	row("run", s.RunID)
	row("metric", s.Metric+" ("+s.Unit+")")
	row("samples", fmt.Sprintf("%d/%d", s.SamplesCollected, s.SamplesRequested))
	if s.Presses > 0 {
		row("presses", fmt.Sprintf("%d: %d samples, %d misses (%d late), %d suspect", s.Presses, s.SamplesCollected, s.Misses, s.LatePresses, s.Suspects))
	} else {
		row("misses", fmt.Sprint(s.Misses))
	}
	row("unpaired draws", fmt.Sprint(s.UnpairedDraws))
	row("dropped events", fmt.Sprint(s.DroppedEvents))
	if b := s.Background; b != nil {
		row("background", fmt.Sprintf("%d draws in %.1f s (%.2f/s, %s), contamination %.2f%%", b.Draws, b.ObservedS, b.RatePerS, b.Pattern, 100*b.Contamination))
	}
	row("stop reason", s.StopReason)

	figures := func(label string, sum stats.Summary) {
		ms := func(v float64) string {
			if sum.Count == 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f", v*1000)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", label, ms(sum.Min), ms(sum.P50), ms(sum.P95), ms(sum.P99), ms(sum.Max))
	}
	fmt.Fprintf(tw, "latency ms\tmin\tp50\tp95\tp99\tmax\n")
	if s.FirstDraw != nil && s.Repaint != nil {
		// Both keypress figures, whichever one the CSV holds.
		figures("  first draw", *s.FirstDraw)
		figures("  repaint", *s.Repaint)
	} else {
		figures("", s.Summary)
	}

	if h := s.Host; h != nil {
		row("host", oneLine(h.Figures.String()))
		row("late samples", fmt.Sprintf("%d of %d taken while the harness was more than %s late", h.LateSamples, h.Samples, host.MaxLagP99))
		if len(h.BusyReasons) > 0 {
			row("host too busy", oneLine(strings.Join(h.BusyReasons, "; ")))
		}
	}

	verdict := s.Sanity.Verdict
	if verdict == "" {
		verdict = "-"
	}
	if s.Sanity.Note != "" {
		verdict += " (" + s.Sanity.Note + ")"
	}
	row("sanity", verdict)
	if s.ABVerdict != "" {
		row("A/B verdict", s.ABVerdict+" (see "+ABName(abRunOf(s.RunID))+")")
	}
	if len(s.Errors) > 0 {
		// One line, whatever the messages hold, so the table stays aligned.
		flat := strings.NewReplacer("\n", " ", "\t", " ", "\r", " ").Replace(strings.Join(s.Errors, "; "))
		row("errors", flat)
	}
	csv := s.CSVFile
	if csv == "" {
		csv = CSVName(s.RunID)
	}
	files := csv + ", " + SidecarName(s.RunID)
	if len(s.Files) > 0 {
		files = strings.Join(s.Files, ", ")
	}
	row("files", files)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary of run %q: %w", s.RunID, err)
	}
	return nil
}

// abRunOf is the A/B run id of a leg's run id (<run>-a or <run>-b).
func abRunOf(leg string) string {
	if i := strings.LastIndexByte(leg, '-'); i > 0 {
		return leg[:i]
	}
	return leg
}
