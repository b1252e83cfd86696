package qemu

import "syscall"

// procAttr puts QEMU in its own process group (a terminal's Ctrl-C
// reaches the harness, not QEMU behind its back, and SIGKILL to the group
// takes anything QEMU spawned) and has the kernel kill it should the
// harness die without running Stop, so a crashed test run leaves no
// guest behind. The parent-death signal is set by harness/childproc, which
// forks QEMU from a thread that lives as long as QEMU does.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
