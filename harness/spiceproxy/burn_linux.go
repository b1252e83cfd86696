package spiceproxy

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTime is CLOCK_THREAD_CPUTIME_ID: the calling thread's
// CPU time.
const clockThreadCPUTime = 3

// burn spends d of CPU time on the calling thread, busy: it is CPU mode's
// cost per message. It counts the thread's own CPU clock, not the wall
// clock, so a busy host that takes the core away makes it last longer,
// never cost less; the goroutine stays on its thread meanwhile, so the
// clock it reads is the one its work runs on.
func burn(d time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, ok := threadCPU()
	if !ok {
		burnWall(d)
		return
	}
	var x uint64
	for {
		x = spin(x)
		if now, _ := threadCPU(); now-start >= d {
			burnSink.Store(x)
			return
		}
	}
}

// threadCPU reads the calling thread's CPU clock.
func threadCPU() (time.Duration, bool) {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
