package results

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shakenfist/kerbside-latency/harness/host"
	"github.com/shakenfist/kerbside-latency/harness/link"
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
	if lane := laneLine(s); lane != "" {
		row("lane", lane)
	}
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
	if a := s.Activity; a != nil {
		row("activity", activityLine(a))
	}
	for _, st := range s.Stalls {
		row("stall", fmt.Sprintf("press %d saw no draw for %.3f s (%d press(es) held back), then %d draws at once: the console catching up",
			st.Press, st.DurationS, st.Presses, st.Draws))
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

	if s.Link != nil {
		row("link", LinkLine(*s.Link))
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
		// The failing test says each error in full; the table names them
		// in one short line, so it stays aligned and says nothing twice.
		row("errors", errorsLine(s.Errors)+" (in full above and in "+SidecarName(s.RunID)+")")
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
	if s.ResultsDir != "" {
		row("results in", s.ResultsDir)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary of run %q: %w", s.RunID, err)
	}
	return nil
}

// laneLine says in words where the numbers came from: a simulated run
// says so in capitals, so its table is never mistaken for a real one.
func laneLine(s Sidecar) string {
	if s.Lane == "" {
		return ""
	}
	client := s.Client
	if client == "" {
		client = "ryll"
	}
	if s.Lane == LaneSimulated {
		return fmt.Sprintf("SIMULATED: %s, no SPICE session (provider %s); these numbers say nothing about a console", client, s.Provider)
	}
	line := fmt.Sprintf("%s SPICE session, %s (provider %s)", s.Lane, client, s.Provider)
	if s.Link != nil {
		line += ", through the link " + s.Link.Profile.String()
	}
	return line
}

// LinkLine says in one line what a link did: its profile, its
// connections, and per direction the bytes, the reads, and, when it
// queued or pushed back, the queue's high-water mark, the time queued,
// the longest wait and the time the sender was pushed back.
func LinkLine(st link.Stats) string {
	dir := func(name string, d link.DirStats) string {
		out := fmt.Sprintf("%s %s in %d reads", name, byteCount(d.Bytes), d.Reads)
		if d.QueueHighWater > 0 || d.QueuedS > 0 || d.BlockedS > 0 {
			out += fmt.Sprintf(" (queue high-water %s, queued %.3f s, longest wait %.1f ms, pushed back %.3f s)",
				byteCount(d.QueueHighWater), d.QueuedS, 1000*d.QueueWaitMaxS, d.BlockedS)
		}
		return out
	}
	return fmt.Sprintf("%s, %d connections; %s; %s", st.Profile.String(), st.Connections,
		dir("to server", st.ToServer), dir("to client", st.ToClient))
}

// byteCount is n bytes in the largest binary unit that keeps it above 1.
func byteCount(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// errorsLine is each error on one line, cut to a length a table row can
// hold.
func errorsLine(errs []string) string {
	const most = 160
	flat := strings.NewReplacer("\n", " ", "\t", " ", "\r", " ")
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		one := strings.Join(strings.Fields(flat.Replace(e)), " ")
		if r := []rune(one); len(r) > most {
			one = string(r[:most]) + "…"
		}
		parts = append(parts, one)
	}
	return strings.Join(parts, "; ")
}

// abRunOf is the A/B run id of a leg's run id (<run>-a or <run>-b).
func abRunOf(leg string) string {
	if i := strings.LastIndexByte(leg, '-'); i > 0 {
		return leg[:i]
	}
	return leg
}

// activityLine is the summary's line on the guest's own activity: draws
// per second in and out of the key's region, and bytes per second at a
// SPICE client.
func activityLine(a *Activity) string {
	line := a.Activity
	if line == "" {
		line = "-"
	}
	if len(a.KeyRegion) == 4 {
		line += fmt.Sprintf(": %.1f draws/s outside the key region %d,%d,%d,%d, %.1f/s in it",
			a.OutsidePerS, a.KeyRegion[0], a.KeyRegion[1], a.KeyRegion[2], a.KeyRegion[3], a.InKeyPerS)
	} else {
		line += ": no key region"
	}
	if a.DrawsNoRect > 0 {
		line += fmt.Sprintf(", %.1f/s without a rect", a.NoRectPerS)
	}
	if p := a.Probe; p != nil {
		line += fmt.Sprintf("; at a SPICE client %.1f kB/s, %.1f messages/s", p.BytesPerS/1000, p.MessagesPerS)
	}
	return line
}
