package ryll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// VersionTimeout bounds Version: `ryll --version` only prints and exits,
// so anything slower is a broken binary, not a slow one.
const VersionTimeout = 10 * time.Second

// Version runs `binary --version` and returns its first line (for ryll,
// "ryll X.Y.Z (git-sha)"), for the results sidecar, so every result
// names the client build that produced it. The child gets the same
// explicit environment as a managed ryll, plus extraEnv (what the run
// gives every ryll).
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
	var out capBuffer
	cmd := exec.CommandContext(ctx, binary, "--version")
	cmd.Env = env
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second // a grandchild holding the pipe cannot hang us
	runErr := cmd.Run()
	text := strings.TrimSpace(ansiEscape.ReplaceAllString(out.String(), ""))
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w (%w)", runErr, ctx.Err())
		}
		return "", fmt.Errorf("run %s --version: %w: %s", binary, runErr, firstLine(text, "no output"))
	}
	if text == "" {
		return "", fmt.Errorf("run %s --version: printed nothing", binary)
	}
	return firstLine(text, ""), nil
}

// firstLine returns the first non-empty line of s, or def.
func firstLine(s, def string) string {
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); t != "" {
			return t
		}
	}
	return def
}

// capBuffer keeps the first 64 KiB written to it and drops the rest, so a
// binary that floods its output cannot eat our memory.
type capBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const capBufferMax = 64 << 10

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := capBufferMax - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *capBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
