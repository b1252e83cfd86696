package control

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine (the client's reader and
// event pump, or a fake server's) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
