package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// BenchmarkSessions measures what synthetic sessions at 1 Mbit/s cost
// the host that generates them: the Server and every Client run in this
// process, directly or through a nodelay spiceproxy (also in this
// process), so "cpu-cores" is the whole generator's (and the proxy's).
// One iteration is one second of every session streaming. Compare
// "Mbit/s/session" with the 1 Mbit/s asked for: below it, the host (or
// the share of it this process got) is what ran out, and "cpu-cores"
// says how much the process had.
//
//	go test -run '^$' -bench 'Sessions/direct/sessions=200$' -benchtime 3x ./harness/loadgen/
func BenchmarkSessions(b *testing.B) {
	for _, proxy := range []bool{false, true} {
		for _, n := range []int{50, 200, 500} {
			name := fmt.Sprintf("direct/sessions=%d", n)
			if proxy {
				name = fmt.Sprintf("nodelay/sessions=%d", n)
			}
			b.Run(name, func(b *testing.B) { benchSessions(b, n, proxy) })
		}
	}
}

func benchSessions(b *testing.B, n int, proxy bool) {
	const rate = 1_000_000
	ctx := b.Context()
	debug.FreeOSMemory()
	rss0 := rssBytes(b)
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	srv, err := Listen(ctx, "127.0.0.1:0", ServerConfig{BitsPerSecond: rate})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	addr := srv.Addr().String()
	if proxy {
		p, err := spiceproxy.Start(ctx, spiceproxy.Config{Target: addr, Mode: spiceproxy.Mode{Kind: spiceproxy.NoDelay}})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		addr = p.Addr().String()
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	g, err := Start(lctx, ClientConfig{Addr: addr}, n, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Stop()
	time.Sleep(time.Second) // past the links and the first burst

	before, t0 := g.Stats(), time.Now()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		time.Sleep(time.Second)
	}
	b.StopTimer()
	cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
	after := g.Stats()
	rss := rssBytes(b) - rss0
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	goMem := int64(m.HeapInuse+m.StackInuse) - int64(m0.HeapInuse+m0.StackInuse)
	goroutines := runtime.NumGoroutine() - g0

	if after.Failed > 0 {
		b.Fatalf("%d of %d sessions failed: %+v", after.Failed, n, after.PerSession[0])
	}
	bits := float64(after.Bytes-before.Bytes) * 8 / wall.Seconds() / float64(n)
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-cores")
	b.ReportMetric(cpu.Seconds()/wall.Seconds()/float64(n)*1000, "mcores/session")
	b.ReportMetric(float64(rss)/float64(n)/1024, "rss-KiB/session")
	b.ReportMetric(float64(goMem)/float64(n)/1024, "go-heap+stack-KiB/session")
	b.ReportMetric(float64(goroutines)/float64(n), "goroutines/session")
	b.ReportMetric(bits/1e6, "Mbit/s/session")
	b.ReportMetric(after.AckWaitS-before.AckWaitS, "ack-wait-s")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssBytes is the process's resident set (VmRSS in /proc/self/status).
func rssBytes(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Skipf("RSS per session needs /proc/self/status (Linux): %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb * 1024
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}
