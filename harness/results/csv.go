// Package results writes and reads every file a run leaves in
// LATENCY_RESULTS_DIR (their names are in names.go): the legacy
// latency-<run>.csv (one float per line, seconds, no header), the
// latency-<run>.json sidecar that says what the numbers mean, the run
// summary of several consoles, the plot (PNG or SVG: samples over time and
// their distribution), the Go benchmark-format file that benchstat and
// latency-compare read, and the summary table printed at the end.
//
// It takes plain data (seconds, durations, labels) and knows nothing about
// how the samples were measured, so a plot can be made again later from
// the files a run left behind. Latencies are in seconds, the unit of the
// CSV; plots and tables show milliseconds, the scale people think of
// keypress latency in.
//
// The CSV keeps the legacy shape on purpose: existing consumers treat it as
// an opaque column of seconds. Everything else (which metric, how it was
// taken, how many presses were missed) lives in the sidecar, so that old
// and new CSVs are never compared without knowing what they measured.
package results

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/shakenfist/kerbside-latency/harness/runid"
)

// ValidateRunID reports whether run can be used in a results file name
// (runid.Validate: the one rule for run ids everywhere).
func ValidateRunID(run string) error { return runid.Validate(run) }

// CSVWriter appends samples to a latency CSV, one line per sample, each
// line handed to the kernel by a single write before Write returns. There
// is no user-space buffer, so killing the process loses nothing that was
// collected. Safe for concurrent use.
type CSVWriter struct {
	mu   sync.Mutex
	f    *os.File
	path string
	n    int
	buf  []byte
}

// CreateCSV creates dir (and parents) if needed and a new, empty
// latency-<run>.csv in it. An existing file is an error rather than being
// overwritten or appended to: a clash of run ids must not destroy or mix
// earlier results.
func CreateCSV(dir, run string) (*CSVWriter, error) {
	f, path, err := createNew(dir, run, CSVName(run), "latency CSV")
	if err != nil {
		return nil, err
	}
	return &CSVWriter{f: f, path: path, buf: make([]byte, 0, 32)}, nil
}

// createNew creates dir (and parents) if needed and the new file name in
// it, for appending a run's records as they come. An existing file is an
// error rather than being overwritten or appended to: a clash of run ids
// must not destroy or mix earlier results.
func createNew(dir, run, name, what string) (*os.File, string, error) {
	if err := ValidateRunID(run); err != nil {
		return nil, "", fmt.Errorf("create %s: %w", what, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create results directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, "", fmt.Errorf("create %s %s: file already exists (pick another run id)", what, path)
		}
		return nil, "", fmt.Errorf("create %s: %w", what, err)
	}
	return f, path, nil
}

// Path returns the file's path.
func (w *CSVWriter) Path() string { return w.path }

// Count returns the number of samples written so far.
func (w *CSVWriter) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Write appends one sample in seconds as "%.6f\n" (microsecond
// resolution, the resolution of the control socket's wallclock_us). NaN
// and infinities are refused: they are not latencies, and ReadCSV would
// reject the file.
func (w *CSVWriter) Write(seconds float64) error {
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return fmt.Errorf("write sample to %s: %v is not a finite number of seconds", w.path, seconds)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("write sample to %s: %w", w.path, os.ErrClosed)
	}
	w.buf = strconv.AppendFloat(w.buf[:0], seconds, 'f', 6, 64)
	w.buf = append(w.buf, '\n')
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("write sample %d to %s: %w", w.n+1, w.path, err)
	}
	w.n++
	return nil
}

// Close syncs the file to stable storage and closes it. Calling Close
// again does nothing.
func (w *CSVWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	syncErr := f.Sync()
	closeErr := f.Close()
	if err := errors.Join(syncErr, closeErr); err != nil {
		return fmt.Errorf("close latency CSV %s: %w", w.path, err)
	}
	return nil
}

// ReadCSV reads a latency CSV: one finite float (seconds) per line. Blank
// lines at the end are accepted (a file ends with a newline, and a writer
// killed mid-run may leave one); a blank line followed by more values, or
// a value that is not a finite number, is an error naming the line. A
// last line without a newline is read normally. An empty file gives an
// empty, non-nil slice.
func ReadCSV(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read latency CSV: %w", err)
	}
	defer f.Close()

	values := []float64{}
	firstBlank := 0 // line number of the first blank line in the current run of blanks
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			if firstBlank == 0 {
				firstBlank = line
			}
			continue
		}
		if firstBlank != 0 {
			return nil, fmt.Errorf("read latency CSV %s: line %d: blank line before more values", path, firstBlank)
		}
		v, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("read latency CSV %s: line %d: %q is not a finite number of seconds", path, line, truncate(text, 40))
		}
		values = append(values, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read latency CSV %s: after line %d: %w", path, line, err)
	}
	return values, nil
}

// truncate shortens s for an error message so a garbage file cannot
// produce a megabyte-long error.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
