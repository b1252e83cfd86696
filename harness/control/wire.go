package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// envelope is the union of the three wire shapes: the raw value of each
// top-level member the protocol defines (other members are ignored, as
// forward compatibility requires). Raw values mean splitting a line never
// fails on a member's type, and the small buffers are reused from line to
// line so a typical event costs one allocation (its data).
type envelope struct {
	ID     json.RawMessage
	OK     json.RawMessage
	Result json.RawMessage
	Error  json.RawMessage
	Event  json.RawMessage
	Data   json.RawMessage
}

// reset empties e while keeping the small reusable buffers, so members
// absent from this line cannot carry over from the last one.
func (e *envelope) reset() {
	e.ID = e.ID[:0]
	e.OK = e.OK[:0]
	e.Error = e.Error[:0]
	e.Event = e.Event[:0]
	e.Result = e.Result[:0]
	e.Data = e.Data[:0]
}

type frameKind uint8

const (
	frameResponse frameKind = iota + 1
	frameEvent
)

type idKind uint8

const (
	idAbsent idKind = iota // no id, or null: only the busy line is like that
	idUint                 // an unsigned integer, the only kind this client sends
	idOther                // a string or other value this client never sends
)

// frame is one decoded line.
type frame struct {
	kind    frameKind
	idKind  idKind
	id      uint64
	ok      bool
	result  json.RawMessage // owned by the frame
	code    string
	message string
	event   string
	data    json.RawMessage // owned by the frame
}

// wireError is the error object of a failed response.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var emptyObject = json.RawMessage(`{}`)

// decodeLine decodes one non-empty line using env as scratch space. On an
// error the frame still carries what was learnt: if its idKind is idUint
// the line was a response to that id, so the waiting call can fail at once
// instead of waiting for its context.
func decodeLine(env *envelope, line []byte) (frame, error) {
	var f frame
	trimmed := bytes.TrimLeft(line, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return f, fmt.Errorf("%w: line is not a JSON object", ErrMalformed)
	}
	if !json.Valid(trimmed) {
		// Unmarshal only to learn where the syntax breaks.
		var v any
		err := json.Unmarshal(trimmed, &v)
		return f, fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, err)
	}
	env.reset()
	splitObject(env, trimmed)
	hasOK, hasEvent := len(env.OK) > 0, len(env.Event) > 0
	switch {
	case hasOK && hasEvent:
		return f, fmt.Errorf("%w: line has both ok and event", ErrMalformed)
	case hasEvent:
		return decodeEvent(env)
	case hasOK:
		return decodeResponse(env)
	default:
		return f, fmt.Errorf("%w: line has neither ok nor event", ErrMalformed)
	}
}

func decodeEvent(env *envelope) (frame, error) {
	f := frame{kind: frameEvent}
	name, err := decodeName(env.Event)
	if err != nil {
		return f, fmt.Errorf("%w: event name: %v", ErrMalformed, err)
	}
	if len(env.Data) == 0 {
		return f, fmt.Errorf("%w: event %q has no data", ErrMalformed, name)
	}
	f.event = name
	f.data, env.Data = env.Data, nil
	return f, nil
}

func decodeResponse(env *envelope) (frame, error) {
	f := frame{kind: frameResponse}
	f.idKind, f.id = decodeID(env.ID)
	switch string(env.OK) {
	case "true":
		f.ok = true
	case "false":
	default:
		return f, fmt.Errorf("%w: ok is %s, want true or false", ErrMalformed, clip(env.OK))
	}
	if f.ok {
		if f.idKind == idAbsent {
			return f, fmt.Errorf("%w: successful response without an id", ErrMalformed)
		}
		if len(env.Result) == 0 || string(env.Result) == "null" {
			// The document promises a result object (maybe {}); a missing
			// one carries no information, so treat it as empty.
			f.result = emptyObject
		} else {
			f.result, env.Result = env.Result, nil
		}
		return f, nil
	}
	var we wireError
	if len(env.Error) == 0 || env.Error[0] != '{' {
		return f, fmt.Errorf("%w: failed response without an error object", ErrMalformed)
	}
	if err := json.Unmarshal(env.Error, &we); err != nil {
		return f, fmt.Errorf("%w: error object: %v", ErrMalformed, err)
	}
	if we.Code == "" {
		return f, fmt.Errorf("%w: error object without a code", ErrMalformed)
	}
	f.code, f.message = we.Code, we.Message
	return f, nil
}

// splitObject copies the raw values of the envelope's members out of obj,
// a JSON object already checked by json.Valid (so the scan need not check
// syntax). Keys match exactly; a repeated key keeps its last value, as
// encoding/json does.
func splitObject(env *envelope, obj []byte) {
	i := 1 // past '{'
	for {
		i = skipSpace(obj, i)
		switch obj[i] {
		case '}':
			return
		case ',':
			i++
			continue
		}
		keyStart := i
		i = skipString(obj, i)
		key := obj[keyStart+1 : i-1]
		i = skipSpace(obj, i) + 1 // past ':'
		i = skipSpace(obj, i)
		valStart := i
		i = skipValue(obj, i)
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(obj[keyStart:keyStart+len(key)+2], &k) == nil {
				key = []byte(k)
			}
		}
		val := obj[valStart:i]
		switch string(key) {
		case "id":
			env.ID = append(env.ID[:0], val...)
		case "ok":
			env.OK = append(env.OK[:0], val...)
		case "result":
			env.Result = append(env.Result[:0], val...)
		case "error":
			env.Error = append(env.Error[:0], val...)
		case "event":
			env.Event = append(env.Event[:0], val...)
		case "data":
			env.Data = append(env.Data[:0], val...)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return len(b)
	}
}

// decodeID classifies a raw id. Only plain unsigned integers (no sign,
// fraction or exponent) can be ids this client sent.
func decodeID(raw json.RawMessage) (idKind, uint64) {
	if len(raw) == 0 || string(raw) == "null" {
		return idAbsent, 0
	}
	var n uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return idOther, 0
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return idOther, 0
		}
		n = n*10 + d
	}
	return idUint, n
}

// decodeName decodes an event name, reusing the constant strings for the
// names the document defines so the common case allocates nothing.
func decodeName(raw json.RawMessage) (string, error) {
	switch string(raw) {
	case `"surface_drawn"`:
		return EventSurfaceDrawn, nil
	case `"latency"`:
		return EventLatency, nil
	case `"dropped"`:
		return EventDropped, nil
	case `"agent_connected"`:
		return EventAgentConnected, nil
	case `"paste_completed"`:
		return EventPasteCompleted, nil
	case `"paste_failed"`:
		return EventPasteFailed, nil
	case `"digest_updated"`:
		return EventDigestUpdated, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("want a string, got %s", clip(raw))
	}
	if s == "" {
		return "", errors.New("empty")
	}
	return s, nil
}

// clip shortens b for a log line or error so a huge or hostile line
// cannot flood the log.
func clip(b []byte) string {
	const n = 80
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + fmt.Sprintf("...(%d bytes)", len(b))
}

// keepPrefix is how much of an over-long line is kept, for the log and for
// finding which call it answered.
const keepPrefix = 4096

// releaseAbove is the accumulation buffer capacity beyond which the buffer
// is dropped after use, so one multi-MB screenshot does not pin its memory
// for the life of the connection.
const releaseAbove = 1 << 20

// lineReader splits the stream on '\n' with a bound on line length.
type lineReader struct {
	br   *bufio.Reader
	max  int
	long []byte
	// done counts the bytes of the complete lines returned, newlines
	// included: the bytes read from the stream beyond it are a line still
	// coming, which a caller that waits can name.
	done atomic.Uint64
	cur  uint64 // bytes of the current line so far
}

func newLineReader(r io.Reader, limit int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: limit}
}

// next returns the next line without its newline; the slice is valid until
// the next call. An over-long line is consumed through its newline and
// reported as ErrLineTooLong together with its first keepPrefix bytes, so
// the stream stays in step. io.EOF means a clean end between lines.
func (r *lineReader) next() ([]byte, error) {
	if cap(r.long) > releaseAbove {
		r.long = nil
	}
	r.long = r.long[:0]
	oversize := false
	for {
		frag, err := r.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if len(frag) > 0 || len(r.long) > 0 || oversize {
				return nil, fmt.Errorf("connection ended mid-line: %w", io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		complete := err == nil
		r.cur += uint64(len(frag))
		if complete {
			frag = frag[:len(frag)-1]
			r.done.Add(r.cur)
			r.cur = 0
		}
		switch {
		case oversize:
		case len(r.long)+len(frag) > r.max:
			oversize = true
			if len(r.long) < keepPrefix {
				r.long = append(r.long, frag[:min(len(frag), keepPrefix-len(r.long))]...)
			}
			r.long = r.long[:min(len(r.long), keepPrefix)]
		case complete && len(r.long) == 0:
			return frag, nil
		default:
			r.long = append(r.long, frag...)
		}
		if complete {
			if oversize {
				return r.long, ErrLineTooLong
			}
			return r.long, nil
		}
	}
}

// peekID finds the id of a truncated response from the start of its line,
// so the call it answered can fail with ErrLineTooLong instead of waiting
// for its context. It reads top-level members in order and gives up at the
// first one it cannot decode whole.
func peekID(prefix []byte) (uint64, bool) {
	dec := json.NewDecoder(bytes.NewReader(prefix))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return 0, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, false
		}
		if key == "id" {
			kind, id := decodeID(raw)
			return id, kind == idUint
		}
	}
	return 0, false
}
