package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// acceptLoop accepts control clients one at a time; a second connection
// while one is active gets a single busy line and is closed.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accepting control client", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if s.isHung() {
			// A hung ryll no longer services its socket: the connection
			// stays open and silent, and no further one is accepted.
			s.mu.Lock()
			s.limbo = append(s.limbo, nc)
			s.mu.Unlock()
			<-ctx.Done()
			return
		}
		s.mu.Lock()
		if s.client != nil {
			s.stats.Busy++
			s.mu.Unlock()
			s.log.Debug("refusing second control client: busy")
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write(encodeLine(idlessResponse{OK: false, Error: Errorf(CodeBusy, "another client is connected")}))
			_ = nc.Close()
			continue
		}
		c := newClient(ctx, s, nc)
		s.client = c
		s.stats.Connections++
		s.mu.Unlock()
		s.log.Debug("control client connected")
		s.wg.Go(c.serve)
	}
}

// client is the one connected control client and its per-connection
// state: hello done or not, subscriptions, event queue.
type client struct {
	s      *Server
	nc     net.Conn
	q      *eventQueue
	ctx    context.Context
	cancel context.CancelFunc

	wmu sync.Mutex // one complete line per Write, never interleaved

	smu  sync.Mutex
	subs map[string]bool

	helloDone bool // reader goroutine only
	mangled   int  // surface_drawn and dropped events written (writer goroutine only)
}

func newClient(ctx context.Context, s *Server, nc net.Conn) *client {
	cctx, cancel := context.WithCancel(ctx)
	return &client{s: s, nc: nc, q: newEventQueue(s.cfg.QueueDrop, nil), ctx: cctx, cancel: cancel, subs: map[string]bool{}}
}

func (c *client) subscribed(name string) bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.subs[name]
}

// serve runs the request loop: requests are answered strictly in order.
func (c *client) serve() {
	stopClose := context.AfterFunc(c.ctx, func() { _ = c.nc.Close() })
	var writer sync.WaitGroup
	writer.Go(c.writeEvents)
	defer func() {
		c.cancel()
		stopClose()
		_ = c.nc.Close()
		writer.Wait()
		s := c.s
		s.mu.Lock()
		if s.client == c {
			s.client = nil
		}
		s.stats.Dropped += c.q.dropped()
		s.mu.Unlock()
		s.log.Debug("control client disconnected")
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		line, tooLong, err := readLine(br)
		arrival := alignMicro(time.Now())
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.s.log.Debug("reading control client", "err", err)
			}
			return
		}
		if c.s.isHung() {
			c.s.mu.Lock()
			c.s.stats.Ignored++
			c.s.mu.Unlock()
			<-c.ctx.Done()
			return
		}
		if tooLong {
			c.replyIDless(Errorf(CodeBadParams, "request line longer than %d bytes", maxRequestLine))
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if closeConn := c.handle(line, arrival); closeConn {
			return
		}
	}
}

// readLine reads one "\n"-terminated line of at most maxRequestLine bytes.
// A longer line is consumed and reported as tooLong. A partial line at
// EOF is discarded.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > maxRequestLine {
			tooLong = true
		} else {
			buf = append(buf, frag...)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, err
		}
	}
	if tooLong {
		return nil, true, nil
	}
	return bytes.TrimRight(buf, "\r\n"), false, nil
}

// writeEvents drains the queue (events, and with DropNewest responses
// too) onto the socket.
func (c *client) writeEvents() {
	defer c.q.abandon()
	for {
		it, ok := c.q.pop()
		if !ok {
			select {
			case <-c.ctx.Done():
				return
			case <-c.q.ready:
			}
			continue
		}
		if c.s.isHung() {
			if it.written != nil {
				close(it.written) // never to be written
			}
			<-c.ctx.Done()
			return
		}
		line := it.line
		if it.dropped {
			if !it.always && !c.subscribed(EventDropped) {
				continue
			}
			line = encodeLine(eventMsg{Event: EventDropped, Data: droppedData{Count: clampU32(it.count)}})
		}
		line = c.mangle(line)
		err := c.write(line)
		if it.written != nil {
			close(it.written)
		}
		if err != nil {
			c.cancel()
			return
		}
	}
}

// mangle replaces every MalformedEvery-th surface_drawn or dropped event
// with one of the same name whose data does not decode (a string where a
// number belongs), as a broken server would send it.
func (c *client) mangle(line []byte) []byte {
	n := c.s.cfg.MalformedEvery
	if n <= 0 {
		return line
	}
	for _, name := range []string{EventSurfaceDrawn, EventDropped} {
		if bytes.Contains(line, []byte(`"event":"`+name+`"`)) {
			c.mangled++
			if c.mangled%n == 0 {
				return []byte(`{"event":"` + name + `","data":{"count":"many","wallclock_us":"soon"}}` + "\n")
			}
			break
		}
	}
	return line
}

func (c *client) write(line []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.nc.Write(line); err != nil {
		return fmt.Errorf("write to control client: %w", err)
	}
	return nil
}

// send answers a request. With DropNewest the answer queues behind the
// events already queued and waits for a free slot, as in ryll's code;
// with DropOldest it is written at once, ahead of them. The returned
// channel is closed once the line is out (or never will be).
func (c *client) send(line []byte) <-chan struct{} {
	if c.s.cfg.QueueDrop == DropNewest {
		written, err := c.q.pushWait(c.ctx, line)
		if err == nil {
			return written
		}
	} else {
		_ = c.write(line)
	}
	done := make(chan struct{})
	close(done)
	return done
}

func (c *client) reply(id json.RawMessage, result any) {
	c.send(encodeLine(okResponse{ID: id, OK: true, Result: result}))
}

func (c *client) replyErr(id json.RawMessage, e *Error) <-chan struct{} {
	return c.send(encodeLine(errResponse{ID: id, OK: false, Error: e}))
}

// replyIDless answers a request whose envelope did not parse: ryll's
// answer then has no id field at all.
func (c *client) replyIDless(e *Error) {
	c.send(encodeLine(idlessResponse{OK: false, Error: e}))
}

// closeGrace bounds how long a closing connection waits for its last
// answer to be written to a client that does not read.
const closeGrace = 2 * time.Second

// emitOwn sends an event to this client only, if it is still the current
// client and subscribed (paste outcomes belong to the connection that
// asked).
func (c *client) emitOwn(name string, data any) {
	if c.ctx.Err() != nil || !c.subscribed(name) || c.s.isHung() {
		return
	}
	c.q.push(encodeLine(eventMsg{Event: name, Data: data}))
}

// handle answers one request line and reports whether the connection must
// now be closed.
func (c *client) handle(line []byte, arrival time.Time) bool {
	req, werr := parseRequest(line)
	if werr != nil {
		c.replyIDless(werr)
		return false
	}
	if !c.helloDone && req.method != methodHello {
		c.replyErr(req.id, Errorf(CodeNoHelloYet, "first request must be hello"))
		return false
	}
	c.s.log.Debug("control request", "method", req.method)
	if req.paramsNotObject && req.method != methodStatus && knownMethod(req.method) {
		// ryll's status ignores its params; every other verb decodes them
		// into a struct, which only an object can be.
		c.replyErr(req.id, Errorf(CodeBadParams, "invalid %s params: params must be a JSON object", req.method))
		return false
	}
	var result any
	var job PasteJob
	switch req.method {
	case methodHello:
		var closeConn bool
		result, closeConn, werr = c.hello(req.params)
		if closeConn {
			written := c.replyErr(req.id, werr)
			t := time.NewTimer(closeGrace)
			defer t.Stop()
			select {
			case <-written:
			case <-c.ctx.Done():
			case <-t.C:
			}
			return true
		}
	case methodStatus:
		result = c.s.sess.Status(arrival)
	case methodSendKey:
		result, werr = c.sendKey(req.params, arrival)
	case methodPaste:
		result, job, werr = c.paste(req.params, arrival)
	case methodScreenshot:
		result, werr = c.screenshot(req.params, arrival)
	case methodSubscribe:
		result, werr = c.subscribe(req.params)
	case methodUnsubscribe:
		result, werr = c.unsubscribe(req.params)
	default:
		werr = Errorf(CodeUnknownMethod, "unknown method %q", truncate(req.method, 64))
	}
	if werr != nil {
		c.replyErr(req.id, werr)
		return false
	}
	c.reply(req.id, result)
	if job != nil {
		c.runPaste(req.id, job)
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func knownMethod(m string) bool {
	for _, k := range supportedMethods {
		if k == m {
			return true
		}
	}
	return false
}

func (c *client) hello(p map[string]json.RawMessage) (any, bool, *Error) {
	if _, ok, werr := paramString(p, "client_name"); werr != nil {
		return nil, false, werr
	} else if !ok {
		return nil, false, Errorf(CodeBadParams, "invalid hello params: client_name is missing")
	}
	pv, ok, werr := paramString(p, "protocol_version")
	if werr != nil {
		return nil, false, werr
	}
	if !ok {
		return nil, false, Errorf(CodeBadParams, "protocol_version is missing")
	}
	v, err := ParseVersion(pv)
	if err != nil {
		return nil, false, Errorf(CodeBadParams, "protocol_version must be a dotted major.minor string such as \"1.2\"")
	}
	server := c.s.cfg.ProtocolVersion
	if v.Major != server.Major {
		return nil, true, Errorf(CodeVersionMismatch, "server speaks major version %d; client requested major version %d", server.Major, v.Major)
	}
	c.helloDone = true
	return helloResult{
		ServerName:       serverName,
		ProtocolVersion:  server.String(),
		SupportedMethods: append([]string(nil), supportedMethods...),
		SupportedEvents:  supportedEvents(server),
	}, false, nil
}

func (c *client) sendKey(p map[string]json.RawMessage, arrival time.Time) (any, *Error) {
	code, ok, werr := paramUint(p, "scancode", maxU16, "u16")
	if werr != nil {
		return nil, werr
	}
	if !ok {
		return nil, Errorf(CodeBadParams, "scancode is missing")
	}
	state, ok, werr := paramString(p, "state")
	if werr != nil {
		return nil, werr
	}
	if !ok {
		return nil, Errorf(CodeBadParams, "state is missing")
	}
	if state != "down" && state != "up" && state != "press" {
		return nil, Errorf(CodeBadState, "unrecognised state value %q", truncate(state, 32))
	}
	if c.s.cfg.ProtocolVersion.AtLeast(1, 2) {
		if hi := code >> 8; hi != 0 && hi != extendedScancodePrefix {
			return nil, Errorf(CodeBadParams, "scancode 0x%04X is not a logical make code: extended keys carry the 0xE0 prefix in the high byte, e.g. 0xE04B", code)
		}
	}
	if werr := c.s.sess.SendKey(arrival, uint16(code), KeyState(state)); werr != nil {
		return nil, werr
	}
	return struct{}{}, nil
}

// paste validates a paste request and hands it to the session; the
// typing itself runs after the response has been written (runPaste), so
// the response always precedes the outcome event.
func (c *client) paste(p map[string]json.RawMessage, arrival time.Time) (any, PasteJob, *Error) {
	text, ok, werr := paramString(p, "text")
	if werr != nil {
		return nil, nil, werr
	} else if !ok {
		return nil, nil, Errorf(CodeBadParams, "text is missing")
	}
	delayMS, ok, werr := paramUint(p, "char_delay_ms", maxU32, "u32")
	if werr != nil {
		return nil, nil, werr
	}
	if !ok {
		delayMS = defaultPasteCharDelay
	}
	job, werr := c.s.sess.Paste(arrival, text, time.Duration(delayMS)*time.Millisecond)
	if werr != nil {
		return nil, nil, werr
	}
	return struct{}{}, job, nil
}

// runPaste runs an accepted paste and reports its outcome to this client
// only. The typing stops when the client goes away or the server hangs.
func (c *client) runPaste(id json.RawMessage, job PasteJob) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.s.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-c.s.hung:
			cancel()
		}
	})
	c.s.wg.Go(func() {
		defer cancel()
		out, ok := job(ctx)
		if !ok {
			return
		}
		if out.Failed != "" {
			c.emitOwn(EventPasteFailed, pasteFailedData{RequestID: id, Reason: out.Failed})
			return
		}
		c.emitOwn(EventPasteCompleted, pasteCompletedData{RequestID: id, CharsSent: out.CharsSent})
	})
}

func (c *client) screenshot(p map[string]json.RawMessage, now time.Time) (any, *Error) {
	sid, _, werr := paramUint(p, "surface_id", maxU32, "u32")
	if werr != nil {
		return nil, werr
	}
	format, ok, werr := paramString(p, "format")
	if werr != nil {
		return nil, werr
	}
	if !ok {
		format = "png"
	}
	if format != "png" && format != "rgba" {
		return nil, Errorf(CodeUnsupportedFormat, "unsupported format %q: want \"png\" or \"rgba\"", truncate(format, 32))
	}
	img, werr := c.s.sess.Screenshot(now, uint32(sid))
	if werr != nil {
		return nil, werr
	}
	if img == nil {
		return nil, Errorf(CodeInternalError, "the session returned no image for surface %d", sid)
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	data := img.Pix
	if format == "png" {
		var err error
		if data, err = encodePNG(img); err != nil {
			return nil, Errorf(CodeInternalError, "%v", err)
		}
	}
	return screenshotResult{
		Width: uint32(w), Height: uint32(h), Format: format,
		DataBase64: base64.StdEncoding.EncodeToString(data),
	}, nil
}

func (c *client) subscribe(p map[string]json.RawMessage) (any, *Error) {
	names, werr := paramStrings(p, "events")
	if werr != nil {
		return nil, werr
	}
	known := map[string]bool{}
	for _, e := range supportedEvents(c.s.cfg.ProtocolVersion) {
		known[e] = true
	}
	out := []string{}
	seen := map[string]bool{}
	c.smu.Lock()
	for _, n := range names {
		if !known[n] || seen[n] {
			continue
		}
		seen[n] = true
		c.subs[n] = true
		out = append(out, n)
	}
	c.smu.Unlock()
	return subscribeResult{Subscribed: out}, nil
}

func (c *client) unsubscribe(p map[string]json.RawMessage) (any, *Error) {
	names, werr := paramStrings(p, "events")
	if werr != nil {
		return nil, werr
	}
	out := []string{}
	c.smu.Lock()
	for _, n := range names {
		if c.subs[n] {
			delete(c.subs, n)
			out = append(out, n)
		}
	}
	c.smu.Unlock()
	return unsubscribeResult{Unsubscribed: out}, nil
}
