package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// errNotASocket is wrapped when something other than a socket is at the
// control socket path: like ryll, the simulator never deletes it.
var errNotASocket = errors.New("exists and is not a socket")

// listenUnix binds the control socket: remove a stale socket at path (and
// nothing else), bind, set mode 0600, and only then listen, so no other
// user can ever connect. It returns the file's identity so that shutdown
// removes only the socket it created.
func listenUnix(path string) (net.Listener, os.FileInfo, error) {
	if path == "" {
		return nil, nil, errors.New("listen on control socket: empty path")
	}
	// Stat, not Lstat: ryll asks whether the path exists and is a socket
	// after following symlinks.
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, nil, fmt.Errorf("control socket path %s %w (%s)", path, errNotASocket, fi.Mode().Type())
		}
		if err := syscall.Unlink(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("stat control socket path %s: %w", path, err)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create control socket: %w", err)
	}
	syscall.CloseOnExec(fd)
	fail := func(step string, err error) (net.Listener, os.FileInfo, error) {
		_ = syscall.Close(fd)
		return nil, nil, fmt.Errorf("%s control socket %s: %w", step, path, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return fail("bind", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = os.Remove(path)
		return fail("chmod", err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		_ = os.Remove(path)
		return fail("stat", err)
	}
	if err := syscall.Listen(fd, 16); err != nil {
		_ = os.Remove(path)
		return fail("listen on", err)
	}
	f := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(f)
	_ = f.Close() // FileListener holds its own duplicate
	if err != nil {
		_ = os.Remove(path)
		return nil, nil, fmt.Errorf("wrap control socket %s: %w", path, err)
	}
	return ln, info, nil
}

// unlinkIfOurs removes path if it is still the socket we bound.
func unlinkIfOurs(path string, ours os.FileInfo) error {
	if ours == nil {
		return nil // not a file of ours (an in-memory listener in tests)
	}
	cur, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("stat control socket %s: %w", path, err)
	}
	if !os.SameFile(cur, ours) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unlink control socket %s: %w", path, err)
	}
	return nil
}
