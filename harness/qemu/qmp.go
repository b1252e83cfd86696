package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQMPClosed is returned by calls on a QMP connection that has closed,
// whether by Close, by QEMU exiting or by a protocol error; QMP.Err says
// which.
var ErrQMPClosed = errors.New("qmp connection closed")

// aLongTimeAgo is a deadline in the past, set to cut a blocked read or
// write short when a context ends.
var aLongTimeAgo = time.Unix(1, 0)

// maxQMPLine bounds one QMP message. QEMU's largest answers here are
// human-monitor-command outputs of a few lines; a longer line means the
// peer is not QEMU, and reading it whole would let it eat our memory.
const maxQMPLine = 1 << 20

// QMPError is an error QEMU answered a command with ({"error": {"class",
// "desc"}}), so callers can tell a refused command (errors.As) from a
// broken connection (errors.Is ErrQMPClosed).
type QMPError struct {
	// Command is the command that was refused.
	Command string
	// Class is QMP's error class, e.g. "GenericError", "CommandNotFound".
	Class string
	// Desc is QEMU's human-readable description.
	Desc string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// QMPVersion is QEMU's version as QMP reports it (in the greeting and
// in query-version).
type QMPVersion struct {
	QEMU struct {
		Major int `json:"major"`
		Minor int `json:"minor"`
		Micro int `json:"micro"`
	} `json:"qemu"`
	// Package is the distribution's build, e.g. "Debian 1:7.2+dfsg-7".
	Package string `json:"package"`
}

// String is "MAJOR.MINOR.MICRO".
func (v QMPVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.QEMU.Major, v.QEMU.Minor, v.QEMU.Micro)
}

// QMP is a client of the QEMU Machine Protocol over a Unix socket: one
// JSON object per line, commands answered by id, asynchronous events
// interleaved. It is how the harness asks QEMU for its version, reads
// the guest's key counter and shuts QEMU down without a signal.
//
// One goroutine reads the connection. A call registers its id before
// writing, so an answer can never arrive unclaimed; events are counted
// and otherwise skipped. Any malformed line ends the connection: every
// pending and later call fails with an error wrapping ErrQMPClosed and
// the cause. Safe for concurrent use.
type QMP struct {
	conn     net.Conn
	greeting QMPVersion

	wmu    sync.Mutex // serialises writes: one Write per command line
	nextID atomic.Uint64
	events atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan qmpReply
	err     error // why the connection ended; set once, before done closes

	done chan struct{}
}

// qmpMessage is any line QEMU sends: a greeting, an answer or an event.
type qmpMessage struct {
	QMP    *struct{ Version QMPVersion } `json:"QMP"`
	ID     json.RawMessage               `json:"id"`
	Return json.RawMessage               `json:"return"`
	Error  *struct{ Class, Desc string } `json:"error"`
	Event  string                        `json:"event"`
}

type qmpReply struct {
	ret json.RawMessage
	err *QMPError
}

// DialQMP connects to the QMP socket at path, reads QEMU's greeting and
// leaves capability negotiation (qmp_capabilities), so the connection is
// ready for commands. ctx bounds all of it: a socket that accepts but
// never greets cannot hang the caller.
func DialQMP(ctx context.Context, path string) (_ *QMP, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to qmp %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = conn.Close()
		}
	}()

	br := bufio.NewReaderSize(conn, 64<<10)
	greeting, err := readGreeting(ctx, conn, br)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	q := &QMP{
		conn:     conn,
		greeting: greeting,
		pending:  map[string]chan qmpReply{},
		done:     make(chan struct{}),
	}
	go q.read(br)
	if err := q.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		_ = q.Close()
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	return q, nil
}

// readGreeting reads the first line, which must be QEMU's {"QMP": ...}.
// The read is cut short when ctx ends by moving the connection's deadline.
func readGreeting(ctx context.Context, conn net.Conn, br *bufio.Reader) (QMPVersion, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(aLongTimeAgo) })
	line, err := readLine(br)
	if !stop() || ctx.Err() != nil {
		return QMPVersion{}, fmt.Errorf("read greeting: %w", context.Cause(ctx))
	}
	if err != nil {
		return QMPVersion{}, fmt.Errorf("read greeting: %w", err)
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return QMPVersion{}, fmt.Errorf("greeting is not JSON (%s): %w", quoteLine(line), err)
	}
	if m.QMP == nil {
		return QMPVersion{}, fmt.Errorf("first line is not a QMP greeting: %s", quoteLine(line))
	}
	return m.QMP.Version, nil
}

// Greeting is the version QEMU announced when the connection opened.
func (q *QMP) Greeting() QMPVersion { return q.greeting }

// Events is how many asynchronous events (SHUTDOWN, RESET, ...) QEMU has
// sent and the client skipped.
func (q *QMP) Events() uint64 { return q.events.Load() }

// Done is closed when the connection has ended, for any reason.
func (q *QMP) Done() <-chan struct{} { return q.done }

// Err is nil while the connection is open and then says why it ended
// (always wrapping ErrQMPClosed).
func (q *QMP) Err() error {
	select {
	case <-q.done:
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.err
	default:
		return nil
	}
}

// Close ends the connection and waits for its reader to stop. Pending
// calls fail with ErrQMPClosed. Safe to call more than once.
func (q *QMP) Close() error {
	q.fail(ErrQMPClosed)
	_ = q.conn.Close()
	<-q.done
	return nil
}

// Execute sends command with args (nil for none; anything encoding/json
// encodes to an object) and decodes the answer's "return" into result
// (nil to ignore it). It returns when the answer arrives, the connection
// ends or ctx ends. QEMU's refusal is a *QMPError.
func (q *QMP) Execute(ctx context.Context, command string, args, result any) error {
	id := "k" + strconv.FormatUint(q.nextID.Add(1), 10)
	msg := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id}
	line, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("qmp %s: encode arguments: %w", command, err)
	}
	line = append(line, '\n')

	ch := make(chan qmpReply, 1)
	q.mu.Lock()
	if q.pending == nil {
		err := q.err
		q.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	q.pending[id] = ch
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		if q.pending != nil {
			delete(q.pending, id)
		}
		q.mu.Unlock()
	}()

	if err := q.write(ctx, line); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}

	select {
	case r := <-ch:
		return r.decode(command, result)
	case <-q.done:
		// The answer may have come just before the connection ended
		// (QEMU answers quit, then closes): it still counts.
		select {
		case r := <-ch:
			return r.decode(command, result)
		default:
			return fmt.Errorf("qmp %s: %w", command, q.Err())
		}
	case <-ctx.Done():
		return fmt.Errorf("qmp %s: no answer: %w", command, context.Cause(ctx))
	}
}

// decode turns an answer into Execute's result.
func (r qmpReply) decode(command string, result any) error {
	if r.err != nil {
		r.err.Command = command
		return r.err
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(r.ret, result); err != nil {
		return fmt.Errorf("qmp %s: decode answer %s: %w", command, quoteLine(r.ret), err)
	}
	return nil
}

// write sends one whole line, bounded by ctx. A write cut short by ctx
// may have sent part of a line, after which the stream cannot be trusted,
// so it ends the connection.
func (q *QMP) write(ctx context.Context, line []byte) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send: %w", context.Cause(ctx))
	}
	stop := context.AfterFunc(ctx, func() { _ = q.conn.SetWriteDeadline(aLongTimeAgo) })
	_, err := q.conn.Write(line)
	if !stop() {
		err = fmt.Errorf("send: %w", context.Cause(ctx))
		q.fail(fmt.Errorf("%w: a command was cut off mid-write", ErrQMPClosed))
		_ = q.conn.Close()
		return err
	}
	if err != nil {
		// The socket refused the line (QEMU gone: EPIPE, ECONNRESET) or
		// took part of it: either way the stream is over, and the call
		// says so as every call on a closed connection does, whether or
		// not the reader has seen the close yet.
		err = fmt.Errorf("%w: send: %w", ErrQMPClosed, err)
		q.fail(err)
		_ = q.conn.Close()
		return err
	}
	return nil
}

// read owns the read side: it hands answers to their callers and skips
// events until the connection fails.
func (q *QMP) read(br *bufio.Reader) {
	defer close(q.done)
	for {
		line, err := readLine(br)
		if err != nil {
			q.fail(fmt.Errorf("%w: read: %w", ErrQMPClosed, err))
			_ = q.conn.Close()
			return
		}
		if err := q.dispatch(line); err != nil {
			q.fail(fmt.Errorf("%w: %w", ErrQMPClosed, err))
			_ = q.conn.Close()
			return
		}
	}
}

// dispatch handles one line from QEMU. An error ends the connection.
func (q *QMP) dispatch(line []byte) error {
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return fmt.Errorf("malformed line %s: %w", quoteLine(line), err)
	}
	switch {
	case m.Event != "":
		q.events.Add(1)
		return nil
	case m.QMP != nil:
		return fmt.Errorf("second greeting: %s", quoteLine(line))
	case m.Return == nil && m.Error == nil:
		return fmt.Errorf("line is neither an answer nor an event: %s", quoteLine(line))
	case len(m.ID) == 0:
		// We always send an id, so an answer without one is QEMU saying
		// it could not parse what we sent: the stream is out of step.
		desc := "no error given"
		if m.Error != nil {
			desc = m.Error.Class + ": " + m.Error.Desc
		}
		return fmt.Errorf("answer without an id (%s)", desc)
	}
	var id string
	if err := json.Unmarshal(m.ID, &id); err != nil {
		return fmt.Errorf("answer with an id we never sent: %s", quoteLine(m.ID))
	}
	r := qmpReply{ret: m.Return}
	if m.Error != nil {
		r = qmpReply{err: &QMPError{Class: m.Error.Class, Desc: m.Error.Desc}}
	}
	q.mu.Lock()
	ch := q.pending[id]
	q.mu.Unlock()
	if ch != nil {
		ch <- r // buffered, one answer per id
	}
	// No caller: it gave up (its context ended) before the answer came.
	return nil
}

// fail records why the connection ended (the first reason wins) and
// stops accepting calls.
func (q *QMP) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		return
	}
	q.err = err
	q.pending = nil
}

// readLine reads one '\n'-terminated line of at most maxQMPLine bytes,
// without the line ending. A final line without '\n' is an error: QEMU
// always ends its lines, so it was cut off.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxQMPLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxQMPLine)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimRight(line, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case len(line) > 0 && errors.Is(err, io.EOF):
			return nil, fmt.Errorf("connection closed mid-line after %d bytes", len(line))
		default:
			return nil, err
		}
	}
}

// quoteLine renders a line from the peer for an error message, cut short
// so a flood cannot swamp the message.
func quoteLine(b []byte) string {
	const max = 200
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
