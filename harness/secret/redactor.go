package secret

import (
	"bytes"
	"io"
	"sync"
)

// Redactor is an io.Writer that replaces every registered secret with
// Redacted before passing the bytes on. It is used for output we do not
// control, such as ryll's own log, which may echo the console URL.
//
// It works line by line: bytes are held until a newline arrives (or until
// the held line exceeds maxHeld bytes, or Flush or Close is called), so a
// secret split across two Write calls is still found. Safe for concurrent
// use.
type Redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
	held    []byte
}

// maxHeld bounds the bytes kept while waiting for a newline. A longer
// line is passed on in pieces; a secret straddling a piece boundary of
// such a line could escape, so the bound is far above any log line.
const maxHeld = 1 << 20

// NewRedactor returns a Redactor writing to w that hides each non-empty
// secret.
func NewRedactor(w io.Writer, secrets ...string) *Redactor {
	r := &Redactor{w: w}
	r.Add(secrets...)
	return r
}

// Add registers more secrets. Empty strings are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, []byte(s))
		}
	}
}

// Write implements io.Writer. It reports len(p) on success even though
// the bytes written downstream differ.
func (r *Redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = append(r.held, p...)
	cut := bytes.LastIndexByte(r.held, '\n') + 1
	if cut == 0 && len(r.held) > maxHeld {
		cut = len(r.held)
	}
	if cut == 0 {
		return len(p), nil
	}
	if err := r.emit(r.held[:cut]); err != nil {
		return 0, err
	}
	r.held = append(r.held[:0], r.held[cut:]...)
	return len(p), nil
}

// Flush writes any partial line held back.
func (r *Redactor) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) == 0 {
		return nil
	}
	err := r.emit(r.held)
	r.held = r.held[:0]
	return err
}

func (r *Redactor) emit(b []byte) error {
	out := b
	for _, s := range r.secrets {
		if bytes.Contains(out, s) {
			out = bytes.ReplaceAll(out, s, []byte(Redacted))
		}
	}
	_, err := r.w.Write(out)
	return err
}

// Scrub returns s with every secret replaced, for strings that do not go
// through a Redactor (error messages, quoted log tails).
func (r *Redactor) Scrub(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := []byte(s)
	for _, sec := range r.secrets {
		b = bytes.ReplaceAll(b, sec, []byte(Redacted))
	}
	return string(b)
}
