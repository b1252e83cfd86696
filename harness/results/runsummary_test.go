package results

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// consoleRun makes one passing console of a keypress run, as the
// loadtest would leave it: a sidecar whose counts match its samples.
func consoleRun(label, runID string, samples ...float64) ConsoleRun {
	return ConsoleRun{
		Label: label,
		Sidecar: Sidecar{
			RunID: runID, Metric: "keypress_to_screen", CSVFile: CSVName(runID), Provider: "openstack",
			SamplesRequested: len(samples), SamplesCollected: len(samples), StopReason: StopSamplesReached,
			Summary: stats.Summarize(samples), Sanity: NewSanity(samples, 0.001, 0.5),
		},
		Samples: samples,
	}
}

// exampleConsoles is a three-console run: c0 passes, c1 has an
// out-of-range sample, a miss and a dropped event, c2 errored before
// measuring anything.
func exampleConsoles() []ConsoleRun {
	c0 := consoleRun("c0", "r1-c0", 0.020, 0.022, 0.024, 0.026)
	c1 := consoleRun("c1", "r1-c1", 0.030, 0.040, 0.900)
	c1.Sidecar.SamplesRequested = 4
	c1.Sidecar.Misses = 1
	c1.Sidecar.DroppedEvents = 2
	c1.Sidecar.StopReason = StopMaxDuration
	c2 := consoleRun("c2", "r1-c2")
	c2.Sidecar.SamplesRequested = 4
	c2.Sidecar.StopReason = StopError
	c2.Sidecar.Errors = []string{"boot server: quota\nexceeded"}
	return []ConsoleRun{c0, c1, c2}
}

func TestBuildRunSummary(t *testing.T) {
	before := time.Now()
	rs, err := BuildRunSummary("r1", exampleConsoles())
	require.NoError(t, err)

	assert.Equal(t, RunSummaryFormatVersion, rs.FormatVersion)
	assert.Equal(t, "r1", rs.RunID)
	assert.Equal(t, "keypress_to_screen", rs.Metric)
	assert.Equal(t, "s", rs.Unit)
	assert.False(t, rs.CreatedTime.Before(before.Truncate(time.Second)), "created time is when it was built")
	assert.Equal(t, time.UTC, rs.CreatedTime.Location())
	require.Len(t, rs.Consoles, 3)

	c0, c1, c2 := rs.Consoles[0], rs.Consoles[1], rs.Consoles[2]
	assert.Equal(t, ConsoleSummary{
		Label: "c0", RunID: "r1-c0", CSVFile: "latency-r1-c0.csv", SidecarFile: "latency-r1-c0.json",
		Provider: "openstack", SamplesRequested: 4, SamplesCollected: 4, StopReason: StopSamplesReached,
		Summary: stats.Summarize([]float64{0.020, 0.022, 0.024, 0.026}), SanityVerdict: VerdictPass,
		Errors: []string{},
	}, c0)

	assert.True(t, c1.Failed)
	assert.Equal(t, []string{"sanity check failed: 1 of 3 samples outside [0.001 s, 0.5 s]"}, c1.FailReasons)
	assert.Equal(t, 1, c1.Misses)
	assert.Equal(t, 2, c1.DroppedEvents)

	assert.True(t, c2.Failed)
	assert.Equal(t, []string{"1 error(s): boot server: quota exceeded", "no samples"}, c2.FailReasons)
	assert.Equal(t, 0, c2.Summary.Count)

	assert.Equal(t, []string{"c1", "c2"}, rs.Failed)

	// The failed consoles' samples still count in the pooled figures.
	all := []float64{0.020, 0.022, 0.024, 0.026, 0.030, 0.040, 0.900}
	assert.Equal(t, PooledSummary{Summary: stats.Summarize(all), Samples: 7, SamplesRequested: 12, Misses: 1, DroppedEvents: 2}, rs.Pooled)
}

func TestBuildRunSummaryFailureReasons(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*ConsoleRun)
		reason string // "" means the console passes
	}{
		{name: "clean", edit: func(*ConsoleRun) {}},
		{name: "interrupted but sane", edit: func(c *ConsoleRun) { c.Sidecar.StopReason = StopInterrupted }},
		{name: "error message", edit: func(c *ConsoleRun) { c.Sidecar.Errors = []string{"ryll exited"} }, reason: "1 error(s): ryll exited"},
		{name: "stop reason error alone", edit: func(c *ConsoleRun) { c.Sidecar.StopReason = StopError }, reason: "stopped on an error"},
		{name: "sanity fail", edit: func(c *ConsoleRun) { c.Sidecar.Sanity.Verdict = VerdictFail }, reason: "sanity check failed"},
		{name: "no verdict", edit: func(c *ConsoleRun) { c.Sidecar.Sanity = Sanity{} }, reason: "no sanity verdict"},
		{name: "odd verdict", edit: func(c *ConsoleRun) { c.Sidecar.Sanity.Verdict = "maybe" }, reason: `unknown sanity verdict "maybe"`},
		{name: "no samples", edit: func(c *ConsoleRun) { c.Samples = nil }, reason: "no samples"},
		{name: "no samples and sanity says so", edit: func(c *ConsoleRun) { c.Samples = nil; c.Sidecar.Sanity = NewSanity(nil, 0, 1) }, reason: "no samples"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := consoleRun("c0", "r-c0", 0.02, 0.03)
			tc.edit(&c)
			rs, err := BuildRunSummary("r", []ConsoleRun{c})
			require.NoError(t, err)
			row := rs.Consoles[0]
			if tc.reason == "" {
				assert.False(t, row.Failed, "reasons: %v", row.FailReasons)
				assert.Empty(t, rs.Failed)
				return
			}
			assert.True(t, row.Failed)
			assert.Contains(t, row.FailReasons, tc.reason)
			assert.Equal(t, []string{"c0"}, rs.Failed)
		})
	}
}

func TestBuildRunSummaryNotesCountMismatch(t *testing.T) {
	c := consoleRun("p0", "r-p0", 0.02, 0.03)
	c.Sidecar.SamplesCollected = 5
	rs, err := BuildRunSummary("r", []ConsoleRun{c})
	require.NoError(t, err)
	row := rs.Consoles[0]
	assert.Equal(t, 2, row.SamplesCollected, "the samples given win over the sidecar's count")
	assert.Equal(t, []string{"sidecar counts 5 samples collected but 2 were read (the CSV is the truth)"}, row.Notes)
	assert.False(t, row.Failed, "a count mismatch is a note, not a failure")
}

func TestBuildRunSummaryDefaultLabels(t *testing.T) {
	a, b := consoleRun("", "r-a", 0.02), consoleRun(" ", "r-b", 0.02)
	rs, err := BuildRunSummary("r", []ConsoleRun{a, b})
	require.NoError(t, err)
	assert.Equal(t, "c0", rs.Consoles[0].Label)
	assert.Equal(t, "c1", rs.Consoles[1].Label)
}

func TestBuildRunSummaryRefusesBadInput(t *testing.T) {
	ok := func(label, run string) ConsoleRun { return consoleRun(label, run, 0.02) }
	tests := []struct {
		name     string
		runID    string
		consoles []ConsoleRun
		wantErr  string
	}{
		{name: "bad run id", runID: "../x", consoles: []ConsoleRun{ok("c0", "a")}, wantErr: "invalid run id"},
		{name: "no consoles", runID: "r", wantErr: "no consoles given"},
		{
			name: "mixed metrics", runID: "r",
			consoles: []ConsoleRun{ok("c0", "a"), func() ConsoleRun { c := ok("c1", "b"); c.Sidecar.Metric = "ping_interval"; return c }()},
			wantErr:  `metric "ping_interval" differs from "keypress_to_screen"`,
		},
		{
			name: "no metric", runID: "r",
			consoles: []ConsoleRun{func() ConsoleRun { c := ok("c0", "a"); c.Sidecar.Metric = " "; return c }()},
			wantErr:  "names no metric",
		},
		{
			name: "no run id", runID: "r",
			consoles: []ConsoleRun{func() ConsoleRun { c := ok("c0", "a"); c.Sidecar.RunID = ""; return c }()},
			wantErr:  "sidecar has no run id",
		},
		{name: "duplicate label", runID: "r", consoles: []ConsoleRun{ok("c0", "a"), ok("c0", "b")}, wantErr: `label "c0" is also console 0's`},
		{name: "duplicate run id", runID: "r", consoles: []ConsoleRun{ok("c0", "a"), ok("c1", "a")}, wantErr: `run id "a" is also console 0's`},
		{name: "multi-line label", runID: "r", consoles: []ConsoleRun{ok("c\n0", "a")}, wantErr: "label must be one line"},
		{
			name: "NaN sample", runID: "r",
			consoles: []ConsoleRun{func() ConsoleRun { c := ok("c0", "a"); c.Samples = []float64{0.1, math.NaN()}; return c }()},
			wantErr:  "sample 1 is NaN",
		},
		{
			name: "negative misses", runID: "r",
			consoles: []ConsoleRun{func() ConsoleRun { c := ok("c0", "a"); c.Sidecar.Misses = -1; return c }()},
			wantErr:  "negative misses -1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildRunSummary(tc.runID, tc.consoles)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestRunSummaryRoundTripAndGolden(t *testing.T) {
	rs, err := BuildRunSummary("r1", exampleConsoles())
	require.NoError(t, err)
	rs.CreatedTime = time.Date(2026, 1, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))

	path := filepath.Join(t.TempDir(), "out", RunSummaryName("r1"))
	require.NoError(t, WriteRunSummary(path, rs))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	golden(t, "runsummary.json.golden", b)

	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"format_version", "run_id", "metric", "unit", "created_time", "consoles", "pooled", "failed"} {
		assert.Contains(t, m, k)
	}
	assert.Equal(t, "2026-01-01T12:00:00Z", m["created_time"], "times are RFC 3339 UTC")
	c2 := m["consoles"].([]any)[2].(map[string]any)
	assert.Nil(t, c2["summary"].(map[string]any)["p50"], "no samples means null, not 0")

	got, err := ReadRunSummary(path)
	require.NoError(t, err)
	assert.True(t, rs.CreatedTime.Equal(got.CreatedTime))
	got.CreatedTime, rs.CreatedTime = time.Time{}, time.Time{}
	assert.Equal(t, rs, got)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestRunSummaryNilSlicesEncodeAsEmpty(t *testing.T) {
	b, err := MarshalRunSummary(RunSummary{RunID: "r", Consoles: []ConsoleSummary{{Label: "c0"}}})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, []any{}, m["failed"])
	assert.Equal(t, []any{}, m["consoles"].([]any)[0].(map[string]any)["errors"])
	assert.EqualValues(t, RunSummaryFormatVersion, m["format_version"])
}

func TestReadRunSummaryErrors(t *testing.T) {
	tests := []struct {
		name, content, wantErr string
	}{
		{name: "not JSON", content: `{"run_id": `, wantErr: "invalid JSON"},
		{name: "wrong type", content: `{"format_version": 1, "failed": "c0"}`, wantErr: "failed"},
		{name: "no format version", content: `{"run_id": "x"}`, wantErr: "format_version 0 is not supported"},
		{name: "newer format", content: `{"format_version": 99}`, wantErr: "format_version 99 is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), RunSummaryName("x"))
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			_, err := ReadRunSummary(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.Contains(t, err.Error(), path)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := ReadRunSummary(filepath.Join(t.TempDir(), "nope.json"))
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("unwritable directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o644))
		err := WriteRunSummary(filepath.Join(file, "x.json"), RunSummary{RunID: "x"})
		assert.ErrorContains(t, err, "create directory")
	})
}

func TestWriteRunSummaryTableGolden(t *testing.T) {
	rs, err := BuildRunSummary("r1", exampleConsoles())
	require.NoError(t, err)
	rs.Consoles[0].Notes = []string{"sidecar counts 5 samples collected but 4 were read (the CSV is the truth)"}
	var buf bytes.Buffer
	require.NoError(t, WriteRunSummaryTable(&buf, rs))
	golden(t, "runsummary-table.golden", buf.Bytes())

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	// Heading, column titles, three consoles, pooled, two failures, a note.
	require.Len(t, lines, 9, buf.String())
	header := lines[1]
	maxEnd := strings.Index(header, "max ms") + len("max ms") // numbers are right-aligned
	statusStart := strings.Index(header, "status")            // text is left-aligned
	for i := 1; i <= 5; i++ {
		l := lines[i]
		require.Greater(t, len(l), statusStart, "line %d", i)
		assert.True(t, l[maxEnd-1] != ' ' && l[maxEnd] == ' ', "line %d: the max column ends under its title: %q", i, l)
		assert.True(t, l[statusStart-1] == ' ' && l[statusStart] != ' ', "line %d: the status column starts under its title: %q", i, l)
		assert.Equal(t, l, strings.TrimSpace(l), "no leading or trailing blanks on line %d", i)
	}
	assert.True(t, strings.HasPrefix(strings.TrimSpace(lines[5]), PooledRowLabel))
	assert.Contains(t, lines[5], "2 failed")
}

func TestWriteRunSummaryTableWriteError(t *testing.T) {
	rs, err := BuildRunSummary("r1", exampleConsoles())
	require.NoError(t, err)
	assert.ErrorIs(t, WriteRunSummaryTable(failWriter{}, rs), os.ErrPermission)
}

func TestRunSummaryNames(t *testing.T) {
	assert.Equal(t, "latency-r1-summary.json", RunSummaryName("r1"))
	assert.True(t, IsRunSummaryName(RunSummaryName("r1")))
	assert.True(t, IsRunSummaryName(RunSummaryName("r1-p0")))
	assert.False(t, IsRunSummaryName(SidecarName("r1-c0")))
	assert.False(t, IsRunSummaryName(SidecarName("summary")), "a run called summary has latency-summary.json")
	assert.False(t, IsRunSummaryName("other-summary.json"))
}

func TestFileNamesAreOneFamily(t *testing.T) {
	for _, name := range []string{CSVName("r"), SidecarName("r"), PlotName("r"), BenchFileName("r"), RunSummaryName("r"), TranscriptName("r")} {
		assert.True(t, strings.HasPrefix(name, FilePrefix), name)
	}
	assert.True(t, IsSidecarName(SidecarName("r-c1")))
	assert.False(t, IsSidecarName(RunSummaryName("r")), "a run summary is not a sidecar")
	assert.True(t, IsSidecarName(SidecarName("summary")), "the sidecar of a run called summary")
	assert.False(t, IsRunSummaryName(SidecarName("summary")))
	assert.False(t, IsSidecarName("latency-.json"))
	assert.False(t, IsSidecarName(CSVName("r")))
	assert.Equal(t, "latency-r-transcript.ndjson", TranscriptName("r"))
	assert.False(t, IsSidecarName(TranscriptName("r")), "a transcript is not a sidecar")
	assert.False(t, IsRunSummaryName(TranscriptName("r")))
}
