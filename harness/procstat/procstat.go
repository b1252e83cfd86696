// Package procstat reads a process's CPU time and resident memory from
// /proc, so that the ramp can say what the proxy, the load generator,
// QEMU and the harness each cost: in one process they could not be told
// apart, and a figure for the whole host hides which one ran out.
//
// It reads /proc/<pid>/stat (utime and stime, every thread of the
// process, in clock ticks of 1/100 s, the USER_HZ Linux exports on every
// architecture Go runs on) and /proc/<pid>/status (VmRSS). It is Linux
// only: elsewhere Read says so.
package procstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/load"
)

// userHZ is the clock tick /proc/<pid>/stat counts in: USER_HZ, which
// Linux fixes at 100 for userspace whatever the kernel's own HZ.
const userHZ = 100

// ErrNoProcess is wrapped when the process is gone (or was never there).
var ErrNoProcess = errors.New("no such process")

// Usage is one process's CPU time and resident memory.
type Usage struct {
	Pid int
	// CPU is user plus system time of every thread since the process
	// started (not its reaped children's), to 10 ms.
	CPU time.Duration
	// RSS is the resident set now, in bytes (VmRSS).
	RSS int64
	// State is the process's state letter from /proc/<pid>/stat: R, S,
	// D, Z (a zombie: exited, not yet reaped), ...
	State string
}

// Process is u as the load contract carries it, under role.
func (u Usage) Process(role string) load.Process {
	return load.Process{Role: role, Pid: u.Pid, CPU: u.CPU, RSS: u.RSS}
}

// Self reads the calling process's usage.
func Self() (Usage, error) { return Read(os.Getpid()) }

// Read reads pid's usage. A process that is gone gives an error wrapping
// ErrNoProcess; a zombie reads with State "Z" and no RSS.
func Read(pid int) (Usage, error) {
	u := Usage{Pid: pid}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return u, fmt.Errorf("read usage of pid %d: %w", pid, ErrNoProcess)
		}
		return u, fmt.Errorf("read usage of pid %d: %w", pid, err)
	}
	state, ticks, err := parseStat(stat)
	if err != nil {
		return u, fmt.Errorf("read usage of pid %d: /proc/%d/stat: %w", pid, pid, err)
	}
	u.State = state
	u.CPU = time.Duration(ticks) * (time.Second / userHZ)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return u, fmt.Errorf("read usage of pid %d: %w", pid, ErrNoProcess)
		}
		return u, fmt.Errorf("read usage of pid %d: %w", pid, err)
	}
	rss, err := parseRSS(status)
	if err != nil {
		return u, fmt.Errorf("read usage of pid %d: /proc/%d/status: %w", pid, pid, err)
	}
	u.RSS = rss
	return u, nil
}

// parseStat reads the state and utime+stime (fields 3, 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses
// and may hold spaces and parentheses itself, so fields are counted from
// the last ')'.
func parseStat(b []byte) (string, int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("no ')' closing the command name in %q", trim(b))
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return "", 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return "", 0, fmt.Errorf("CPU ticks %q are not a count", s)
		}
		ticks += n
	}
	return f[0], ticks, nil
}

// parseRSS reads VmRSS from /proc/<pid>/status; a zombie (or a kernel
// thread) has none, which reads as 0.
func parseRSS(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || kb < 0 || unit != "kB" {
			return 0, fmt.Errorf("VmRSS %q is not a size in kB", strings.TrimSpace(rest))
		}
		return kb * 1024, nil
	}
	return 0, nil
}

func trim(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
