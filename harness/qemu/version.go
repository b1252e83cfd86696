package qemu

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
)

// DefaultBinary is the QEMU looked up in PATH when Spec.Binary is empty.
// LATENCY_QEMU overrides it at the composition root.
const DefaultBinary = "qemu-system-x86_64"

// ErrNotFound is wrapped when the QEMU binary is not there, so the
// caller can fall back to the fake lane (errors.Is) and the user reads
// how to get the real one.
var ErrNotFound = errors.New("QEMU not found: apt-get install -y qemu-system-x86, or set LATENCY_QEMU")

// VersionTimeout bounds Version: `qemu-system-x86_64 --version` only
// prints and exits, so anything slower is a broken binary.
const VersionTimeout = 10 * time.Second

// versionPrefix starts the first line of every QEMU system emulator's
// --version output.
const versionPrefix = "QEMU emulator version "

// LookBinary resolves binary (DefaultBinary when empty) to a path. A
// missing binary wraps ErrNotFound.
func LookBinary(binary string) (string, error) {
	if binary == "" {
		binary = DefaultBinary
	}
	path, err := exec.LookPath(binary)
	if err != nil {
		return "", fmt.Errorf("%w (looked for %q: %w)", ErrNotFound, binary, err)
	}
	return path, nil
}

// Version runs `binary --version` and returns its first line ("QEMU
// emulator version 7.2.22 (Debian ...)"). It is the cheap check that QEMU
// is runnable before anything is provisioned for it, and it refuses a
// binary that answers but is not QEMU. binary "" means DefaultBinary.
func Version(ctx context.Context, binary string) (string, error) {
	path, err := LookBinary(binary)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, VersionTimeout)
	defer cancel()
	out, runErr := childproc.Run(ctx, childproc.Spec{Words: words},
		childproc.Command{Path: path, Args: []string{"--version"}, Env: childEnv()})
	first := childproc.FirstLine(out, "no output")
	if runErr != nil {
		return "", fmt.Errorf("run %s --version: %w: %s", path, runErr, first)
	}
	if !strings.HasPrefix(first, versionPrefix) {
		return "", fmt.Errorf("%s is not a QEMU system emulator: --version printed %q, not a line starting %q",
			path, first, versionPrefix)
	}
	return first, nil
}
