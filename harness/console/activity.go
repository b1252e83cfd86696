package console

import (
	"context"
	"fmt"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/loadgen"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// ActivityProbe is what a real SPICE client (harness/loadgen's Client,
// which reads and ACKs every display message as a viewer must) received
// from a busy guest's display in a few seconds, before ryll connected:
// the activity's traffic at the client, no key pressed. ryll's events
// give the draws; only a client on the wire sees the bytes.
type ActivityProbe struct {
	// Duration is the span counted, after the first paint of the link.
	Duration time.Duration
	// Messages are display-channel messages, Draws the DRAW_COPY among
	// them, Bytes their size on the wire (headers included).
	Messages, Draws, Bytes uint64
}

// MessagesPerS, DrawsPerS and BytesPerS are the probe's rates.
func (p ActivityProbe) MessagesPerS() float64 { return per(p.Messages, p.Duration) }

// DrawsPerS is the DRAW_COPY messages per second.
func (p ActivityProbe) DrawsPerS() float64 { return per(p.Draws, p.Duration) }

// BytesPerS is the display channel's bytes per second.
func (p ActivityProbe) BytesPerS() float64 { return per(p.Bytes, p.Duration) }

func per(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Probe durations: the link's own first paint (the whole screen) is let
// pass first, then the activity alone is counted.
const (
	probeWarmup = time.Second
	probeSpan   = 3 * time.Second
)

// probeActivity links a loadgen Client to the guest's SPICE server,
// lets the link's first paint pass, counts the display traffic for span
// and closes. A SPICE server serves one client at a time, so it runs
// before ryll connects.
func probeActivity(ctx context.Context, addr address.Direct, pw secret.String, warmup, span time.Duration) (ActivityProbe, error) {
	cl, err := loadgen.Dial(ctx, loadgen.ClientConfig{Addr: addr.String(), Password: pw})
	if err != nil {
		return ActivityProbe{}, fmt.Errorf("link a SPICE client to the guest: %w", err)
	}
	defer cl.Close()
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-cl.Done():
			return fmt.Errorf("the guest's SPICE server ended the probe's session: %w", cl.Err())
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := wait(warmup); err != nil {
		return ActivityProbe{}, err
	}
	s0, t0 := cl.Stats(), time.Now()
	if err := wait(span); err != nil {
		return ActivityProbe{}, err
	}
	s1, t1 := cl.Stats(), time.Now()
	return ActivityProbe{Duration: t1.Sub(t0), Messages: s1.Messages - s0.Messages, Draws: s1.Draws - s0.Draws, Bytes: s1.Bytes - s0.Bytes}, nil
}
