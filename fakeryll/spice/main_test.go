package spice

import (
	"testing"

	"go.uber.org/goleak"
)

// Every session's readers and closer, and the fake server's goroutines,
// must be gone when the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
