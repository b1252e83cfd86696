package loadgen

import (
	"testing"

	"go.uber.org/goleak"
)

// Every server, session and group goroutine must be gone when the tests
// end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
