package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Directions of a transcript entry.
const (
	// TranscriptSend is a request line, recorded just before it is written.
	TranscriptSend = "send"
	// TranscriptRecv is a line read from the server.
	TranscriptRecv = "recv"
	// TranscriptEnd records why the connection ended; its line is the
	// reason.
	TranscriptEnd = "end"
)

// MaxTranscriptLine bounds the line an entry keeps: 64 KiB. A screenshot
// answer can be megabytes of base64 that tell a reader nothing more; a
// longer line keeps its start, with Bytes and Truncated saying so.
const MaxTranscriptLine = 64 << 10

// TranscriptEntry is one line of a transcript: one JSON object per line
// (NDJSON). Line is the wire line without its newline, as a JSON string
// (a malformed line is shown as it came), with every secret replaced.
type TranscriptEntry struct {
	Time      time.Time `json:"time"`
	Dir       string    `json:"dir"`
	Line      string    `json:"line"`
	Bytes     int       `json:"bytes,omitempty"` // the line's length, when Truncated
	Truncated bool      `json:"truncated,omitempty"`
}

// transcript writes TranscriptEntry lines to one writer, one Write per
// entry, serialised. After the first write error it records nothing more
// and logs the error once; after close it records nothing.
type transcript struct {
	mu     sync.Mutex
	w      io.Writer
	red    *secret.Redactor
	log    *slog.Logger
	buf    []byte
	quoted bytes.Buffer // the JSON string of the line being recorded
	enc    *json.Encoder
	failed bool
	closed bool
}

func newTranscript(w io.Writer, secrets []string, log *slog.Logger) *transcript {
	if w == nil {
		return nil
	}
	t := &transcript{w: w, red: secret.NewRedactor(io.Discard), log: log}
	for _, s := range secrets {
		// On the wire a secret inside a JSON string is escaped: a
		// password with a quote or a backslash is spelled differently
		// there, so both spellings are replaced.
		t.red.Add(s)
		for _, html := range []bool{true, false} {
			if q := jsonString(s, html); len(q) > 2 && q[1:len(q)-1] != s {
				t.red.Add(q[1 : len(q)-1])
			}
		}
	}
	t.enc = json.NewEncoder(&t.quoted)
	t.enc.SetEscapeHTML(false) // the line stays readable: <, > and & as they are
	return t
}

// jsonString is s as a JSON string literal, with or without the HTML
// escapes json.Marshal adds.
func jsonString(s string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s) // a string always encodes
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// record writes one entry. line may end in a newline; it is not kept.
func (t *transcript) record(dir string, at time.Time, line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed || t.closed {
		return
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	// Secrets are replaced in the raw line, before JSON escaping could
	// change how one is spelled, and before the line is cut, so that a
	// cut never leaves half a secret.
	text := t.red.Scrub(string(line))
	b := t.buf[:0]
	b = append(b, `{"time":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","dir":"`...)
	b = append(b, dir...)
	b = append(b, `","line":`...)
	full := len(text)
	if full > MaxTranscriptLine {
		text = text[:MaxTranscriptLine]
	}
	t.quoted.Reset()
	if err := t.enc.Encode(text); err != nil { // a string always encodes; keep the entry valid anyway
		t.quoted.Reset()
		t.quoted.WriteString(`""`)
	}
	b = append(b, bytes.TrimSuffix(t.quoted.Bytes(), []byte("\n"))...)
	if full > MaxTranscriptLine {
		b = append(b, `,"bytes":`...)
		b = strconv.AppendInt(b, int64(full), 10)
		b = append(b, `,"truncated":true`...)
	}
	b = append(b, '}', '\n')
	if cap(b) <= 4*MaxTranscriptLine {
		t.buf = b // keep a modest buffer for the next entry
	}
	if _, err := t.w.Write(b); err != nil {
		t.failed = true
		t.log.Warn("control: transcript write failed; no more lines are recorded", "err", err)
	}
}

// end records the reason the connection ended.
func (t *transcript) end(at time.Time, err error) {
	reason := "closed by the client"
	if err != nil {
		reason = fmt.Sprint(err)
	}
	t.record(TranscriptEnd, at, []byte(reason))
}

// close stops recording: the writer is the caller's again.
func (t *transcript) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
}
