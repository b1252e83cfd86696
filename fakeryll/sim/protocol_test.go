package sim_test

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

func TestHelloMustComeFirst(t *testing.T) {
	r := startSim(t, nil)
	c := dial(t, r.path)

	for _, method := range []string{"status", "subscribe", "no_such_verb"} {
		resp := c.call(method, map[string]any{})
		assert.False(t, resp.ok())
		assert.Equal(t, sim.CodeNoHelloYet, resp.errCode(), "%s before hello", method)
		assert.Equal(t, "first request must be hello", resp.errMessage())
	}
	// The connection stayed open: hello and then status work.
	resp := c.call("hello", map[string]any{"client_name": "t", "protocol_version": "1.2"})
	require.True(t, resp.ok(), "%s", resp.raw)
	resp = c.call("status", map[string]any{})
	assert.True(t, resp.ok(), "%s", resp.raw)
}

func TestHelloResult(t *testing.T) {
	r := startSim(t, nil)
	for _, clientVersion := range []string{"1.0", "1.2", "1.9", "1.10"} {
		t.Run(clientVersion, func(t *testing.T) {
			c, resp := dialWhenFree(t, r.path, clientVersion)
			defer c.nc.Close()
			var res struct {
				ServerName       string   `json:"server_name"`
				ProtocolVersion  string   `json:"protocol_version"`
				SupportedMethods []string `json:"supported_methods"`
				SupportedEvents  []string `json:"supported_events"`
			}
			resp.into(t, "result", &res)
			assert.Equal(t, "ryll", res.ServerName)
			assert.Equal(t, "1.2", res.ProtocolVersion, "the server answers with its own version")
			assert.ElementsMatch(t, []string{"hello", "status", "send_key", "paste", "screenshot", "subscribe", "unsubscribe"}, res.SupportedMethods)
			assert.ElementsMatch(t, []string{"latency", "agent_connected", "paste_completed", "paste_failed", "dropped", "surface_drawn"}, res.SupportedEvents)
		})
	}
}

func TestHelloMajorMismatchCloses(t *testing.T) {
	r := startSim(t, nil)
	c := dial(t, r.path)
	resp := c.call("hello", map[string]any{"client_name": "t", "protocol_version": "2.0"})
	assert.False(t, resp.ok())
	assert.Equal(t, sim.CodeVersionMismatch, resp.errCode())
	assert.Contains(t, resp.errMessage(), "major version 1")
	c.expectEOF()
}

func TestHelloBadParams(t *testing.T) {
	r := startSim(t, nil)
	c := dial(t, r.path)
	for _, tc := range []struct {
		name   string
		params any
	}{
		{"missing version", map[string]any{"client_name": "t"}},
		{"one part", map[string]any{"client_name": "t", "protocol_version": "1"}},
		{"three parts", map[string]any{"client_name": "t", "protocol_version": "1.2.3"}},
		{"letters", map[string]any{"client_name": "t", "protocol_version": "a.b"}},
		{"number", map[string]any{"client_name": "t", "protocol_version": 1.2}},
		{"client name not a string", map[string]any{"client_name": 5, "protocol_version": "1.2"}},
		{"client name missing", map[string]any{"protocol_version": "1.2"}},
		{"client name null", map[string]any{"client_name": nil, "protocol_version": "1.2"}},
		{"params null", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.call("hello", tc.params)
			assert.False(t, resp.ok())
			assert.Equal(t, sim.CodeBadParams, resp.errCode(), "%s", resp.raw)
		})
	}
	// Still open, still before hello.
	assert.Equal(t, sim.CodeNoHelloYet, c.call("status", map[string]any{}).errCode())
}

func TestIDsAreEchoed(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	for _, tc := range []struct{ name, id string }{
		{"integer", `7`},
		{"zero", `0`},
		{"negative", `-3`},
		{"beyond 64 bits", `123456789012345678901234567890`},
		{"string", `"abc"`},
		{"empty string", `""`},
		{"unicode string", `"αβ"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.writeRaw(`{"id": ` + tc.id + `, "method": "status", "params": {}}` + "\n")
			m := c.read()
			assert.True(t, m.ok(), "%s", m.raw)
			assert.Equal(t, tc.id, m.rawID())
		})
	}
}

// TestMalformedRequests: an envelope that does not parse is answered
// bad_params with no id field at all, as ryll's code does (its document
// implies the id is echoed when readable), and the connection stays up.
func TestMalformedRequests(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	for _, tc := range []struct {
		name, line string
	}{
		{"not json", `this is not json`},
		{"truncated json", `{"id": 1, "method": "status"`},
		{"array", `[1, 2]`},
		{"string", `"status"`},
		{"no id", `{"method": "status", "params": {}}`},
		{"null id", `{"id": null, "method": "status", "params": {}}`},
		{"fractional id", `{"id": 1.5, "method": "status", "params": {}}`},
		{"bool id", `{"id": true, "method": "status", "params": {}}`},
		{"object id", `{"id": {}, "method": "status", "params": {}}`},
		{"no method", `{"id": 11, "params": {}}`},
		{"method not a string", `{"id": 12, "method": 5, "params": {}}`},
		{"no params", `{"id": 13, "method": "status"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.writeRaw(tc.line + "\n")
			m := c.read()
			assert.False(t, m.isEvent())
			assert.False(t, m.has("id"), "an envelope error has no id, even a readable one: %s", m.raw)
			assert.False(t, m.ok())
			assert.Equal(t, sim.CodeBadParams, m.errCode(), "%s", m.raw)
			assert.NotEmpty(t, m.errMessage())
			// The connection stays usable.
			assert.True(t, c.call("status", map[string]any{}).ok())
		})
	}
}

// TestParamsNotAnObject: the envelope takes any params value (ryll's
// params is a free JSON value); status ignores it, other verbs refuse it
// with bad_params and the id.
func TestParamsNotAnObject(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	for _, tc := range []struct {
		name, line, wantID string
		ok                 bool
	}{
		{"status params null", `{"id": 14, "method": "status", "params": null}`, `14`, true},
		{"status params array", `{"id": "s", "method": "status", "params": []}`, `"s"`, true},
		{"send_key params null", `{"id": 15, "method": "send_key", "params": null}`, `15`, false},
		{"subscribe params string", `{"id": 16, "method": "subscribe", "params": "x"}`, `16`, false},
		{"hello again params null", `{"id": 17, "method": "hello", "params": null}`, `17`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.writeRaw(tc.line + "\n")
			m := c.read()
			assert.Equal(t, tc.wantID, m.rawID())
			assert.Equal(t, tc.ok, m.ok(), "%s", m.raw)
			if !tc.ok {
				assert.Equal(t, sim.CodeBadParams, m.errCode(), "%s", m.raw)
			}
		})
	}
}

func TestBlankLinesAndCRLFAreTolerated(t *testing.T) {
	r := startSim(t, nil)
	c := dial(t, r.path)
	c.writeRaw("\n  \n" + `{"id": 1, "method": "hello", "params": {"client_name": "t", "protocol_version": "1.2"}}` + "\r\n")
	m := c.read()
	assert.True(t, m.ok(), "%s", m.raw)
	assert.Equal(t, "1", m.rawID())
}

func TestOverlongLineIsRefusedAndSkipped(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	long := `{"id": 1, "method": "status", "params": {"pad": "` + strings.Repeat("x", 2<<20) + `"}}` + "\n"
	go func() { _, _ = c.nc.Write([]byte(long)) }() // the server reads while we would block
	m := c.read()
	assert.False(t, m.has("id"), "%s", m.raw)
	assert.Equal(t, sim.CodeBadParams, m.errCode())
	assert.True(t, c.call("status", map[string]any{}).ok(), "the next line is read normally")
}

func TestUnknownMethod(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	m := c.call("mouse_move", map[string]any{"x": 1})
	assert.False(t, m.ok())
	assert.Equal(t, sim.CodeUnknownMethod, m.errCode())
}

func TestRequestsAreAnsweredInOrder(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.SurfaceWidth, c.SurfaceHeight = 64, 48 })
	c := dialHello(t, r.path)
	var batch strings.Builder
	methods := []string{"status", "bogus", "subscribe", "screenshot", "send_key", "status"}
	for i := range 60 {
		m := methods[i%len(methods)]
		params := `{}`
		if m == "subscribe" {
			params = `{"events": ["latency"]}`
		}
		if m == "send_key" {
			params = `{"scancode": 30, "state": "up"}`
		}
		if m == "screenshot" {
			params = `{"format": "rgba", "surface_id": 0}`
		}
		batch.WriteString(`{"id": "r` + string(rune('A'+i%26)) + `-` + strings.Repeat("i", i) + `", "method": "` + m + `", "params": ` + params + "}\n")
	}
	go func() { _, _ = c.nc.Write([]byte(batch.String())) }()
	for i := range 60 {
		m := c.read()
		require.False(t, m.isEvent())
		assert.Equal(t, `"r`+string(rune('A'+i%26))+`-`+strings.Repeat("i", i)+`"`, m.rawID())
	}
}

func TestBusySecondClient(t *testing.T) {
	r := startSim(t, nil)
	first := dialHello(t, r.path)

	second := dial(t, r.path)
	m := second.read()
	assert.False(t, m.has("id"), "busy has no id: %s", m.raw)
	assert.False(t, m.ok())
	assert.Equal(t, sim.CodeBusy, m.errCode())
	assert.Equal(t, []string{"error", "ok"}, keys(m))
	second.expectEOF()

	assert.True(t, first.call("status", map[string]any{}).ok(), "the first client is unaffected")
	assert.Equal(t, uint64(1), r.sim.Stats().Busy)
}

func keys(m msg) []string {
	var out []string
	for k := range m.fields {
		out = append(out, k)
	}
	if len(out) == 2 && out[0] > out[1] {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

func TestSubscriptionsResetPerConnection(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	require.Equal(t, []string{"latency", "surface_drawn"}, c.subscribe("latency", "surface_drawn"))
	require.NoError(t, c.nc.Close())

	c2, _ := dialWhenFree(t, r.path, "1.2")
	m := c2.call("unsubscribe", map[string]any{"events": []string{"latency", "surface_drawn"}})
	require.True(t, m.ok())
	var res struct {
		Unsubscribed []string `json:"unsubscribed"`
	}
	m.into(t, "result", &res)
	assert.Empty(t, res.Unsubscribed, "a new connection starts with no subscriptions")
	assert.NotNil(t, res.Unsubscribed, "an empty list, not null")
}

func TestSubscribeAndUnsubscribe(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	assert.Equal(t, []string{"latency"}, c.subscribe("latency", "digest_updated", "no_such_event", "latency"))
	assert.Equal(t, []string{"latency", "dropped"}, c.subscribe("latency", "dropped"), "re-subscribing is a no-op that still reports the name")
	assert.Equal(t, []string{}, c.subscribe())

	unsub := func(names ...string) []string {
		m := c.call("unsubscribe", map[string]any{"events": names})
		require.True(t, m.ok(), "%s", m.raw)
		var res struct {
			Unsubscribed []string `json:"unsubscribed"`
		}
		m.into(t, "result", &res)
		return res.Unsubscribed
	}
	assert.Equal(t, []string{"latency"}, unsub("latency", "paste_failed", "bogus"))
	assert.Equal(t, []string{}, unsub("latency"), "unsubscribing twice is a no-op")

	for _, params := range []any{
		map[string]any{},
		map[string]any{"events": "latency"},
		map[string]any{"events": []any{1}},
		map[string]any{"events": nil},
	} {
		for _, method := range []string{"subscribe", "unsubscribe"} {
			m := c.call(method, params)
			assert.Equal(t, sim.CodeBadParams, m.errCode(), "%s %v: %s", method, params, m.raw)
		}
	}
}

func TestStatus(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.SurfaceWidth, c.SurfaceHeight = 800, 600 })
	c := dialHello(t, r.path)
	m := c.call("status", map[string]any{})
	require.True(t, m.ok())
	var res struct {
		SpiceConnected bool `json:"spice_connected"`
		AgentConnected bool `json:"agent_connected"`
		Surfaces       []struct {
			ChannelID uint8  `json:"channel_id"`
			SurfaceID uint32 `json:"surface_id"`
			Width     uint32 `json:"width"`
			Height    uint32 `json:"height"`
		} `json:"surfaces"`
	}
	m.into(t, "result", &res)
	assert.True(t, res.SpiceConnected)
	assert.False(t, res.AgentConnected, "ryll starts with agent_connected false")
	require.Len(t, res.Surfaces, 1)
	assert.Equal(t, uint8(0), res.Surfaces[0].ChannelID)
	assert.Equal(t, uint32(0), res.Surfaces[0].SurfaceID)
	assert.Equal(t, uint32(800), res.Surfaces[0].Width)
	assert.Equal(t, uint32(600), res.Surfaces[0].Height)
}

func TestSendKeyParams(t *testing.T) {
	for _, version := range []sim.Version{{Major: 1, Minor: 2}, {Major: 1, Minor: 1}} {
		r := startSim(t, func(c *sim.Config) { c.ProtocolVersion = version })
		c := dialHello(t, r.path)
		for _, tc := range []struct {
			name     string
			params   string
			wantCode string // "" = ok
			before12 string // the answer before 1.2, when it differs
		}{
			{"enter press", `{"scancode": 28, "state": "press"}`, "", ""},
			{"down", `{"scancode": 30, "state": "down"}`, "", ""},
			{"up", `{"scancode": 30, "state": "up"}`, "", ""},
			{"up with break bit", `{"scancode": 158, "state": "up"}`, "", ""},
			{"extended left arrow", `{"scancode": 57419, "state": "down"}`, "", ""},
			{"extended with break bit", `{"scancode": 57547, "state": "up"}`, "", ""},
			{"pre-swapped wire value", `{"scancode": 19424, "state": "down"}`, sim.CodeBadParams, "ok"},
			{"u16 max", `{"scancode": 65535, "state": "up"}`, sim.CodeBadParams, "ok"},
			{"missing scancode", `{"state": "down"}`, sim.CodeBadParams, ""},
			{"null scancode", `{"scancode": null, "state": "down"}`, sim.CodeBadParams, ""},
			{"string scancode", `{"scancode": "28", "state": "down"}`, sim.CodeBadParams, ""},
			{"fractional scancode", `{"scancode": 28.5, "state": "down"}`, sim.CodeBadParams, ""},
			{"negative scancode", `{"scancode": -1, "state": "down"}`, sim.CodeBadParams, ""},
			{"too big", `{"scancode": 65536, "state": "down"}`, sim.CodeBadParams, ""},
			{"missing state", `{"scancode": 28}`, sim.CodeBadParams, ""},
			{"state not a string", `{"scancode": 28, "state": 1}`, sim.CodeBadParams, ""},
			{"bad state", `{"scancode": 28, "state": "sideways"}`, sim.CodeBadState, ""},
			{"empty state", `{"scancode": 28, "state": ""}`, sim.CodeBadState, ""},
		} {
			t.Run(version.String()+"/"+tc.name, func(t *testing.T) {
				want := tc.wantCode
				if !version.AtLeast(1, 2) && tc.before12 != "" {
					want = ""
				}
				c.writeRaw(`{"id": 1, "method": "send_key", "params": ` + tc.params + "}\n")
				m := c.response("1")
				if want == "" {
					assert.True(t, m.ok(), "%s", m.raw)
					assert.JSONEq(t, `{}`, string(m.fields["result"]))
				} else {
					assert.False(t, m.ok())
					assert.Equal(t, want, m.errCode(), "%s", m.raw)
				}
			})
		}
	}
}

func TestScreenshot(t *testing.T) {
	r := startSim(t, func(c *sim.Config) {
		c.SurfaceWidth, c.SurfaceHeight = 320, 200
		c.DrawDelay, c.DisplayRefresh, c.DrawsPerKey = time.Millisecond, 0, 1
	})
	c := dialHello(t, r.path)
	shot := func(params any) (w, h int, format string, data []byte) {
		t.Helper()
		m := c.call("screenshot", params)
		require.True(t, m.ok(), "%s", m.raw)
		var res struct {
			Width      int    `json:"width"`
			Height     int    `json:"height"`
			Format     string `json:"format"`
			DataBase64 string `json:"data_base64"`
		}
		m.into(t, "result", &res)
		b, err := base64.StdEncoding.DecodeString(res.DataBase64)
		require.NoError(t, err, "standard base64")
		return res.Width, res.Height, res.Format, b
	}
	w, h, format, data := shot(map[string]any{})
	assert.Equal(t, 320, w)
	assert.Equal(t, 200, h)
	assert.Equal(t, "png", format, "png is the default")
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, 320, img.Bounds().Dx())
	before := img.At(300, 190)

	_, _, format, raw := shot(map[string]any{"surface_id": nil, "format": "rgba"})
	assert.Equal(t, "rgba", format)
	require.Len(t, raw, 320*200*4)
	br, bg, bb, _ := before.RGBA()
	assert.Equal(t, []byte{byte(br >> 8), byte(bg >> 8), byte(bb >> 8), 255}, raw[(190*320+300)*4:][:4], "rgba agrees with png")

	// Every key-down repaints the screen in a new colour.
	require.Equal(t, []string{"surface_drawn"}, c.subscribe("surface_drawn"))
	var colours []uint32
	for range 3 {
		before, _ := c.keyDown(30)
		c.drawnAfter(before)
		_, _, _, raw = shot(map[string]any{"surface_id": 0, "format": "rgba"})
		p := raw[(190*320+300)*4:]
		colours = append(colours, uint32(p[0])<<16|uint32(p[1])<<8|uint32(p[2]))
	}
	assert.NotEqual(t, uint32(br>>8)<<16|uint32(bg>>8)<<8|uint32(bb>>8), colours[0])
	assert.NotEqual(t, colours[0], colours[1])
	assert.NotEqual(t, colours[1], colours[2])

	for _, tc := range []struct {
		name   string
		params any
		code   string
	}{
		{"unknown surface", map[string]any{"surface_id": 1}, sim.CodeNoSuchSurface},
		{"bad format", map[string]any{"format": "jpeg"}, sim.CodeUnsupportedFormat},
		{"surface id string", map[string]any{"surface_id": "0"}, sim.CodeBadParams},
		{"surface id negative", map[string]any{"surface_id": -1}, sim.CodeBadParams},
		{"format not a string", map[string]any{"format": 1}, sim.CodeBadParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := c.call("screenshot", tc.params)
			assert.False(t, m.ok())
			assert.Equal(t, tc.code, m.errCode(), "%s", m.raw)
		})
	}
}

func TestPaste(t *testing.T) {
	r := startSim(t, func(c *sim.Config) { c.DrawDelay, c.DisplayRefresh = 0, 0 })
	c := dialHello(t, r.path)
	require.Equal(t, []string{"paste_completed", "paste_failed"}, c.subscribe("paste_completed", "paste_failed"))

	t.Run("completes, integer id", func(t *testing.T) {
		c.writeRaw(`{"id": 6, "method": "paste", "params": {"text": "hi there", "char_delay_ms": 1}}` + "\n")
		m := c.read()
		require.False(t, m.isEvent(), "the response comes before the outcome: %s", m.raw)
		require.True(t, m.ok(), "%s", m.raw)
		var d struct {
			RequestID any    `json:"request_id"`
			CharsSent uint32 `json:"chars_sent"`
		}
		ev := c.event("paste_completed")
		ev.into(t, "data", &d)
		assert.JSONEq(t, `{"request_id": 6, "chars_sent": 8}`, string(ev.fields["data"]))
	})
	t.Run("completes, string id, default delay", func(t *testing.T) {
		m := c.call("paste", map[string]any{"text": "ok", "char_delay_ms": nil})
		require.True(t, m.ok())
		c.writeRaw(`{"id": "p-1", "method": "paste", "params": {"text": "go"}}` + "\n")
		require.True(t, c.response(`"p-1"`).ok())
		first := c.event("paste_completed")
		second := c.event("paste_completed")
		ids := []string{string(first.fields["data"]), string(second.fields["data"])}
		assert.Contains(t, ids, `{"request_id":"p-1","chars_sent":2}`)
	})
	t.Run("unrepresentable character fails", func(t *testing.T) {
		c.writeRaw(`{"id": 9, "method": "paste", "params": {"text": "ab\u2022c", "char_delay_ms": 0}}` + "\n")
		require.True(t, c.response("9").ok())
		ev := c.event("paste_failed")
		var d struct {
			RequestID int    `json:"request_id"`
			Reason    string `json:"reason"`
		}
		ev.into(t, "data", &d)
		assert.Equal(t, 9, d.RequestID)
		assert.Contains(t, d.Reason, "U+2022")
	})
	t.Run("pasted characters are key-downs", func(t *testing.T) {
		eventually(t, "pasted keys drawn", func() bool { return r.sim.Stats().KeyDraws == 8+2+2+2 })
	})
	for _, tc := range []struct {
		name, params string
	}{
		{"missing text", `{}`},
		{"text not a string", `{"text": 5}`},
		{"negative delay", `{"text": "a", "char_delay_ms": -1}`},
		{"delay too big", `{"text": "a", "char_delay_ms": 4294967296}`},
		{"delay a string", `{"text": "a", "char_delay_ms": "10"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.writeRaw(`{"id": 1, "method": "paste", "params": ` + tc.params + "}\n")
			m := c.response("1")
			assert.Equal(t, sim.CodeBadParams, m.errCode(), "%s", m.raw)
		})
	}
}

func TestSocketFile(t *testing.T) {
	cfg, dir := newConfig(t, nil)
	// A stale socket at the path is replaced.
	stale, err := net.Listen("unix", cfg.SocketPath)
	require.NoError(t, err)
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, stale.Close())
	fi, err := os.Lstat(cfg.SocketPath)
	require.NoError(t, err)
	require.Equal(t, fs.ModeSocket, fi.Mode().Type(), "a stale socket file is left behind")
	r := startWith(t, cfg, dir)
	fi, err = os.Lstat(r.path)
	require.NoError(t, err)
	assert.Equal(t, fs.ModeSocket, fi.Mode().Type())
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
	dialHello(t, r.path)
}

// TestRegularFileAtSocketPath: ryll never deletes a file that is not a
// socket. It logs an error and the session runs on without a control
// socket until it is stopped.
func TestRegularFileAtSocketPath(t *testing.T) {
	var logs syncBuffer
	cfg, _ := newConfig(t, func(c *sim.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Ping = sim.PingPattern{Mode: sim.PingSteady, Interval: time.Millisecond}
	})
	require.NoError(t, os.WriteFile(cfg.SocketPath, []byte("keep me"), 0o644))
	s, err := sim.New(cfg)
	require.NoError(t, err)
	ctx, cancel := contextWithCancel(t)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	select {
	case <-s.Started():
	case err := <-errc:
		require.FailNowf(t, "Run returned instead of running on", "%v", err)
	case <-time.After(wait):
		require.FailNow(t, "never started")
	}
	eventually(t, "the session runs", func() bool { return s.Stats().Pings > 3 })
	select {
	case <-s.Ready():
		assert.Fail(t, "Ready closed with no socket")
	case err := <-errc:
		assert.Fail(t, "Run returned while not signalled", "%v", err)
	default:
	}
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "is not a socket")
	cancel()
	select {
	case err := <-errc:
		assert.NoError(t, err)
	case <-time.After(wait):
		require.FailNow(t, "Run ignored cancellation")
	}
	b, err := os.ReadFile(cfg.SocketPath)
	require.NoError(t, err)
	assert.Equal(t, "keep me", string(b), "the file is neither replaced nor removed")
}

func TestSocketUnlinkedOnShutdown(t *testing.T) {
	r := startSim(t, nil)
	c := dialHello(t, r.path)
	r.stop()
	require.NoError(t, <-r.errc)
	r.errc <- nil
	_, err := os.Lstat(r.path)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	c.expectEOF()
}

func TestSocketOfASuccessorIsNotUnlinked(t *testing.T) {
	r := startSim(t, nil)
	// Someone else took the path over (e.g. a second run); shutdown must
	// not remove their file.
	require.NoError(t, os.Remove(r.path))
	require.NoError(t, os.WriteFile(r.path, nil, 0o600))
	r.stop()
	require.NoError(t, <-r.errc)
	r.errc <- nil
	_, err := os.Lstat(r.path)
	assert.NoError(t, err)
}

func TestRunTwiceIsRefused(t *testing.T) {
	r := startSim(t, nil)
	assert.Error(t, r.sim.Run(t.Context()))
}

func TestBadSocketPath(t *testing.T) {
	cfg, _ := newConfig(t, nil)
	cfg.SocketPath = "/" + strings.Repeat("x", 200) + "/s"
	s, err := sim.New(cfg)
	require.NoError(t, err)
	err = s.Run(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "control socket")
}
