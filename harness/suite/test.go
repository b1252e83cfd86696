package suite

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shakenfist/kerbside-latency/harness/loadtest"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/results"
	"github.com/shakenfist/kerbside-latency/harness/stats"
)

// TestLatency is TestLatency's body: it measures what Main set up and
// judges it in subtests. Each failure is said once, in words, without a
// stack of test framing: the logs above it carry the detail.
func TestLatency(t *testing.T) {
	if run.setupErr != nil {
		t.Fatal(run.setupErr)
	}
	if run.cfg == nil {
		t.Fatal("suite.Main did not run: TestMain must call suite.Main")
	}
	t.Attr("lane", run.lane.Name())
	t.Attr("client", run.lane.Client)
	if run.ab != nil {
		testAB(t, run.ab)
		return
	}
	if run.ramp != nil {
		testRamp(t, run.ramp)
		return
	}
	fleet := run.fleet
	run.stop.Enter("measuring")
	// Every console is measured at once, here, whatever go test's
	// -parallel is; the subtests then judge what each one found.
	fleet.MeasureAll(run.ctx)
	if len(fleet.Members) == 1 {
		testConsole(t, fleet.Members[0])
		return
	}
	t.Run("Consoles", func(t *testing.T) {
		for _, mb := range fleet.Members {
			t.Run(mb.Label, func(t *testing.T) { testConsole(t, mb) })
		}
	})
	// The pooled figures, from what the consoles measured (the run
	// summary file is written by Main's exit path).
	var pooled []float64
	var misses, dropped, failed int
	for _, mb := range fleet.Members {
		mm, errs := mb.Outcome()
		if mm != nil {
			v := mm.Result.Values()
			pooled = append(pooled, v...)
			misses += len(mm.Result.Misses)
			dropped += mm.Result.Dropped
			if results.NewSanity(v, run.cfg.SanityMin, run.cfg.SanityMax).Verdict != results.VerdictPass {
				errs = append(errs, errors.New("sanity"))
			}
		}
		if mm == nil || len(errs) > 0 {
			failed++
		}
	}
	t.Attr("metric", string(fleet.Members[0].Session.Metric()))
	t.Attr("consoles", fmt.Sprint(len(fleet.Members)))
	t.Attr("failed_consoles", fmt.Sprint(failed))
	attrFigures(t, len(pooled), misses, dropped, stats.Summarize(pooled))
}

// attrFigures records the key figures as JUnit properties.
func attrFigures(t *testing.T, samples, misses, dropped int, s stats.Summary) {
	t.Attr("samples", fmt.Sprint(samples))
	t.Attr("misses", fmt.Sprint(misses))
	t.Attr("dropped", fmt.Sprint(dropped))
	if s.Count > 0 {
		t.Attr("p50_s", fmt.Sprintf("%.6f", s.P50))
		t.Attr("p95_s", fmt.Sprintf("%.6f", s.P95))
		t.Attr("p99_s", fmt.Sprintf("%.6f", s.P99))
	}
}

// testConsole judges one console from what it measured. Its results are
// written by Main's exit path.
func testConsole(t *testing.T, mb *loadtest.Member) {
	if mb.SetupErr != nil {
		t.Fatalf("setup (console, ryll) did not finish; nothing was measured:\n%v", run.stop.Explain(mb.SetupErr))
	}
	sess := mb.Session
	cfg := sess.Cfg

	t.Run("Handshake", func(t *testing.T) {
		h := sess.Hello
		t.Logf("server %q speaks protocol %s; methods %v; events %v", h.ServerName, h.ProtocolVersion, h.SupportedMethods, h.SupportedEvents)
		if sess.HandshakeErr != nil {
			t.Fatal(sess.HandshakeErr)
		}
	})
	if sess.HandshakeErr != nil {
		t.Fatal("not measuring: the handshake failed")
	}

	m, err := mb.Measured()
	t.Run("Measure", func(t *testing.T) {
		if m != nil {
			res := m.Result
			t.Logf("%d samples, %d misses, %d unpaired draws, %d dropped events, stop: %s; CSV %s",
				len(res.Samples), len(res.Misses), res.UnpairedDraws, res.Dropped, res.StopReason, m.CSVPath)
		}
		if err != nil {
			t.Fatalf("the run ended early (what was collected is kept): %v", err)
		}
		if got := len(m.Result.Samples); got != cfg.Measure.Samples {
			t.Errorf("collected %d of %d samples before LATENCY_MAX_DURATION=%s (%d misses): raise LATENCY_MAX_DURATION, or look at the misses",
				got, cfg.Measure.Samples, cfg.Measure.MaxDuration, len(m.Result.Misses))
		}
	})

	var values []float64
	if m != nil {
		values = m.Result.Values()
	}
	var sanity results.Sanity
	t.Run("Sanity", func(t *testing.T) {
		if len(values) == 0 {
			t.Fatal("no samples were collected")
		}
		sanity = results.NewSanity(values, cfg.SanityMin, cfg.SanityMax)
		for _, o := range sanity.OutOfRange {
			t.Errorf("sample %d (CSV line %d) = %.6f s is outside [%g, %g] s (LATENCY_SANITY_MIN/MAX)",
				o.Index, o.Index+1, o.Value, cfg.SanityMin, cfg.SanityMax)
		}
		if cfg.ExpectP50Set {
			if p50 := stats.Summarize(values).P50; p50 < cfg.ExpectP50Min || p50 > cfg.ExpectP50Max {
				t.Errorf("median %.6f s is outside LATENCY_EXPECT_P50=[%g, %g] s", p50, cfg.ExpectP50Min, cfg.ExpectP50Max)
			}
		}
	})

	t.Attr("metric", string(sess.Metric()))
	t.Attr("run", cfg.RunID)
	t.Attr("provider", string(cfg.Requested))
	if m != nil {
		res := m.Result
		attrFigures(t, len(res.Samples), len(res.Misses), res.Dropped, stats.Summarize(values))
		if sess.Metric().Keypress() {
			// Both keypress figures, whichever one the CSV holds.
			for name, sum := range map[string]stats.Summary{"first_draw": res.FirstDraw, "repaint": res.Repaint} {
				if sum.Count > 0 {
					t.Attr(name+"_p50_s", fmt.Sprintf("%.6f", sum.P50))
					t.Attr(name+"_p95_s", fmt.Sprintf("%.6f", sum.P95))
				}
			}
			t.Attr("late", fmt.Sprint(res.Count(measure.VerdictLate)))
			t.Attr("suspects", fmt.Sprint(res.Suspects))
			t.Attr("background_rate_per_s", fmt.Sprintf("%.3f", res.Background.Rate))
			t.Attr("contamination", fmt.Sprintf("%.4f", res.Background.Contamination))
		}
	}
	if sanity.Verdict != "" {
		t.Attr("sanity", sanity.Verdict)
	}
}

// testAB runs the A/B: both legs in alternating blocks on one guest, then
// judges each leg like a console and B against A.
func testAB(t *testing.T, ab *loadtest.AB) {
	if ab.SetupErr != nil {
		t.Fatalf("the A/B setup did not finish; nothing was measured:\n%v", run.stop.Explain(ab.SetupErr))
	}
	run.stop.Enter("measuring the A/B")
	runErr := ab.Run(run.ctx)
	for _, l := range ab.Legs {
		t.Run(l.Name, func(t *testing.T) {
			m := l.Measurement
			if m == nil {
				t.Fatalf("the %s leg measured nothing", l.Name)
			}
			res := m.Result
			t.Logf("%s: %s; %d samples in %d blocks, %d misses, %d suspect", l.Name, l.Console.Describe(), len(res.Samples), len(l.Blocks), len(res.Misses), res.Suspects)
			if l.Err != nil {
				t.Fatal(l.Err)
			}
			if got := len(res.Samples); got < ab.Cfg.Measure.Samples {
				t.Errorf("the %s leg collected %d of %d samples", l.Name, got, ab.Cfg.Measure.Samples)
			}
			s := results.NewSanity(res.Values(), ab.Cfg.SanityMin, ab.Cfg.SanityMax)
			for _, o := range s.OutOfRange {
				t.Errorf("%s leg sample %d = %.6f s is outside [%g, %g] s", l.Name, o.Index, o.Value, ab.Cfg.SanityMin, ab.Cfg.SanityMax)
			}
			attrFigures(t, len(res.Samples), len(res.Misses), res.Dropped, stats.Summarize(res.Values()))
		})
	}
	t.Run("Compare", func(t *testing.T) {
		if runErr != nil {
			t.Fatalf("the A/B ended early: %v", runErr)
		}
		c := ab.Compare()
		for _, m := range c.Metrics {
			t.Logf("%s: A %.2f ms, B %.2f ms, B-A %+.2f ms [%+.2f, %+.2f], p=%.3g: %s", m.Metric, m.AMedianS*1000, m.BMedianS*1000,
				m.DifferenceS*1000, m.DifferenceCIS[0]*1000, m.DifferenceCIS[1]*1000, m.P, m.Verdict)
			short := measure.Metric(m.Metric).Short()
			t.Attr("ab_"+short+"_a_p50_s", fmt.Sprintf("%.6f", m.AMedianS))
			t.Attr("ab_"+short+"_b_p50_s", fmt.Sprintf("%.6f", m.BMedianS))
			t.Attr("ab_"+short+"_added_s", fmt.Sprintf("%.6f", m.DifferenceS))
			t.Attr("ab_"+short+"_p", fmt.Sprintf("%.4g", m.P))
			t.Attr("ab_"+short+"_verdict", m.Verdict)
			// The interval and what it proves.
			t.Attr("ab_"+short+"_ci_lo_s", fmt.Sprintf("%.6f", m.DifferenceCIS[0]))
			t.Attr("ab_"+short+"_ci_hi_s", fmt.Sprintf("%.6f", m.DifferenceCIS[1]))
			t.Attr("ab_"+short+"_outcome", m.Outcome)
			if m.SamplesNeeded != 0 {
				t.Attr("ab_"+short+"_samples_needed", fmt.Sprint(m.SamplesNeeded))
			}
		}
		// The host figures of each leg, and whether it was too busy.
		for name, l := range map[string]results.ABLeg{"a": c.A, "b": c.B} {
			if h := l.Host; h != nil {
				t.Logf("host during %s: %s", strings.ToUpper(name), h.Figures.String())
				t.Attr("ab_host_"+name+"_lag_p99_s", fmt.Sprintf("%.6f", h.Lag.P99S))
				t.Attr("ab_host_"+name+"_runnable_mean", fmt.Sprintf("%.2f", h.RunnableMean))
				t.Attr("ab_host_"+name+"_late_samples", fmt.Sprint(h.LateSamples))
			}
		}
		if len(c.HostBusy) > 0 {
			t.Attr("ab_host_busy", strings.Join(c.HostBusy, "; "))
		}
		t.Attr("ab_verdict", c.Verdict)
		// Pass only when proven; the message starts with the verdict
		// (inconclusive, fail, incomplete).
		if c.Verdict != "pass" {
			t.Errorf("A/B verdict %s: %s", c.Verdict, strings.Join(c.Reasons, "; "))
		}
	})
}

// testRamp runs the load ramp and judges it: the measured console's
// samples (sanity, as any run's) and the ramp's verdict (harness/ramp):
// a knee at or below LATENCY_LOAD_TARGET, a host-bound ramp or one too
// short to judge fails; the knee and each step are JUnit properties.
func testRamp(t *testing.T, r *loadtest.Ramp) {
	if r.SetupErr != nil {
		t.Fatalf("the load ramp's setup did not finish; nothing was measured:\n%v", run.stop.Explain(r.SetupErr))
	}
	run.stop.Enter("measuring the load ramp")
	runErr := r.Run(run.ctx)
	t.Run("Measure", func(t *testing.T) {
		m := r.Measurement
		if m == nil {
			t.Fatal("the ramp measured nothing")
		}
		res := m.Result
		t.Logf("%s: %d samples in %d blocks, %d misses, %d suspect", r.Console.Describe(), len(res.Samples), len(r.Blocks), len(res.Misses), res.Suspects)
		if runErr != nil {
			t.Fatalf("the ramp ended early (what was collected is kept): %v", runErr)
		}
		s := results.NewSanity(res.Values(), r.Cfg.SanityMin, r.Cfg.SanityMax)
		for _, o := range s.OutOfRange {
			t.Errorf("sample %d = %.6f s is outside [%g, %g] s", o.Index, o.Value, r.Cfg.SanityMin, r.Cfg.SanityMax)
		}
		attrFigures(t, len(res.Samples), len(res.Misses), res.Dropped, stats.Summarize(res.Values()))
	})
	t.Run("Ramp", func(t *testing.T) {
		l := r.Judge()
		t.Attr("load_source", l.Source)
		t.Attr("load_proxy", l.Proxy)
		t.Attr("load_verdict", l.Verdict)
		t.Attr("load_max_added_s", fmt.Sprintf("%.6f", l.MaxAddedS))
		if l.Knee != nil {
			t.Attr("load_knee", fmt.Sprint(*l.Knee))
		} else {
			t.Attr("load_knee", "none")
		}
		for _, s := range l.Steps {
			p := fmt.Sprintf("load_%d_", s.Sessions)
			t.Attr(p+"samples", fmt.Sprint(s.Repaint.Samples))
			t.Attr(p+"first_p50_s", fmt.Sprintf("%.6f", s.FirstDraw.P50S))
			t.Attr(p+"repaint_p95_s", fmt.Sprintf("%.6f", s.Repaint.P95S))
			t.Attr(p+"p95_added_s", fmt.Sprintf("%.6f", s.P95AddedS))
			t.Attr(p+"bytes_per_s", fmt.Sprintf("%.0f", s.BytesPerS))
			t.Logf("%d sessions: first draw p50 %.1f ms, repaint p95 %.1f ms (%+.1f ms [%+.1f, %+.1f]), %.2f MB/s through the proxy",
				s.Sessions, 1000*s.FirstDraw.P50S, 1000*s.Repaint.P95S, 1000*s.P95AddedS, 1000*s.P95AddedCIS[0], 1000*s.P95AddedCIS[1], s.BytesPerS/1e6)
		}
		if l.Fails {
			t.Errorf("load ramp %s: %s", l.Verdict, strings.Join(l.Reasons, "; "))
			return
		}
		t.Logf("load ramp %s: %s", l.Verdict, strings.Join(l.Reasons, "; "))
	})
}
