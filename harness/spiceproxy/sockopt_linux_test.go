package spiceproxy

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func noDelay(t testing.TB, c *net.TCPConn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	var v int
	var gerr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
	}))
	require.NoError(t, gerr)
	return v != 0
}

// TestSocketOptions reads TCP_NODELAY back from the proxy's own sockets:
// only Nagle mode's client socket keeps Nagle's algorithm.
func TestSocketOptions(t *testing.T) {
	for _, mode := range testModes {
		t.Run(mode.String(), func(t *testing.T) {
			hold := make(chan struct{})
			srv := startFakeServer(t, func(c net.Conn) transcript { <-hold; return transcript{} })
			p, _ := startProxy(t, srv.addr(), mode)
			dialProxy(t, p)
			var c *conn
			waitFor(t, "the proxy to dial the server", func() bool {
				p.mu.Lock()
				defer p.mu.Unlock()
				for _, oc := range p.open {
					oc.mu.Lock()
					dialed := oc.server != nil
					oc.mu.Unlock()
					if dialed {
						c = oc
						return true
					}
				}
				return false
			})
			assert.Equal(t, mode.Kind != Nagle, noDelay(t, c.client), "client socket TCP_NODELAY")
			c.mu.Lock()
			server := c.server
			c.mu.Unlock()
			assert.True(t, noDelay(t, server), "server socket TCP_NODELAY")
			close(hold)
		})
	}
}
