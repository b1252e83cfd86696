package loadrig

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// BenchmarkSyntheticSessions: how many synthetic sessions at 1 Mbit/s
// each this host carries through a nodelay proxy process, with the
// generator under one core (GOMAXPROCS=1) and the proxy uncapped, and
// what each session costs each process. One iteration is one second of
// every session streaming (4 KiB draws, 30 a second). A size is carried
// when "Mbit/s/session" stays near 1 and "lost" is 0; "gen-cores" near
// 1 means the generator's one core ran out first. Compare
// "proxy-mcores/session" across proxy modes and hosts.
//
//	go test -run '^$' -bench 'SyntheticSessions/sessions=200$' -benchtime 3x ./harness/loadrig/
func BenchmarkSyntheticSessions(b *testing.B) {
	for _, n := range []int{50, 100, 200, 300, 400} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) { benchSynthetic(b, n) })
	}
}

func benchSynthetic(b *testing.B, n int) {
	const rate = 1_000_000
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	p, err := StartProxy(ctx, ProxyConfig{Mode: spiceproxy.Mode{Kind: spiceproxy.NoDelay}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	s, err := StartSynthetic(ctx, SyntheticConfig{
		Activity:      Activity{Name: "bench", DrawSize: 4096, DrawsPerSecond: 30},
		BitsPerSecond: rate, Router: p.Router(),
		ChildConfig: ChildConfig{GOMAXPROCS: 1},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	idleGen, err := s.Process()
	if err != nil {
		b.Fatal(err)
	}
	idleProxy, err := p.Process()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Set(ctx, n); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // past the links and the first bursts

	before, err := s.Sample(ctx)
	if err != nil {
		b.Fatal(err)
	}
	proxy0, err := p.Process()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		time.Sleep(time.Second)
	}
	b.StopTimer()
	after, serr := s.Sample(ctx)
	proxy1, err := p.Process()
	if err != nil {
		b.Fatal(err)
	}
	wall := after.At.Sub(before.At).Seconds()
	gen0, gen1 := generator(b, before), generator(b, after)
	lost := 0
	if serr != nil {
		b.Logf("%v", serr)
		lost = n - after.Sessions
	}
	per := float64(n)
	b.ReportMetric(float64(after.Bytes-before.Bytes)*8/wall/per/1e6, "Mbit/s/session")
	b.ReportMetric((gen1.CPU-gen0.CPU).Seconds()/wall, "gen-cores")
	b.ReportMetric((gen1.CPU-gen0.CPU).Seconds()/wall/per*1000, "gen-mcores/session")
	b.ReportMetric(float64(gen1.RSS-idleGen.RSS)/per/1024, "gen-RSS-KiB/session")
	b.ReportMetric((proxy1.CPU-proxy0.CPU).Seconds()/wall, "proxy-cores")
	b.ReportMetric((proxy1.CPU-proxy0.CPU).Seconds()/wall/per*1000, "proxy-mcores/session")
	b.ReportMetric(float64(proxy1.RSS-idleProxy.RSS)/per/1024, "proxy-RSS-KiB/session")
	b.ReportMetric((after.AckWait-before.AckWait).Seconds()/wall/per, "ack-wait-s/s/session")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(loadavg(b), "host-load1")
	b.ReportMetric(0, "ns/op")
}

// loadavg is the host's 1-minute load average: on a shared host, what
// the figures were measured against.
func loadavg(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(raw), &l); err != nil {
		b.Fatalf("read /proc/loadavg %q: %v", raw, err)
	}
	return l
}

func generator(b *testing.B, s load.Sample) load.Process {
	for _, p := range s.Processes {
		if p.Role == "generator" {
			return p
		}
	}
	b.Fatalf("no generator in %+v", s.Processes)
	return load.Process{}
}
