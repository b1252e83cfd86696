package results

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shakenfist/kerbside-latency/harness/measure"
)

// results keeps its own copies of the measurement's words so that the
// file format does not depend on the measuring code; this test pins the
// copies to the originals.
func TestVocabularyMatchesTheMeasurement(t *testing.T) {
	var stops []string
	for _, r := range measure.AllStopReasons() {
		stops = append(stops, string(r))
	}
	ours := []string{StopSamplesReached, StopMaxDuration, StopInterrupted, StopError, StopNoDraws, StopLateDraws, StopBackground, StopStall}
	slices.Sort(stops)
	slices.Sort(ours)
	assert.Equal(t, stops, ours, "stop reasons")

	var verdicts []string
	for _, v := range measure.AllVerdicts() {
		verdicts = append(verdicts, string(v))
	}
	assert.ElementsMatch(t, verdicts, []string{PressSample, PressMiss, PressLate, PressSuspect, PressUnfinished}, "press verdicts")

	for _, p := range []measure.Pattern{measure.PatternNone, measure.PatternUnknown, measure.PatternSteady, measure.PatternRandom, measure.PatternBursty} {
		assert.NotEmpty(t, string(p))
	}
}
