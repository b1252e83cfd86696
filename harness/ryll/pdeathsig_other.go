//go:build !linux

package ryll

import "os/exec"

// startTied starts cmd. Only Linux has a parent-death signal; elsewhere a
// harness killed by SIGKILL leaves ryll running (make sweep and the next
// run's stale-directory sweep clean up after it).
func startTied(cmd *exec.Cmd, _ <-chan struct{}) error { return cmd.Start() }
