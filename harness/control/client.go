package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultMaxLineBytes bounds one line from the server: 64 MiB. A raw
	// RGBA screenshot of a 1920x1200 surface is about 12 MiB after base64,
	// so this admits any realistic screenshot while keeping a runaway
	// server from exhausting memory. A longer line is discarded up to its
	// newline, counted in Stats.Oversized, and fails the call it answered
	// with ErrLineTooLong.
	DefaultMaxLineBytes = 64 << 20
	// DefaultEventQueue bounds the events held between the reader and the
	// consumer of Events(): 65536, about 20 s of a guest repainting at the
	// server's worst observed rate. Beyond it the oldest event is dropped
	// and counted (DroppedEvents) so the reader never waits.
	DefaultEventQueue = 65536
	// DefaultBusyRetryInterval is how often Dial retries a busy socket;
	// the protocol document suggests polling every 250 ms.
	DefaultBusyRetryInterval = 250 * time.Millisecond
	// DefaultClientName is sent in hello when Options.ClientName is empty;
	// ryll only logs it.
	DefaultClientName = "kerbside-latency"

	// eventChanBuffer is the buffer of the Events channel itself, on top
	// of the queue, so the pump does not hand over one event per switch.
	eventChanBuffer = 64
)

// Options tune a Client. The zero value is usable.
type Options struct {
	// ClientName is sent in hello (DefaultClientName if empty).
	ClientName string
	// Logger receives skipped bad input and connection ends. Default:
	// discard. Request parameters (paste text may be a password) are
	// never logged.
	Logger *slog.Logger
	// BusyRetryInterval is the pause between Dial attempts while the
	// server answers busy (DefaultBusyRetryInterval if zero).
	BusyRetryInterval time.Duration
	// EventQueue bounds the local event queue (DefaultEventQueue if zero).
	EventQueue int
	// MaxLineBytes bounds one line from the server, newline excluded
	// (DefaultMaxLineBytes if zero).
	MaxLineBytes int
	// Transcript, when set, receives every line sent and received and
	// the connection's end, as TranscriptEntry NDJSON lines, for
	// troubleshooting (LATENCY_TRANSCRIPT). Secrets and paste text are
	// replaced. Entries are written one Write each, under one lock, and
	// none after Close returns; Dial's attempts write one after another.
	// A write error stops the transcript (logged), never the client. Nil
	// costs nothing.
	Transcript io.Writer
	// Secrets are replaced in the Transcript (a console token, say).
	Secrets []string
}

func (o Options) withDefaults() Options {
	if o.ClientName == "" {
		o.ClientName = DefaultClientName
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BusyRetryInterval <= 0 {
		o.BusyRetryInterval = DefaultBusyRetryInterval
	}
	if o.EventQueue <= 0 {
		o.EventQueue = DefaultEventQueue
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	return o
}

// Stats counts what the reader saw, so tests and the loadtest can tell a
// clean run from one where the server sent garbage or events were lost.
type Stats struct {
	// Lines is the number of non-empty lines read.
	Lines uint64
	// Responses is the number of responses handed to a waiting call.
	Responses uint64
	// Events is the number of events queued for Events().
	Events uint64
	// Malformed counts lines that were not a valid protocol message.
	Malformed uint64
	// Oversized counts lines longer than MaxLineBytes.
	Oversized uint64
	// Unmatched counts responses no call was waiting for: unknown ids,
	// ids this client never sends (strings), answers to calls that had
	// already given up on their context.
	Unmatched uint64
	// EventsDropped counts events this client dropped because the
	// consumer of Events() fell EventQueue events behind. Events the
	// server dropped are reported by its own dropped events instead.
	EventsDropped uint64
}

// Client is a connection to one ryll control socket. It is safe for
// concurrent use by many goroutines. Close it to release its goroutines.
type Client struct {
	conn    net.Conn
	opts    Options
	log     *slog.Logger
	nextID  atomic.Uint64
	writeMu sync.Mutex

	mu      sync.Mutex
	pending map[uint64]chan response // nil once the connection ended
	err     error                    // why it ended

	hello atomic.Pointer[HelloResult]
	tr    *transcript // nil unless Options.Transcript

	queue    *eventQueue
	events   chan Event
	done     chan struct{} // closed when the connection ends
	readDone chan struct{} // closed when the reader has stopped
	closing  chan struct{} // closed by Close

	endOnce   sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup

	lines, responses, eventsIn, malformed, oversized, unmatched atomic.Uint64
	bytesIn                                                     atomic.Uint64
	lr                                                          *lineReader
}

// response is what the reader hands a waiting call.
type response struct {
	result   json.RawMessage
	err      error
	received time.Time
}

// callInfo carries the timestamps of one round trip.
type callInfo struct {
	id       uint64
	sentAt   time.Time
	received time.Time
}

// NewClient wraps an established connection and starts its reader. It
// does not send hello: call Hello before other verbs (Dial does both).
// The Client owns conn from now on and closes it.
func NewClient(conn net.Conn, opts Options) *Client {
	opts = opts.withDefaults()
	c := &Client{
		conn:     conn,
		opts:     opts,
		log:      opts.Logger,
		pending:  make(map[uint64]chan response),
		queue:    newEventQueue(opts.EventQueue),
		events:   make(chan Event, eventChanBuffer),
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
		closing:  make(chan struct{}),
		tr:       newTranscript(opts.Transcript, opts.Secrets, opts.Logger),
	}
	c.lr = newLineReader(countingReader{conn, &c.bytesIn}, opts.MaxLineBytes)
	c.wg.Add(2)
	go c.readLoop()
	go c.pumpEvents()
	return c
}

// Dial connects to the control socket at path and performs the hello
// handshake. While the server answers busy (another client holds the
// socket) or closes the connection before answering hello, it retries
// every Options.BusyRetryInterval until ctx ends; the error then matches
// ErrBusy if any attempt was refused as busy. A connect failure (no
// socket yet) or a version mismatch is returned at once.
func Dial(ctx context.Context, path string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	busy := 0
	for attempt := 1; ; attempt++ {
		c, err := dialOnce(ctx, path, opts)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrBusy) {
			busy++
		}
		if ctx.Err() != nil {
			// The context ended during this attempt: say so, whatever
			// the attempt itself ran into (often busy, once more).
			if !errors.Is(err, context.Cause(ctx)) {
				err = fmt.Errorf("%w (last attempt: %w)", context.Cause(ctx), err)
			}
			return nil, dialError(path, attempt, busy, err)
		}
		if !errors.Is(err, ErrClosed) {
			return nil, dialError(path, attempt, busy, err)
		}
		opts.Logger.Debug("control: handshake refused, retrying", "path", path, "attempt", attempt, "err", err)
		t := time.NewTimer(opts.BusyRetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, dialError(path, attempt, busy, fmt.Errorf("%w (last attempt: %w)", context.Cause(ctx), err))
		case <-t.C:
		}
	}
}

func dialError(path string, attempts, busy int, err error) error {
	if busy > 0 && !errors.Is(err, ErrBusy) {
		return fmt.Errorf("dial control socket %s: %w (%d of %d attempts refused as busy): %w", path, ErrBusy, busy, attempts, err)
	}
	return fmt.Errorf("dial control socket %s (%d attempts, %d busy): %w", path, attempts, busy, err)
}

func dialOnce(ctx context.Context, path string, opts Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	c := NewClient(conn, opts)
	if _, err := c.Hello(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Events delivers the server's events in arrival order. It is closed after
// the connection ends and every queued event has been delivered, or at
// Close. Reading it is optional; a consumer that falls behind loses the
// oldest events (see DroppedEvents), never delays responses.
func (c *Client) Events() <-chan Event { return c.events }

// DroppedEvents is the number of events this client discarded because the
// consumer of Events() fell too far behind.
func (c *Client) DroppedEvents() uint64 { return c.queue.droppedCount() }

// Stats returns the reader's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Lines:         c.lines.Load(),
		Responses:     c.responses.Load(),
		Events:        c.eventsIn.Load(),
		Malformed:     c.malformed.Load(),
		Oversized:     c.oversized.Load(),
		Unmatched:     c.unmatched.Load(),
		EventsDropped: c.queue.droppedCount(),
	}
}

// Done is closed when the connection has ended, for whatever reason.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the connection ended (it matches ErrClosed and wraps the
// cause), or is nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection, fails pending calls with ErrClosed, and waits
// for the client's goroutines. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.end(nil)
	})
	c.wg.Wait()
	if c.tr != nil {
		c.tr.close()
	}
	return nil
}

// end records why the connection ended (nil: closed by us), closes it and
// fails every pending call. Only the first call has an effect.
func (c *Client) end(cause error) {
	c.endOnce.Do(func() {
		err := ErrClosed
		if cause != nil {
			err = fmt.Errorf("%w: %w", ErrClosed, cause)
		}
		c.mu.Lock()
		c.err = err
		pending := c.pending
		c.pending = nil
		c.mu.Unlock()
		_ = c.conn.Close()
		if c.tr != nil {
			c.tr.end(time.Now(), cause)
		}
		for _, ch := range pending {
			ch <- response{err: err} // buffer 1, and nobody else sends now
		}
		close(c.done)
		c.log.Debug("control: connection ended", "err", err)
	})
}

// readLoop owns the read side: it splits lines, stamps them, and routes
// responses to calls and events to the queue. It never blocks on anyone.
func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.readDone)
	lr := c.lr
	var env envelope
	for {
		line, err := lr.next()
		now := time.Now()
		if errors.Is(err, ErrLineTooLong) {
			c.handleOversize(line, now)
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("server closed the connection: %w", err)
			} else {
				err = fmt.Errorf("read: %w", err)
			}
			c.end(err)
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		c.lines.Add(1)
		if c.tr != nil {
			c.tr.record(TranscriptRecv, now, line)
		}
		c.handleLine(&env, line, now)
	}
}

func (c *Client) handleOversize(prefix []byte, now time.Time) {
	if c.tr != nil {
		c.tr.record(TranscriptRecv, now, prefix)
	}
	c.lines.Add(1)
	c.oversized.Add(1)
	id, ok := peekID(prefix)
	c.log.Warn("control: discarded over-long line", "limit", c.opts.MaxLineBytes, "start", clip(prefix))
	if ok {
		err := fmt.Errorf("%w: response over %d bytes", ErrLineTooLong, c.opts.MaxLineBytes)
		if !c.deliver(id, response{err: err, received: now}) {
			c.unmatched.Add(1)
		}
	}
}

func (c *Client) handleLine(env *envelope, line []byte, now time.Time) {
	f, err := decodeLine(env, line)
	if err != nil {
		c.malformed.Add(1)
		c.log.Warn("control: skipped malformed line", "err", err, "line", clip(line))
		if f.kind == frameResponse && f.idKind == idUint {
			c.deliver(f.id, response{err: err, received: now})
		}
		return
	}
	if f.kind == frameEvent {
		c.eventsIn.Add(1)
		c.queue.push(Event{Name: f.event, Data: f.data, Received: now})
		return
	}
	switch f.idKind {
	case idAbsent:
		// Only the busy refusal is sent without an id; it is the server's
		// verdict on the whole connection, which it then closes.
		perr := &ProtocolError{Code: f.code, Message: f.message}
		c.log.Warn("control: server refused the connection", "code", f.code, "message", f.message)
		c.end(perr)
	case idOther:
		c.unmatched.Add(1)
		c.log.Warn("control: skipped response with an id this client never sends", "line", clip(line))
	case idUint:
		resp := response{result: f.result, received: now}
		if !f.ok {
			resp.err = &ProtocolError{Code: f.code, Message: f.message}
		}
		if !c.deliver(f.id, resp) {
			c.unmatched.Add(1)
			c.log.Warn("control: skipped response nobody is waiting for", "id", f.id)
		}
	}
}

// deliver hands resp to the call waiting for id, if any. Removing the
// entry here makes a duplicate response count as unmatched.
func (c *Client) deliver(id uint64, resp response) bool {
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		c.responses.Add(1)
		ch <- resp
	}
	return ok
}

// pumpEvents moves events from the queue to the Events channel. After the
// reader stops it drains what is queued and closes the channel.
func (c *Client) pumpEvents() {
	defer c.wg.Done()
	defer close(c.events)
	for {
		ev, ok := c.queue.pop()
		if !ok {
			select {
			case <-c.queue.notify:
				continue
			case <-c.readDone:
				if ev, ok = c.queue.pop(); !ok {
					return
				}
			case <-c.closing:
				return
			}
		}
		select {
		case c.events <- ev:
		case <-c.closing:
			return
		}
	}
}

// roundTrip sends one request and waits for its response or ctx. Server
// refusals come back as *ProtocolError with Method set; other errors are
// wrapped with the method.
func (c *Client) roundTrip(ctx context.Context, method string, params any) (json.RawMessage, callInfo, error) {
	return c.call(ctx, method, params, nil)
}

// call is roundTrip; shown, when not nil, is what the transcript records
// as the params instead of params (which may hold a secret).
func (c *Client) call(ctx context.Context, method string, params, shown any) (json.RawMessage, callInfo, error) {
	var info callInfo
	if err := ctx.Err(); err != nil {
		return nil, info, fmt.Errorf("control %s: %w", method, context.Cause(ctx))
	}
	info.id = c.nextID.Add(1)
	line, err := appendRequest(make([]byte, 0, 128), info.id, method, params)
	if err != nil {
		return nil, info, fmt.Errorf("control %s: encode request: %w", method, err)
	}
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return nil, info, fmt.Errorf("control %s: %w", method, err)
	}
	c.pending[info.id] = ch
	c.mu.Unlock()
	defer c.forget(info.id)

	var record []byte // the line the transcript shows
	if c.tr != nil {
		record = line
		if shown != nil {
			if record, err = appendRequest(nil, info.id, method, shown); err != nil {
				record = []byte("(request not shown: " + err.Error() + ")")
			}
		}
	}
	before := c.mark()
	info.sentAt, err = c.writeLine(ctx, line, record)
	if err != nil {
		return nil, info, fmt.Errorf("control %s: send request: %w", method, err)
	}
	select {
	case resp := <-ch:
		info.received = resp.received
		if pe, ok := resp.err.(*ProtocolError); ok {
			pe.Method = method // a fresh error per response: ours to fill in
			return nil, info, pe
		}
		if resp.err != nil {
			return nil, info, fmt.Errorf("control %s: %w", method, resp.err)
		}
		return resp.result, info, nil
	case <-ctx.Done():
		return nil, info, c.noResponse(method, info.sentAt, before, context.Cause(ctx))
	}
}

// readMark is how much the reader had read at one moment.
type readMark struct{ bytes, lines, events uint64 }

func (c *Client) mark() readMark {
	return readMark{bytes: c.bytesIn.Load(), lines: c.lines.Load(), events: c.eventsIn.Load()}
}

// noResponse is the error of a call whose context ended before its
// answer came. It says what the socket did meanwhile, which is what tells
// a hung server (nothing at all) from one sending a huge line or one whose
// answer waits behind events, and what to check for each.
func (c *Client) noResponse(method string, sentAt time.Time, before readMark, cause error) error {
	now := c.mark()
	waited := time.Since(sentAt).Round(time.Millisecond)
	if sentAt.IsZero() {
		waited = 0
	}
	partial := int64(now.bytes) - int64(c.lr.done.Load()) // a line still coming
	var what string
	switch {
	case now.bytes == before.bytes:
		what = fmt.Sprintf("nothing at all came from the server in the %v since the request: it is hung, "+
			"stopped or no longer reading its socket (is its process running? what does its log say last?)", waited)
	case partial > int64(c.opts.MaxLineBytes):
		what = fmt.Sprintf("the server was sending one line of more than %d bytes (%d so far), longer than any "+
			"message this client accepts (MaxLineBytes): it is discarded and counted, and an answer could only "+
			"come after it; the server is not speaking the protocol (check its version and log)", c.opts.MaxLineBytes, partial)
	case partial > 0:
		what = fmt.Sprintf("the server was still sending one line (%d bytes so far) in the %v since the request, "+
			"%d complete lines before it: a line that long and slow is no answer this client asked for", partial, waited,
			now.lines-before.lines)
	default:
		what = fmt.Sprintf("%d lines came from the server in the %v since the request (%d of them events), but not "+
			"the answer: it is slow to answer, or its answers wait behind a queue full of events", now.lines-before.lines,
			waited, now.events-before.events)
	}
	return fmt.Errorf("control %s: no response (%s): %w", method, what, cause)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(uint64(n))
	return n, err
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// aLongTimeAgo is a deadline in the past, used to interrupt a Write.
var aLongTimeAgo = time.Unix(1, 0)

// writeLine writes one complete request line under the write lock and
// returns the wall clock taken just before the Write. A cancelled ctx
// interrupts a Write blocked on a server that does not read; if part of
// the line went out the stream is out of step and the connection ends.
// record, when not nil, goes to the transcript first, so that a response
// can never appear before its request there, and the transcript's cost
// falls before sentAt is taken, not inside a measured interval.
func (c *Client) writeLine(ctx context.Context, line, record []byte) (time.Time, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return time.Time{}, context.Cause(ctx)
	}
	if record != nil {
		c.tr.record(TranscriptSend, time.Now(), record)
	}
	var stop func() bool
	var fired chan struct{}
	if ctx.Done() != nil {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			_ = c.conn.SetWriteDeadline(aLongTimeAgo)
			close(fired)
		})
	}
	sentAt := time.Now()
	n, err := c.conn.Write(line)
	if stop != nil && !stop() {
		<-fired
		_ = c.conn.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return sentAt, nil
	}
	if n == 0 && ctx.Err() != nil {
		return time.Time{}, context.Cause(ctx)
	}
	// The peer has closed. What it wrote before closing (a busy refusal,
	// typically, which the server sends before it reads anything) may
	// still be in our receive buffer: give the reader a bounded moment to
	// deliver it, so the connection ends with the server's reason rather
	// than a bare broken pipe.
	t := time.NewTimer(writeFailDrain)
	select {
	case <-c.readDone:
	case <-t.C:
	}
	t.Stop()
	c.end(fmt.Errorf("write: %w", err))
	return time.Time{}, c.Err()
}

// writeFailDrain bounds how long a failed write waits for the reader to
// deliver the peer's last words.
const writeFailDrain = 200 * time.Millisecond

// appendRequest encodes {"id":N,"method":M,"params":P} and a newline.
func appendRequest(buf []byte, id uint64, method string, params any) ([]byte, error) {
	m, err := json.Marshal(method)
	if err != nil {
		return nil, err
	}
	p := []byte("{}")
	if params != nil {
		if p, err = json.Marshal(params); err != nil {
			return nil, err
		}
		if len(p) == 0 || p[0] != '{' {
			return nil, fmt.Errorf("%w: params must encode as a JSON object, got %s", ErrInvalidArgument, clip(p))
		}
	}
	buf = append(buf, `{"id":`...)
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, `,"method":`...)
	buf = append(buf, m...)
	buf = append(buf, `,"params":`...)
	buf = append(buf, p...)
	return append(buf, '}', '\n'), nil
}
