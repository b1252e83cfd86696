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

// parser reads typed values from the environment and collects every
// problem instead of stopping at the first.
type parser struct {
	env  map[string]string
	errs []string
	// bad names the variables whose value did not parse, so that a rule
	// about them is not judged on the default standing in.
	bad map[string]bool
	// read names every variable looked up (a test checks Vars against
	// it).
	read map[string]bool
}

// newParser reads environ (KEY=VALUE entries); the first entry of a name
// wins, as with os.Getenv.
func newParser(environ []string) *parser {
	p := &parser{env: make(map[string]string, len(environ)), bad: map[string]bool{}, read: map[string]bool{}}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if _, dup := p.env[k]; !dup {
			p.env[k] = v
		}
	}
	return p
}

// lookup is a variable's value as given, and whether it is set at all.
func (p *parser) lookup(name string) (string, bool) {
	p.read[name] = true
	v, ok := p.env[name]
	return v, ok
}

// raw is a variable's value as given ("" when unset).
func (p *parser) raw(name string) string {
	v, _ := p.lookup(name)
	return v
}

// getenv is raw under the name the typed readers below use.
func (p *parser) getenv(name string) string { return p.raw(name) }

// failName reports a problem with the variable name's value and marks
// it bad.
func (p *parser) failName(name, format string, args ...any) {
	p.bad[name] = true
	p.failf(format, args...)
}

func (p *parser) failf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

func (p *parser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return errors.New("invalid loadtest configuration (see docs/reference.md, Configuration):\n  - " + strings.Join(p.errs, "\n  - "))
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
		p.failName(name, "%s=%q: want 1/0, true/false", name, v)
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
		p.failName(name, "%s=%q: want a whole number above 0", name, v)
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
			p.failName(name, "%s=%q: want a duration such as 2s or 150ms", name, v)
			return def
		}
		d = time.Duration(f * float64(time.Second))
	}
	switch {
	case d < 0:
		p.failName(name, "%s=%q: must not be negative", name, v)
		return def
	case positive && d == 0:
		p.failName(name, "%s=%q: must be above zero", name, v)
		return def
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
		p.failName(name, "%s=%q: want a number of seconds", name, v)
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
		p.failName(name, "%s=%q: want an AT set-1 make code such as 0x39 (space)", name, v)
		return def
	}
	// The control client's rule, so that a key the configuration accepts
	// is one send_key will send.
	if err := control.CheckScancode(uint16(n)); err != nil {
		p.failName(name, "%s=%q: not a logical AT set-1 make code (want 0x01..0x7f, or 0xE0 followed by one): %v", name, v, err)
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
		p.failName(name, "%s: %v", name, err)
		return def
	}
	return m
}

// setInt sets *dst from a whole number above 0 when name is set.
func (p *parser) setInt(dst *int, name string) { *dst = p.positiveInt(name, *dst) }

// setDuration sets *dst from a duration when name is set (above zero
// when positive: a zero would silently mean the measurement's default).
func (p *parser) setDuration(dst *time.Duration, name string, positive bool) {
	*dst = p.duration(name, *dst, positive)
}

// setShare sets *dst from a number above 0 when name is set; its upper
// bound is the measurement's rule.
func (p *parser) setShare(dst *float64, name string) {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0) {
		p.failName(name, "%s=%q: want a share above 0 and at most 1, e.g. 0.01 for 1%%", name, v)
		return
	}
	*dst = f
}

// floatRange reads min-max in seconds (0 <= min < max); set is false
// when the variable is unset or bad.
func (p *parser) floatRange(name string) (lo, hi float64, set bool) {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(v, "-")
	lo, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	hi, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if !ok || err1 != nil || err2 != nil || lo < 0 || lo >= hi {
		p.failName(name, "%s=%q: want min-max in seconds with 0 <= min < max, e.g. 0.005-0.05", name, v)
		return 0, 0, false
	}
	return lo, hi, true
}
