package qemu

import "syscall"

// procAttr puts QEMU in its own process group (a terminal's Ctrl-C
// reaches the harness, not QEMU behind its back, and SIGKILL to the group
// takes anything QEMU spawned) and has the kernel kill it should the
// harness die without running Stop, so a crashed test run leaves no
// guest behind. Pdeathsig is tied to the OS thread that started QEMU;
// Go ends a thread only when a goroutine that locked it exits, which
// nothing here does.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
