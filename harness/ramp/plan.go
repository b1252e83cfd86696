// Package ramp is the pure logic of a load ramp (LATENCY_LOAD): the
// order in which the measured console takes its blocks at each step of
// busy sessions, and the judgement of what the blocks measured: the
// knee, the first step whose repaint p95 lies, with significance, more
// than LATENCY_LOAD_MAX_ADDED above the baseline's (step 0), and the
// verdict. It does no I/O: harness/loadtest runs the blocks and hands
// the samples here.
//
// Login VSI reports a capacity the same way: the sessions at which the
// response passes the baseline by a stated margin, the baseline taken
// with no load. Here the margin must be proven (the lower end of a
// bootstrap interval of the p95 difference above it), so that noise
// never makes a knee, and a host that saturated before the proxy did is
// named instead of a knee of the proxy. A step at which the measured
// console cannot be measured at all (LoadFailure) is the proxy's limit
// too: the ramp climbs no further, and the knee is at or below it.
package ramp

import (
	"fmt"
	"slices"
)

// Block is one block of a ramp: the measured console takes Samples
// samples while Sessions busy sessions run.
type Block struct {
	// Index is the block's place in the plan (0-based); Round the round
	// of all steps it belongs to (0-based).
	Index, Round int
	// Step is the index of its step in the steps (0 is the baseline).
	Step     int
	Sessions int
	Samples  int
}

// Plan lays out a ramp: rounds rounds over every step, each round the
// reverse of the one before (0,8,16,32 then 32,16,8,0), so that drift
// in time, the host and the guest spreads over every step alike, as
// the A/B's alternating blocks do for two legs. Each step takes samples
// samples in all, split as evenly as whole samples allow over its
// rounds (earlier rounds take the remainder). steps must be strictly
// increasing and start at 0 (config.Load makes them so); rounds and
// samples at least 1.
func Plan(steps []int, rounds, samples int) ([]Block, error) {
	if len(steps) == 0 || steps[0] != 0 {
		return nil, fmt.Errorf("plan a ramp of steps %v: the first step must be 0 (the baseline)", steps)
	}
	for i := 1; i < len(steps); i++ {
		if steps[i] <= steps[i-1] {
			return nil, fmt.Errorf("plan a ramp of steps %v: steps must be strictly increasing", steps)
		}
	}
	if rounds < 1 || samples < 1 {
		return nil, fmt.Errorf("plan a ramp: %d rounds of %d samples; want at least 1 of each", rounds, samples)
	}
	// More rounds than samples would leave blocks of none.
	rounds = min(rounds, samples)
	var out []Block
	for r := range rounds {
		order := make([]int, len(steps))
		for i := range order {
			order[i] = i
		}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		n := samples / rounds
		if r < samples%rounds {
			n++
		}
		for _, s := range order {
			out = append(out, Block{Index: len(out), Round: r, Step: s, Sessions: steps[s], Samples: n})
		}
	}
	return out, nil
}
