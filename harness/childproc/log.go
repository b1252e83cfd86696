package childproc

import (
	"fmt"
	"os"
	"sync"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Sink receives a child's output one whole line at a time (colour
// escapes stripped, line ending removed) and returns the line as the
// Tail should keep it: scrubbed of secrets. It is called from the
// child's drain goroutine, one line after another.
type Sink interface {
	Line(text string) string
}

// Log is a child's output kept for after the run: a file written one
// whole line at a time (so stdout and stderr never interleave inside a
// line) with every secret scrubbed. Several children may share one
// (QEMU's boot retries append to the same log); its owner closes it once
// they are gone. Safe for concurrent use.
type Log struct {
	path string
	file *os.File
	red  *secret.Redactor

	mu       sync.Mutex
	err      error // the first write error
	closed   bool
	closeErr error
}

// OpenLog creates (or, with appendTo, appends to) the log at path, mode
// 0600, hiding each of secrets.
func OpenLog(path string, appendTo bool, secrets ...string) (*Log, error) {
	mode := os.O_TRUNC
	if appendTo {
		mode = os.O_APPEND
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|mode, 0o600)
	if err != nil {
		return nil, err
	}
	return &Log{path: path, file: f, red: secret.NewRedactor(f, secrets...)}, nil
}

// Line writes one whole line and returns it scrubbed, for the tail. A
// write error is kept for Close (the line still reaches the tail).
func (l *Log) Line(text string) string {
	if _, err := l.red.Write([]byte(text + "\n")); err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = fmt.Errorf("write log %s: %w", l.path, err)
		}
		l.mu.Unlock()
	}
	return l.red.Scrub(text)
}

// Scrub returns s with the log's secrets hidden, for error messages that
// quote what the child said.
func (l *Log) Scrub(s string) string { return l.red.Scrub(s) }

// Path is where the log is.
func (l *Log) Path() string { return l.path }

// Close closes the file and reports the first error seen writing or
// closing it. Later calls return the same result. Close only once no
// child writes to the log any more.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.closeErr
	}
	l.closed = true
	err := l.red.Flush()
	if cerr := l.file.Close(); err == nil {
		err = cerr
	}
	switch {
	case l.err != nil:
		l.closeErr = l.err
	case err != nil:
		l.closeErr = fmt.Errorf("close log %s: %w", l.path, err)
	}
	return l.closeErr
}
