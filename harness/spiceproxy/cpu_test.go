package spiceproxy

import (
	"bytes"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCPUModeCostsCPU: every message a cpu:DUR proxy forwards costs the
// process at least DUR of CPU time (here at least half of it in all, a
// margin no scheduler can cross: the cost is counted on the thread's
// own CPU clock, so a busy host makes it slower, never cheaper), and the
// messages still arrive unchanged, one write each.
func TestCPUModeCostsCPU(t *testing.T) {
	const (
		n    = 60
		cost = 3 * time.Millisecond
	)
	rng := rand.New(rand.NewPCG(21, 21))
	cl, sl := linkSteps(rng, linkSpec{clientCaps: allCaps, serverCaps: allCaps, mechanism: 1})
	_, stream := messages(rng, miniHeader, n, 500)
	srv := startFakeServer(t, func(c net.Conn) transcript {
		return talk(c, conversation{link: sl, stream: [][]byte{stream}})
	})
	p, _ := startProxy(t, srv.addr(), Mode{Kind: CPU, Delay: cost})
	cpu0 := processCPU(t)
	ctr := talk(dialProxy(t, p), conversation{link: cl})
	require.NoError(t, ctr.err)
	require.NoError(t, srv.transcripts(t, 1)[0].err)
	cs := endedConns(t, p, 1)[0]
	spent := processCPU(t) - cpu0
	assert.True(t, bytes.HasSuffix(ctr.got, stream), "the messages arrived unchanged")
	assert.Equal(t, int64(n), cs.Messages)
	assert.Equal(t, int64(n+3), cs.ClientWrites, "one write per message, after the link's three")
	assert.GreaterOrEqual(t, spent, n*cost/2, "the process spent at least half of %d x %s", n, cost)
	assert.Equal(t, int64(n), p.Totals().Messages)
}

// TestBurnSpendsThreadCPU: burn itself, against getrusage's count of
// the whole process.
func TestBurnSpendsThreadCPU(t *testing.T) {
	const d = 50 * time.Millisecond
	cpu0 := processCPU(t)
	for range 4 {
		burn(d)
	}
	assert.GreaterOrEqual(t, processCPU(t)-cpu0, 4*d/2)
}

func processCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
