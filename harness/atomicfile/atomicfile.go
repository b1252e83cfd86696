// Package atomicfile writes result files so that a reader (a person, CI,
// latency-compare) never sees half of one: the content goes to a
// temporary file in the same directory, is synced to disk, and is then
// renamed over the target. A run killed mid-write leaves the old file or
// none, never a torn one.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write renders the file's content into a temporary file beside path,
// syncs it, gives it mode perm and renames it into place. The directory
// is created when missing. On any error the temporary file is removed
// and path is left as it was.
func Write(path string, perm os.FileMode, render func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := render(tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}

// WriteBytes is Write for content already in memory.
func WriteBytes(path string, perm os.FileMode, b []byte) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
