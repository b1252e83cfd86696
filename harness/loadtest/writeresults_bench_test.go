package loadtest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// syntheticFleet is n consoles that each measured samples presses, with
// no process behind them: what WriteResults and Teardown see at the end
// of a large run, without starting n fakeryll.
func syntheticFleet(tb testing.TB, n, samples int) *Fleet {
	tb.Helper()
	cfg, err := config.Load([]string{"LATENCY_PROVIDER=direct", "LATENCY_CONSOLE=127.0.0.1:5900", "LATENCY_RUN_ID=big",
		"LATENCY_RESULTS_DIR=" + tb.TempDir(), "LATENCY_SAMPLES=" + fmt.Sprint(samples)})
	require.NoError(tb, err)
	cfg.Consoles = n
	f := &Fleet{Cfg: cfg}
	start := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		mc := MemberConfig(cfg, i, n)
		csv, err := results.CreateCSV(mc.ResultsDir, mc.RunID)
		require.NoError(tb, err)
		var res measure.Result
		res.Start, res.StopReason = start, measure.StopSamplesReached
		for s := range samples {
			v := 0.02 + 0.01*rng.Float64()
			res.Samples = append(res.Samples, measure.Sample{Index: s, Seq: s + 1, At: start.Add(time.Duration(s) * 2 * time.Second), Value: v})
			require.NoError(tb, csv.Write(v))
		}
		require.NoError(tb, csv.Close())
		m := &Member{Index: i, Label: fmt.Sprintf("c%d", i), Session: &Session{Cfg: mc, Start: start}}
		m.measurement = &Measurement{Result: res, CSVPath: csv.Path()}
		f.Members = append(f.Members, m)
	}
	return f
}

// BenchmarkWriteResults is what writing the results of a large run
// costs (500 consoles once took 44 s, longer than a stop may take).
func BenchmarkWriteResults(b *testing.B) {
	for _, n := range []int{1, 50, 500} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				f := syntheticFleet(b, n, 60)
				b.StartTimer()
				_, err := f.WriteResults(io.Discard)
				require.NoError(b, err)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*n), "ms/console")
		})
	}
}
