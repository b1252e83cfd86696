package spice

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeServer is an in-process SPICE server written from protocol.h,
// enums.h and spice.proto (not from this package's client): it links
// channels (mini or full header, with or without AUTH_SELECTION, a real
// RSA-OAEP ticket check), answers NEED_SECURED on its plain port when
// told to, serves TLS, and runs a scriptable conversation per channel.
type fakeServer struct {
	t     testing.TB
	opts  fakeOpts
	plain net.Listener
	tlsLn net.Listener

	mu    sync.Mutex
	links []linkSeen
	conns []net.Conn

	ready map[ChannelType]chan *fakeConn
	wg    sync.WaitGroup
}

type fakeOpts struct {
	password         string
	noMiniHeader     bool
	noAuthSelection  bool
	needSecuredPlain bool
	tlsCert          *tls.Certificate
	sessionID        uint32
	channels         []channelID // default: display 0, inputs 0
	// linkFault breaks the link: "silent" (read the link message, never
	// answer), "bad-magic", "huge-reply", "short-reply", "silent-result".
	linkFault string
	// mainList replaces the CHANNELS_LIST body.
	mainList []byte
	// handlers replace the default conversation after the link.
	handlers map[ChannelType]func(fc *fakeConn)
}

type linkSeen struct {
	channel    ChannelType
	id         uint8
	connID     uint32
	tls        bool
	clientCaps uint32
	authMech   int64 // -1: none sent
}

var (
	fakeKeyOnce sync.Once
	fakeKey     *rsa.PrivateKey
)

func fakeRSAKey(t testing.TB) *rsa.PrivateKey {
	fakeKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		fakeKey = k
	})
	return fakeKey
}

func newFakeServer(t testing.TB, o fakeOpts) *fakeServer {
	t.Helper()
	if o.sessionID == 0 {
		o.sessionID = 0x5eed
	}
	if o.channels == nil {
		o.channels = []channelID{{ChannelDisplay, 0}, {ChannelInputs, 0}}
	}
	f := &fakeServer{t: t, opts: o, ready: map[ChannelType]chan *fakeConn{}}
	for _, c := range []ChannelType{ChannelMain, ChannelDisplay, ChannelInputs} {
		f.ready[c] = make(chan *fakeConn, 8)
	}
	fakeRSAKey(t)
	var err error
	if f.plain, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	f.serve(f.plain, false)
	if o.tlsCert != nil {
		if f.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		f.serve(f.tlsLn, true)
	}
	t.Cleanup(f.close)
	return f
}

func (f *fakeServer) config() Config {
	c := Config{Host: "127.0.0.1", Port: f.plain.Addr().(*net.TCPAddr).Port}
	if f.tlsLn != nil {
		c.TLSPort = f.tlsLn.Addr().(*net.TCPAddr).Port
	}
	return c
}

func (f *fakeServer) close() {
	f.plain.Close()
	if f.tlsLn != nil {
		f.tlsLn.Close()
	}
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeServer) linksSeen() []linkSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]linkSeen(nil), f.links...)
}

// conn waits for the channel of type typ to finish its default opening.
func (f *fakeServer) conn(typ ChannelType) *fakeConn {
	f.t.Helper()
	select {
	case fc := <-f.ready[typ]:
		return fc
	case <-time.After(5 * time.Second):
		f.t.Fatalf("fake server: no %s channel within 5s", typ)
		return nil
	}
}

func (f *fakeServer) serve(l net.Listener, useTLS bool) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if useTLS {
				c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*f.opts.tlsCert}})
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				if err := f.session(c, useTLS); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
					f.t.Logf("fake server: %v", err)
				}
			}()
		}
	}()
}

// session links one channel and then runs its conversation.
func (f *fakeServer) session(c net.Conn, useTLS bool) error {
	var hdr [16]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("read link header: %w", err)
	}
	if binary.LittleEndian.Uint32(hdr[0:]) != 0x51444552 || binary.LittleEndian.Uint32(hdr[4:]) != 2 {
		return fmt.Errorf("bad link header % x", hdr)
	}
	size := binary.LittleEndian.Uint32(hdr[12:])
	if size < 18 || size > 4096 {
		return fmt.Errorf("link message size %d", size)
	}
	mess := make([]byte, size)
	if _, err := io.ReadFull(c, mess); err != nil {
		return err
	}
	seen := linkSeen{
		connID:   binary.LittleEndian.Uint32(mess[0:]),
		channel:  ChannelType(mess[4]),
		id:       mess[5],
		tls:      useTLS,
		authMech: -1,
	}
	ncommon := binary.LittleEndian.Uint32(mess[6:])
	capsOff := binary.LittleEndian.Uint32(mess[14:])
	if ncommon > 0 && int(capsOff)+4 <= len(mess) {
		seen.clientCaps = binary.LittleEndian.Uint32(mess[capsOff:])
	}
	record := func() {
		f.mu.Lock()
		f.links = append(f.links, seen)
		f.mu.Unlock()
	}

	serverCaps := uint32(1 << 1) // AUTH_SPICE
	if !f.opts.noAuthSelection {
		serverCaps |= 1 << 0
	}
	if !f.opts.noMiniHeader {
		serverCaps |= 1 << 3
	}
	pub, err := x509.MarshalPKIXPublicKey(&fakeKey.PublicKey)
	if err != nil || len(pub) != 162 {
		return fmt.Errorf("public key DER is %d bytes: %v", len(pub), err)
	}
	reply := func(code uint32, caps []uint32) []byte {
		body := binary.LittleEndian.AppendUint32(nil, code)
		body = append(body, pub...)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(caps)))
		body = binary.LittleEndian.AppendUint32(body, 0)
		body = binary.LittleEndian.AppendUint32(body, 178)
		for _, w := range caps {
			body = binary.LittleEndian.AppendUint32(body, w)
		}
		out := binary.LittleEndian.AppendUint32(nil, 0x51444552)
		out = binary.LittleEndian.AppendUint32(out, 2)
		out = binary.LittleEndian.AppendUint32(out, 2)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
		return append(out, body...)
	}
	if f.opts.needSecuredPlain && !useTLS {
		record()
		_, err := c.Write(reply(uint32(LinkErrNeedSecured), nil))
		return err
	}
	switch f.opts.linkFault {
	case "silent":
		record()
		io.Copy(io.Discard, c) // never answer
		return nil
	case "bad-magic":
		b := reply(0, []uint32{serverCaps})
		copy(b, "HTTP")
		c.Write(b)
		return nil
	case "huge-reply":
		b := reply(0, []uint32{serverCaps})
		binary.LittleEndian.PutUint32(b[12:], 1<<30)
		c.Write(b)
		return nil
	case "short-reply":
		b := reply(0, []uint32{serverCaps})
		binary.LittleEndian.PutUint32(b[12:], 100) // says 100, and 100 bytes follow: too short for a reply
		c.Write(b[:16+100])
		return nil
	}
	if _, err := c.Write(reply(0, []uint32{serverCaps})); err != nil {
		return err
	}
	clientHasAuthSel := seen.clientCaps&1 != 0
	if serverCaps&1 != 0 && clientHasAuthSel {
		var mech [4]byte
		if _, err := io.ReadFull(c, mech[:]); err != nil {
			return err
		}
		seen.authMech = int64(binary.LittleEndian.Uint32(mech[:]))
	}
	record()
	ticket := make([]byte, 128)
	if _, err := io.ReadFull(c, ticket); err != nil {
		return fmt.Errorf("read ticket: %w", err)
	}
	if f.opts.linkFault == "silent-result" {
		io.Copy(io.Discard, c)
		return nil
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, fakeKey, ticket, nil)
	result := uint32(0)
	if err != nil || len(plain) == 0 || plain[len(plain)-1] != 0 || string(plain[:len(plain)-1]) != f.opts.password {
		result = uint32(LinkErrPermissionDenied)
	}
	if _, err := c.Write(binary.LittleEndian.AppendUint32(nil, result)); err != nil || result != 0 {
		return err
	}
	mini := serverCaps&(1<<3) != 0 && seen.clientCaps&(1<<3) != 0
	fc := newFakeConn(f.t, c, mini, seen)
	if h := f.opts.handlers[seen.channel]; h != nil {
		h(fc)
		return nil
	}
	return f.defaultConversation(fc)
}

func (f *fakeServer) defaultConversation(fc *fakeConn) error {
	switch fc.link.channel {
	case ChannelMain:
		init := make([]byte, 32)
		binary.LittleEndian.PutUint32(init[0:], f.opts.sessionID)
		binary.LittleEndian.PutUint32(init[4:], 1) // display_channels_hint
		fc.send(msgMainInit, init)
		if _, err := fc.expect(msgcMainAttach); err != nil {
			return err
		}
		list := f.opts.mainList
		if list == nil {
			list = binary.LittleEndian.AppendUint32(nil, uint32(len(f.opts.channels)))
			for _, ch := range f.opts.channels {
				list = append(list, byte(ch.typ), ch.id)
			}
		}
		fc.send(msgMainChannelsList, list)
	case ChannelDisplay:
		if b, err := fc.expect(msgcDisplayInit); err != nil {
			return err
		} else if len(b) != 14 {
			return fmt.Errorf("DISPLAY_INIT of %d bytes, want 14", len(b))
		}
		fc.send(uint16(DisplaySurfaceCreate), surfaceCreateBody(0, 720, 400))
	}
	f.ready[fc.link.channel] <- fc
	<-fc.closed
	return nil
}

// fakeConn is one linked channel on the fake server's side.
type fakeConn struct {
	t      testing.TB
	conn   net.Conn
	mini   bool
	link   linkSeen
	serial uint64
	wmu    sync.Mutex
	in     chan clientMsg
	closed chan struct{}
}

type clientMsg struct {
	typ    uint16
	serial uint64
	body   []byte
}

func newFakeConn(t testing.TB, c net.Conn, mini bool, link linkSeen) *fakeConn {
	fc := &fakeConn{t: t, conn: c, mini: mini, link: link, in: make(chan clientMsg, 4096), closed: make(chan struct{})}
	go fc.readClient()
	return fc
}

func (fc *fakeConn) readClient() {
	defer close(fc.closed)
	r := bufio.NewReader(fc.conn)
	for {
		n := 6
		if !fc.mini {
			n = 18
		}
		hdr := make([]byte, n)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return
		}
		var m clientMsg
		var size uint32
		if fc.mini {
			m.typ, size = binary.LittleEndian.Uint16(hdr), binary.LittleEndian.Uint32(hdr[2:])
		} else {
			m.serial = binary.LittleEndian.Uint64(hdr)
			m.typ, size = binary.LittleEndian.Uint16(hdr[8:]), binary.LittleEndian.Uint32(hdr[10:])
		}
		if size > 1<<20 {
			return
		}
		m.body = make([]byte, size)
		if _, err := io.ReadFull(r, m.body); err != nil {
			return
		}
		select {
		case fc.in <- m:
		default:
			return
		}
	}
}

// send writes one server message (one Write).
func (fc *fakeConn) send(typ uint16, body []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.conn.Write(fc.frame(typ, uint32(len(body)), body))
}

// frame builds a server message whose header claims size.
func (fc *fakeConn) frame(typ uint16, size uint32, body []byte) []byte {
	var b []byte
	if fc.mini {
		b = binary.LittleEndian.AppendUint16(nil, typ)
		b = binary.LittleEndian.AppendUint32(b, size)
	} else {
		fc.serial++
		b = binary.LittleEndian.AppendUint64(nil, fc.serial)
		b = binary.LittleEndian.AppendUint16(b, typ)
		b = binary.LittleEndian.AppendUint32(b, size)
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return append(b, body...)
}

// raw writes bytes as they are.
func (fc *fakeConn) raw(b []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.conn.Write(b)
}

// expect returns the body of the next client message, which must be of
// type typ, within 5 s.
func (fc *fakeConn) expect(typ uint16) ([]byte, error) {
	m, err := fc.next(5 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s channel: want message %d: %w", fc.link.channel, typ, err)
	}
	if m.typ != typ {
		return nil, fmt.Errorf("%s channel: got message %d (% x), want %d", fc.link.channel, m.typ, m.body, typ)
	}
	return m.body, nil
}

func (fc *fakeConn) next(within time.Duration) (clientMsg, error) {
	select {
	case m := <-fc.in:
		return m, nil
	case <-fc.closed:
		select {
		case m := <-fc.in:
			return m, nil
		default:
		}
		return clientMsg{}, io.EOF
	case <-time.After(within):
		return clientMsg{}, errors.New("timed out")
	}
}

// quiet reports whether the client sends nothing for d.
func (fc *fakeConn) quiet(d time.Duration) (clientMsg, bool) {
	select {
	case m := <-fc.in:
		return m, false
	case <-time.After(d):
		return clientMsg{}, true
	}
}

func surfaceCreateBody(id, w, h uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, id)
	b = binary.LittleEndian.AppendUint32(b, w)
	b = binary.LittleEndian.AppendUint32(b, h)
	b = binary.LittleEndian.AppendUint32(b, 32)   // 32_xRGB
	return binary.LittleEndian.AppendUint32(b, 1) // PRIMARY
}

// displayBaseBody is SpiceMsgDisplayBase with no clip, then pad bytes
// standing in for the draw's own data.
func displayBaseBody(surface uint32, r Rect, pad int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, surface)
	for _, v := range []int32{r.Top, r.Left, r.Bottom, r.Right} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = append(b, 0) // clip type NONE
	return append(b, bytes.Repeat([]byte{0xAB}, pad)...)
}

func pingBody(id uint32, ts uint64, pad int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, id)
	b = binary.LittleEndian.AppendUint64(b, ts)
	return append(b, make([]byte, pad)...)
}
