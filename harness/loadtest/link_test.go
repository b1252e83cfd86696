package loadtest

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/console"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// TestLinkStatsLandInTheSidecar: what the console's link did is in the
// sidecar (profile and both directions), read back from the file, and a
// line of the summary.
func TestLinkStatsLandInTheSidecar(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(c, c)
		_ = c.Close()
	})
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })

	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cfg, err := config.Load([]string{"LATENCY_PROVIDER=direct", "LATENCY_CONSOLE=127.0.0.1:" + port,
		"LATENCY_LINK=wan-80ms-10mbit,jitter=2ms", "LATENCY_RESULTS_DIR=" + t.TempDir()})
	require.NoError(t, err)
	con, err := console.Open(t.Context(), cfg, console.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = con.Close(t.Context()) })

	_, _, d := con.RyllSource()
	c, err := net.DialTimeout("tcp", d.HostPort(), 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	msg := bytes.Repeat([]byte("spice"), 1000)
	_, err = c.Write(msg)
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, len(msg)))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, con.Close(t.Context()))

	r := &Session{Cfg: cfg, Console: con, Start: time.Now(), Lane: Lane{Client: "ryll"}}
	s := r.Sidecar(nil, time.Now())
	require.NotNil(t, s.Link, "the link's figures are in the sidecar")
	assert.Equal(t, int64(len(msg)), s.Link.ToServer.Bytes)
	assert.Equal(t, int64(len(msg)), s.Link.ToClient.Bytes)
	assert.Equal(t, 1, s.Link.Connections)

	path := filepath.Join(cfg.ResultsDir, results.SidecarName(cfg.RunID))
	require.NoError(t, results.WriteSidecar(path, s))
	back, err := results.ReadSidecar(path)
	require.NoError(t, err)
	require.NotNil(t, back.Link)
	assert.Equal(t, *cfg.Link, back.Link.Profile, "the profile reads back as it was given")
	assert.Equal(t, s.Link.ToClient, back.Link.ToClient)

	var table bytes.Buffer
	require.NoError(t, results.WriteSummary(&table, s))
	assert.Contains(t, table.String(), "link ")
	assert.Contains(t, table.String(), "rtt=80ms,jitter=2ms,rate=10mbit")
	assert.Contains(t, table.String(), "through the link rtt=80ms", "the lane row names the link")
	assert.Contains(t, table.String(), "to client 4.9 KiB")
}
