package tcpserve

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListen(t *testing.T) {
	ln, target, err := Listen(t.Context(), net.ListenConfig{}, "relay", "", "[::1]:5900")
	require.NoError(t, err)
	defer ln.Close()
	assert.Equal(t, "[::1]:5900", target, "the target as host:port to dial")
	addr, ok := ln.Addr().(*net.TCPAddr)
	require.True(t, ok)
	assert.True(t, addr.IP.IsLoopback(), "empty listen means DefaultListen: %s", addr)
	assert.NotZero(t, addr.Port, "a free port was chosen")
}

func TestListenRefuses(t *testing.T) {
	for _, tc := range []struct{ name, listen, target, want string }{
		{"no target", "", "", "no target: want the server's host:port"},
		{"bad target", "", "nohost", "target: "},
		{"tls port", "", "127.0.0.1:5900:5901", `target "127.0.0.1:5900:5901" names a TLS port too: a relay forwards one port, so start one per port`},
		{"bad listen", "127.0.0.1:http-x", "127.0.0.1:5900", "listen on 127.0.0.1:http-x: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, _, err := Listen(t.Context(), net.ListenConfig{}, "relay", tc.listen, tc.target)
			require.Error(t, err)
			assert.Nil(t, ln)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
