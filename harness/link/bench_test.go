package link

import (
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"
)

// The benchmarks say how close the link comes to its profile on the
// machine they run on: the error of each one-way delay and of the rate,
// as p50 and p99, and the CPU the process spent (link and test peers
// together) per operation. They are measurements, never assertions.
// Run them with a fixed count on a quiet machine:
//
//	go test -run '^$' -bench 'LinkDelayAccuracy|LinkRateAccuracy' -benchtime 200x ./harness/link/
//
// (the rate benchmark takes about 0.3 s per operation: use -benchtime 10x).

// benchLink starts a link for p in front of target, for a benchmark.
func benchLink(b *testing.B, target string, p Profile) string {
	b.Helper()
	l, err := Start(b.Context(), Config{Target: target, Profile: p})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	})
	return l.Addr().String()
}

// pingServer answers every 8-byte message with itself after stamping its
// arrival on arrivals.
func pingServer(b *testing.B, arrivals chan<- time.Time) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 8)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			arrivals <- time.Now()
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentile is the p-th percentile (0..1) of v, nearest rank.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// BenchmarkLinkDelayAccuracy sends one 8-byte message per operation
// through the link and back, 0-3 ms apart, and reports the error of each
// one-way delay against RTT/2 (both directions pooled): err-p50-ms and
// err-p99-ms. A link can only be late; a negative error would be a bug.
// lan's error is what the forwarder and loopback cost by themselves.
func BenchmarkLinkDelayAccuracy(b *testing.B) {
	for _, spec := range []string{"lan", "rtt=2ms", "rtt=20ms", "rtt=80ms", "wan-80ms-10mbit"} {
		b.Run(spec, func(b *testing.B) {
			p, err := Parse(spec)
			if err != nil {
				b.Fatal(err)
			}
			arrivals := make(chan time.Time, 1)
			c, err := net.Dial("tcp", benchLink(b, pingServer(b, arrivals), p))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg, back := make([]byte, 8), make([]byte, 8)
			var errs []float64
			oneWay := p.OneWay()
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				time.Sleep(time.Duration(i%4) * time.Millisecond)
				sent := time.Now()
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, back); err != nil {
					b.Fatal(err)
				}
				got := time.Now()
				at := <-arrivals
				errs = append(errs, ms(at.Sub(sent)-oneWay), ms(got.Sub(at)-oneWay))
			}
			b.ReportMetric(percentile(errs, 0.5), "err-p50-ms")
			b.ReportMetric(percentile(errs, 0.99), "err-p99-ms")
			b.ReportMetric(slices.Min(errs), "err-min-ms")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkLinkRateAccuracy moves a quarter of a second's worth of bytes
// at the profile's rate (at least 32 KiB) per operation one way through
// a rate-limited link and reports the achieved rate's error against the
// profile's (rate-err-p50-pct, rate-err-p99-pct: negative is slower) and
// the CPU per mebibyte. The time runs from the first write to the last
// byte's arrival, less RTT/2.
func BenchmarkLinkRateAccuracy(b *testing.B) {
	for _, spec := range []string{"rtt=0s,rate=50mbit,queue=128KiB", "rtt=0s,rate=10mbit,queue=64KiB", "wan-80ms-10mbit", "wan-80ms-1mbit"} {
		b.Run(spec, func(b *testing.B) {
			p, err := Parse(spec)
			if err != nil {
				b.Fatal(err)
			}
			n := int(max(32<<10, p.Rate/8/4))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			got := make(chan time.Time)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, n)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						close(got)
						return
					}
					got <- time.Now()
				}
			}()
			c, err := net.Dial("tcp", benchLink(b, ln.Addr().String(), p))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			payload := make([]byte, n)
			var errs []float64
			cpu0 := cpuTime()
			for b.Loop() {
				sent := time.Now()
				if _, err := c.Write(payload); err != nil {
					b.Fatal(err)
				}
				at, ok := <-got
				if !ok {
					b.Fatal("the server's connection ended")
				}
				rate := float64(n*8) / (at.Sub(sent) - p.OneWay()).Seconds()
				errs = append(errs, (rate/float64(p.Rate)-1)*100)
			}
			b.ReportMetric(percentile(errs, 0.5), "rate-err-p50-pct")
			b.ReportMetric(percentile(errs, 0.01), "rate-err-p99-pct") // the slowest 1 %
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/(float64(b.N)*float64(n)/(1<<20)), "cpu-ms/MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
