package link

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Profile is what a link does to the bytes that cross it, the same in
// both directions. The zero Profile adds nothing (it is "lan").
type Profile struct {
	// Name is the named profile this came from ("" for an explicit one).
	Name string
	// RTT is the round trip the link adds: RTT/2 is added to every byte
	// in each direction, so a key press and the draw it causes cross it
	// once each and the pair costs RTT.
	RTT time.Duration
	// Jitter varies each packet's one-way delay uniformly within
	// ±Jitter around RTT/2 (as netem's delay jitter does); bytes are
	// never reordered, so a packet is never delivered before the one
	// ahead of it. At most RTT/2.
	Jitter time.Duration
	// Rate is the link's rate in bits per second each way (payload
	// bytes only: TCP/IP headers are not counted); 0 is unlimited.
	Rate int64
	// Queue is the bottleneck queue in bytes: the bytes that may wait
	// for the rate. When it is full the link stops reading from the
	// sender, so TCP pushes back on it. Only with a Rate.
	Queue int64
}

// profileJSON is a Profile as the sidecar records it.
type profileJSON struct {
	Name     string  `json:"name,omitempty"`
	Explicit string  `json:"explicit"`
	RTTS     float64 `json:"rtt_s"`
	JitterS  float64 `json:"jitter_s"`
	Rate     int64   `json:"rate_bits_per_s"`
	Queue    int64   `json:"queue_bytes"`
}

// MarshalJSON writes the profile for the sidecar: durations as float
// seconds, and the explicit form that Parse reads back.
func (p Profile) MarshalJSON() ([]byte, error) {
	return json.Marshal(profileJSON{Name: p.Name, Explicit: p.Explicit(), RTTS: p.RTT.Seconds(),
		JitterS: p.Jitter.Seconds(), Rate: p.Rate, Queue: p.Queue})
}

// UnmarshalJSON reads a profile the sidecar recorded (MarshalJSON): its
// explicit form, parsed again, and its name.
func (p *Profile) UnmarshalJSON(b []byte) error {
	var j profileJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Explicit == "" {
		*p = Profile{Name: j.Name}
		return nil
	}
	q, err := Parse(j.Explicit)
	if err != nil {
		return err
	}
	q.Name = j.Name
	*p = q
	return nil
}

// The profiles the loadtest names (issue 21). Their queue is the
// default: one bandwidth-delay product, at least MinDefaultQueue.
var named = []Profile{
	{Name: "lan"},
	{Name: "wan-20ms-50mbit", RTT: 20 * time.Millisecond, Rate: 50 * mbit},
	{Name: "wan-80ms-10mbit", RTT: 80 * time.Millisecond, Rate: 10 * mbit},
	{Name: "wan-80ms-1mbit", RTT: 80 * time.Millisecond, Rate: 1 * mbit},
}

// Bounds of an explicit profile. They catch typos (rtt=80s for 80ms)
// and values the link cannot honour.
const (
	MaxRTT   = 10 * time.Second
	MinRate  = 8 * kbit
	MaxRate  = 100 * gbit
	MinQueue = 4 << 10
	MaxQueue = 1 << 30
	// MinDefaultQueue is the smallest queue a rate gets when none is
	// given; otherwise the default is rate × RTT (the classic router
	// buffer rule of one bandwidth-delay product).
	MinDefaultQueue = 64 << 10
)

const (
	kbit = 1000
	mbit = 1000 * kbit
	gbit = 1000 * mbit
)

// ErrBadProfile is wrapped by every Parse error.
var ErrBadProfile = errors.New("not a link profile")

// Forms is quoted by every Parse error, so the user sees the fix.
func Forms() string {
	names := make([]string, len(named))
	for i, p := range named {
		names[i] = p.Name
	}
	return "want a named profile (" + strings.Join(names, ", ") + ") or key=value parts joined by commas: " +
		"rtt=DURATION (Go duration, at most " + MaxRTT.String() + "), jitter=DURATION (at most rtt/2), " +
		"rate=N{bit,kbit,mbit,gbit} (decimal, as tc reads them), queue=N{B,KiB,MiB,GiB} (needs a rate; default rate×rtt, at least 64KiB), " +
		"e.g. rtt=80ms,rate=10mbit,jitter=5ms,queue=64KiB; a name may be followed by parts that override it, e.g. wan-80ms-10mbit,jitter=5ms"
}

// Profiles lists the named profiles, resolved.
func Profiles() []Profile {
	out := make([]Profile, len(named))
	for i, p := range named {
		out[i] = p.resolved()
	}
	return out
}

// Parse reads a profile: a name, key=value parts, or a name followed by
// parts that override it. Every bad part is named in one error, with the
// accepted forms.
func Parse(s string) (Profile, error) {
	if strings.TrimSpace(s) == "" {
		return Profile{}, fmt.Errorf("%w: empty: %s", ErrBadProfile, Forms())
	}
	parts := strings.Split(s, ",")
	var p Profile
	var errs []error
	if !strings.Contains(parts[0], "=") {
		i := slices.IndexFunc(named, func(n Profile) bool { return n.Name == parts[0] })
		if i < 0 {
			errs = append(errs, fmt.Errorf("%q is not a named profile", parts[0]))
		} else {
			p = named[i]
		}
		parts = parts[1:]
	}
	seen := map[string]bool{}
	for _, part := range parts {
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("%q is not key=value (a name can only come first)", part))
			continue
		}
		if seen[key] {
			errs = append(errs, fmt.Errorf("%s is given twice", key))
			continue
		}
		seen[key] = true
		var err error
		switch key {
		case "rtt":
			p.RTT, err = parseDuration(val)
		case "jitter":
			p.Jitter, err = parseDuration(val)
		case "rate":
			p.Rate, err = parseRate(val)
		case "queue":
			p.Queue, err = parseBytes(val)
		default:
			err = errors.New("unknown key (want rtt, jitter, rate or queue)")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", part, err))
		}
	}
	if len(parts) > 0 {
		p.Name = "" // overridden: no longer the named profile
	}
	if len(errs) == 0 {
		p = p.resolved()
		if err := p.check(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Profile{}, fmt.Errorf("%w %q: %w; %s", ErrBadProfile, s, errors.Join(errs...), Forms())
	}
	return p, nil
}

// resolved fills the default queue.
func (p Profile) resolved() Profile {
	if p.Rate > 0 && p.Queue == 0 {
		p.Queue = max(MinDefaultQueue, int64(float64(p.Rate)/8*p.RTT.Seconds()))
	}
	return p
}

// check reports what makes a resolved profile impossible.
func (p Profile) check() error {
	var errs []error
	if p.RTT < 0 || p.RTT > MaxRTT {
		errs = append(errs, fmt.Errorf("rtt %s is outside 0 to %s", p.RTT, MaxRTT))
	}
	if p.Jitter < 0 || p.Jitter > p.RTT/2 {
		errs = append(errs, fmt.Errorf("jitter %s is outside 0 to rtt/2 (%s): a one-way delay cannot go below zero", p.Jitter, p.RTT/2))
	}
	if p.Rate != 0 && (p.Rate < MinRate || p.Rate > MaxRate) {
		errs = append(errs, fmt.Errorf("rate %s is outside %s to %s", formatRate(p.Rate), formatRate(MinRate), formatRate(MaxRate)))
	}
	switch {
	case p.Rate == 0 && p.Queue != 0:
		errs = append(errs, fmt.Errorf("queue %s without a rate: bytes queue only behind a rate limit", formatBytes(p.Queue)))
	case p.Rate != 0 && (p.Queue < MinQueue || p.Queue > MaxQueue):
		errs = append(errs, fmt.Errorf("queue %s is outside %s to %s", formatBytes(p.Queue), formatBytes(MinQueue), formatBytes(MaxQueue)))
	}
	return errors.Join(errs...)
}

// Validate checks a Profile built by hand as Parse checks a string.
func (p Profile) Validate() error {
	if err := p.check(); err != nil {
		return fmt.Errorf("%w: %w; %s", ErrBadProfile, err, Forms())
	}
	return nil
}

// Explicit is the profile in key=value form; Parse reads it back to the
// same link (without the name).
func (p Profile) Explicit() string {
	s := "rtt=" + p.RTT.String()
	if p.Jitter > 0 {
		s += ",jitter=" + p.Jitter.String()
	}
	if p.Rate > 0 {
		s += ",rate=" + formatRate(p.Rate) + ",queue=" + formatBytes(p.Queue)
	}
	return s
}

// String is the name and the explicit form, as logs show it.
func (p Profile) String() string {
	if p.Name == "" {
		return p.Explicit()
	}
	return p.Name + " (" + p.Explicit() + ")"
}

// OneWay is the delay each direction adds before jitter: RTT/2.
func (p Profile) OneWay() time.Duration { return p.RTT / 2 }

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (want a Go duration such as 80ms)", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s is negative", d)
	}
	return d, nil
}

// parseRate reads N{bit,kbit,mbit,gbit} (decimal units, as tc reads
// them); "unlimited" is 0.
func parseRate(v string) (int64, error) {
	if v == "unlimited" {
		return 0, nil
	}
	lv := strings.ToLower(v)
	if strings.HasSuffix(lv, "bps") {
		return 0, fmt.Errorf("%q is ambiguous (tc reads bps as bytes per second): write bits, e.g. 10mbit", v)
	}
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"gbit", gbit}, {"mbit", mbit}, {"kbit", kbit}, {"bit", 1}} {
		num, ok := strings.CutSuffix(lv, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("%q is not a positive number of %s", num, u.suffix)
		}
		return int64(math.Round(f * u.mult)), nil
	}
	return 0, fmt.Errorf("%q has no unit (want bit, kbit, mbit or gbit, e.g. 10mbit)", v)
}

// parseBytes reads N{B,KiB,MiB,GiB} (or a plain number of bytes).
func parseBytes(v string) (int64, error) {
	mult := int64(1)
	num := v
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > MaxQueue/mult+1 {
		return 0, fmt.Errorf("%q is not a positive whole number of bytes (want N, NB, NKiB, NMiB or NGiB, e.g. 64KiB)", v)
	}
	return n * mult, nil
}

func formatRate(r int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gbit", gbit}, {"mbit", mbit}, {"kbit", kbit}} {
		if r%u.mult == 0 {
			return strconv.FormatInt(r/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(r, 10) + "bit"
}

func formatBytes(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}
