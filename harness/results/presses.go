package results

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// PressesSuffix ends latency-<run>-presses.csv.
const PressesSuffix = "-presses.csv"

// PressesName is the per-press record of a keypress run:
// latency-<run>-presses.csv.
func PressesName(run string) string { return FilePrefix + run + PressesSuffix }

// PressesHeader is the presses CSV's header. Columns are part of the file
// format: add at the end, never rename or reorder.
var PressesHeader = []string{
	"press", "sent_at", "verdict", "first_draw_s", "repaint_s", "draws",
	"background_draws", "late_draws", "dropped", "quiet_wait_s", "reason",
}

// Press verdicts, as the measurement names them (measure.Verdict); a
// test pins the two lists together.
const (
	PressSample     = "sample"
	PressMiss       = "miss"
	PressLate       = "late"
	PressSuspect    = "suspect"
	PressUnfinished = "unfinished"
)

// PressRow is one key press. A press that got no first draw in its
// window (miss, late, unfinished) has no latencies: Answered is false and
// the latency cells are left empty, never zero.
type PressRow struct {
	// Number is 1-based; the same number as in a simulator's truth file.
	Number  int
	SentAt  time.Time
	Verdict string
	// Answered says FirstDraw, Repaint and Draws hold values.
	Answered   bool
	FirstDraw  time.Duration
	Repaint    time.Duration
	Draws      int
	Background int
	LateDraws  int
	Dropped    int
	QuietWait  time.Duration
	Reason     string
}

// PressesWriter appends rows to latency-<run>-presses.csv, one write per
// row, so a killed run keeps every press decided before it died. Safe
// for concurrent use.
type PressesWriter struct {
	mu   sync.Mutex
	f    *os.File
	path string
	n    int
}

// CreatePresses creates latency-<run>-presses.csv in dir with its header.
// An existing file is an error, as for the CSV.
func CreatePresses(dir, run string) (*PressesWriter, error) {
	f, path, err := createNew(dir, run, PressesName(run), "presses CSV")
	if err != nil {
		return nil, err
	}
	w := &PressesWriter{f: f, path: path}
	if err := w.writeRecord(PressesHeader); err != nil {
		_ = f.Close()
		return nil, err
	}
	return w, nil
}

// Path returns the file's path.
func (w *PressesWriter) Path() string { return w.path }

// Write appends one press.
func (w *PressesWriter) Write(p PressRow) error {
	rec := []string{
		strconv.Itoa(p.Number),
		p.SentAt.UTC().Format(time.RFC3339Nano),
		p.Verdict,
		"", "", "",
		strconv.Itoa(p.Background),
		strconv.Itoa(p.LateDraws),
		strconv.Itoa(p.Dropped),
		seconds(p.QuietWait),
		p.Reason,
	}
	if p.Answered {
		rec[3], rec[4], rec[5] = seconds(p.FirstDraw), seconds(p.Repaint), strconv.Itoa(p.Draws)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.writeRecordLocked(rec); err != nil {
		return err
	}
	w.n++
	return nil
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }

func (w *PressesWriter) writeRecord(rec []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeRecordLocked(rec)
}

func (w *PressesWriter) writeRecordLocked(rec []string) error {
	if w.f == nil {
		return fmt.Errorf("write press to %s: %w", w.path, os.ErrClosed)
	}
	var line lineBuffer
	cw := csv.NewWriter(&line)
	_ = cw.Write(rec)
	cw.Flush()
	if _, err := w.f.Write(line); err != nil {
		return fmt.Errorf("write press %d to %s: %w", w.n+1, w.path, err)
	}
	return nil
}

type lineBuffer []byte

func (b *lineBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// Close syncs and closes the file. Calling Close again does nothing.
func (w *PressesWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("close presses CSV %s: %w", w.path, err)
	}
	return nil
}

// ReadPresses reads a presses CSV back. The header must start with
// PressesHeader's columns (later files may add columns at the end).
func ReadPresses(path string) ([]PressRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read presses CSV: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read presses CSV %s: header: %w", path, err)
	}
	if len(head) < len(PressesHeader) {
		return nil, fmt.Errorf("read presses CSV %s: header has %d columns, want at least %d", path, len(head), len(PressesHeader))
	}
	for i, h := range PressesHeader {
		if head[i] != h {
			return nil, fmt.Errorf("read presses CSV %s: column %d is %q, want %q", path, i+1, head[i], h)
		}
	}
	rows := []PressRow{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read presses CSV %s: %w", path, err)
		}
		row, err := parsePressRow(rec)
		if err != nil {
			return nil, fmt.Errorf("read presses CSV %s line %d: %w", path, line, err)
		}
		rows = append(rows, row)
	}
}

func parsePressRow(rec []string) (PressRow, error) {
	if len(rec) < len(PressesHeader) {
		return PressRow{}, fmt.Errorf("%d columns, want %d", len(rec), len(PressesHeader))
	}
	var p PressRow
	var errs []error
	atoi := func(s, col string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", col, s, err))
		}
		return n
	}
	dur := func(s, col string) time.Duration {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", col, s, err))
		}
		return time.Duration(v * float64(time.Second)).Round(time.Microsecond)
	}
	p.Number = atoi(rec[0], "press")
	t, err := time.Parse(time.RFC3339Nano, rec[1])
	if err != nil {
		errs = append(errs, fmt.Errorf("sent_at: %w", err))
	}
	p.SentAt = t
	p.Verdict = rec[2]
	if rec[3] != "" {
		p.Answered = true
		p.FirstDraw = dur(rec[3], "first_draw_s")
		p.Repaint = dur(rec[4], "repaint_s")
		p.Draws = atoi(rec[5], "draws")
	}
	p.Background = atoi(rec[6], "background_draws")
	p.LateDraws = atoi(rec[7], "late_draws")
	p.Dropped = atoi(rec[8], "dropped")
	p.QuietWait = dur(rec[9], "quiet_wait_s")
	p.Reason = rec[10]
	return p, errors.Join(errs...)
}
