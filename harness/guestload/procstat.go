package guestload

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A small local reader of a process's CPU time and resident memory: the
// shared one (harness/procstat) was not on main when this was written;
// harness/host keeps its own reader unexported.

// procRoot is where the kernel shows its processes.
const procRoot = "/proc"

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every architecture Linux ships (reading it would need cgo).
const clockTicks = 100

// readProc returns pid's CPU time (user + system) and resident memory.
func readProc(pid int) (cpu time.Duration, rss int64, err error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("read the CPU time of pid %d: %w", pid, err)
	}
	if cpu, err = parseStatCPU(string(b)); err != nil {
		return 0, 0, fmt.Errorf("read the CPU time of pid %d: %w", pid, err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return 0, 0, fmt.Errorf("read the memory of pid %d: %w", pid, err)
	}
	if rss, err = parseStatusRSS(string(b)); err != nil {
		return 0, 0, fmt.Errorf("read the memory of pid %d: %w", pid, err)
	}
	return cpu, rss, nil
}

// parseStatCPU reads utime and stime (fields 14 and 15, counted after
// the command name, which may hold spaces and parentheses).
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q has no command name", s)
	}
	// After ") ": state(3) ppid(4) ... utime(14) stime(15).
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the name, want at least 13", len(fields))
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseUint(f, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("stat: CPU time %q: %w", f, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// parseStatusRSS reads VmRSS (kB) from /proc/<pid>/status.
func parseStatusRSS(s string) (int64, error) {
	for line := range strings.Lines(s) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS line %q: want \"<n> kB\"", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("status: VmRSS line %q: not a size", strings.TrimSpace(line))
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("status has no VmRSS line (a zombie, or not a process)")
}
