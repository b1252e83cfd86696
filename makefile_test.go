//go:build !loadtest

package latency

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMakeBenchFailsWhenABenchmarkFails runs `make bench` on
// testdata/benchfail: a failure on the first repetition, and on a later
// one (which go test itself reports as PASS, exit 0), must fail make.
func TestMakeBenchFailsWhenABenchmarkFails(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not on PATH: apt-get install -y make")
	}
	for _, tc := range []struct {
		name   string
		failOn string
		fails  bool
	}{
		{"passes", "", false},
		{"first repetition fails", "1", true},
		{"second repetition fails", "2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, makeBin, "-s", "bench", "BENCHPKGS=./testdata/benchfail",
				"BENCHTIME=1x", "BENCHCOUNT=2", "RESULTS_DIR="+results)
			cmd.Env = append(os.Environ(), "BENCHFAIL_ON="+tc.failOn, "MAKEFLAGS=")
			out, err := cmd.CombinedOutput()
			t.Logf("make bench:\n%s", out)
			var exit *exec.ExitError
			if tc.fails {
				require.ErrorAs(t, err, &exit, "make bench must fail")
				assert.Contains(t, string(out), "a benchmark failed")
			} else {
				require.NoError(t, err)
			}
			b, err := os.ReadFile(filepath.Join(results, "go-bench.txt"))
			require.NoError(t, err, "the output is kept for benchstat")
			assert.Contains(t, string(b), "BenchmarkFailOn")
			_, err = os.Stat(filepath.Join(results, "go-bench.status"))
			assert.True(t, errors.Is(err, os.ErrNotExist), "no status file is left")
		})
	}
}
