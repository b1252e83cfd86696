package results

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/shakenfist/kerbside-latency/harness/atomicfile"
	"github.com/shakenfist/kerbside-latency/harness/link"
)

// ABSuffix ends latency-<run>-ab.json.
const ABSuffix = "-ab.json"

// ABName is the comparison of an A/B run: latency-<run>-ab.json.
func ABName(run string) string { return FilePrefix + run + ABSuffix }

// AB is the latency-<run>-ab.json file: the same guest measured through
// two console sources in one run, and whether B adds latency a person can
// feel. Durations are float seconds in fields ending in _s.
type AB struct {
	FormatVersion int    `json:"format_version"`
	RunID         string `json:"run_id"`
	// Lane is "simulated" when fakeryll's simulator produced both legs.
	Lane string `json:"lane,omitempty"`
	A    ABLeg  `json:"a"`
	B    ABLeg  `json:"b"`
	// Block is how many samples a leg took before the other's turn.
	Block int `json:"block"`
	// MaxAddedS is LATENCY_AB_MAX_ADDED: a figure passes only when the
	// upper end of the confidence interval of B − A lies below it.
	MaxAddedS float64 `json:"max_added_s"`
	Alpha     float64 `json:"alpha"`
	// Metrics compares each keypress figure.
	Metrics []ABMetric `json:"metrics"`
	// Verdict is ABPass (every figure proven within MaxAddedS on a host
	// quiet enough to measure), ABFail (B adds more, significantly),
	// ABInconclusive (neither is proven: the interval is too wide, or
	// the host was too busy) or ABIncomplete (a leg has no samples or
	// ended early).
	Verdict string `json:"verdict"`
	// Reasons say why the verdict is not pass.
	Reasons []string `json:"reasons,omitempty"`
	// HostBusy says why the host was too busy for this run's verdict to
	// be pass, leg by leg; empty when it was quiet enough.
	HostBusy []string `json:"host_busy,omitempty"`
	// Plot is the picture of the comparison, latency-<run>-ab.png.
	Plot string `json:"plot,omitempty"`
}

// The verdicts of an A/B run.
const (
	ABPass         = "pass"
	ABFail         = "fail"
	ABInconclusive = "inconclusive"
	ABIncomplete   = "incomplete"
)

// ABFormatVersion is the format of latency-<run>-ab.json. Version 2 made
// pass mean proven (the upper end of the interval below the threshold)
// and added inconclusive; version 1 files are still read.
const ABFormatVersion = 2

// ABLeg describes one leg of an A/B run.
type ABLeg struct {
	RunID    string `json:"run_id"`
	Provider string `json:"provider"`
	// Console is a secret-free description of the leg's console.
	Console string `json:"console"`
	Samples int    `json:"samples"`
	Blocks  int    `json:"blocks"`
	Sidecar string `json:"sidecar"`
	// Host is what the host did to the leg, pooled and per block.
	Host *HostRecord `json:"host,omitempty"`
	// Link is what the leg's link did (absent without one).
	Link *link.Stats `json:"link,omitempty"`
}

// ABMetric compares one keypress figure of the two legs.
type ABMetric struct {
	Metric   string  `json:"metric"`
	AMedianS float64 `json:"a_median_s"`
	BMedianS float64 `json:"b_median_s"`
	// AMedianCIS and BMedianCIS are the medians' confidence intervals.
	AMedianCIS [2]float64 `json:"a_median_ci_s"`
	BMedianCIS [2]float64 `json:"b_median_ci_s"`
	// DifferenceS is B's median minus A's; DifferenceCIS its confidence
	// interval (bootstrap).
	DifferenceS   float64    `json:"difference_s"`
	DifferenceCIS [2]float64 `json:"difference_ci_s"`
	Confidence    float64    `json:"confidence"`
	// P is the Mann-Whitney U test's p-value; Significant is P <= Alpha.
	P           float64 `json:"p"`
	Significant bool    `json:"significant"`
	// Outcome is pass, fail or inconclusive (compare.Outcome): pass
	// only when DifferenceCIS[1] < MaxAddedS.
	Outcome string `json:"outcome"`
	// SamplesNeeded is, for an inconclusive figure, about how many
	// samples per leg would bring the interval's upper end below the
	// threshold at the spread measured (-1: none can).
	SamplesNeeded int `json:"samples_needed,omitempty"`
	// Widened names the leg whose spread widened the interval most.
	Widened string `json:"widened,omitempty"`
	// Verdict says it in words; Fails says whether it fails the run
	// (B adds more than the threshold, significantly).
	Verdict string `json:"verdict"`
	Fails   bool   `json:"fails"`
}

// WriteAB writes latency-<run>-ab.json atomically.
func WriteAB(path string, ab AB) error {
	ab.FormatVersion = ABFormatVersion
	return writeRecord(path, "A/B comparison", ab)
}

// ReadAB reads a file written by WriteAB.
func ReadAB(path string) (AB, error) {
	var ab AB
	if err := readRecord(path, "A/B comparison", &ab); err != nil {
		return AB{}, err
	}
	if ab.FormatVersion < 1 || ab.FormatVersion > ABFormatVersion {
		return AB{}, fmt.Errorf("read A/B comparison %s: format_version %d is not supported (this reader knows 1 to %d)", path, ab.FormatVersion, ABFormatVersion)
	}
	return ab, nil
}

// WriteABTable prints the comparison for the console and the CI log.
func WriteABTable(w io.Writer, ab AB) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "A/B run\t%s\n", ab.RunID)
	fmt.Fprintf(tw, "A\t%s, %d samples in %d blocks\n", ab.A.Console, ab.A.Samples, ab.A.Blocks)
	fmt.Fprintf(tw, "B\t%s, %d samples in %d blocks\n", ab.B.Console, ab.B.Samples, ab.B.Blocks)
	fmt.Fprintf(tw, "ms\tA median\tB median\tB-A\t%.0f%% CI of B-A\tp\toutcome (threshold %.1f ms)\n", 100*confidenceOf(ab), ab.MaxAddedS*1000)
	for _, m := range ab.Metrics {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%+.2f\t[%+.2f, %+.2f]\t%.3g\t%s\n", m.Metric, m.AMedianS*1000, m.BMedianS*1000,
			m.DifferenceS*1000, m.DifferenceCIS[0]*1000, m.DifferenceCIS[1]*1000, m.P, oneLine(m.Verdict))
	}
	for _, l := range []struct {
		name string
		leg  ABLeg
	}{{"A", ab.A}, {"B", ab.B}} {
		if st := l.leg.Link; st != nil {
			fmt.Fprintf(tw, "link of %s	%s\n", l.name, oneLine(LinkLine(*st)))
		}
	}
	for _, l := range []struct {
		name string
		leg  ABLeg
	}{{"A", ab.A}, {"B", ab.B}} {
		if h := l.leg.Host; h != nil {
			fmt.Fprintf(tw, "host during %s\t%s; %d of %d samples while the harness was late\n", l.name, oneLine(h.Figures.String()), h.LateSamples, h.Samples)
		}
	}
	if len(ab.HostBusy) > 0 {
		fmt.Fprintf(tw, "host too busy\t%s\n", oneLine(strings.Join(ab.HostBusy, "; ")))
	}
	verdict := ab.Verdict
	if len(ab.Reasons) > 0 {
		verdict += ": " + strings.Join(ab.Reasons, "; ")
	}
	fmt.Fprintf(tw, "verdict\t%s\n", oneLine(verdict))
	return tw.Flush()
}

func confidenceOf(ab AB) float64 {
	if len(ab.Metrics) > 0 {
		return ab.Metrics[0].Confidence
	}
	return 0.95
}

// writeRecord writes v as indented JSON to path atomically: the one way
// the run's JSON records (the A/B comparison, the load ramp) are
// written. what names the record in errors.
func writeRecord(path, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	if err := atomicfile.WriteBytes(path, 0o644, append(b, '\n')); err != nil {
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	return nil
}

// readRecord reads the JSON record at path into v; the caller checks
// its format version.
func readRecord(path, what string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s %s: %w", what, path, err)
	}
	return nil
}
