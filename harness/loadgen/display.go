package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// window is a display channel's ACK flow control, spice-server's rule:
// SET_ACK starts a count of sent messages (itself included); sending
// stops while the count exceeds 2*size; an ACK takes size off the count
// once ACK_SYNC has named the current generation.
type window struct {
	size uint32

	mu         sync.Mutex
	generation uint32
	clientGen  uint32
	unacked    uint32
	blocked    bool          // the writer is waiting for an ACK (for tests)
	wake       chan struct{} // one token: an ACK arrived
}

func newWindow(size uint32) *window {
	return &window{size: size, clientGen: ^uint32(0), wake: make(chan struct{}, 1)}
}

// setAck starts a new generation; the SET_ACK that announces it is the
// first message counted.
func (w *window) setAck() (generation uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.generation++
	w.unacked = 0
	return w.generation
}

func (w *window) sent() {
	w.mu.Lock()
	w.unacked++
	w.mu.Unlock()
}

// full reports whether sending must stop, and marks the writer blocked.
func (w *window) full() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.blocked = w.unacked > 2*w.size
	return w.blocked
}

func (w *window) isBlocked() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blocked
}

func (w *window) ackSync(gen uint32) {
	w.mu.Lock()
	w.clientGen = gen
	w.mu.Unlock()
}

// ack applies an ACK; it reports whether the ACK counted.
func (w *window) ack() bool {
	w.mu.Lock()
	counted := w.clientGen == w.generation
	if counted {
		// spice-server's counter is unsigned and would wrap on a surplus
		// ACK, stopping the channel for good; a surplus ACK here frees
		// nothing more than the count.
		w.unacked -= min(w.unacked, w.size)
	}
	w.mu.Unlock()
	if counted {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return counted
}

// DRAW_COPY as spice.proto lays it out: DisplayBase {surface_id, box,
// clip NONE} (21 bytes), Copy {src_bitmap offset, src_area, rop
// descriptor, scale mode, QMask {flags, pos, bitmap offset 0}} (36
// bytes), then at offset 57 the Image: descriptor {id, type BITMAP,
// flags, width, height} (18 bytes) and BitmapData {format 32BIT, flags
// TOP_DOWN, x, y, stride, palette offset 0} (18 bytes), then the pixels
// top-down, stride*y bytes.
const (
	drawPrefixSize  = 93
	imageOffset     = 57
	ropOpPut        = 1 << 3 // SPICE_ROPD_OP_PUT
	bitmapFmt32     = 8      // SPICE_BITMAP_FMT_32BIT
	bitmapTopDown   = 1 << 2 // SPICE_BITMAP_FLAGS_TOP_DOWN
	surfaceFmtXRGB  = 32     // SPICE_SURFACE_FMT_32_xRGB
	surfacePrimary  = 1      // SPICE_SURFACE_FLAGS_PRIMARY
	surfaceID       = 0
	maxDisplayDrawW = 1 << 13
)

// drawTemplate is the pixel strip every draw of a Server carries (shared,
// read-only) and where the draws go on the surface.
type drawTemplate struct {
	w, h          int // the bitmap
	cols, rows    int // the bitmap's positions on the surface
	width, height int // the surface
	pixels        []byte
}

// newDrawTemplate sizes the bitmap for a body of about size bytes: the
// surface's width (or fewer pixels) by as many rows as it takes.
func newDrawTemplate(size, width, height int) drawTemplate {
	px := max(1, (size-drawPrefixSize+3)/4)
	w := min(width, px)
	h := min(height, (px+w-1)/w)
	t := drawTemplate{w: w, h: h, cols: width / w, rows: height / h, width: width, height: height}
	t.pixels = make([]byte, w*h*4)
	for i := range w * h {
		x, y := i%w, i/w
		binary.LittleEndian.PutUint32(t.pixels[4*i:], uint32(x*255/max(1, w-1))<<16|uint32(y*255/max(1, h-1))<<8|0x40)
	}
	return t
}

// prefix appends the header and the fixed part of draw number k.
func (t drawTemplate) prefix(dst []byte, mini bool, serial uint64, k uint64) []byte {
	le := binary.LittleEndian
	cell := int(k % uint64(t.cols*t.rows))
	left, top := (cell%t.cols)*t.w, (cell/t.cols)*t.h
	dst = appendHeader(dst, mini, serial, msgDisplayCopy, drawPrefixSize+len(t.pixels))
	dst = le.AppendUint32(dst, surfaceID)
	dst = le.AppendUint32(dst, uint32(top))
	dst = le.AppendUint32(dst, uint32(left))
	dst = le.AppendUint32(dst, uint32(top+t.h))
	dst = le.AppendUint32(dst, uint32(left+t.w))
	dst = append(dst, 0)                    // clip: NONE
	dst = le.AppendUint32(dst, imageOffset) // src_bitmap
	dst = le.AppendUint32(dst, 0)           // src_area: top, left, bottom, right
	dst = le.AppendUint32(dst, 0)
	dst = le.AppendUint32(dst, uint32(t.h))
	dst = le.AppendUint32(dst, uint32(t.w))
	dst = le.AppendUint16(dst, ropOpPut)
	dst = append(dst, 0)          // scale_mode: INTERPOLATE
	dst = append(dst, 0)          // mask flags
	dst = le.AppendUint64(dst, 0) // mask pos
	dst = le.AppendUint32(dst, 0) // mask bitmap: none
	dst = le.AppendUint64(dst, k) // image id (not cached: flags 0)
	dst = append(dst, 0, 0)       // type BITMAP, flags
	dst = le.AppendUint32(dst, uint32(t.w))
	dst = le.AppendUint32(dst, uint32(t.h))
	dst = append(dst, bitmapFmt32, bitmapTopDown)
	dst = le.AppendUint32(dst, uint32(t.w))
	dst = le.AppendUint32(dst, uint32(t.h))
	dst = le.AppendUint32(dst, uint32(t.w*4)) // stride
	dst = le.AppendUint32(dst, 0)             // palette: none
	return dst
}

// serveDisplay streams the busy desktop on one display channel: its
// goroutine reads the client's flow control while a writer sends.
func (s *Server) serveDisplay(ss *srvSession, conn net.Conn, mini bool) {
	ctx, cancel := context.WithCancelCause(ss.ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	win := newWindow(s.cfg.AckWindow)
	ss.mu.Lock()
	ss.win = win
	ss.mu.Unlock()
	ss.c.start(time.Now())

	done := make(chan error, 1)
	go func() {
		err := s.writeDisplay(ctx, ss, win, conn, mini)
		cancel(err)
		done <- err
	}()
	cancel(s.readDisplay(ss, win, conn, mini))

	// The first failure is the cause. The server's or the session's end,
	// and a client that hangs up (EOF, reset, broken pipe), are the end
	// of a session; only a client that broke the protocol is an error.
	<-done
	cause := context.Cause(ctx)
	if ss.ctx.Err() != nil || !errors.Is(cause, ErrProtocol) {
		cause = nil
	}
	ss.c.end(time.Now(), cause)
	if cause != nil {
		s.log.Info("loadgen: display channel ended", "session", ss.id, "err", cause)
	}
}

// readDisplay handles what a client sends on the display channel.
func (s *Server) readDisplay(ss *srvSession, win *window, conn net.Conn, mini bool) error {
	rd := newMsgReader(conn, mini, 512)
	le := binary.LittleEndian
	for {
		typ, size, err := rd.header()
		if err != nil {
			return err
		}
		switch {
		case typ == msgcAckSync:
			body, err := rd.body(typ, size, 4)
			if err != nil {
				return err
			}
			if len(body) != 4 {
				return fmt.Errorf("%w: ACK_SYNC of %d bytes, want 4", ErrProtocol, len(body))
			}
			win.ackSync(le.Uint32(body))
		case typ == msgcAck:
			if err := rd.skip(typ, size); err != nil {
				return err
			}
			if win.ack() {
				ss.c.acks.Add(1)
			}
		case typ == msgcPong:
			if _, err := rd.body(typ, size, maxClientMessage); err != nil {
				return err
			}
			ss.c.pongs.Add(1)
		case typ == msgcDisconnecting, typ >= msgcDisplayInit && typ <= msgcDisplayLast:
			// DISPLAY_INIT (caches we never use), stream reports,
			// preferred codecs: nothing to do.
			if _, err := rd.body(typ, size, maxClientMessage); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: unknown display channel message type %d", ErrProtocol, typ)
		}
	}
}

// writeDisplay sends SET_ACK, SURFACE_CREATE and MARK, then draws at the
// configured rate and PINGs, never more than the ACK window allows.
func (s *Server) writeDisplay(ctx context.Context, ss *srvSession, win *window, conn net.Conn, mini bool) error {
	le := binary.LittleEndian
	p := pacer{bitsPerSecond: s.cfg.BitsPerSecond}
	var serial uint64
	buf := make([]byte, 0, fullHeaderSize+drawPrefixSize)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	started := time.Now()
	nextPing := started.Add(s.cfg.PingInterval)
	if s.cfg.PingInterval < 0 {
		nextPing = time.Time{}
	}

	// control sends a small message with its header in one write.
	control := func(typ uint16, body []byte) error {
		serial++
		buf = append(appendHeader(buf[:0], mini, serial, typ, len(body)), body...)
		if _, err := conn.Write(buf); err != nil {
			return fmt.Errorf("send display message type %d: %w", typ, err)
		}
		win.sent()
		ss.c.messages.Add(1)
		ss.c.bytes.Add(uint64(len(buf)))
		p.sent(time.Now(), len(buf))
		return nil
	}

	gen := win.setAck()
	if err := control(msgSetAck, le.AppendUint32(le.AppendUint32(nil, gen), win.size)); err != nil {
		return err
	}
	create := make([]byte, 0, 20)
	for _, v := range []uint32{surfaceID, uint32(s.cfg.Width), uint32(s.cfg.Height), surfaceFmtXRGB, surfacePrimary} {
		create = le.AppendUint32(create, v)
	}
	if err := control(msgSurfaceCreate, create); err != nil {
		return err
	}
	if err := control(msgDisplayMark, nil); err != nil {
		return err
	}

	var pingID uint32
	for k := uint64(0); ; k++ {
		// Stop on a full window, as spice-server does, and account the
		// time.
		if win.full() {
			ss.c.ackWaits.Add(1)
			t0 := time.Now()
			for win.full() {
				select {
				case <-win.wake:
				case <-ctx.Done():
					ss.c.ackWaitNs.Add(int64(time.Since(t0)))
					return context.Cause(ctx)
				}
			}
			ss.c.ackWaitNs.Add(int64(time.Since(t0)))
		}
		if d := p.wait(time.Now()); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if !nextPing.IsZero() && !time.Now().Before(nextPing) {
			pingID++
			ping := le.AppendUint64(le.AppendUint32(nil, pingID), uint64(time.Since(started)))
			// Counted before it is written, so that pongs never exceed
			// pings in a snapshot taken while the PONG races the count.
			ss.c.pings.Add(1)
			if err := control(msgPing, ping); err != nil {
				return err
			}
			nextPing = nextPing.Add(s.cfg.PingInterval)
			k-- // the draw still goes next
			continue
		}
		serial++
		buf = s.draw.prefix(buf[:0], mini, serial, k)
		bufs := net.Buffers{buf, s.draw.pixels}
		n, err := bufs.WriteTo(conn)
		if err != nil {
			return fmt.Errorf("send draw %d: %w", k, err)
		}
		win.sent()
		ss.c.messages.Add(1)
		ss.c.draws.Add(1)
		ss.c.bytes.Add(uint64(n))
		p.sent(time.Now(), int(n))
	}
}
