//go:build !linux

package spiceproxy

import "time"

// burn spends d busy. Without Linux's thread CPU clock it counts the
// wall clock, so on a busy host a message may cost less than d of CPU.
func burn(d time.Duration) { burnWall(d) }
