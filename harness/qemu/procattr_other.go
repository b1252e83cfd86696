//go:build !linux

package qemu

import "syscall"

// procAttr puts QEMU in its own process group; see procattr_linux.go.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
