package childproc

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// maxRunOutput bounds what Run keeps of a command's output, so a binary
// that floods it cannot eat our memory (the rest is still drained).
const maxRunOutput = 64 << 10

// Run runs a short command (a `--version`) to its end under the same
// supervision as any child, and returns the start of its output (stdout
// and stderr, at most 64 KiB). When ctx ends first, the command's whole
// process group is killed and the error wraps ctx's cause. A non-zero
// exit is an error "exit status N" (or "killed by SIGNAL"), returned with
// the output.
func Run(ctx context.Context, spec Spec, cmd Command) (string, error) {
	var out headSink
	cmd.Output = &out
	spec.Ladder.Rungs = nil // a short command gets no gentle rungs
	c := New(spec)
	if err := c.Start(ctx, cmd); err != nil {
		return "", err
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
	// Stop even after a normal exit: it also ends anything the command
	// left running in its group. Run's ladder has no gentle rungs, so a
	// command still running gets SIGKILL at once.
	stopErr := c.Stop(context.WithoutCancel(ctx))
	text := out.String()
	ee := c.ExitError()
	switch {
	case ee == nil: // still running after SIGKILL: stopErr says so
		return text, fmt.Errorf("run %s: %w", spec.Name, stopErr)
	case ee.Signal == "" && ee.Status == 0:
		return text, stopErr
	}
	var err error
	if ee.Signal != "" {
		err = fmt.Errorf("killed by %s", ee.Signal)
	} else {
		err = fmt.Errorf("exit status %d", ee.Status)
	}
	if ee.Phase == PhaseStopping && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	return text, err
}

// headSink keeps the first maxRunOutput bytes of the lines it is given.
type headSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (h *headSink) Line(text string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := maxRunOutput - h.b.Len(); room > 0 {
		line := text + "\n"
		h.b.WriteString(line[:min(room, len(line))])
	}
	return text
}

func (h *headSink) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.b.String()
}

// FirstLine returns the first non-empty line of s, trimmed, or def: what
// a `--version` run is usually asked for.
func FirstLine(s, def string) string {
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); t != "" {
			return t
		}
	}
	return def
}
