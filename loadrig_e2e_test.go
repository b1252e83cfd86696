//go:build !loadtest

package latency

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/loadrig"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// TestE2ELoadtestBinaryIsALoadrigChild: the loadtest's own binary,
// re-executed with LATENCY_CHILD_ROLE, is the proxy process of the load
// rig (suite.Main hands it to loadrig.Child before anything of the
// loadtest runs) and forwards bytes on a route.
func TestE2ELoadtestBinaryIsALoadrigChild(t *testing.T) {
	t.Parallel()
	bin, _ := binaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.Copy(c, c)
	}()
	p, err := loadrig.StartProxy(ctx, loadrig.ProxyConfig{
		Mode:        spiceproxy.Mode{Kind: spiceproxy.NoDelay},
		ChildConfig: loadrig.ChildConfig{Exec: loadrig.Exec{Path: bin}},
	})
	require.NoError(t, err)
	via, err := p.Route(ctx, ln.Addr().(*net.TCPAddr).AddrPort())
	require.NoError(t, err)
	c, err := net.Dial("tcp", via.String())
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = c.Write([]byte("REDQ"))
	require.NoError(t, err)
	got := make([]byte, 4)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, "REDQ", string(got))
	c.Close()
	assert.NoError(t, p.Close(ctx))
	assert.False(t, running(p.Pid()), "the proxy process is gone")
}
