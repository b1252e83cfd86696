package results

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/shakenfist/kerbside-latency/harness/atomicfile"
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
	A             ABLeg  `json:"a"`
	B             ABLeg  `json:"b"`
	// Block is how many samples a leg took before the other's turn.
	Block int `json:"block"`
	// MaxAddedS is LATENCY_AB_MAX_ADDED: B may add at most this much to a
	// median before the run fails.
	MaxAddedS float64 `json:"max_added_s"`
	Alpha     float64 `json:"alpha"`
	// Metrics compares each keypress figure.
	Metrics []ABMetric `json:"metrics"`
	// Verdict is "pass", "fail" or "incomplete" (a leg has no samples).
	Verdict string `json:"verdict"`
	// Reasons say why the verdict is not pass.
	Reasons []string `json:"reasons,omitempty"`
}

// ABLeg describes one leg of an A/B run.
type ABLeg struct {
	RunID    string `json:"run_id"`
	Provider string `json:"provider"`
	// Console is a secret-free description of the leg's console.
	Console string `json:"console"`
	Samples int    `json:"samples"`
	Blocks  int    `json:"blocks"`
	Sidecar string `json:"sidecar"`
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
	// Verdict says it in words; Fails says whether it fails the run.
	Verdict string `json:"verdict"`
	Fails   bool   `json:"fails"`
}

// WriteAB writes latency-<run>-ab.json atomically.
func WriteAB(path string, ab AB) error {
	ab.FormatVersion = 1
	b, err := json.MarshalIndent(ab, "", "  ")
	if err != nil {
		return fmt.Errorf("write A/B comparison %s: %w", path, err)
	}
	if err := atomicfile.WriteBytes(path, 0o644, append(b, '\n')); err != nil {
		return fmt.Errorf("write A/B comparison %s: %w", path, err)
	}
	return nil
}

// ReadAB reads a file written by WriteAB.
func ReadAB(path string) (AB, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return AB{}, fmt.Errorf("read A/B comparison: %w", err)
	}
	var ab AB
	if err := json.Unmarshal(b, &ab); err != nil {
		return AB{}, fmt.Errorf("read A/B comparison %s: %w", path, err)
	}
	if ab.FormatVersion != 1 {
		return AB{}, fmt.Errorf("read A/B comparison %s: format_version %d, want 1", path, ab.FormatVersion)
	}
	return ab, nil
}

// WriteABTable prints the comparison for the console and the CI log.
func WriteABTable(w io.Writer, ab AB) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "A/B run\t%s\n", ab.RunID)
	fmt.Fprintf(tw, "A\t%s, %d samples in %d blocks\n", ab.A.Console, ab.A.Samples, ab.A.Blocks)
	fmt.Fprintf(tw, "B\t%s, %d samples in %d blocks\n", ab.B.Console, ab.B.Samples, ab.B.Blocks)
	fmt.Fprintf(tw, "ms\tA median\tB median\tB-A\t%.0f%% CI of B-A\tp\tverdict\n", 100*confidenceOf(ab))
	for _, m := range ab.Metrics {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%+.2f\t[%+.2f, %+.2f]\t%.3g\t%s\n", m.Metric, m.AMedianS*1000, m.BMedianS*1000,
			m.DifferenceS*1000, m.DifferenceCIS[0]*1000, m.DifferenceCIS[1]*1000, m.P, m.Verdict)
	}
	verdict := ab.Verdict
	if len(ab.Reasons) > 0 {
		verdict += ": " + strings.Join(ab.Reasons, "; ")
	}
	fmt.Fprintf(tw, "verdict\t%s\n", verdict)
	return tw.Flush()
}

func confidenceOf(ab AB) float64 {
	if len(ab.Metrics) > 0 {
		return ab.Metrics[0].Confidence
	}
	return 0.95
}
