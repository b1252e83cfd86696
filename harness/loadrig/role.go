package loadrig

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// RoleVar names the environment variable that makes the loadtest's own
// binary, re-executed by StartProxy or StartSynthetic, run as one of
// their children ("proxy" or "generator") instead of the loadtest.
const RoleVar = "LATENCY_CHILD_ROLE"

// role is what a child process does: it handles commands one at a time
// (from the read loop's goroutine) and is closed once, when the parent
// is gone or asks it to end.
type role interface {
	handle(ctx context.Context, op string, args json.RawMessage) (any, error)
	close() error
}

// roles are the children this package knows. Tests add their own.
var roles = map[string]func(log *slog.Logger) role{
	roleProxy:     newProxyRole,
	roleGenerator: newGeneratorRole,
}

// Child runs the process as a loadrig child when RoleVar says so, and
// exits with its status; otherwise it returns at once. It must be the
// first thing the loadtest's TestMain does (suite.Main calls it), before
// flags or configuration are read: a child has neither.
func Child() {
	name, ok := os.LookupEnv(RoleVar)
	if !ok {
		return
	}
	os.Exit(runChild(name, os.Stdin, os.Stdout))
}

// runChild serves role name on in and out until in ends (the parent
// closed it, or died): it returns the exit status.
func runChild(name string, in io.Reader, out io.Writer) int {
	w := &lineWriter{w: out}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("role", name)
	mk, ok := roles[name]
	if !ok {
		log.Error("unknown loadrig child role: want proxy or generator", "var", RoleVar)
		return 2
	}
	r := mk(log)
	err := serve(r, in, w, log)
	if cerr := r.close(); cerr != nil {
		log.Error("close", "err", cerr)
		err = errors.Join(err, cerr)
	}
	if err != nil {
		log.Error("child ends in error", "err", err)
		return 1
	}
	return 0
}

// serve reads commands until in ends and answers each in turn. A line it
// cannot read is answered with an error (id 0, or the id it could read)
// and serving goes on.
func serve(r role, in io.Reader, w *lineWriter, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br := bufio.NewReaderSize(in, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		switch {
		case errors.Is(err, io.EOF) && len(line) == 0:
			log.Info("stdin closed: the loadtest is done or gone; ending")
			return nil
		case errors.Is(err, errLineTooLong):
			w.answer(answer{Error: fmt.Sprintf("line %d is not a command: %v", n, err)})
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("read commands: %w", err)
		}
		var c command
		if jerr := json.Unmarshal(line, &c); jerr != nil || c.Op == "" {
			why := "no op"
			if jerr != nil {
				why = jerr.Error()
			}
			w.answer(answer{ID: c.ID, Error: fmt.Sprintf("line %d is not a command (%s): %q", n, why, clip(line, 80))})
		} else {
			res, herr := r.handle(ctx, c.Op, c.Args)
			a := answer{ID: c.ID}
			if herr != nil {
				a.Error = herr.Error()
			} else if a.Result, herr = json.Marshal(res); herr != nil {
				a.Error = fmt.Sprintf("encode the result of %s: %v", c.Op, herr)
				a.Result = nil
			}
			w.answer(a)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// errLineTooLong is readLine's error for a line over maxLine.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)

// readLine reads one line without its line ending. A line longer than
// maxLine is read to its end and dropped (errLineTooLong); at the end of
// the stream a last line without '\n' comes with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		part, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(part) > maxLine+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, part...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			if err == nil {
				err = errLineTooLong
			}
			return nil, err
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// lineWriter serialises whole lines to the child's stdout: log lines and
// answers never interleave, whatever their size.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lineWriter) answer(a answer) {
	b, err := json.Marshal(a)
	if err != nil { // cannot happen: the result is raw JSON already
		b, _ = json.Marshal(answer{ID: a.ID, Error: "encode answer: " + err.Error()})
	}
	_, _ = l.Write(append(b, '\n'))
}
