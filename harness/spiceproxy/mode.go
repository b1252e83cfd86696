package spiceproxy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is how a proxy treats the bytes it forwards.
type Kind int

// The kinds of proxy, as LATENCY_B_PROXY names them.
const (
	// NoDelay is a well-behaved proxy: bytes are forwarded as they come,
	// with TCP_NODELAY on both sockets.
	NoDelay Kind = iota + 1
	// Nagle behaves like the Python Kerbside proxy that was measured
	// (facts.md, "What a proxy does to a repaint"): the client-facing
	// socket keeps Nagle's algorithm (TCP_NODELAY off) and every
	// server-to-client SPICE message goes out with its own write.
	Nagle
	// Delay holds the bytes of both directions for Mode.Delay, as a slow
	// link does, so a key's round trip grows by twice Mode.Delay.
	Delay
	// CPU is a well-behaved proxy (TCP_NODELAY on both sockets) that
	// spends Mode.Delay of CPU time, busy, on every server-to-client
	// SPICE message it forwards (framed as in Nagle mode), so that a
	// proxy that runs out of CPU can be shown: with GOMAXPROCS=1 it
	// carries at most 1/Mode.Delay messages a second in all.
	CPU
)

// MaxDelay bounds delay:DUR. A longer hold is almost certainly a typo
// (delay:30s for delay:30ms), and SPICE's ping and link timeouts would
// end the session anyway.
const MaxDelay = time.Minute

// MaxCPU bounds cpu:DUR: a message costing more than this is a typo
// (cpu:1s for cpu:1ms), and one session would saturate a core.
const MaxCPU = 100 * time.Millisecond

// ErrBadMode is wrapped by Parse's errors.
var ErrBadMode = errors.New("not a spice proxy mode")

// validForms is quoted by every Parse error, so the user sees the fix.
const validForms = `want "nodelay", "nagle", "delay:DUR" or "cpu:DUR" with DUR a Go duration such as delay:30ms or cpu:200us (the forms LATENCY_B_PROXY takes)`

// Mode is a Kind with its parameter. The zero Mode is not valid: Start
// refuses it rather than guess.
type Mode struct {
	Kind Kind
	// Delay is the hold in each direction for Kind Delay, and the CPU
	// time spent per message for Kind CPU.
	Delay time.Duration
}

// Parse reads a mode in the form LATENCY_B_PROXY takes: "nodelay",
// "nagle", "delay:DUR" (DUR as time.ParseDuration reads it, above zero
// and at most MaxDelay) or "cpu:DUR" (above zero, at most MaxCPU). The
// error names the valid forms.
func Parse(s string) (Mode, error) {
	switch s {
	case "nodelay":
		return Mode{Kind: NoDelay}, nil
	case "nagle":
		return Mode{Kind: Nagle}, nil
	}
	kind := Delay
	rest, ok := strings.CutPrefix(s, "delay:")
	if !ok {
		kind = CPU
		rest, ok = strings.CutPrefix(s, "cpu:")
	}
	if !ok {
		return Mode{}, fmt.Errorf("%w: %q: %s", ErrBadMode, s, validForms)
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return Mode{}, fmt.Errorf("%w: %q: %q is not a duration: %s", ErrBadMode, s, rest, validForms)
	}
	m := Mode{Kind: kind, Delay: d}
	if err := m.validate(); err != nil {
		return Mode{}, fmt.Errorf("%q: %w", s, err)
	}
	return m, nil
}

// validate checks a Mode built by hand as Parse checks a string.
func (m Mode) validate() error {
	switch m.Kind {
	case NoDelay, Nagle:
		if m.Delay != 0 {
			return fmt.Errorf("%w: %s takes no delay (got %s): %s", ErrBadMode, m.Kind, m.Delay, validForms)
		}
		return nil
	case Delay:
		if m.Delay <= 0 {
			return fmt.Errorf("%w: delay %s must be above zero (for no delay use nodelay): %s", ErrBadMode, m.Delay, validForms)
		}
		if m.Delay > MaxDelay {
			return fmt.Errorf("%w: delay %s is above the %s limit: %s", ErrBadMode, m.Delay, MaxDelay, validForms)
		}
		return nil
	case CPU:
		if m.Delay <= 0 {
			return fmt.Errorf("%w: cpu %s must be above zero (for no cost use nodelay): %s", ErrBadMode, m.Delay, validForms)
		}
		if m.Delay > MaxCPU {
			return fmt.Errorf("%w: cpu %s is above the %s limit: %s", ErrBadMode, m.Delay, MaxCPU, validForms)
		}
		return nil
	}
	return fmt.Errorf("%w: no mode set: %s", ErrBadMode, validForms)
}

// String is the mode as Parse reads it back.
func (m Mode) String() string {
	switch m.Kind {
	case Delay:
		return "delay:" + m.Delay.String()
	case CPU:
		return "cpu:" + m.Delay.String()
	}
	return m.Kind.String()
}

func (k Kind) String() string {
	switch k {
	case NoDelay:
		return "nodelay"
	case Nagle:
		return "nagle"
	case Delay:
		return "delay"
	case CPU:
		return "cpu"
	}
	return fmt.Sprintf("kind-%d", int(k))
}
