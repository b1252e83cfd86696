package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Version is a protocol version "major.minor". The simulator can pose as
// an older server (1.0, 1.1) because clients must cope with those too.
type Version struct {
	Major, Minor int
}

// String formats v the way hello reports it, e.g. "1.2".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v is major.minor or newer; features are gated on
// it (surface_drawn needs 1.1, the extended-scancode fix needs 1.2).
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// ParseVersion parses a dotted two-part "major.minor" string of
// non-negative decimal integers, as the hello handshake requires.
func ParseVersion(s string) (Version, error) {
	maj, min, ok := strings.Cut(s, ".")
	if !ok {
		return Version{}, fmt.Errorf("version %q is not major.minor", s)
	}
	a, err1 := parseSmallUint(maj)
	b, err2 := parseSmallUint(min)
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("version %q is not major.minor with decimal parts", s)
	}
	return Version{Major: a, Minor: b}, nil
}

func parseSmallUint(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, errors.New("not a small unsigned integer")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a small unsigned integer")
		}
	}
	return strconv.Atoi(s)
}

// PingMode selects how the simulated SPICE server sends PINGs.
type PingMode int

const (
	// PingSpice mimics a QEMU spice-server over TCP: three PINGs right
	// after connect, then a pair about every 15 s.
	PingSpice PingMode = iota
	// PingSteady sends one PING every PingPattern.Interval.
	PingSteady
	// PingNone sends no PINGs, like spice-server over a Unix socket.
	PingNone
)

// PingPattern is the parsed ping-pattern knob.
type PingPattern struct {
	Mode     PingMode
	Interval time.Duration // PingSteady only
}

// BackgroundPattern says how background draws (draws no key caused) are
// spread over time, because a loadtest must tell a steady background
// (a clock, a blinking cursor) from a bursty one (a guest that repaints
// on its own) and the pairing errors each causes differ.
type BackgroundPattern int

const (
	// BackgroundPoisson spaces single draws by exponential gaps (seeded).
	BackgroundPoisson BackgroundPattern = iota
	// BackgroundSteady sends one draw every 1/rate, on refresh ticks.
	BackgroundSteady
	// BackgroundBursty sends repaint-like bursts (draws-per-key draws over
	// draw-spread) at Poisson instants, rate/draws-per-key bursts a second.
	BackgroundBursty
)

// String is the knob's spelling of p.
func (p BackgroundPattern) String() string {
	switch p {
	case BackgroundSteady:
		return "steady"
	case BackgroundBursty:
		return "bursty"
	default:
		return "poisson"
	}
}

// QueueDrop selects the per-client event queue's overflow model.
type QueueDrop int

const (
	// DropNewest is what ryll's code does: a full queue refuses the new
	// event; one dropped event is queued after the next event that finds
	// the queue nearly empty, whether or not the client subscribed to
	// dropped; responses wait for a slot in the same queue, behind events.
	DropNewest QueueDrop = iota
	// DropOldest is what the protocol document describes: a full queue
	// discards its oldest event; dropped is reported when the queue
	// drains (or after 250 ms of pressure) to subscribers only; responses
	// are written straight away, ahead of queued events.
	DropOldest
)

// String is the knob's spelling of d.
func (d QueueDrop) String() string {
	if d == DropOldest {
		return "oldest"
	}
	return "newest"
}

// Config is everything the simulator needs. Build it with DefaultConfig or
// LoadConfig so that every knob holds a validated value, then set
// SocketPath (and optionally Logger), which are ryll's own settings rather
// than simulation knobs.
type Config struct {
	// SocketPath is where the control socket is bound (--control-socket).
	SocketPath string
	// Logger receives the simulator's log; nil discards it. It must never
	// be handed a credential: the simulator itself logs none.
	Logger *slog.Logger

	// The fields below are the knobs; see Knobs for their meaning,
	// defaults and validation.
	ProtocolVersion Version
	DrawDelay       time.Duration
	DrawJitter      time.Duration
	DisplayRefresh  time.Duration
	DrawsPerKey     int
	// DrawSpread is the time from a burst's first draw to its last
	// (before any tail); the draws are evenly spaced over it.
	DrawSpread time.Duration
	// DrawTail delays the last DrawTailCount draws of each key's burst
	// by this much more, as a proxy's Nagle stall does.
	DrawTail          time.Duration
	DrawTailCount     int
	Ping              PingPattern
	BackgroundRate    float64 // draws per second caused by no key
	BackgroundPattern BackgroundPattern
	Flood             float64 // extra surface_drawn events per second
	// MalformedEvery writes every Nth surface_drawn and dropped event
	// with data that does not decode (0: never).
	MalformedEvery int
	QueueDrop      QueueDrop
	CrashAfter     time.Duration
	HangAfter      time.Duration
	// StallAfter and StallFor stop the console for StallFor from
	// StallAfter after session start (StallFor 0: never): a repaint due
	// then is held back and drawn when it resumes, as QEMU under
	// kill -STOP / -CONT does.
	StallAfter    time.Duration
	StallFor      time.Duration
	StartupDelay  time.Duration
	SurfacesDelay time.Duration
	// InputsDelay is when, after session start, the SPICE inputs channel
	// is up; input events sent before are buffered (256 at most).
	InputsDelay time.Duration
	// Agent says whether the vdagent is connected from the start. When
	// AgentAfter is non-zero the agent starts disconnected and connects
	// after it.
	Agent         bool
	AgentAfter    time.Duration
	Seed          uint64
	SurfaceWidth  int
	SurfaceHeight int
	TruthFile     string
}

// Knob is one simulation setting. It can be given as a flag
// --fake-NAME or as an environment variable FAKERYLL_NAME, because the
// loadtest launches its "ryll" with ryll's own flags only; a flag wins.
type Knob struct {
	// Name is the knob's name, e.g. "draw-delay".
	Name string
	// Default is the value used when neither flag nor environment is set.
	Default string
	// Usage is a one-line description for --help and the README.
	Usage string
	set   func(*Config, string) error
}

// FlagName is the command-line flag for k, without dashes.
func (k Knob) FlagName() string { return "fake-" + k.Name }

// EnvName is the environment variable for k.
func (k Knob) EnvName() string {
	return "FAKERYLL_" + strings.ToUpper(strings.ReplaceAll(k.Name, "-", "_"))
}

// maxDuration bounds every duration knob so arithmetic on them cannot
// overflow and a typo such as 30000h is caught.
const maxDuration = 24 * time.Hour

func durationKnob(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, s string) error {
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		*dst(c) = d
		return nil
	}
}

// parseDuration accepts Go durations ("20ms", "1.5s", "0") between 0 and
// maxDuration, rounded to the microsecond because every wire timestamp is
// in microseconds.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 20ms: %w", err)
	}
	if d < 0 || d > maxDuration {
		return 0, fmt.Errorf("duration %v out of range 0..%v", d, maxDuration)
	}
	return d.Round(time.Microsecond), nil
}

func rateKnob(dst func(*Config) *float64, max float64) func(*Config, string) error {
	return func(c *Config, s string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > max {
			return fmt.Errorf("want a rate per second between 0 and %g", max)
		}
		*dst(c) = f
		return nil
	}
}

// countKnob parses a count 0..1000 (draws per burst and the like).
func countKnob(dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 1000 {
			return fmt.Errorf("want an integer between 0 and 1000")
		}
		*dst(c) = n
		return nil
	}
}

// choiceKnob parses one of a few named values, each spelled by its
// String method.
func choiceKnob[T fmt.Stringer](dst func(*Config) *T, want string, choices ...T) func(*Config, string) error {
	return func(c *Config, s string) error {
		for _, ch := range choices {
			if ch.String() == strings.TrimSpace(s) {
				*dst(c) = ch
				return nil
			}
		}
		return errors.New(want)
	}
}

// knobs is the single list every entry point (flags, environment,
// README, DefaultConfig) is derived from.
var knobs = []Knob{
	{Name: "protocol-version", Default: "1.2",
		Usage: "control-socket protocol version to speak (1.0 has no surface_drawn; before 1.2 extended scancodes pass verbatim)",
		set: func(c *Config, s string) error {
			v, err := ParseVersion(strings.TrimSpace(s))
			if err != nil {
				return err
			}
			if v.Major < 1 {
				return fmt.Errorf("major version must be at least 1")
			}
			c.ProtocolVersion = v
			return nil
		}},
	{Name: "draw-delay", Default: "20ms",
		Usage: "modelled keypress-to-screen time before the refresh tick",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.DrawDelay })},
	{Name: "draw-jitter", Default: "0",
		Usage: "uniform random extra delay 0..jitter added to each draw (seeded)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.DrawJitter })},
	{Name: "display-refresh", Default: "30ms",
		Usage: "display refresh period: draws land on the next tick after session start (0 = off)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.DisplayRefresh })},
	{Name: "draws-per-key", Default: "23",
		Usage: "surface_drawn events per key-down, like the boot-sector guest's 23 strips (0 = keys never draw)",
		set:   countKnob(func(c *Config) *int { return &c.DrawsPerKey })},
	{Name: "draw-spread", Default: "3ms",
		Usage: "time from a burst's first draw to its last, the draws evenly spaced (0 = all at once)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.DrawSpread })},
	{Name: "draw-tail", Default: "0",
		Usage: "extra delay of the last draw-tail-count draws of each key's burst (a Nagle stall gives about 40ms)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.DrawTail })},
	{Name: "draw-tail-count", Default: "1",
		Usage: "how many of the last draws of a burst draw-tail delays",
		set:   countKnob(func(c *Config) *int { return &c.DrawTailCount })},
	{Name: "ping-pattern", Default: "spice",
		Usage: "spice (3 PINGs at connect, then a pair every ~15 s), none, or a duration for a steady PING stream",
		set: func(c *Config, s string) error {
			switch s = strings.TrimSpace(s); s {
			case "spice":
				c.Ping = PingPattern{Mode: PingSpice}
				return nil
			case "none", "off":
				c.Ping = PingPattern{Mode: PingNone}
				return nil
			}
			d, err := parseDuration(s)
			if err != nil {
				return fmt.Errorf("want spice, none or a duration: %w", err)
			}
			if d < time.Millisecond {
				return fmt.Errorf("steady ping interval must be at least 1ms")
			}
			c.Ping = PingPattern{Mode: PingSteady, Interval: d}
			return nil
		}},
	{Name: "background-rate", Default: "0",
		Usage: "draws per second that no key caused, on refresh ticks (see background-pattern)",
		set:   rateKnob(func(c *Config) *float64 { return &c.BackgroundRate }, 10000)},
	{Name: "background-pattern", Default: "poisson",
		Usage: "how background draws come: poisson (seeded gaps), steady (every 1/rate) or bursty (repaint-like bursts at Poisson instants)",
		set: choiceKnob(func(c *Config) *BackgroundPattern { return &c.BackgroundPattern },
			"want poisson, steady or bursty", BackgroundPoisson, BackgroundSteady, BackgroundBursty)},
	{Name: "flood", Default: "0",
		Usage: "extra surface_drawn events per second, to overrun the 256-event queue",
		set:   rateKnob(func(c *Config) *float64 { return &c.Flood }, 1e7)},
	{Name: "malformed-every", Default: "0",
		Usage: "write every Nth surface_drawn and dropped event with data that does not decode, as a broken server would (0 = never)",
		set:   countKnob(func(c *Config) *int { return &c.MalformedEvery })},
	{Name: "queue-drop", Default: "newest",
		Usage: "event queue overflow model: newest (ryll's code) or oldest (the protocol document)",
		set: choiceKnob(func(c *Config) *QueueDrop { return &c.QueueDrop },
			"want newest or oldest", DropNewest, DropOldest)},
	{Name: "crash-after", Default: "0",
		Usage: "end the SPICE session after this long: socket closed and unlinked, exit 0 (0 = never)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.CrashAfter })},
	{Name: "hang-after", Default: "0",
		Usage: "stop answering and stop sending events after this long, socket left open (0 = never)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.HangAfter })},
	{Name: "stall-after", Default: "0",
		Usage: "when, after session start, the console stalls for stall-for (see stall-for)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.StallAfter })},
	{Name: "stall-for", Default: "0",
		Usage: "stop the console this long from stall-after: repaints due then are held back and drawn at once when it resumes, as QEMU under kill -STOP and -CONT (0 = never)",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.StallFor })},
	{Name: "startup-delay", Default: "0",
		Usage: "delay before the control socket appears",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.StartupDelay })},
	{Name: "surfaces-delay", Default: "0",
		Usage: "delay after session start before status.surfaces is non-empty; no draw lands before",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.SurfacesDelay })},
	{Name: "inputs-delay", Default: "0",
		Usage: "delay after session start before the SPICE inputs channel is up; input events sent earlier are buffered (256 at most) and delivered then",
		set:   durationKnob(func(c *Config) *time.Duration { return &c.InputsDelay })},
	{Name: "agent", Default: "false",
		Usage: "vdagent: false (never, like the boot-sector guest), a duration after which it connects, or true (connected from the start)",
		set: func(c *Config, s string) error {
			s = strings.TrimSpace(s)
			if b, err := strconv.ParseBool(s); err == nil {
				c.Agent, c.AgentAfter = b, 0
				return nil
			}
			d, err := parseDuration(s)
			if err != nil {
				return fmt.Errorf("want true, false or a duration: %w", err)
			}
			c.Agent, c.AgentAfter = d == 0, d
			return nil
		}},
	{Name: "seed", Default: "1",
		Usage: "seed for every random choice (jitter, ping gaps, noise), for reproducible runs",
		set: func(c *Config, s string) error {
			n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return fmt.Errorf("want an unsigned integer")
			}
			c.Seed = n
			return nil
		}},
	{Name: "surface-size", Default: "1024x768",
		Usage: "primary surface WIDTHxHEIGHT",
		set: func(c *Config, s string) error {
			ws, hs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
			w, err1 := strconv.Atoi(ws)
			h, err2 := strconv.Atoi(hs)
			if !ok || err1 != nil || err2 != nil || w < 1 || h < 1 || w > 8192 || h > 8192 {
				return fmt.Errorf("want WIDTHxHEIGHT, each 1..8192")
			}
			c.SurfaceWidth, c.SurfaceHeight = w, h
			return nil
		}},
	{Name: "truth-file", Default: "",
		Usage: "write one CSV row per key-down (press number, modelled first draw and end of repaint) when its first draw lands",
		set: func(c *Config, s string) error {
			c.TruthFile = s
			return nil
		}},
}

// Check reports whether s is a value k accepts, as LoadConfig would
// judge it, so that a launcher can refuse a bad knob before it starts
// anything.
func (k Knob) Check(s string) error {
	if k.set == nil {
		return nil
	}
	c := DefaultConfig()
	return k.set(&c, s)
}

// Knobs lists every simulation knob with its default, in a stable order.
func Knobs() []Knob { return append([]Knob(nil), knobs...) }

// DefaultConfig returns the configuration with every knob at its default.
func DefaultConfig() Config {
	var c Config
	for _, k := range knobs {
		if err := k.set(&c, k.Default); err != nil {
			panic(fmt.Sprintf("knob %s: bad default %q: %v", k.Name, k.Default, err))
		}
	}
	return c
}

// LoadConfig resolves every knob: a value in flags (keyed by knob name,
// holding only the flags actually given) wins over the environment, read
// through getenv, which wins over the default. All bad values are reported
// together, each naming the flag or variable it came from.
func LoadConfig(flags map[string]string, getenv func(string) (string, bool)) (Config, error) {
	c := DefaultConfig()
	var errs []error
	for name := range flags {
		if _, ok := lookupKnob(name); !ok {
			errs = append(errs, fmt.Errorf("unknown knob %q", name))
		}
	}
	for _, k := range knobs {
		val, src := "", ""
		if v, ok := flags[k.Name]; ok {
			val, src = v, "--"+k.FlagName()
		} else if getenv != nil {
			if v, ok := getenv(k.EnvName()); ok {
				val, src = v, k.EnvName()
			}
		}
		if src == "" {
			continue
		}
		if err := k.set(&c, val); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", src, val, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("bad simulation knob: %w", err)
	}
	return c, nil
}

func lookupKnob(name string) (Knob, bool) {
	for _, k := range knobs {
		if k.Name == name {
			return k, true
		}
	}
	return Knob{}, false
}
