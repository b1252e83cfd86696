package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/stats"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPressesRoundTripAndEmptyCellsForMisses(t *testing.T) {
	dir := t.TempDir()
	w, err := CreatePresses(dir, "r1")
	require.NoError(t, err)
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	rows := []PressRow{
		{Number: 1, SentAt: at, Verdict: PressSample, Answered: true, FirstDraw: 21345 * time.Microsecond,
			Repaint: 61001 * time.Microsecond, Draws: 23, Background: 0},
		{Number: 2, SentAt: at.Add(2 * time.Second), Verdict: PressLate, LateDraws: 23, QuietWait: 300 * time.Millisecond},
		{Number: 3, SentAt: at.Add(4 * time.Second), Verdict: PressSuspect, Answered: true, FirstDraw: time.Millisecond,
			Repaint: 2 * time.Millisecond, Draws: 2, Dropped: 5, Reason: "dropped events, in its window"},
	}
	for _, r := range rows {
		require.NoError(t, w.Write(r))
	}
	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "Close twice")

	b, err := os.ReadFile(filepath.Join(dir, PressesName("r1")))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 4)
	assert.Equal(t, strings.Join(PressesHeader, ","), lines[0])
	assert.Equal(t, "2,2026-12-01T10:00:02.123456Z,late,,,,0,23,0,0.300000,", lines[2], "a press with no draw has empty latency cells")
	assert.Contains(t, lines[3], `"dropped events, in its window"`, "a reason with a comma is quoted")

	back, err := ReadPresses(filepath.Join(dir, PressesName("r1")))
	require.NoError(t, err)
	assert.Equal(t, rows, back)

	_, err = CreatePresses(dir, "r1")
	assert.ErrorContains(t, err, "already exists")
}

func TestReadPressesRefusesForeignFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.csv")
	require.NoError(t, os.WriteFile(p, []byte("0.1\n0.2\n"), 0o600))
	_, err := ReadPresses(p)
	assert.ErrorContains(t, err, "header")
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(PressesHeader, ",")+"\nx,bad\n"), 0o600))
	_, err = ReadPresses(p)
	assert.ErrorContains(t, err, "line 2")
}

func TestSummaryShowsBothKeypressFiguresAndTheBackground(t *testing.T) {
	first := stats.Summarize([]float64{0.020, 0.021})
	repaint := stats.Summarize([]float64{0.060, 0.062})
	s := Sidecar{RunID: "r", Metric: "keypress_to_repaint", Unit: "s", SamplesRequested: 2, SamplesCollected: 2,
		Presses: 3, Misses: 1, LatePresses: 1, FirstDraw: &first, Repaint: &repaint, Summary: repaint,
		Background: &Background{Draws: 4, ObservedS: 2, RatePerS: 2, Pattern: "steady", Contamination: 0.12}}
	var b strings.Builder
	require.NoError(t, WriteSummary(&b, s))
	out := b.String()
	assert.Regexp(t, `first draw\s+20\.000\s+20\.500`, out)
	assert.Regexp(t, `repaint\s+60\.000\s+61\.000`, out)
	assert.Contains(t, out, "3: 2 samples, 1 misses (1 late), 0 suspect")
	assert.Contains(t, out, "4 draws in 2.0 s (2.00/s, steady), contamination 12.00%")
}
