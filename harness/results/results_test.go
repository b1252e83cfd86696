package results

import (
	"bytes"
	"encoding/json"
	"flag"
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

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it under -update.
// JSON goldens are compared as JSON (field order and spacing aside), text
// goldens byte for byte.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "golden file missing: run go test ./harness/results -update")
	msg := "output differs from " + path + " (run with -update if the change is intended)"
	if strings.HasSuffix(name, ".json.golden") {
		assert.JSONEq(t, string(want), string(got), msg)
		return
	}
	assert.Equal(t, string(want), string(got), msg)
}

func TestCSVLinesAreOnDiskAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "results")
	w, err := CreateCSV(dir, "run-1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	assert.Equal(t, filepath.Join(dir, "latency-run-1.csv"), w.Path())

	values := []float64{0.0123456789, 1, 0, 15.0004}
	want := []string{"0.012346", "1.000000", "0.000000", "15.000400"}
	for i, v := range values {
		require.NoError(t, w.Write(v))
		// Read through a separate handle before Close: what a kill would leave.
		b, err := os.ReadFile(w.Path())
		require.NoError(t, err)
		assert.Equal(t, strings.Join(want[:i+1], "\n")+"\n", string(b), "after sample %d", i+1)
	}
	assert.Equal(t, 4, w.Count())

	got, err := ReadCSV(w.Path())
	require.NoError(t, err)
	assert.Equal(t, []float64{0.012346, 1, 0, 15.0004}, got)

	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "second Close is a no-op")
	assert.ErrorIs(t, w.Write(1), os.ErrClosed)
}

func TestCSVWriterRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateCSV(dir, "r")
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		assert.ErrorContains(t, w.Write(v), "not a finite number")
	}
	assert.Zero(t, w.Count())

	_, err = CreateCSV(dir, "r")
	assert.ErrorContains(t, err, "already exists", "an existing CSV must not be overwritten")

	for _, run := range []string{"", "../x", "a/b", "a..b", ".hidden", strings.Repeat("x", 129)} {
		_, err := CreateCSV(dir, run)
		assert.ErrorContains(t, err, "invalid run id", "run id %q", run)
	}
}

func TestReadCSV(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []float64
		wantErr string
	}{
		{name: "empty file", content: "", want: []float64{}},
		{name: "legacy shape", content: "0.012000\n0.034500\n", want: []float64{0.012, 0.0345}},
		{name: "no final newline", content: "0.1\n0.2", want: []float64{0.1, 0.2}},
		{name: "blank trailing lines", content: "0.1\n\n\n", want: []float64{0.1}},
		{name: "CRLF and spaces", content: " 0.1 \r\n0.2\r\n", want: []float64{0.1, 0.2}},
		{name: "python repr float", content: "0.0123\n1e-05\n", want: []float64{0.0123, 0.00001}},
		{name: "bad number", content: "0.1\nabc\n", wantErr: `line 2: "abc" is not a finite number`},
		{name: "NaN", content: "NaN\n", wantErr: "line 1:"},
		{name: "infinity", content: "0.1\n0.2\n+Inf\n", wantErr: "line 3:"},
		{name: "two columns", content: "0.1,5\n", wantErr: `line 1: "0.1,5"`},
		{name: "blank line in the middle", content: "0.1\n\n0.2\n", wantErr: "line 2: blank line before more values"},
		{name: "long garbage is truncated", content: strings.Repeat("z", 500) + "\n", wantErr: `"` + strings.Repeat("z", 40) + `..."`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "latency-x.csv")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			got, err := ReadCSV(path)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Contains(t, err.Error(), path, "the error names the file")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := ReadCSV(filepath.Join(t.TempDir(), "nope.csv"))
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestCheckSanity(t *testing.T) {
	tests := []struct {
		name     string
		samples  []float64
		min, max float64
		wantOK   bool
		wantBad  []OutOfRange
	}{
		{name: "empty", samples: nil, min: 0.001, max: 2, wantOK: true},
		{name: "all in range, bounds inclusive", samples: []float64{0.001, 0.5, 2}, min: 0.001, max: 2, wantOK: true},
		{
			name: "below and above", samples: []float64{0.0005, 0.02, 15.1, 0.03}, min: 0.001, max: 2,
			wantBad: []OutOfRange{{Index: 0, Value: 0.0005}, {Index: 2, Value: 15.1}},
		},
		{name: "NaN is out", samples: []float64{math.NaN()}, min: 0, max: 1, wantBad: []OutOfRange{{Index: 0}}},
		{name: "inverted bounds", samples: []float64{1}, min: 2, max: 0, wantBad: []OutOfRange{{Index: 0, Value: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, bad := CheckSanity(tc.samples, tc.min, tc.max)
			assert.Equal(t, tc.wantOK, ok)
			require.Len(t, bad, len(tc.wantBad))
			for i := range bad {
				assert.Equal(t, tc.wantBad[i].Index, bad[i].Index)
				if !math.IsNaN(bad[i].Value) {
					assert.Equal(t, tc.wantBad[i].Value, bad[i].Value)
				}
			}
		})
	}
}

func TestNewSanity(t *testing.T) {
	s := NewSanity(nil, 0.001, 2)
	assert.Equal(t, VerdictFail, s.Verdict, "a run with no samples fails")
	assert.Equal(t, "no samples", s.Note)

	s = NewSanity([]float64{0.01, 3}, 0.001, 2)
	assert.Equal(t, VerdictFail, s.Verdict)
	assert.Equal(t, []OutOfRange{{Index: 1, Value: 3}}, s.OutOfRange)
	assert.Equal(t, "1 of 2 samples outside [0.001 s, 2 s]", s.Note)

	s = NewSanity([]float64{0.01}, 0.001, 2)
	assert.Equal(t, Sanity{MinS: 0.001, MaxS: 2, Verdict: VerdictPass}, s)
}

// exampleSidecar is a complete keypress run with one out-of-range sample.
func exampleSidecar() Sidecar {
	samples := []float64{0.021, 0.034, 0.019, 2.5, 0.027}
	return Sidecar{
		RunID:                    "20260101T120000Z-4242",
		Metric:                   "keypress_to_screen",
		MetricDefinition:         "wall clock from just before send_key down is written to the wallclock_us of the first surface_drawn at or after it",
		CSVFile:                  CSVName("20260101T120000Z-4242"),
		SamplesRequested:         6,
		SamplesCollected:         len(samples),
		Misses:                   1,
		UnpairedDraws:            3,
		DroppedEvents:            0,
		CadenceS:                 2,
		JitterS:                  0.25,
		HoldS:                    0.1,
		WindowS:                  1,
		MaxDurationS:             600,
		JitterSeed:               42,
		Scancode:                 "0x39",
		ProtocolVersionRequested: "1.1",
		ProtocolVersionAnswered:  "1.2",
		ServerName:               "ryll 0.1.0",
		Provider:                 "openstack",
		RyllBinary:               "/usr/local/bin/ryll",
		RyllVersion:              "ryll 0.1.0",
		StartTime:                time.Date(2026, 1, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600)),
		EndTime:                  time.Date(2026, 1, 1, 12, 0, 14, 500_000_000, time.UTC),
		StopReason:               StopMaxDuration,
		Summary:                  stats.Summarize(samples),
		Sanity:                   NewSanity(samples, 0.001, 2),
		Errors:                   []string{"press 4: no draw within 1s"},
	}
}

func TestSidecarRoundTripAndGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", SidecarName("20260101T120000Z-4242"))
	in := exampleSidecar()
	require.NoError(t, WriteSidecar(path, in))

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	golden(t, "sidecar.json.golden", b)

	got, err := ReadSidecar(path)
	require.NoError(t, err)
	want := in.normalized()
	assert.True(t, want.StartTime.Equal(got.StartTime), "start time")
	assert.True(t, want.EndTime.Equal(got.EndTime), "end time")
	got.StartTime, got.EndTime, want.StartTime, want.EndTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	assert.Equal(t, want, got)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestSidecarFieldNames(t *testing.T) {
	// Field names are the file format: check a few by name rather than by
	// byte comparison, so a rename fails here with a clear message.
	b, err := MarshalSidecar(exampleSidecar())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{
		"format_version", "run_id", "metric", "metric_definition", "unit", "samples_requested",
		"samples_collected", "misses", "unpaired_draws", "dropped_events", "cadence_s", "jitter_s",
		"hold_s", "window_s", "scancode", "protocol_version_requested", "protocol_version_answered",
		"server_name", "provider", "ryll_binary", "ryll_version", "start_time", "end_time",
		"stop_reason", "summary", "sanity", "errors",
	} {
		assert.Contains(t, m, k)
	}
	assert.Equal(t, "s", m["unit"], "unit defaults to seconds")
	assert.Equal(t, "2026-01-01T12:00:00Z", m["start_time"], "times are RFC 3339 UTC")
	assert.Equal(t, "0x39", m["scancode"])
}

func TestSidecarEmptyRun(t *testing.T) {
	s := Sidecar{RunID: "empty", Metric: "ping_interval", SamplesRequested: 60, StopReason: StopError,
		Summary: stats.Summarize(nil), Sanity: NewSanity(nil, 0, 30)}
	b, err := MarshalSidecar(s)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, []any{}, m["errors"], "errors is [] not null")
	assert.Nil(t, m["summary"].(map[string]any)["p50"], "no samples means null, not 0")
	assert.Equal(t, []any{}, m["sanity"].(map[string]any)["out_of_range"])
}

func TestSidecarErrors(t *testing.T) {
	t.Run("non-finite field is named", func(t *testing.T) {
		s := exampleSidecar()
		s.CadenceS = math.NaN()
		err := WriteSidecar(filepath.Join(t.TempDir(), "x.json"), s)
		assert.ErrorContains(t, err, "cadence_s")
	})
	tests := []struct {
		name, content, wantErr string
	}{
		{name: "not JSON", content: "{\"run_id\": ", wantErr: "invalid JSON"},
		{name: "trailing garbage", content: `{"format_version": 1} x`, wantErr: "invalid JSON"},
		{name: "wrong type", content: `{"format_version": 1, "misses": "two"}`, wantErr: "misses"},
		{name: "no format version", content: `{"run_id": "x"}`, wantErr: "format_version 0 is not supported"},
		{name: "newer format", content: `{"format_version": 99}`, wantErr: "format_version 99 is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "latency-x.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			_, err := ReadSidecar(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.Contains(t, err.Error(), path)
		})
	}
	t.Run("unknown fields are ignored", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "latency-x.json")
		require.NoError(t, os.WriteFile(path, []byte(`{"format_version": 1, "run_id": "x", "future": true}`), 0o644))
		s, err := ReadSidecar(path)
		require.NoError(t, err)
		assert.Equal(t, "x", s.RunID)
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := ReadSidecar(filepath.Join(t.TempDir(), "nope.json"))
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("unwritable directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o644))
		err := WriteSidecar(filepath.Join(file, "x.json"), exampleSidecar())
		assert.ErrorContains(t, err, "create directory")
	})
}

func TestWriteSummaryGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		s      Sidecar
	}{
		{name: "keypress run", golden: "summary.golden", s: exampleSidecar()},
		{
			name: "no samples", golden: "summary-empty.golden",
			s: Sidecar{RunID: "empty", Metric: "ping_interval", Unit: "s", SamplesRequested: 60,
				StopReason: StopError, Summary: stats.Summarize(nil), Sanity: NewSanity(nil, 0, 30),
				Errors: []string{"draw events stopped:\nconnection lost"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, WriteSummary(&buf, tc.s))
			golden(t, tc.golden, buf.Bytes())
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrPermission }

func TestWriteSummaryWriteError(t *testing.T) {
	assert.ErrorIs(t, WriteSummary(failWriter{}, exampleSidecar()), os.ErrPermission)
}

// TestTitleForSaysSimulated: a simulated run's plot says so in its title;
// a real one's title is left alone.
func TestTitleForSaysSimulated(t *testing.T) {
	assert.Equal(t, "SIMULATED (no SPICE session): x", TitleFor(LaneSimulated, "x"))
	assert.Equal(t, "x", TitleFor(LaneReal, "x"))
	assert.Equal(t, "x", TitleFor("", "x"))
}
