package childproc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// pipeHolders lists the processes, other than this one, that hold an end
// of the pipe r reads, by scanning /proc/*/fd (Linux; elsewhere, or when
// /proc is not readable, the list is empty). It names the descendants
// that keep a child's output open after the child exited, so a warning
// can say who they are instead of leaving a reader guessing whether the
// child is still running.
func pipeHolders(r *os.File) []int {
	fi, err := r.Stat()
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	want := fmt.Sprintf("pipe:[%d]", st.Ino)
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to look at
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && link == want {
				pids = append(pids, pid)
				break
			}
		}
	}
	slices.Sort(pids)
	return pids
}
