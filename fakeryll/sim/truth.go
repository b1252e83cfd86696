package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"
)

// TruthHeader is the first line of a truth file. The columns are:
//
//	press          1-based number of the key-down, in the order the key-downs
//	               arrived (send_key down or press, and each pasted character)
//	arrival_us     wall clock (µs) when the request was read
//	first_draw_us  wallclock_us of the burst's first surface_drawn; empty when
//	               the key-down drew nothing
//	last_draw_us   wallclock_us of its last surface_drawn: the end of the repaint
//	first_draw_s   first_draw_us - arrival_us in seconds (%.6f), or empty
//	repaint_s      last_draw_us - arrival_us in seconds (%.6f), or empty
//	draws          number of surface_drawn events in the burst (0 for none)
//
// The times are what the simulated screen did, whether or not the events
// reached the client (a full queue can still lose them), so a loadtest's
// per-press output can be compared with it row by row.
var TruthHeader = []string{"press", "arrival_us", "first_draw_us", "last_draw_us", "first_draw_s", "repaint_s", "draws"}

// TruthRow is one press in a truth file.
type TruthRow struct {
	Press       int
	ArrivalUS   int64
	FirstDrawUS int64 // 0 when Draws is 0
	LastDrawUS  int64 // 0 when Draws is 0
	Draws       int
}

// Drawn reports whether the press drew anything.
func (r TruthRow) Drawn() bool { return r.Draws > 0 }

// FirstDraw is the modelled keypress-to-first-draw latency.
func (r TruthRow) FirstDraw() time.Duration {
	return time.Duration(r.FirstDrawUS-r.ArrivalUS) * time.Microsecond
}

// Repaint is the modelled keypress-to-last-draw latency.
func (r TruthRow) Repaint() time.Duration {
	return time.Duration(r.LastDrawUS-r.ArrivalUS) * time.Microsecond
}

func (r TruthRow) record() []string {
	rec := []string{strconv.Itoa(r.Press), strconv.FormatInt(r.ArrivalUS, 10), "", "", "", "", strconv.Itoa(r.Draws)}
	if r.Drawn() {
		rec[2] = strconv.FormatInt(r.FirstDrawUS, 10)
		rec[3] = strconv.FormatInt(r.LastDrawUS, 10)
		rec[4] = secondsUS(r.FirstDrawUS - r.ArrivalUS)
		rec[5] = secondsUS(r.LastDrawUS - r.ArrivalUS)
	}
	return rec
}

// secondsUS formats a non-negative µs count as seconds with six decimals,
// exactly (no float rounding).
func secondsUS(us int64) string {
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

// ReadTruthFile reads a truth file written by the truth-file knob.
func ReadTruthFile(path string) ([]TruthRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read truth file: %w", err)
	}
	defer f.Close()
	rows, err := ReadTruth(f)
	if err != nil {
		return nil, fmt.Errorf("read truth file %s: %w", path, err)
	}
	return rows, nil
}

// ReadTruth parses a truth file, checking its header and every field.
func ReadTruth(r io.Reader) ([]TruthRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(TruthHeader)
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty: no header")
	}
	if err != nil {
		return nil, err
	}
	if !slices.Equal(head, TruthHeader) {
		return nil, fmt.Errorf("header %q, want %q", head, TruthHeader)
	}
	rows := []TruthRow{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		row, err := parseTruthRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		rows = append(rows, row)
	}
}

func parseTruthRecord(rec []string) (TruthRow, error) {
	var row TruthRow
	var err error
	if row.Press, err = strconv.Atoi(rec[0]); err != nil || row.Press < 1 {
		return row, fmt.Errorf("press %q is not a positive integer", rec[0])
	}
	if row.ArrivalUS, err = strconv.ParseInt(rec[1], 10, 64); err != nil {
		return row, fmt.Errorf("arrival_us %q: %w", rec[1], err)
	}
	if row.Draws, err = strconv.Atoi(rec[6]); err != nil || row.Draws < 0 {
		return row, fmt.Errorf("draws %q is not a count", rec[6])
	}
	if row.Draws == 0 {
		if rec[2] != "" || rec[3] != "" || rec[4] != "" || rec[5] != "" {
			return row, errors.New("a press with no draws has draw times")
		}
		return row, nil
	}
	if row.FirstDrawUS, err = strconv.ParseInt(rec[2], 10, 64); err != nil {
		return row, fmt.Errorf("first_draw_us %q: %w", rec[2], err)
	}
	if row.LastDrawUS, err = strconv.ParseInt(rec[3], 10, 64); err != nil {
		return row, fmt.Errorf("last_draw_us %q: %w", rec[3], err)
	}
	if row.FirstDrawUS < row.ArrivalUS || row.LastDrawUS < row.FirstDrawUS {
		return row, errors.New("draw times out of order")
	}
	return row, nil
}

// truthWriter writes rows in press order, whatever order they come in (a
// press that draws nothing is written at its would-be landing, which can
// come before the first draw of the press before it).
type truthWriter struct {
	w       *csv.Writer
	c       io.Closer
	next    int
	pending map[int]TruthRow
	failed  bool
}

func newTruthWriter(path string) (*truthWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open truth file: %w", err)
	}
	tw := &truthWriter{w: csv.NewWriter(f), c: f, next: 1, pending: map[int]TruthRow{}}
	if err := tw.w.Write(TruthHeader); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write truth file header: %w", err)
	}
	tw.w.Flush()
	if err := tw.w.Error(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write truth file header: %w", err)
	}
	return tw, nil
}

// add records a press and writes every row now in order. Each row is
// flushed at once so a reader sees it as soon as the first draw lands.
func (tw *truthWriter) add(r TruthRow) error {
	if tw.failed {
		return nil
	}
	tw.pending[r.Press] = r
	wrote := false
	for {
		row, ok := tw.pending[tw.next]
		if !ok {
			break
		}
		delete(tw.pending, tw.next)
		tw.next++
		_ = tw.w.Write(row.record())
		wrote = true
	}
	if !wrote {
		return nil
	}
	tw.w.Flush()
	if err := tw.w.Error(); err != nil {
		tw.failed = true
		return err
	}
	return nil
}

// close writes the rows still waiting for an earlier press (one whose
// first draw never came before the session ended), in press order, then
// closes the file.
func (tw *truthWriter) close() error {
	if !tw.failed {
		for _, p := range slices.Sorted(maps.Keys(tw.pending)) {
			_ = tw.w.Write(tw.pending[p].record())
		}
	}
	tw.w.Flush()
	return errors.Join(tw.w.Error(), tw.c.Close())
}
