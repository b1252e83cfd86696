// Package benchfail holds a benchmark for the Makefile's own test
// (makefile_test.go): it fails on the repetition BENCHFAIL_ON names, so
// that `make bench` can be shown to fail however go test reports it.
package benchfail

import (
	"os"
	"strconv"
	"testing"
)

var calls int

func BenchmarkFailOn(b *testing.B) {
	calls++
	for b.Loop() {
	}
	if n, err := strconv.Atoi(os.Getenv("BENCHFAIL_ON")); err == nil && calls == n {
		b.Fatalf("failing on repetition %d, as BENCHFAIL_ON says", calls)
	}
}
