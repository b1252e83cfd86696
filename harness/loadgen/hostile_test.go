package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// byteConn is a connection whose peer sends fixed bytes and swallows
// everything written: enough for the readers, which use nothing else.
type byteConn struct {
	net.Conn // nil: any other method would panic, and none is called
	r        io.Reader
}

func (c *byteConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *byteConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *byteConn) SetDeadline(time.Time) error      { return nil }
func (c *byteConn) SetReadDeadline(time.Time) error  { return nil }
func (c *byteConn) SetWriteDeadline(time.Time) error { return nil }
func (c *byteConn) Close() error                     { return nil }
func (c *byteConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func newByteConn(b []byte) *byteConn                 { return &byteConn{r: bytes.NewReader(b)} }
func (c *byteConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }

// linkMessage is a well-formed client SpiceLinkHeader and SpiceLinkMess.
func linkMessage(connID uint32, channel uint8, caps uint32) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, spiceMagic)
	b = le.AppendUint32(b, versionMajor)
	b = le.AppendUint32(b, versionMinor)
	b = le.AppendUint32(b, linkMessSize+4)
	b = le.AppendUint32(b, connID)
	b = append(b, channel, 0)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, linkMessSize)
	return le.AppendUint32(b, caps)
}

var testKey = sync.OnceValue(func() serverKey {
	k, err := newServerKey()
	if err != nil {
		panic(err)
	}
	return k
})

func FuzzAcceptLink(f *testing.F) {
	good := linkMessage(0, chanMain, 1<<capAuthSelection|1<<capAuthSpice|1<<capMiniHeader)
	f.Add(good)
	f.Add(append(good, binary.LittleEndian.AppendUint32(nil, authSpice)...))
	f.Add(append(append(good, 1, 0, 0, 0), make([]byte, ticketSize)...))
	f.Add(good[:10])
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	huge := bytes.Clone(good)
	binary.LittleEndian.PutUint32(huge[12:], 1<<31)
	f.Add(huge)
	caps := bytes.Clone(good)
	binary.LittleEndian.PutUint32(caps[22:], 1<<30) // num_common_caps
	f.Add(caps)
	off := bytes.Clone(good)
	binary.LittleEndian.PutUint32(off[30:], 0xfffffff0) // caps_offset
	f.Add(off)
	f.Fuzz(func(t *testing.T, in []byte) {
		ok := func(linkMess) uint32 { return linkOK }
		_, _, err := acceptLink(newByteConn(in), testKey(), "pw", ok, ok)
		// No input can pass: the ticket must decrypt to the password.
		require.Error(t, err)
	})
}

func FuzzClientChannel(f *testing.F) {
	le := binary.LittleEndian
	msg := func(typ uint16, body []byte) []byte {
		return append(appendHeader(nil, true, 0, typ, len(body)), body...)
	}
	setAck := msg(msgSetAck, le.AppendUint32(le.AppendUint32(nil, 1), 2))
	f.Add(append(setAck, msg(msgDisplayCopy, make([]byte, 200))...))
	f.Add(msg(msgSetAck, []byte{1, 2, 3}))                 // too short
	f.Add(msg(msgPing, make([]byte, 5)))                   // too short
	f.Add(append(msg(msgPing, make([]byte, 12)), 1, 2, 3)) // cut header
	f.Add(le.AppendUint32([]byte{0x34, 0x01}, 1<<31))      // huge draw
	f.Add(msg(msgMainChannels, le.AppendUint32(nil, 1<<30)))
	f.Add(append(msg(msgMainInit, make([]byte, 32)), msg(msgMainChannels, []byte{1, 0, 0, 0, 2, 0})...))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, display := range []bool{true, false} {
			cl := &Client{done: make(chan struct{})}
			r := cl.newChanReader(newByteConn(in), true, display, 4096)
			var err error
			// Every message read takes at least a header's bytes, so the
			// finite input must end in an error within len(in)+1 reads.
			for i := 0; err == nil && i <= len(in); i++ {
				_, _, err = r.next()
			}
			require.Error(t, err, "the bytes are finite: the channel must end in an error")
			_, _ = cl.newChanReader(newByteConn(in), true, false, 4096).handshakeMain()
		}
	})
}

func FuzzServerDisplayChannel(f *testing.F) {
	le := binary.LittleEndian
	msg := func(typ uint16, body []byte) []byte {
		return append(appendHeader(nil, true, 0, typ, len(body)), body...)
	}
	f.Add(append(msg(msgcAckSync, le.AppendUint32(nil, 1)), msg(msgcAck, nil)...))
	f.Add(msg(msgcAckSync, []byte{1}))
	f.Add(msg(msgcAck, nil))
	f.Add(msg(msgcPong, make([]byte, 12)))
	f.Add(msg(999, nil))
	f.Add(le.AppendUint32([]byte{101, 0}, 1<<31))
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := &Server{}
		ss := &srvSession{}
		win := newWindow(3)
		win.setAck()
		err := srv.readDisplay(ss, win, newByteConn(in), true)
		require.Error(t, err, "the bytes are finite: the channel must end in an error")
	})
}

func TestServerSurvivesGarbageAndServesOn(t *testing.T) {
	srv := startServer(t, ServerConfig{Password: testPassword, LinkTimeout: 2 * time.Second})
	send := func(b []byte) {
		c, err := net.Dial("tcp", srv.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		_, _ = c.Write(b)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, _ = io.Copy(io.Discard, c) // until the server closes
	}
	good := linkMessage(0, chanMain, 1<<capAuthSelection|1<<capAuthSpice|1<<capMiniHeader)
	send([]byte("GET / HTTP/1.1\r\n\r\n"))            // not SPICE
	send(good[:7])                                    // a short read, then silence until the link timeout
	send(linkMessage(0, 7, 0))                        // no such channel
	send(append(bytes.Clone(good), 2, 0, 0, 0))       // SASL
	send(append(append(good, 1, 0, 0, 0), 0xff, 0x1)) // a ticket cut short
	waitFor(t, 10*time.Second, "the server counted every refused link", func() bool { return srv.Stats().LinkFailures == 5 })

	// A linked client that then sends garbage on its display channel ends
	// its own session with a protocol error, which Stats names.
	d := linkRaw(t, srv)
	d.send(t, 999, []byte("garbage"))
	ss := onlySession(t, srv)
	waitFor(t, 10*time.Second, "the garbage ended the session", func() bool { return ss.c.snapshot(time.Now()).Error != "" })
	assert.Contains(t, ss.c.snapshot(time.Now()).Error, ErrProtocol.Error())

	// And the server serves on.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, ClientConfig{Addr: srv.Addr().String(), Password: testPassword})
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "a draw after the garbage", func() bool { return cl.Stats().Draws > 0 })
	require.NoError(t, cl.Close())
}

func TestClientSurvivesAHostileServer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
	}{
		{"not SPICE", []byte("SSH-2.0-OpenSSH_9.2\r\n")},
		{"closes at once", nil},
		{"a reply that claims 2 GiB", binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, spiceMagic), 2), 2), 1<<31)},
		{"a reply cut short", append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, spiceMagic), 2), 2), linkReplySize), 0, 0, 0, 0, 1, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				_, _ = c.Write(tc.reply)
			})
			_, err = Dial(t.Context(), ClientConfig{Addr: ln.Addr().String(), LinkTimeout: 5 * time.Second})
			require.Error(t, err)
			assert.False(t, errors.Is(err, context.DeadlineExceeded), "a hostile reply is an error at once, not a timeout: %v", err)
		})
	}
}

func TestServerConfigRefusesNonsense(t *testing.T) {
	for _, cfg := range []ServerConfig{
		{BitsPerSecond: -1},
		{Width: 100, Height: 100, DrawSize: 100*100*4 + 1},
		{DrawSize: 2},
		{Width: 100000, Height: 10},
	} {
		_, err := Listen(t.Context(), "127.0.0.1:0", cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}

func TestServerCloseEndsALinkInProgress(t *testing.T) {
	srv, err := Listen(t.Context(), "127.0.0.1:0", ServerConfig{LinkTimeout: time.Minute})
	require.NoError(t, err)
	c, err := net.Dial("tcp", srv.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(linkMessage(0, chanMain, 0)[:7]) // and then nothing
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the server took the connection", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.conns) == 1
	})
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second): // far below the minute's link timeout
		t.Fatal("Close waited for a stalled link")
	}
}

func TestDrawSizeRoundsUpToWholeRows(t *testing.T) {
	for _, tc := range []struct{ size, width, want int }{
		{4096, 1024, drawPrefixSize + 1001*4}, // under one row: 1001 pixels
		{100_000, 1024, drawPrefixSize + 25*1024*4},
		{4, 640, drawPrefixSize + 4}, // at least one pixel
	} {
		d := newDrawTemplate(tc.size, tc.width, 768)
		assert.Equal(t, tc.want, drawPrefixSize+len(d.pixels), "DrawSize %d", tc.size)
		assert.GreaterOrEqual(t, drawPrefixSize+len(d.pixels), min(tc.size, drawPrefixSize+4))
	}
}
