package results

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/link"
)

func TestTheLinkOfEachLegInTheABTable(t *testing.T) {
	p, err := link.Parse("rtt=80ms")
	require.NoError(t, err)
	ab := AB{RunID: "r", A: ABLeg{Console: "qemu guest", Link: &link.Stats{Profile: link.Profile{Name: "lan"}, Connections: 4}},
		B: ABLeg{Console: "qemu guest of the A leg", Link: &link.Stats{Profile: p, Connections: 4,
			ToClient: link.DirStats{Bytes: 3 << 20, Reads: 900, QueueHighWater: 64 << 10, QueuedS: 1.5, QueueWaitMaxS: 0.25, BlockedS: 0.75}}}}
	var out bytes.Buffer
	require.NoError(t, WriteABTable(&out, ab))
	assert.Contains(t, out.String(), "link of A  lan (rtt=0s), 4 connections")
	assert.Contains(t, out.String(), "link of B  rtt=80ms, 4 connections")
	assert.Contains(t, out.String(), "to client 3.0 MiB in 900 reads (queue high-water 64.0 KiB, queued 1.500 s, longest wait 250.0 ms, pushed back 0.750 s)")
}

func TestTheLinkProfileInTheRunSummary(t *testing.T) {
	p := link.Profile{Name: "wan-80ms-1mbit", RTT: 80 * time.Millisecond, Rate: 1_000_000, Queue: 64 << 10}
	sc := Sidecar{RunID: "r-c0", Metric: "keypress_to_screen", Sanity: Sanity{Verdict: VerdictPass}, Link: &link.Stats{Profile: p}}
	rs, err := BuildRunSummary("r", []ConsoleRun{{Label: "c0", Sidecar: sc, Samples: []float64{0.1}}})
	require.NoError(t, err)
	require.Len(t, rs.Consoles, 1)
	assert.Equal(t, "wan-80ms-1mbit (rtt=80ms,rate=1mbit,queue=64KiB)", rs.Consoles[0].Link)
	var out bytes.Buffer
	require.NoError(t, WriteRunSummaryTable(&out, rs))
	assert.Contains(t, out.String(), "link c0 (run r-c0): wan-80ms-1mbit (rtt=80ms,rate=1mbit,queue=64KiB)")
}
