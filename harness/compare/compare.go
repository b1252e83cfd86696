// Package compare says whether two sets of latency samples differ: per
// console and pooled, the medians with distribution-free confidence
// intervals and the Mann-Whitney U test's p-value, from golang.org/x/perf's
// benchmath (benchstat's statistics). latency-compare prints it for two
// runs' files.
package compare

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/shakenfist/kerbside-latency/harness/results"
	"golang.org/x/perf/benchmath"
	"golang.org/x/perf/benchunit"
)

// DefaultAlpha is the significance level of a comparison, benchstat's
// default: a difference is reported when the Mann-Whitney U test's p-value
// is at or below it.
const DefaultAlpha = 0.05

// Confidence is the level of the confidence intervals of the medians.
const Confidence = 0.95

// PooledLabel names the row that pools every console of a run.
const PooledLabel = "pooled (all consoles)"

// Side is one run's half of a comparison: its pooled samples summarised
// by benchmath under no distributional assumption (median, and a
// distribution-free confidence interval of the median).
type Side struct {
	// Run is the run as given.
	Run results.BenchRun
	// N is the number of pooled samples.
	N int
	// Median of the pooled samples, in seconds.
	Median float64
	// Lo and Hi bound the median's confidence interval, in seconds.
	// They are infinite when there are too few samples for one.
	Lo, Hi float64
	// Confidence is the interval's actual level (at least Confidence:
	// an order-statistic interval cannot hit the level exactly).
	Confidence float64
}

// Row compares one console (or the pooled samples) of the two runs. A
// console present in only one run has a nil cell on the other side.
type Row struct {
	// Label is the console's label, or PooledLabel.
	Label string

	old, new *cell
	cmp      *benchmath.Comparison
}

type cell struct {
	sample  *benchmath.Sample
	summary benchmath.Summary
}

// Comparison is the outcome of Compare: benchstat's statistics for each
// console and for the pooled samples. Its zero value is not useful.
type Comparison struct {
	// Old and New summarise the pooled samples of each run.
	Old, New Side
	// Alpha is the significance level used.
	Alpha float64
	// P is the Mann-Whitney U test's p-value for the pooled samples:
	// the chance of a difference at least this large if both runs drew
	// from the same distribution.
	P float64
	// Significant is P <= Alpha, the rule benchstat uses to print a
	// percentage rather than "~".
	Significant bool
	// Within is the judgement of NEW − OLD against a threshold (set by
	// JudgeWithin): "no worse than" is said only when the interval
	// proves it, and "inconclusive" rather than "no significant
	// difference" when the interval is wider than the threshold.
	Within *Equivalence
	// Rows are the per-console rows, then the pooled row when it adds
	// anything (more than one console on a side, or different labels).
	Rows []Row
	// Warnings are benchmath's notes on the pooled comparison, e.g. too
	// few samples for an interval. Per-row notes are footnotes of the
	// table.
	Warnings []string

	pooled Row
}

// Difference is New's median minus Old's, in seconds: positive when NEW
// is slower.
func (c *Comparison) Difference() float64 { return c.New.Median - c.Old.Median }

// Runs runs benchstat's statistics (golang.org/x/perf/benchmath, no
// distributional assumption: medians, their confidence intervals and the
// Mann-Whitney U test) over two runs, console by console and pooled. A
// run without samples, runs of different metrics, or an alpha outside
// (0, 1) is an error: there is nothing meaningful to compare.
func Runs(old, new results.BenchRun, alpha float64) (*Comparison, error) {
	if !(alpha > 0 && alpha < 1) {
		return nil, fmt.Errorf("compare runs: alpha %v is not between 0 and 1", alpha)
	}
	for _, side := range []struct {
		name string
		run  results.BenchRun
	}{{"OLD", old}, {"NEW", new}} {
		if len(side.run.Pooled()) == 0 {
			return nil, fmt.Errorf("compare runs: %s (%s): %w", side.name, side.run.Source, results.ErrNoSamples)
		}
		for _, c := range side.run.Consoles {
			for i, v := range c.Samples {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, fmt.Errorf("compare runs: %s (%s) console %q sample %d: %v is not a finite number of seconds", side.name, side.run.Source, c.Label, i, v)
				}
			}
		}
	}
	if om, nm := old.Info.Metric, new.Info.Metric; om != "" && nm != "" && om != nm {
		return nil, fmt.Errorf("compare runs: OLD (%s) measures %q but NEW (%s) measures %q: different metrics cannot be compared", old.Source, om, new.Source, nm)
	}
	th := &benchmath.Thresholds{CompareAlpha: alpha}
	c := &Comparison{Alpha: alpha}

	var labels []string
	oldBy, newBy := map[string][]float64{}, map[string][]float64{}
	for _, con := range old.Consoles {
		if _, ok := oldBy[con.Label]; !ok {
			labels = append(labels, con.Label)
		}
		oldBy[con.Label] = append(oldBy[con.Label], con.Samples...)
	}
	for _, con := range new.Consoles {
		if _, ok := oldBy[con.Label]; !ok && !slices.Contains(labels, con.Label) {
			labels = append(labels, con.Label)
		}
		newBy[con.Label] = append(newBy[con.Label], con.Samples...)
	}
	for _, l := range labels {
		c.Rows = append(c.Rows, makeRow(l, oldBy[l], newBy[l], th))
	}
	c.pooled = makeRow(PooledLabel, old.Pooled(), new.Pooled(), th)
	if len(c.Rows) > 1 {
		c.Rows = append(c.Rows, c.pooled)
	}

	c.Old = side(old, c.pooled.old)
	c.New = side(new, c.pooled.new)
	c.P = c.pooled.cmp.P
	c.Significant = c.P <= alpha
	for _, w := range c.pooled.cmp.Warnings {
		c.Warnings = append(c.Warnings, w.Error())
	}
	return c, nil
}

func makeRow(label string, old, new []float64, th *benchmath.Thresholds) Row {
	r := Row{Label: label, old: makeCell(old, th), new: makeCell(new, th)}
	if r.old != nil && r.new != nil {
		cmp := benchmath.AssumeNothing.Compare(r.old.sample, r.new.sample)
		r.cmp = &cmp
	}
	return r
}

func makeCell(values []float64, th *benchmath.Thresholds) *cell {
	if len(values) == 0 {
		return nil
	}
	// NewSample sorts in place; the caller's order must survive.
	s := benchmath.NewSample(slices.Clone(values), th)
	return &cell{sample: s, summary: benchmath.AssumeNothing.Summary(s, Confidence)}
}

func side(r results.BenchRun, c *cell) Side {
	return Side{Run: r, N: len(c.sample.Values), Median: c.summary.Center,
		Lo: c.summary.Lo, Hi: c.summary.Hi, Confidence: c.summary.Confidence}
}

// SummaryLine is the one sentence a person reads first: both medians, the
// difference, the confidence interval of each median, the p-value and
// the verdict at Alpha. benchmath gives an interval for each median, not
// for their difference, so the two intervals are shown as they are: when
// they do not overlap, the difference is certainly real.
func (c *Comparison) SummaryLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "median OLD %s ms, NEW %s ms, difference %+.2f ms", ms(c.Old.Median), ms(c.New.Median), c.Difference()*1000)
	if c.Old.Median != 0 {
		fmt.Fprintf(&b, " = %+.1f%%", (c.New.Median/c.Old.Median-1)*100)
	}
	fmt.Fprintf(&b, " (%.0f%% CI of the medians: OLD %s, NEW %s), %s n=%d+%d: ",
		Confidence*100, msRange(c.Old.Lo, c.Old.Hi), msRange(c.New.Lo, c.New.Hi), formatP(c.P), c.Old.N, c.New.N)
	e := c.Within
	switch {
	case c.Significant:
		dir := "slower"
		if c.Difference() < 0 {
			dir = "faster"
		}
		fmt.Fprintf(&b, "significant difference (alpha %g), NEW is %s", c.Alpha, dir)
	case e != nil && e.Outcome == Inconclusive:
		fmt.Fprintf(&b, "inconclusive (alpha %g): no significant difference, but the interval is too wide to say NEW adds less than %.1f ms", c.Alpha, 1000*e.Threshold)
	default:
		fmt.Fprintf(&b, "no significant difference (alpha %g)", c.Alpha)
	}
	if e != nil {
		fmt.Fprintf(&b, "; %.0f%% CI of NEW−OLD [%+.2f, %+.2f] ms against -max-added %.1f ms: ", 100*Confidence, 1000*e.Lo, 1000*e.Hi, 1000*e.Threshold)
		switch e.Outcome {
		case Pass:
			fmt.Fprintf(&b, "NEW adds less than %.1f ms", 1000*e.Threshold)
		case Fail:
			fmt.Fprintf(&b, "NEW adds more than %.1f ms", 1000*e.Threshold)
		default:
			b.WriteString("inconclusive")
			if e.SamplesNeeded > 0 {
				fmt.Fprintf(&b, ", about %d samples per run would narrow it below the threshold at the spread measured", e.SamplesNeeded)
			} else if e.SamplesNeeded < 0 {
				b.WriteString(", and the difference itself is at or above the threshold")
			}
		}
	}
	return b.String()
}

// JudgeWithin judges the pooled samples of NEW against OLD with
// Equivalent at threshold (seconds) and keeps the judgement in Within,
// for SummaryLine.
func (c *Comparison) JudgeWithin(threshold float64) (Equivalence, error) {
	e, err := Equivalent(c.Old.Run.Pooled(), c.New.Run.Pooled(), threshold, c.Alpha)
	if err != nil {
		return Equivalence{}, err
	}
	c.Within = &e
	return e, nil
}

func ms(seconds float64) string { return fmt.Sprintf("%.2f", seconds*1000) }

func msRange(lo, hi float64) string {
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return "unknown (too few samples)"
	}
	return ms(lo) + "-" + ms(hi) + " ms"
}

func formatP(p float64) string {
	if p < 0.001 {
		return "p<0.001"
	}
	return fmt.Sprintf("p=%.3f", p)
}

// WriteTable prints the comparison as benchstat lays it out: per row the
// median of each run with the half-width of its confidence interval as a
// percentage, then the change ("~" when not significant) with the
// p-value and sample counts. Every figure in it is formatted by
// golang.org/x/perf (benchunit scaling, benchmath's strings), so it reads
// exactly like `benchstat OLD NEW`; the pooled row replaces benchstat's
// geomean, which means nothing for one metric. benchmath's warnings follow
// as numbered notes.
func (c *Comparison) WriteTable(w io.Writer, oldName, newName string) error {
	var notes []string
	note := func(errs ...[]error) string {
		var refs []string
		for _, list := range errs {
			for _, e := range list {
				i := slices.Index(notes, e.Error())
				if i < 0 {
					notes = append(notes, e.Error())
					i = len(notes) - 1
				}
				refs = append(refs, fmt.Sprintf("[%d]", i+1))
			}
		}
		return strings.Join(refs, "")
	}

	rows := [][]string{
		{"", oldName, "", "", newName, "", "", "", ""},
		{"console", results.BenchUnit, "", "", results.BenchUnit, "", "", "vs base", ""},
	}
	class := benchunit.ClassOf(results.BenchUnit)
	for _, r := range c.Rows {
		var centers []float64
		for _, cl := range []*cell{r.old, r.new} {
			if cl != nil {
				centers = append(centers, cl.summary.Center)
			}
		}
		scale := benchunit.CommonScale(centers, class)
		line := make([]string, 9)
		line[0] = r.Label
		put := func(at int, cl *cell) {
			if cl == nil {
				line[at] = "-"
				return
			}
			line[at] = scale.Format(cl.summary.Center)
			line[at+1] = "± " + cl.summary.PctRangeString()
			line[at+2] = note(cl.sample.Warnings, cl.summary.Warnings)
		}
		put(1, r.old)
		put(4, r.new)
		if r.cmp != nil {
			line[7] = r.cmp.FormatDelta(r.old.summary.Center, r.new.summary.Center)
			line[8] = "(" + r.cmp.String() + ")" + note(r.cmp.Warnings)
		}
		rows = append(rows, line)
	}
	if err := writeColumns(w, rows); err != nil {
		return fmt.Errorf("write comparison table: %w", err)
	}
	for i, n := range notes {
		if _, err := fmt.Fprintf(w, "[%d] %s\n", i+1, n); err != nil {
			return fmt.Errorf("write comparison table: %w", err)
		}
	}
	return nil
}

// writeColumns aligns rows: the label column to the left, the value and
// change columns to the right, the rest to the left. Widths count runes,
// since "±" and "∞" are one column each.
func writeColumns(w io.Writer, rows [][]string) error {
	right := map[int]bool{1: true, 4: true, 7: true}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, s := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(s))
		}
	}
	var errs []error
	for _, r := range rows {
		var b strings.Builder
		for i, s := range r {
			if widths[i] == 0 {
				continue
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(s))
			if i > 0 {
				b.WriteString("  ")
			}
			if right[i] {
				b.WriteString(pad + s)
			} else {
				b.WriteString(s + pad)
			}
		}
		_, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
