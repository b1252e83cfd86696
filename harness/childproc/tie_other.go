//go:build !linux

package childproc

import "os/exec"

// StartTied starts cmd. Only Linux has a parent-death signal; elsewhere a
// harness killed by SIGKILL leaves its children running (the next run's
// sweeps clean up after it).
func StartTied(cmd *exec.Cmd, _ <-chan struct{}) error { return cmd.Start() }
