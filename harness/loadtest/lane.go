package loadtest

import "github.com/shakenfist/kerbside-latency/harness/results"

// Lane says where a run's numbers come from, for the records: the
// summary, the sidecar, JUnit and the plot name it, so a simulated run is
// never read as a real one. The composition root fills it in (it is the
// one place that knows what stands in for ryll); the product only
// carries it.
type Lane struct {
	// Client is what spoke SPICE in ryll's place, as a person reads it:
	// "ryll", "fakeryll's SPICE client", "fakeryll's simulator".
	Client string
	// Simulated is true when no SPICE session existed: the numbers come
	// from a model of ryll, not from a console.
	Simulated bool
}

// Name is the lane in one word, as the records spell it.
func (l Lane) Name() string {
	if l.Simulated {
		return results.LaneSimulated
	}
	return results.LaneReal
}

// orDefault is l with its default: a run nobody wired runs ryll.
func (l Lane) orDefault() Lane {
	if l.Client == "" {
		l.Client = "ryll"
	}
	return l
}
