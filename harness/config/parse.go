package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/control"
	"github.com/shakenfist/kerbside-latency/harness/measure"
)

// parser reads typed values and collects every problem instead of
// stopping at the first.
type parser struct {
	getenv func(string) string
	errs   []string
}

func (p *parser) failf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

func (p *parser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return errors.New("invalid loadtest configuration (see README.md, Configuration):\n  - " + strings.Join(p.errs, "\n  - "))
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

// strAllowEmpty returns def when the variable is unset, and "" when it is
// set to the empty string... which getenv cannot tell apart. So an
// explicit "none" or "-" means empty.
func (p *parser) strAllowEmpty(name, def string) string {
	v := strings.TrimSpace(p.getenv(name))
	switch v {
	case "":
		return def
	case "none", "-":
		return ""
	}
	return v
}

func (p *parser) boolean(name string) bool {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.failf("%s=%q: want 1/0, true/false", name, v)
	}
	return b
}

func (p *parser) positiveInt(name string, def int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		p.failf("%s=%q: want a whole number above 0", name, v)
		return def
	}
	return n
}

// duration accepts Go durations ("2s", "150ms") and, for the legacy
// flags' habit, a bare number of seconds ("2", "0.5").
func (p *parser) duration(name string, def time.Duration, positive bool) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			p.failf("%s=%q: want a duration such as 2s or 150ms", name, v)
			return def
		}
		d = time.Duration(f * float64(time.Second))
	}
	switch {
	case d < 0:
		p.failf("%s=%q: must not be negative", name, v)
	case positive && d == 0:
		p.failf("%s=%q: must be above zero", name, v)
	}
	return d
}

func (p *parser) float(name string, def float64) float64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.failf("%s=%q: want a number of seconds", name, v)
		return def
	}
	return f
}

// scancode accepts 0x39, 57 or 0xE04B. It refuses values that are not a
// logical AT set-1 make code: a high byte other than 0 or 0xE0, or a
// break code (bit 7 set).
func (p *parser) scancode(name string, def uint16) uint16 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 0, 16)
	if err != nil {
		p.failf("%s=%q: want an AT set-1 make code such as 0x39 (space)", name, v)
		return def
	}
	// The control client's rule, so that a key the configuration accepts
	// is one send_key will send.
	if err := control.CheckScancode(uint16(n)); err != nil {
		p.failf("%s=%q: not a logical AT set-1 make code (want 0x01..0x7f, or 0xE0 followed by one): %v", name, v, err)
		return def
	}
	return uint16(n)
}

// metric reads a metric by the measurement's short or long name.
func (p *parser) metric(name string, def measure.Metric) measure.Metric {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	m, err := measure.ParseMetric(v)
	if err != nil {
		p.failf("%s: %v", name, err)
		return def
	}
	return m
}
