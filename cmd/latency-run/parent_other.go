//go:build !linux

package main

import (
	"errors"
	"syscall"
)

// dieWithParent needs Linux's parent-death signal.
func dieWithParent(syscall.Signal) error {
	return errors.New("no parent-death signal on this system")
}
