//go:build loadtest

// The Kerbside console latency loadtest.
//
// This file is the door: the run itself is harness/suite (configuration,
// provisioning, ryll, measuring, results, cleanup), and the one decision
// about what stands in for the far side is fixtures/compose.Wire, the
// composition root. With LATENCY_PROVIDER=fake it stands the fake cloud
// and fakeryll's simulator in; for any real console without ryll
// installed, fakeryll's real SPICE client; otherwise the product meets
// the real thing.
//
// Run it with `make loadtest`, or `go test -tags loadtest -run TestLatency .`;
// configure it with LATENCY_* variables (docs/reference.md).
package latency

import (
	"os"
	"testing"

	"github.com/shakenfist/kerbside-latency/fixtures/compose"
	"github.com/shakenfist/kerbside-latency/harness/suite"
)

// TestMain provisions the console and starts ryll (suite.Main), runs
// TestLatency, and writes the results and cleans up whatever happened.
func TestMain(m *testing.M) {
	os.Exit(suite.Main(m, compose.Wire, compose.CheckKnobs))
}

// TestLatency measures the consoles and judges them in subtests.
func TestLatency(t *testing.T) {
	suite.TestLatency(t)
}
