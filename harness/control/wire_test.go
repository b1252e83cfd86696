package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeEvent turns a wire line into an Event as the reader would.
func eventFromLine(t *testing.T, line string) Event {
	t.Helper()
	var env envelope
	f, err := decodeLine(&env, []byte(line))
	require.NoError(t, err)
	require.Equal(t, frameEvent, f.kind)
	return Event{Name: f.event, Data: f.data}
}

func TestTypedEventDecodersOnDocumentExamples(t *testing.T) {
	at := time.UnixMicro(1717000000123456)
	for _, tc := range []struct {
		line   string
		decode func(Event) (any, error)
		want   any
	}{
		{`{"event": "surface_drawn", "data": {"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1.234, "wallclock_us": 1717000000123456}}`,
			func(e Event) (any, error) { return e.SurfaceDrawn() },
			SurfaceDrawn{DisplayChannelID: 0, SurfaceID: 0, ProducedAtSecs: 1.234, WallclockUS: 1717000000123456}},
		{`{"event": "latency", "data": {"sample_ms": 12.4, "wallclock_us": 1717000000123456}}`,
			func(e Event) (any, error) { return e.Latency() },
			Latency{12.4, 1717000000123456}},
		{`{"event": "dropped", "data": {"count": 14}}`,
			func(e Event) (any, error) { return e.Dropped() },
			Dropped{14}},
		{`{"event": "agent_connected", "data": {"connected": false}}`,
			func(e Event) (any, error) { return e.agentConnected() },
			agentConnectedEvent{false}},
		{`{"event": "paste_completed", "data": {"request_id": 6, "chars_sent": 7}}`,
			func(e Event) (any, error) { return e.pasteCompleted() },
			pasteCompletedEvent{RequestID: 6, RawRequestID: json.RawMessage("6"), CharsSent: 7}},
		{`{"event": "paste_completed", "data": {"request_id": "abc", "chars_sent": 7}}`,
			func(e Event) (any, error) { return e.pasteCompleted() },
			pasteCompletedEvent{RequestID: 0, RawRequestID: json.RawMessage(`"abc"`), CharsSent: 7}},
		{`{"event": "paste_failed", "data": {"request_id": 6, "reason": "agent disconnected during paste"}}`,
			func(e Event) (any, error) { return e.pasteFailed() },
			pasteFailedEvent{RequestID: 6, RawRequestID: json.RawMessage("6"), Reason: "agent disconnected during paste"}},
		{`{"event": "digest_updated", "data": {"events": [{"keypress": {"scancode": 0, "timestamp_ms": 138550, "unicode": "\r"}}], "frame_counter": 281, "framebuffer_hash": 4022250974, "wallclock_us": 1765432100000000}}`,
			func(e Event) (any, error) { return e.digestUpdated() },
			digestUpdatedEvent{281, 4022250974, []json.RawMessage{json.RawMessage(`{"keypress": {"scancode": 0, "timestamp_ms": 138550, "unicode": "\r"}}`)}, 1765432100000000}},
	} {
		ev := eventFromLine(t, tc.line)
		t.Run(ev.Name, func(t *testing.T) {
			got, err := tc.decode(ev)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	d, err := eventFromLine(t, `{"event": "surface_drawn", "data": {"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1.234, "wallclock_us": 1717000000123456}}`).SurfaceDrawn()
	require.NoError(t, err)
	assert.True(t, at.Equal(d.Wallclock()))
	assert.True(t, at.Equal(Latency{WallclockUS: 1717000000123456}.Wallclock()))
}

func TestTypedEventDecodersRefuseBadData(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
		want error
	}{
		{"wrong event", Event{Name: EventLatency, Data: json.RawMessage(`{}`)}, ErrInvalidArgument},
		{"missing wallclock", Event{Name: EventSurfaceDrawn, Data: json.RawMessage(`{"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1}`)}, ErrMalformed},
		{"negative surface", Event{Name: EventSurfaceDrawn, Data: json.RawMessage(`{"display_channel_id": 0, "surface_id": -1, "produced_at_secs": 1, "wallclock_us": 1}`)}, ErrMalformed},
		{"data not an object", Event{Name: EventSurfaceDrawn, Data: json.RawMessage(`[1]`)}, ErrMalformed},
		{"no data", Event{Name: EventSurfaceDrawn}, ErrMalformed},
		{"null fields", Event{Name: EventSurfaceDrawn, Data: json.RawMessage(`{"display_channel_id": null, "surface_id": 0, "produced_at_secs": 1, "wallclock_us": 1}`)}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.ev.SurfaceDrawn()
			assert.ErrorIs(t, err, tc.want)
		})
	}
	for name, decode := range map[string]func(Event) error{
		EventLatency:        func(e Event) error { _, err := e.Latency(); return err },
		EventDropped:        func(e Event) error { _, err := e.Dropped(); return err },
		EventAgentConnected: func(e Event) error { _, err := e.agentConnected(); return err },
		EventPasteCompleted: func(e Event) error { _, err := e.pasteCompleted(); return err },
		EventPasteFailed:    func(e Event) error { _, err := e.pasteFailed(); return err },
		EventDigestUpdated:  func(e Event) error { _, err := e.digestUpdated(); return err },
	} {
		t.Run(name+" with empty data", func(t *testing.T) {
			assert.ErrorIs(t, decode(Event{Name: name, Data: json.RawMessage(`{}`)}), ErrMalformed)
		})
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		ok   bool
	}{
		{"1.0", Version{1, 0}, true},
		{"1.2", Version{1, 2}, true},
		{"10.42", Version{10, 42}, true},
		{"1", Version{}, false},
		{"1.2.3", Version{}, false},
		{"v1.2", Version{}, false},
		{"1.-2", Version{}, false},
		{"+1.2", Version{}, false},
		{" 1.2", Version{}, false},
		{"1.", Version{}, false},
		{".2", Version{}, false},
		{"", Version{}, false},
		{"99999999999.0", Version{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVersion(tc.in)
			if !tc.ok {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.in, got.String())
		})
	}
}

func TestVersionAtLeast(t *testing.T) {
	v := Version{1, 2}
	assert.True(t, v.AtLeast(1, 0))
	assert.True(t, v.AtLeast(1, 2))
	assert.False(t, v.AtLeast(1, 3))
	assert.True(t, v.AtLeast(0, 9))
	assert.False(t, v.AtLeast(2, 0))
	assert.True(t, Version{2, 0}.AtLeast(1, 9))
}

func TestCheckScancode(t *testing.T) {
	for code, ok := range map[uint16]bool{
		0x01: true, 0x1C: true, 0x7F: true, 0xE01C: true, 0xE04B: true, 0xE07F: true,
		0x00: false, 0x80: false, 0x9E: false, 0xFF: false, 0xE000: false, 0xE0CB: false,
		0x4BE0: false, 0xE11D: false, 0x0100: false, 0xFFFF: false,
	} {
		t.Run(fmt.Sprintf("%04X", code), func(t *testing.T) {
			err := CheckScancode(code)
			assert.Equal(t, ok, err == nil, "%v", err)
			if err != nil {
				assert.ErrorIs(t, err, ErrInvalidScancode)
				assert.Contains(t, err.Error(), fmt.Sprintf("0x%04X", code))
			}
		})
	}
}

func TestLineReader(t *testing.T) {
	type step struct {
		line string
		err  error
	}
	long := strings.Repeat("z", 100<<10)
	for _, tc := range []struct {
		name  string
		input string
		limit int
		want  []step
	}{
		{"simple", "a\nbb\n", 10, []step{{"a", nil}, {"bb", nil}, {"", io.EOF}}},
		{"empty lines", "\n\nx\n", 10, []step{{"", nil}, {"", nil}, {"x", nil}, {"", io.EOF}}},
		{"exactly the limit", "0123456789\n", 10, []step{{"0123456789", nil}, {"", io.EOF}}},
		{"one over the limit", "0123456789A\nok\n", 10, []step{{"0123456789A", ErrLineTooLong}, {"ok", nil}, {"", io.EOF}}},
		{"long line spanning reads", long + "\nok\n", 200 << 10, []step{{long, nil}, {"ok", nil}, {"", io.EOF}}},
		{"long line over the limit", long + "\nok\n", 1000, []step{{long[:keepPrefix], ErrLineTooLong}, {"ok", nil}, {"", io.EOF}}},
		{"partial last line", "a\nbc", 10, []step{{"a", nil}, {"", io.ErrUnexpectedEOF}}},
		{"partial over-long last line", "a\n" + long, 10, []step{{"a", nil}, {"", io.ErrUnexpectedEOF}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// OneByteReader makes every line span many reads.
			for _, r := range []io.Reader{strings.NewReader(tc.input), iotest.OneByteReader(strings.NewReader(tc.input))} {
				lr := newLineReader(r, tc.limit)
				for i, want := range tc.want {
					got, err := lr.next()
					if want.err != nil {
						require.ErrorIs(t, err, want.err, "step %d", i)
					} else {
						require.NoError(t, err, "step %d", i)
					}
					if want.line != "" {
						assert.Equal(t, want.line, string(got), "step %d", i)
					}
				}
			}
		})
	}
}

func TestPeekID(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		id     uint64
		ok     bool
	}{
		{`{"id": 7, "ok": true, "result": {"data_base64": "AAAA`, 7, true},
		{`{"ok": true, "id": 9, "result": {"data_base64": "AAAA`, 9, true},
		{`{"result": {"data_base64": "AAAA`, 0, false},
		{`{"id": "s", "ok": true`, 0, false},
		{`[1, 2`, 0, false},
		{``, 0, false},
	} {
		id, ok := peekID([]byte(tc.prefix))
		assert.Equal(t, tc.ok, ok, tc.prefix)
		assert.Equal(t, tc.id, id, tc.prefix)
	}
}

func TestSplitObjectMatchesEncodingJSON(t *testing.T) {
	for _, line := range []string{
		`{"id":1,"ok":true,"result":{}}`,
		` { "id" : 1 , "ok" : true , "result" : { "a" : [ 1 , { "b" : "}" } ] } } `,
		`{"event": "x\"}", "data": {"s": "\\", "t": "{[", "u": []}}`,
		`{"id": 1, "id": 2, "ok": false, "ok": true}`,
		`{"i\u0064": 7, "\u006fk": true, "result": null}`,
		`{"ID": 7, "Ok": true, "data": -1.5e+3}`,
		`{"x": {"id": 9}, "ok": true}`,
		`{}`,
	} {
		t.Run(line, func(t *testing.T) { checkSplitAgainstEncodingJSON(t, []byte(line)) })
	}
}

func TestDecodeLineReusesNothingBetweenLines(t *testing.T) {
	var env envelope
	_, err := decodeLine(&env, []byte(`{"id": 5, "ok": false, "error": {"code": "bad_params", "message": "m"}, "event": "x"}`))
	require.Error(t, err)
	f, err := decodeLine(&env, []byte(`{"event": "latency", "data": {"sample_ms": 1}}`))
	require.NoError(t, err, "fields of the previous line must not leak into this one")
	assert.Equal(t, frameEvent, f.kind)
	f, err = decodeLine(&env, []byte(`{"id": 6, "ok": true}`))
	require.NoError(t, err)
	assert.Equal(t, frameResponse, f.kind)
	assert.JSONEq(t, `{}`, string(f.result), "a missing result is empty, not the last line's")
}

func TestEventQueueDropsOldest(t *testing.T) {
	q := newEventQueue(3)
	for i := range 5 {
		q.push(Event{Name: fmt.Sprint(i)})
	}
	assert.Equal(t, uint64(2), q.droppedCount())
	var got []string
	for {
		ev, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, ev.Name)
	}
	assert.Equal(t, []string{"2", "3", "4"}, got)

	big := newEventQueue(1000)
	next := 0
	for i := range 700 {
		big.push(Event{Name: fmt.Sprint(i)})
		if i%3 == 0 { // pop less often than push, so the ring wraps and grows
			ev, ok := big.pop()
			require.True(t, ok)
			require.Equal(t, fmt.Sprint(next), ev.Name, "FIFO across growth")
			next++
		}
	}
	for ; ; next++ {
		ev, ok := big.pop()
		if !ok {
			break
		}
		require.Equal(t, fmt.Sprint(next), ev.Name, "FIFO across growth")
	}
	assert.Equal(t, 700, next)
	assert.Zero(t, big.droppedCount())
}

func TestErrorMessages(t *testing.T) {
	pe := &ProtocolError{Method: "status", Code: CodeInternalError, Message: "boom"}
	assert.Equal(t, "control status: server error internal_error: boom", pe.Error())
	vm := &VersionMismatchError{Client: "1.2", Server: "2.0"}
	assert.Equal(t, "control protocol version mismatch: client speaks 1.2, server speaks 2.0", vm.Error())
	vm = &VersionMismatchError{Client: "1.2", Cause: &ProtocolError{Method: "hello", Code: CodeProtocolVersionMismatch, Message: "server speaks major version 2"}}
	assert.Contains(t, vm.Error(), "server speaks major version 2")
	assert.True(t, errors.Is(&ProtocolError{Code: CodeBusy}, ErrBusy))
}
