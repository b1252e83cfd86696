// Package qemutest boots a QEMU guest for a test: skipped, saying what to
// install, where QEMU is not; stopped when the test ends. Only tests
// import it. Every test of the real lane booted its guest with its own
// copy of these lines.
package qemutest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/qemu"
)

// bootBound bounds a boot; stopBound the stop at the end of the test. A
// TCG guest boots in about a second on a quiet host, and in several
// beside a second make test.
const (
	bootBound = time.Minute
	stopBound = 30 * time.Second
)

// Boot starts QEMU with spec (its log in the test's temporary directory
// unless spec names one) and stops it when the test ends, failing the
// test if the stop fails. Without qemu-system-x86_64 the test is skipped
// with the package that provides it; what is tested (what) leads the
// message.
func Boot(tb testing.TB, what string, spec qemu.Spec) *qemu.VM {
	tb.Helper()
	if _, err := qemu.LookBinary(spec.Binary); err != nil {
		if errors.Is(err, qemu.ErrNotFound) {
			tb.Skipf("%s: %v", what, err)
		}
		tb.Fatal(err)
	}
	if spec.LogPath == "" {
		spec.LogPath = filepath.Join(tb.TempDir(), "qemu.log")
	}
	ctx, cancel := context.WithTimeout(tb.Context(), bootBound)
	defer cancel()
	vm, err := qemu.Start(ctx, spec)
	require.NoError(tb, err, "%s: boot the guest", what)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopBound)
		defer cancel()
		assert.NoError(tb, vm.Stop(ctx), "%s: stop the guest", what)
	})
	return vm
}
