package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/guestload"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/loadrig"
)

// RampProxy is the proxy under test of a ramp: every session, the
// measured console's and the busy ones, reaches its server through it.
type RampProxy interface {
	// Router gives the address through the proxy to a target.
	Router() load.Router
	// Describe names the proxy for the records (its mode, and where it
	// runs).
	Describe() string
	// Pid is the proxy's own process, whose CPU the ramp reads; 0 when
	// the proxy runs inside the harness (its CPU is then the harness's).
	Pid() int
	// Process reads the proxy's CPU time and resident memory.
	Process() (load.Process, error)
	Close(ctx context.Context) error
}

// RampRig is what a ramp runs beside the measured console: the proxy
// under test and the source of busy sessions through it.
type RampRig struct {
	Proxy  RampProxy
	Source load.Source
}

// NewRampRig makes a ramp's proxy and source from its configuration.
// ctx bounds the rig's life (its proxy closes every connection when it
// ends).
type NewRampRig func(ctx context.Context, cfg *config.Config, logger *slog.Logger) (RampRig, error)

// rigCores caps the proxy's and the generator's Go code at one core
// each (GOMAXPROCS): on the small hosts this runs on, a proxy that runs
// out of CPU then does so at one core, leaving the rest of the host to
// the harness and QEMU, so its knee is its own and not the host's.
const rigCores = 1

// processRig is the rig of harness/loadrig: the proxy under test and
// the synthetic load generator each a process of its own (the
// loadtest's binary re-executed), so that their CPU and memory are
// told apart from the harness's and QEMU's, and a proxy that runs out
// of CPU shows as the proxy's.
func processRig(ctx context.Context, cfg *config.Config, logger *slog.Logger) (RampRig, error) {
	r := cfg.Ramp
	cc := loadrig.ChildConfig{Logger: logger, GOMAXPROCS: rigCores}
	px, err := loadrig.StartProxy(ctx, loadrig.ProxyConfig{ChildConfig: cc, Mode: r.Proxy})
	if err != nil {
		return RampRig{}, fmt.Errorf("start the proxy under test (LATENCY_PROXY=%s): %w", r.Proxy, err)
	}
	src, err := busySource(ctx, cfg, cc, px.Router(), logger)
	if err != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = px.Close(tctx)
		return RampRig{}, err
	}
	return RampRig{Proxy: processProxy{px}, Source: src}, nil
}

// busySource makes the ramp's busy sessions through the proxy's router:
// synthetic sessions from a generator process of their own, or QEMU
// guests of our own running the activity (each QEMU its own process,
// whose CPU the samples carry).
func busySource(ctx context.Context, cfg *config.Config, cc loadrig.ChildConfig, router load.Router, logger *slog.Logger) (load.Source, error) {
	r := cfg.Ramp
	switch r.Source {
	case config.LoadSynthetic:
		act, err := loadrig.ParseActivity(r.Activity)
		if err != nil {
			return nil, fmt.Errorf("LATENCY_LOAD_ACTIVITY: %w", err)
		}
		src, err := loadrig.StartSynthetic(ctx, loadrig.SyntheticConfig{ChildConfig: cc, Activity: act, BitsPerSecond: r.Rate, Router: router})
		if err != nil {
			return nil, fmt.Errorf("start the synthetic load generator: %w", err)
		}
		return src, nil
	case config.LoadQemu:
		src, err := guestload.NewQemu(guestload.QemuConfig{Binary: cfg.Qemu, Activity: r.Activity, Router: router,
			LogDir: cfg.ResultsDir, RunID: cfg.RunID, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("busy QEMU guests (LATENCY_LOAD_SOURCE=qemu): %w", err)
		}
		return src, nil
	default:
		return nil, fmt.Errorf("LATENCY_LOAD_SOURCE=%s: want synthetic or qemu", r.Source)
	}
}

// processProxy is loadrig's proxy as the ramp's RampProxy.
type processProxy struct{ *loadrig.Proxy }

func (p processProxy) Describe() string {
	return fmt.Sprintf("%s (a process of its own, pid %d)", p.Mode(), p.Pid())
}
