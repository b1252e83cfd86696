// Package tmpdir makes private temporary directories that name the
// process owning them, so that a later run can remove the ones whose
// owner died: SIGKILL (a CI job's last word) leaves no chance to clean
// up, and without an owner nobody can tell litter from a directory in use.
//
// A directory is os.TempDir()/<prefix><random>, mode 0700, holding a file
// OwnerFile with the owner's pid. Make sweeps the prefix's stale
// directories before it creates a new one.
package tmpdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/shakenfist/kerbside-latency/harness/procstat"
)

// OwnerFile, inside a directory, holds the pid of the process that made
// it.
const OwnerFile = "owner"

// Make sweeps stale prefix* directories in os.TempDir (Sweep), then
// creates a new one owned by this process and returns its path. The
// caller removes it (os.RemoveAll) when done.
func Make(prefix string) (string, error) {
	Sweep(os.TempDir(), prefix)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", fmt.Errorf("create a temporary directory: %w", err)
	}
	// MkdirTemp already uses 0700; say so explicitly, since what such a
	// directory holds (a control socket, a password file) relies on it.
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("restrict temporary directory %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, OwnerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("mark temporary directory %s with its owner: %w", dir, err)
	}
	return dir, nil
}

// Sweep removes the directories in tmp whose name starts with prefix and
// whose owner no longer runs (gone). A directory without a readable owner file
// (someone else's, or one being made right now), one owned by this
// process, and one whose owner may run (including a process of another
// user) are left alone. Errors are ignored: sweeping is a courtesy.
func Sweep(tmp, prefix string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, OwnerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if gone(pid) {
			_ = os.RemoveAll(dir)
		}
	}
}

// gone reports whether pid no longer runs: no such process, or a zombie
// (dead, its exit status not yet collected). A SIGKILLed run whose parent
// died too stays a zombie until init reaps it, which may be late, and it
// will never clean up after itself.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	u, err := procstat.Read(pid)
	return errors.Is(err, procstat.ErrNoProcess) || (err == nil && u.State == "Z")
}
