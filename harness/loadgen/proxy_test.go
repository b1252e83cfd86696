package loadgen

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// Synthetic sessions are meant to go through the proxy under test: each
// of spiceproxy's modes must carry them, ACKs included, and nagle mode
// must be able to follow their link and cut their messages.
func TestSessionsThroughEveryProxyMode(t *testing.T) {
	const window = 5
	srv := startServer(t, ServerConfig{Password: testPassword, AckWindow: window, DrawSize: 800, BitsPerSecond: 2_000_000})
	for _, mode := range []spiceproxy.Mode{
		{Kind: spiceproxy.NoDelay},
		{Kind: spiceproxy.Nagle},
		{Kind: spiceproxy.Delay, Delay: 10 * time.Millisecond},
	} {
		t.Run(mode.String(), func(t *testing.T) {
			p, err := spiceproxy.Start(t.Context(), spiceproxy.Config{Target: srv.Addr().String(), Mode: mode})
			require.NoError(t, err)
			defer func() { assert.NoError(t, p.Close()) }()
			g, err := Start(t.Context(), ClientConfig{Addr: p.Addr().String(), Password: testPassword}, 3, 0)
			require.NoError(t, err)
			waitFor(t, 20*time.Second, "every session read 10 windows", func() bool {
				for _, s := range g.Stats().PerSession {
					if s.Draws < 10*window {
						return false
					}
				}
				return true
			})
			st := g.Stop()
			assert.Zero(t, st.Failed)
			if mode.Kind == spiceproxy.Nagle {
				require.NotEmpty(t, p.Conns())
				for _, c := range p.Conns() {
					assert.Equal(t, "mini header", c.Framing, "the proxy followed the link of connection %d", c.ID)
				}
			}
		})
	}
}
