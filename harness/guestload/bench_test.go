package guestload

import (
	"context"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/guest"
)

// benchWindow is how long a busy guest is watched for its figures.
const benchWindow = 3 * time.Second

// BenchmarkQemuBusyGuest boots one busy guest per activity and reports
// what it costs and moves: its boot to the viewer's first draw
// (boot-s/guest), QEMU's CPU over the window after that (cpu-%/guest, a
// share of one core), its resident memory (rss-MiB/guest) and the
// display traffic its viewer read (bytes/s/session). Run it alone:
// go test -run '^$' -bench QemuBusyGuest -benchtime 1x ./harness/guestload.
func BenchmarkQemuBusyGuest(b *testing.B) {
	if testing.Short() {
		b.Skip("boots QEMU guests: run without -short")
	}
	for _, activity := range guest.Activities {
		b.Run(activity, func(b *testing.B) {
			needQemu(b)
			var boot, cpu, rate, rss float64
			for range b.N {
				ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
				q, err := NewQemu(QemuConfig{Activity: activity, LogDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := q.Set(ctx, 1); err != nil {
					b.Fatal(err)
				}
				boot += time.Since(t0).Seconds()
				s0, err := q.Sample(ctx)
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(benchWindow)
				s1, err := q.Sample(ctx)
				if err != nil {
					b.Fatal(err)
				}
				wall := s1.At.Sub(s0.At).Seconds()
				cpu += (s1.Processes[0].CPU - s0.Processes[0].CPU).Seconds() / wall * 100
				rate += float64(s1.Bytes-s0.Bytes) / wall
				rss += float64(s1.Processes[0].RSS) / (1 << 20)
				if err := q.Close(ctx); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
			n := float64(b.N)
			b.ReportMetric(boot/n, "boot-s/guest")
			b.ReportMetric(cpu/n, "cpu-%/guest")
			b.ReportMetric(rss/n, "rss-MiB/guest")
			b.ReportMetric(rate/n, "bytes/s/session")
			b.ReportMetric(0, "ns/op")
		})
	}
}
