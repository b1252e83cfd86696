package control

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// This file holds two stand-ins for ryll, both written from
// docs/control-socket-protocol.md (shakenfist/ryll) rather than from what
// this client happens to send:
//
//   - fakeRyll listens on a real Unix socket and implements the protocol:
//     one client at a time (others get the id-less busy line), hello
//     first (no_hello_yet otherwise), major-version check, every verb
//     with its documented errors, subscriptions, and events.
//   - pipePeer is the server end of a net.Pipe for scripted tests that
//     need to send exactly one odd line at exactly one moment.

// docHelloMethods and docHelloEvents are the lists in the document's
// hello example.
var (
	docHelloMethods = []string{"hello", "status", "send_key", "paste", "screenshot", "subscribe", "unsubscribe"}
	docHelloEvents  = []string{"latency", "agent_connected", "paste_completed", "paste_failed", "dropped", "surface_drawn"}
)

// wireRequest is a request as the document defines it.
type wireRequest struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// checkRequestShape applies the document's request rules: id an integer
// or a string, method a string, params an object that is never omitted.
func checkRequestShape(line []byte) (wireRequest, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(line, &all); err != nil {
		return wireRequest{}, fmt.Errorf("request is not a JSON object: %w", err)
	}
	for _, k := range []string{"id", "method", "params"} {
		if _, ok := all[k]; !ok {
			return wireRequest{}, fmt.Errorf("request lacks %q: %s", k, line)
		}
	}
	var req wireRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return wireRequest{}, fmt.Errorf("request fields: %w", err)
	}
	var id any
	if err := json.Unmarshal(req.ID, &id); err != nil {
		return wireRequest{}, fmt.Errorf("request id: %w", err)
	}
	switch id.(type) {
	case float64, string:
	default:
		return wireRequest{}, fmt.Errorf("request id %s is neither integer nor string", req.ID)
	}
	if len(req.Params) == 0 || req.Params[0] != '{' {
		return wireRequest{}, fmt.Errorf("request params %s is not an object", req.Params)
	}
	if bytes.Contains(line, []byte("\n")) {
		return wireRequest{}, errors.New("request spans lines")
	}
	return req, nil
}

func okLine(id json.RawMessage, result string) string {
	return fmt.Sprintf(`{"id": %s, "ok": true, "result": %s}`, id, result)
}

func errLine(id json.RawMessage, code, msg string) string {
	m, _ := json.Marshal(msg)
	return fmt.Sprintf(`{"id": %s, "ok": false, "error": {"code": %q, "message": %s}}`, id, code, m)
}

const busyLine = `{"ok": false, "error": {"code": "busy", "message": "another client is connected"}}`

// fakeRyll is a protocol-faithful control server on a Unix socket.
type fakeRyll struct {
	t    testing.TB
	path string
	ln   net.Listener
	wg   sync.WaitGroup

	// Configuration, set before the first connection.
	version        string // protocol_version answered in hello
	methods        []string
	events         []string
	busyFirst      int // refuse this many connections as busy even when idle
	agentConnected bool
	surfaces       []Surface
	shotW, shotH   int
	pixels         []byte // RGBA, shotW*shotH*4
	// override, if set, may answer a request itself (return a full line,
	// or "-" to answer nothing); "" falls through to the documented
	// behaviour.
	override func(req wireRequest) string

	mu       sync.Mutex
	active   net.Conn
	writeMu  sync.Mutex
	subs     map[string]bool
	requests []wireRequest
	busySent int
	busyNote chan int // receives the running busy count, if non-nil
	problems []error
}

// newFakeRyll starts a fake that speaks version and answers like the
// document's worked examples.
func newFakeRyll(t testing.TB, version string) *fakeRyll {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f := &fakeRyll{
		t:              t,
		path:           filepath.Join(dir, "s"),
		version:        version,
		methods:        docHelloMethods,
		events:         docHelloEvents,
		agentConnected: true,
		surfaces:       []Surface{{ChannelID: 1, SurfaceID: 0, Width: 1024, Height: 768}},
		subs:           map[string]bool{},
	}
	return f
}

// start begins accepting; configure the fake before calling it.
func (f *fakeRyll) start() *fakeRyll {
	f.t.Helper()
	ln, err := net.Listen("unix", f.path)
	require.NoError(f.t, err)
	f.ln = ln
	f.t.Cleanup(f.stop)
	f.wg.Add(1)
	go f.acceptLoop()
	return f
}

func (f *fakeRyll) stop() {
	_ = f.ln.Close()
	f.mu.Lock()
	if f.active != nil {
		_ = f.active.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		f.t.Errorf("fake ryll: %v", p)
	}
}

func (f *fakeRyll) problem(err error) {
	f.mu.Lock()
	f.problems = append(f.problems, err)
	f.mu.Unlock()
}

func (f *fakeRyll) acceptLoop() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		refuse := f.active != nil || f.busySent < f.busyFirst
		if refuse {
			f.busySent++
		} else {
			f.active = conn
			f.subs = map[string]bool{}
		}
		n, note := f.busySent, f.busyNote
		f.mu.Unlock()
		if refuse {
			// "writing a single error line on the new connection and then
			// closing it"
			_, _ = io.WriteString(conn, busyLine+"\n")
			_ = conn.Close()
			if note != nil {
				select {
				case note <- n:
				default: // the test has stopped listening
				}
			}
			continue
		}
		f.wg.Add(1)
		go f.serve(conn)
	}
}

// disconnect drops the active client, as ryll does when its session ends.
func (f *fakeRyll) disconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active != nil {
		_ = f.active.Close()
	}
}

func (f *fakeRyll) write(conn net.Conn, line string) {
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	_, _ = io.WriteString(conn, line+"\n")
}

// emit sends an event if the client subscribed to it, like the server's
// per-client filter. It reports whether the event was sent.
func (f *fakeRyll) emit(name, data string) bool {
	f.mu.Lock()
	conn, ok := f.active, f.subs[name]
	f.mu.Unlock()
	if conn == nil || !ok {
		return false
	}
	f.write(conn, fmt.Sprintf(`{"event": %q, "data": %s}`, name, data))
	return true
}

// seen returns the requests served so far.
func (f *fakeRyll) seen() []wireRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeRyll) serve(conn net.Conn) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		if f.active == conn {
			f.active = nil
		}
		f.mu.Unlock()
		_ = conn.Close()
	}()
	r := bufio.NewReader(conn)
	helloDone := false
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		req, err := checkRequestShape(line)
		if err != nil {
			f.problem(err)
			f.write(conn, errLine(json.RawMessage("null"), CodeBadParams, err.Error()))
			continue
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		override := f.override
		f.mu.Unlock()
		if override != nil {
			if out := override(req); out == "-" {
				continue
			} else if out != "" {
				f.write(conn, out)
				continue
			}
		}
		if req.Method != "hello" && !helloDone {
			f.write(conn, errLine(req.ID, CodeNoHelloYet, "first request must be hello"))
			continue
		}
		out, closeAfter := f.answer(req)
		if req.Method == "hello" && !closeAfter && strings.Contains(out, `"ok": true`) {
			helloDone = true
		}
		f.write(conn, out)
		if closeAfter {
			return
		}
		if req.Method == "paste" && strings.Contains(out, `"ok": true`) {
			f.finishPaste(req)
		}
	}
}

// answer implements each verb as the document's verb reference says.
func (f *fakeRyll) answer(req wireRequest) (line string, closeAfter bool) {
	switch req.Method {
	case "hello":
		var p struct {
			ClientName      *string `json:"client_name"`
			ProtocolVersion *string `json:"protocol_version"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil || p.ClientName == nil || p.ProtocolVersion == nil {
			return errLine(req.ID, CodeBadParams, "hello needs client_name and protocol_version"), false
		}
		clientMajor, _, ok := strings.Cut(*p.ProtocolVersion, ".")
		serverMajor, _, _ := strings.Cut(f.version, ".")
		if !ok {
			return errLine(req.ID, CodeBadParams, "protocol_version must be major.minor"), false
		}
		if clientMajor != serverMajor {
			return errLine(req.ID, CodeProtocolVersionMismatch, fmt.Sprintf(
				"server speaks major version %s; client requested major version %s", serverMajor, clientMajor)), true
		}
		res, _ := json.Marshal(map[string]any{
			"server_name": "ryll", "protocol_version": f.version,
			"supported_methods": f.methods, "supported_events": f.events,
		})
		return okLine(req.ID, string(res)), false
	case "status":
		res, _ := json.Marshal(map[string]any{
			"spice_connected": true, "agent_connected": f.agentConnected, "surfaces": f.surfaces,
		})
		return okLine(req.ID, string(res)), false
	case "send_key":
		var p struct {
			Scancode *uint16 `json:"scancode"`
			State    *string `json:"state"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil || p.Scancode == nil || p.State == nil {
			return errLine(req.ID, CodeBadParams, "send_key needs scancode (u16) and state"), false
		}
		switch *p.State {
		case "down", "up", "press":
		default:
			return errLine(req.ID, CodeBadState, fmt.Sprintf("unrecognised state value %q", *p.State)), false
		}
		return okLine(req.ID, `{}`), false
	case "paste":
		var p struct {
			Text        *string `json:"text"`
			CharDelayMS *uint32 `json:"char_delay_ms"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil || p.Text == nil {
			return errLine(req.ID, CodeBadParams, "paste needs text"), false
		}
		if !f.agentConnected {
			return errLine(req.ID, CodeAgentNotConnected, "agent not connected"), false
		}
		return okLine(req.ID, `{}`), false
	case "screenshot":
		var p struct {
			SurfaceID *uint32 `json:"surface_id"`
			Format    *string `json:"format"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil {
			return errLine(req.ID, CodeBadParams, err.Error()), false
		}
		if p.SurfaceID != nil && *p.SurfaceID != 0 {
			return errLine(req.ID, CodeNoSuchSurface, fmt.Sprintf("no surface %d", *p.SurfaceID)), false
		}
		format := "png"
		if p.Format != nil {
			format = *p.Format
		}
		var data []byte
		switch format {
		case "png":
			var buf bytes.Buffer
			img := &image.NRGBA{Pix: f.pixels, Stride: 4 * f.shotW, Rect: image.Rect(0, 0, f.shotW, f.shotH)}
			if err := png.Encode(&buf, img); err != nil {
				return errLine(req.ID, CodeInternalError, err.Error()), false
			}
			data = buf.Bytes()
		case "rgba":
			data = f.pixels
		default:
			return errLine(req.ID, CodeUnsupportedFormat, fmt.Sprintf("unsupported format %q", format)), false
		}
		return okLine(req.ID, fmt.Sprintf(`{"width": %d, "height": %d, "format": %q, "data_base64": %q}`,
			f.shotW, f.shotH, format, base64.StdEncoding.EncodeToString(data))), false
	case "subscribe", "unsubscribe":
		var p struct {
			Events *[]string `json:"events"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil || p.Events == nil {
			return errLine(req.ID, CodeBadParams, "events must be an array of strings"), false
		}
		changed := []string{}
		f.mu.Lock()
		for _, name := range *p.Events {
			if !slices.Contains(f.events, name) {
				continue // unknown names are silently ignored
			}
			if req.Method == "subscribe" {
				f.subs[name] = true
				changed = append(changed, name)
			} else if f.subs[name] {
				delete(f.subs, name)
				changed = append(changed, name)
			}
		}
		f.mu.Unlock()
		key := "subscribed"
		if req.Method == "unsubscribe" {
			key = "unsubscribed"
		}
		res, _ := json.Marshal(map[string][]string{key: changed})
		return okLine(req.ID, string(res)), false
	default:
		return errLine(req.ID, CodeUnknownMethod, fmt.Sprintf("unknown method %q", req.Method)), false
	}
}

// finishPaste reports the paste's outcome after its response, as the
// document guarantees: paste_failed for a non-ASCII character, otherwise
// paste_completed with the number of characters.
func (f *fakeRyll) finishPaste(req wireRequest) {
	var p struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(req.Params, &p)
	for _, r := range p.Text {
		if r < 0x20 || r > 0x7e {
			f.emit(EventPasteFailed, fmt.Sprintf(`{"request_id": %s, "reason": "character U+%04X is not representable in US-QWERTY"}`, req.ID, r))
			return
		}
	}
	f.emit(EventPasteCompleted, fmt.Sprintf(`{"request_id": %s, "chars_sent": %d}`, req.ID, len(p.Text)))
}

// pipePeer is the server end of a net.Pipe, driven step by step by the
// test goroutine.
type pipePeer struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// hangGuard bounds each pipe read so a broken test fails instead of
// hanging; it is never what a test asserts on.
const hangGuard = 30 * time.Second

// newPipe returns a client on one end of a net.Pipe and a peer on the
// other. Both are closed at cleanup.
func newPipe(t testing.TB, opts Options) (*Client, *pipePeer) {
	t.Helper()
	a, b := net.Pipe()
	c := NewClient(a, opts)
	p := &pipePeer{t: t, conn: b, r: bufio.NewReader(b)}
	t.Cleanup(func() {
		_ = b.Close()
		_ = c.Close()
	})
	return c, p
}

// read returns the next request, checked against the document's shape.
func (p *pipePeer) read() wireRequest {
	p.t.Helper()
	require.NoError(p.t, p.conn.SetReadDeadline(time.Now().Add(hangGuard)))
	line, err := p.r.ReadBytes('\n')
	require.NoError(p.t, err, "peer: read request")
	req, err := checkRequestShape(bytes.TrimSuffix(line, []byte("\n")))
	require.NoError(p.t, err)
	return req
}

// send writes one line and a newline.
func (p *pipePeer) send(line string) {
	p.t.Helper()
	require.NoError(p.t, p.conn.SetWriteDeadline(time.Now().Add(hangGuard)))
	_, err := io.WriteString(p.conn, line+"\n")
	require.NoError(p.t, err, "peer: write line")
}

// helloAs completes the handshake on c, answering as a server of version.
func (p *pipePeer) helloAs(c *Client, version string) HelloResult {
	p.t.Helper()
	res := goCall(func() (HelloResult, error) { return c.Hello(p.t.Context()) })
	req := p.read()
	require.Equal(p.t, "hello", req.Method)
	p.send(okLine(req.ID, fmt.Sprintf(`{"server_name": "ryll", "protocol_version": %q, "supported_methods": ["hello", "status", "send_key", "paste", "screenshot", "subscribe", "unsubscribe"], "supported_events": ["latency", "agent_connected", "paste_completed", "paste_failed", "dropped", "surface_drawn"]}`, version)))
	h, err := res.wait(p.t)
	require.NoError(p.t, err)
	return h
}

// async is a call running in its own goroutine.
type async[T any] struct {
	ch chan asyncResult[T]
}

type asyncResult[T any] struct {
	v   T
	err error
}

func goCall[T any](fn func() (T, error)) async[T] {
	a := async[T]{ch: make(chan asyncResult[T], 1)}
	go func() {
		v, err := fn()
		a.ch <- asyncResult[T]{v, err}
	}()
	return a
}

// wait returns the call's result; the hang guard only stops a broken test.
func (a async[T]) wait(t testing.TB) (T, error) {
	t.Helper()
	select {
	case r := <-a.ch:
		return r.v, r.err
	case <-time.After(hangGuard):
		t.Fatal("call did not return (hang guard)")
		var zero T
		return zero, nil
	}
}
