package loadgen

import (
	"encoding/binary"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawDisplay is a hand-driven display channel: the test decides when to
// ACK.
type rawDisplay struct {
	main, conn net.Conn
	rd         *msgReader
	mini       bool
	serial     uint64
	generation uint32
	window     uint32
}

// linkRaw links a session by hand and reads the display's SET_ACK.
func linkRaw(t *testing.T, srv *Server) *rawDisplay {
	t.Helper()
	dial := func(sid uint32, ch uint8) (net.Conn, bool) {
		c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		mini, err := dialLink(c, sid, ch, 0, testPassword.Reveal(), true)
		require.NoError(t, err)
		return c, mini
	}
	main, mini := dial(0, chanMain)
	rd := newMsgReader(main, mini, 4096)
	typ, size, err := rd.header()
	require.NoError(t, err)
	require.Equal(t, uint16(msgMainInit), typ)
	body, err := rd.body(typ, size, 64)
	require.NoError(t, err)
	sid := binary.LittleEndian.Uint32(body)
	_, err = main.Write(appendHeader(nil, mini, 1, msgcMainAttach, 0))
	require.NoError(t, err)
	typ, size, err = rd.header()
	require.NoError(t, err)
	require.Equal(t, uint16(msgMainChannels), typ)
	require.NoError(t, rd.skip(typ, size))

	conn, dmini := dial(sid, chanDisplay)
	d := &rawDisplay{main: main, conn: conn, rd: newMsgReader(conn, dmini, 64<<10), mini: dmini}
	typ, size, err = d.rd.header()
	require.NoError(t, err)
	require.Equal(t, uint16(msgSetAck), typ, "the display channel starts with SET_ACK")
	body, err = d.rd.body(typ, size, 8)
	require.NoError(t, err)
	d.generation, d.window = binary.LittleEndian.Uint32(body), binary.LittleEndian.Uint32(body[4:])
	return d
}

func (d *rawDisplay) send(t *testing.T, typ uint16, body []byte) {
	t.Helper()
	d.serial++
	_, err := d.conn.Write(append(appendHeader(nil, d.mini, d.serial, typ, len(body)), body...))
	require.NoError(t, err)
}

// read reads exactly n messages, however late the network delivers
// them.
func (d *rawDisplay) read(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, d.conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	for i := range n {
		typ, size, err := d.rd.header()
		require.NoError(t, err, "message %d of %d", i+1, n)
		require.NoError(t, d.rd.skip(typ, size))
	}
}

// quiet checks that no further message comes for a while. It can only
// miss a message that comes later (a false pass), never fail wrongly;
// the server's own count is the exact check.
func (d *rawDisplay) quiet(t *testing.T) {
	t.Helper()
	require.NoError(t, d.conn.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, _, err := d.rd.header()
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "a message came past the window")
	require.NoError(t, d.conn.SetReadDeadline(time.Now().Add(20*time.Second)))
}

func TestServerStopsAtTheAckWindowAndResumesOnAck(t *testing.T) {
	const window = 5
	srv := startServer(t, ServerConfig{Password: testPassword, AckWindow: window, DrawSize: 300})
	d := linkRaw(t, srv)
	require.Equal(t, uint32(window), d.window)
	d.send(t, msgcAckSync, binary.LittleEndian.AppendUint32(nil, d.generation))
	ss := onlySession(t, srv)

	waitFor(t, 10*time.Second, "the server stops on the window", func() bool { return ss.c.ackWaits.Load() == 1 && ss.win.isBlocked() })
	assert.Equal(t, uint64(1+2*window), ss.c.messages.Load(),
		"SET_ACK and then exactly 2*window messages (spice-server: SET_ACK counts, it stops above 2*window)")
	d.read(t, 2*window)
	d.quiet(t)

	d.send(t, msgcAck, nil)
	waitFor(t, 10*time.Second, "the server stops again after the ACK", func() bool { return ss.c.ackWaits.Load() == 2 && ss.win.isBlocked() })
	assert.Equal(t, uint64(1+3*window), ss.c.messages.Load(), "one ACK frees window messages")
	d.read(t, window)
	d.quiet(t)
	assert.Equal(t, uint64(1), ss.c.acks.Load())
	assert.Greater(t, ss.c.ackWaitNs.Load(), int64(0), "the time stopped is accounted")
}

func TestServerIgnoresAcksBeforeAckSync(t *testing.T) {
	const window = 4
	srv := startServer(t, ServerConfig{Password: testPassword, AckWindow: window, DrawSize: 300})
	d := linkRaw(t, srv)
	ss := onlySession(t, srv)
	waitFor(t, 10*time.Second, "the server stops on the window", func() bool { return ss.win.isBlocked() })
	require.Equal(t, uint64(1+2*window), ss.c.messages.Load())
	d.read(t, 2*window)

	// ACKs with no ACK_SYNC naming the generation do not count, as in
	// spice-server. The PONG after them says when the server read them.
	for range 3 {
		d.send(t, msgcAck, nil)
	}
	d.send(t, msgcPong, make([]byte, 12))
	waitFor(t, 10*time.Second, "the server read the ACKs and the PONG", func() bool { return ss.c.pongs.Load() == 1 })
	assert.Zero(t, ss.c.acks.Load())
	assert.True(t, ss.win.isBlocked())
	assert.Equal(t, uint64(1+2*window), ss.c.messages.Load(), "nothing more was sent")
	d.quiet(t)

	// ACK_SYNC with a stale generation does not count either.
	d.send(t, msgcAckSync, binary.LittleEndian.AppendUint32(nil, d.generation+7))
	d.send(t, msgcAck, nil)
	d.send(t, msgcPong, make([]byte, 12))
	waitFor(t, 10*time.Second, "the server read the second PONG", func() bool { return ss.c.pongs.Load() == 2 })
	assert.Zero(t, ss.c.acks.Load())
	assert.Equal(t, uint64(1+2*window), ss.c.messages.Load(), "nothing more was sent")
	d.quiet(t)
}
