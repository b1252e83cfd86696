package ryll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
)

// VersionTimeout bounds Version: `ryll --version` only prints and exits,
// so anything slower is a broken binary, not a slow one.
const VersionTimeout = 10 * time.Second

// Version runs `binary --version` and returns its first line (for ryll,
// "ryll X.Y.Z (git-sha)"), for the results sidecar, so every result
// names the client build that produced it. The child gets the same
// explicit environment as a managed ryll, plus extraEnv (what the run
// gives every ryll), and the same supervision (childproc.Run).
func Version(ctx context.Context, binary string, extraEnv ...string) (string, error) {
	if binary == "" {
		return "", errors.New("ryll version: no binary given")
	}
	env, err := childEnv(os.LookupEnv, extraEnv)
	if err != nil {
		return "", fmt.Errorf("ryll version: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, VersionTimeout)
	defer cancel()
	out, runErr := childproc.Run(ctx, childproc.Spec{Words: childproc.Words{Name: "ryll"}},
		childproc.Command{Path: binary, Args: []string{"--version"}, Env: env})
	text := strings.TrimSpace(out)
	if runErr != nil {
		return "", fmt.Errorf("run %s --version: %w: %s", binary, runErr, childproc.FirstLine(text, "no output"))
	}
	if text == "" {
		return "", fmt.Errorf("run %s --version: printed nothing", binary)
	}
	return childproc.FirstLine(text, ""), nil
}
