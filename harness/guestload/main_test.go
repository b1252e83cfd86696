package guestload

import (
	"testing"

	"go.uber.org/goleak"
)

// Every viewer, proxy and supervisor goroutine must be gone when the
// tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
