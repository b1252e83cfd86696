package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Seeds besides testdata/fuzz: the document's worked examples live there
// as files; these cover the envelope corners.
var fuzzSeeds = []string{
	`{"id": 1, "ok": true, "result": {}}`,
	`{"ok": false, "error": {"code": "busy", "message": "another client is connected"}}`,
	`{"event": "latency", "data": {"sample_ms": 0.83, "wallclock_us": 1717000000456789}}`,
	`{"event": "surface_drawn", "data": {"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1, "wallclock_us": 1717000000456789, "rect": [0, 0, 32, 48]}}`,
	`{"event": "surface_drawn", "data": {"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1, "wallclock_us": 1, "rect": [0, -1, 1e400, null]}}`,
	`{"id": "x", "ok": false, "error": {"code": 5}}`,
	`{"id": 18446744073709551615, "ok": true, "result": null}`,
	`{"id": 18446744073709551616, "ok": true}`,
	`{"ID": 3, "OK": true, "Event": "latency", "data": {}}`,
	`[]`,
	``,
	"{\"event\": \"\\u0000\", \"data\": {}}",
}

// dirtyLine sets every envelope field, so decoding after it shows whether
// the reused envelope leaks state into the next line.
const dirtyLine = `{"id": 99, "ok": false, "result": {"r": 1}, "error": {"code": "c", "message": "m"}, "event": "e", "data": {"d": 1}}`

// FuzzDecodeLine checks that no line can panic the decoder, that a reused
// envelope decodes exactly like a fresh one, and that every accepted frame
// has what the reader relies on.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkSplitAgainstEncodingJSON(t, line)
		var fresh, reused envelope
		_, _ = decodeLine(&reused, []byte(dirtyLine))
		f1, err1 := decodeLine(&fresh, line)
		f2, err2 := decodeLine(&reused, line)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("fresh err %v, reused err %v", err1, err2)
		}
		if !sameFrame(f1, f2) {
			t.Fatalf("reused envelope leaked state: %+v vs %+v", f1, f2)
		}
		if err1 != nil {
			if !errors.Is(err1, ErrMalformed) {
				t.Fatalf("decode error does not match ErrMalformed: %v", err1)
			}
			return
		}
		switch f1.kind {
		case frameEvent:
			if f1.event == "" || len(f1.data) == 0 {
				t.Fatalf("event without name or data: %+v", f1)
			}
			ev := Event{Name: f1.event, Data: f1.data}
			_, _ = ev.SurfaceDrawn()
			_, _ = ev.Latency()
			_, _ = ev.Dropped()
			_, _ = ev.agentConnected()
			_, _ = ev.pasteCompleted()
			_, _ = ev.pasteFailed()
			_, _ = ev.digestUpdated()
		case frameResponse:
			if f1.ok && (f1.idKind == idAbsent || len(f1.result) == 0) {
				t.Fatalf("success without id or result: %+v", f1)
			}
			if !f1.ok && f1.code == "" {
				t.Fatalf("failure without code: %+v", f1)
			}
			if f1.ok {
				_, _ = decodeScreenshot(f1.result)
			}
		default:
			t.Fatalf("no kind: %+v", f1)
		}
	})
}

// checkSplitAgainstEncodingJSON compares splitObject with encoding/json
// decoding the same object into a map, member by member.
func checkSplitAgainstEncodingJSON(t *testing.T, line []byte) {
	t.Helper()
	trimmed := bytes.TrimLeft(line, " \t\r\n")
	if !json.Valid(trimmed) || len(trimmed) == 0 || trimmed[0] != '{' {
		return
	}
	var oracle map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &oracle); err != nil {
		t.Fatalf("valid object did not decode: %v", err)
	}
	var env envelope
	splitObject(&env, trimmed)
	for key, got := range map[string]json.RawMessage{
		"id": env.ID, "ok": env.OK, "result": env.Result, "error": env.Error, "event": env.Event, "data": env.Data,
	} {
		if want := oracle[key]; !bytes.Equal(want, got) {
			t.Fatalf("member %q: split %q, encoding/json %q", key, got, want)
		}
	}
}

func sameFrame(a, b frame) bool {
	return a.kind == b.kind && a.idKind == b.idKind && a.id == b.id && a.ok == b.ok &&
		bytes.Equal(a.result, b.result) && a.code == b.code && a.message == b.message &&
		a.event == b.event && bytes.Equal(a.data, b.data)
}

// FuzzLineReader checks the framing: lines never contain a newline, stay
// within the bound (or are reported over-long with a bounded prefix), and
// a stream without over-long lines is split exactly.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc\n"), uint16(2))
	f.Add([]byte("{\"id\": 1}\npartial"), uint16(100))
	f.Add(bytes.Repeat([]byte("x"), 70000), uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		if limit == 0 {
			limit = 1
		}
		lr := newLineReader(bytes.NewReader(data), int(limit))
		var rebuilt []byte
		clean := true
		for range len(data) + 2 {
			line, err := lr.next()
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line contains a newline: %q", line)
			}
			switch {
			case errors.Is(err, ErrLineTooLong):
				clean = false
				if len(line) > keepPrefix {
					t.Fatalf("over-long prefix of %d bytes", len(line))
				}
				continue
			case errors.Is(err, io.EOF):
				if clean && !bytes.Equal(rebuilt, data) {
					t.Fatalf("split lost bytes: %q vs %q", rebuilt, data)
				}
				return
			case errors.Is(err, io.ErrUnexpectedEOF):
				if bytes.HasSuffix(data, []byte("\n")) {
					t.Fatalf("unexpected EOF after a complete line")
				}
				return
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			}
			if len(line) > int(limit) {
				t.Fatalf("line of %d bytes over limit %d", len(line), limit)
			}
			rebuilt = append(append(rebuilt, line...), '\n')
		}
		t.Fatalf("reader did not reach the end of %d bytes", len(data))
	})
}

// FuzzClientStream feeds a whole byte stream to a live client, as a
// hostile server would, and checks that it neither panics nor hangs: the
// connection ends, Events closes, Close returns.
func FuzzClientStream(f *testing.F) {
	f.Add([]byte(dirtyLine + "\n" + `{"event": "latency", "data": {}}` + "\n"))
	f.Add([]byte("\n\n{\n}\n[\n" + `{"ok": false, "error": {"code": "busy", "message": ""}}` + "\n"))
	f.Add([]byte(`{"id": 1, "ok": true, "result": {"server_name": "ryll", "protocol_version": "1.1"}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		c := NewClient(a, Options{MaxLineBytes: 256, EventQueue: 8})
		defer c.Close()
		// A pending hello gives responses with id 1 somewhere to go.
		helloDone := make(chan struct{})
		go func() {
			defer close(helloDone)
			_, _ = c.Hello(t.Context())
		}()
		var req [4096]byte
		_, _ = b.Read(req[:]) // take the hello line so the write completes
		_, _ = b.Write(data)
		_ = b.Close()
		select {
		case <-c.Done():
		case <-time.After(hangGuard):
			t.Fatal("client did not notice the end of the stream")
		}
		for range c.Events() {
		}
		<-helloDone
		s := c.Stats()
		if s.Lines < s.Malformed+s.Oversized {
			t.Fatalf("inconsistent stats %+v", s)
		}
	})
}
