// Package config reads the loadtest's configuration from the environment.
//
// The loadtest is driven by `go test`, which cannot share custom flags
// across packages, so every setting is an environment variable
// (LATENCY_*, plus the standard OS_* / OS_CLOUD read by the cloud
// package). Load validates everything at once and reports every problem
// in one error, before anything is provisioned: a run that fails after
// ten minutes of booting because of a typo in a duration wastes a cloud
// and a person's time.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/runid"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// Provider names where the console comes from.
type Provider string

// The console providers.
const (
	// ProviderFake is the openstack provider against a fake cloud, with
	// fakeryll in ryll's place: a laptop needs nothing but Go. The
	// composition root (latency_test.go, through fixtures/fakechain)
	// stands the fakes in and translates it to ProviderOpenStack before
	// anything is provisioned; the rest of the product never sees it.
	ProviderFake Provider = "fake"
	// ProviderOpenStack boots a server and asks Nova for a spice-direct
	// console.
	ProviderOpenStack Provider = "openstack"
	// ProviderURL passes a .vv URL (for example a Kerbside console URL)
	// to ryll's --url.
	ProviderURL Provider = "url"
	// ProviderFile passes a local .vv file to ryll's --file.
	ProviderFile Provider = "file"
	// ProviderDirect passes host:port to ryll's --direct.
	ProviderDirect Provider = "direct"
	// ProviderQemu boots the repaint-on-key guest (harness/guest) in a
	// local QEMU with SPICE: a real SPICE server and guest, no cloud.
	ProviderQemu Provider = "qemu"
	// ProviderAttached is the record of a run attached to a ryll that was
	// already running (LATENCY_RYLL_SOCKET): its console is ryll's.
	ProviderAttached Provider = "attached"
	// ProviderAuto is the default: qemu where QEMU is installed (the real
	// lane), otherwise fake. Load resolves it; Config never holds it.
	ProviderAuto Provider = "auto"
)

// Default sanity ranges, in seconds. Keypress-to-screen through a
// healthy console lands well inside 1 ms..500 ms. PING intervals
// alternate near 0 and near 15 s (spice-server's pair of PINGs every
// 15 s), so their range must admit both.
const (
	DefaultKeypressMin = 0.001
	DefaultKeypressMax = 0.5
	DefaultPingMin     = 0.0
	DefaultPingMax     = 20.0
)

// Config is the validated configuration of one loadtest run.
type Config struct {
	// Provider is where the console comes from.
	Provider Provider
	// AutoReason says why LATENCY_PROVIDER=auto (the default) chose
	// Provider; empty when the user named a provider.
	AutoReason string
	// Qemu is the QEMU binary of the qemu provider (LATENCY_QEMU).
	Qemu string
	// RyllSocket attaches to a running ryll's control socket instead of
	// provisioning a console and starting ryll (Provider is then
	// ProviderAttached).
	RyllSocket string
	// Requested is LATENCY_PROVIDER as the user gave it, for the records:
	// it differs from Provider only when the composition root translated
	// the fake provider to the openstack provider against a fake cloud.
	Requested Provider
	// Console is the target for the url, file and direct providers.
	// For url it may carry a token: it is handled as a secret by the
	// caller and never printed by this package.
	Console string

	// Ryll is the ryll binary (looked up in PATH when it has no slash).
	// Empty means "ryll"; with the fake provider the composition root
	// builds fakeryll from this module instead.
	Ryll        string
	RyllVerbose bool
	// Transcript asks for a transcript of the control socket
	// (LATENCY_TRANSCRIPT), secrets redacted, for troubleshooting.
	Transcript bool

	ResultsDir string
	RunID      string
	Samples    int
	Cadence    time.Duration
	KeyHold    time.Duration
	Jitter     time.Duration
	Window     time.Duration
	// Quiet, Settle, MaxMisses and MaxContamination are the measurement's
	// rules against taking another press's draw (harness/measure); zero
	// Quiet means the measurement derives it from the window.
	Quiet            time.Duration
	Settle           time.Duration
	MaxMisses        int
	MaxContamination float64
	MaxDuration      time.Duration
	ReadyTimeout     time.Duration
	Scancode         uint16

	// Metric is what one sample measures, in the measurement's own
	// vocabulary (LATENCY_METRIC takes its short names: keypress, repaint,
	// ping).
	Metric measure.Metric
	// ExpectP50 bounds the median when set (ExpectP50Set): a guard for a
	// lane whose latency is known, such as the real SPICE lane in CI.
	ExpectP50Min, ExpectP50Max float64
	ExpectP50Set               bool
	SanityMin                  float64
	SanityMax                  float64

	// Consoles is how many consoles one run measures at once; Parallel
	// bounds how many are provisioned and started at the same time.
	Consoles int
	Parallel int

	Cloud Cloud

	// AB, when set, measures a second console source for the same guest
	// (the B leg) against the first, in alternating blocks.
	AB *AB
}

// AB is the configuration of an A/B run.
type AB struct {
	// BProvider and BConsole are the B leg's source, of the same forms as
	// Provider and Console.
	BProvider Provider
	BConsole  string
	// BProxy puts our own SPICE proxy in front of the qemu guest for the
	// B leg ("nodelay", "nagle", "delay:DUR"); empty for none.
	BProxy string
	// SameServer: the B leg is the A leg's own server through its
	// spice-direct console (Kerbside), A being that server's direct leg
	// (LATENCY_OPENSTACK_CONSOLE=direct): one server, both ways.
	SameServer bool
	// Block is how many presses a leg measures before the other's turn.
	Block int
	// MaxAdded is the most B may add to a median before the run fails
	// (when the difference is significant).
	MaxAdded time.Duration
}

// Leg returns the configuration of one leg of an A/B run: b selects the
// B leg (its provider and console, and run id <run>-b; A gets <run>-a).
func (c *Config) Leg(b bool) *Config {
	out := *c
	out.AB = nil
	if !b {
		out.RunID = c.RunID + "-a"
		return &out
	}
	out.RunID = c.RunID + "-b"
	out.Provider, out.Requested, out.Console = c.AB.BProvider, c.AB.BProvider, c.AB.BConsole
	if c.AB.SameServer {
		out.Provider, out.Requested, out.Console = c.Provider, c.Requested, ""
		out.Cloud.Console = "spice-direct"
	}
	return &out
}

// Cloud holds the OpenStack settings used by the openstack provider.
type Cloud struct {
	Image       string
	ImageURL    string
	Flavor      string
	Network     string
	BootTimeout time.Duration
	KeepServer  bool
	// Console is LATENCY_OPENSTACK_CONSOLE: spice-direct (Kerbside's
	// console) or direct (the hypervisor's address, for admins).
	Console string
}

// Var documents one environment variable.
type Var struct {
	Name    string
	Default string
	Help    string
}

// Vars lists every LATENCY_* variable with its default, in the order the
// README's table shows them. A test keeps the README in step with it.
var Vars = []Var{
	{"LATENCY_PROVIDER", "auto", "where the console comes from: qemu (a local guest, real SPICE), fake (simulated), openstack, url, file or direct; auto is qemu where " + DefaultQemu + " is installed, else fake"},
	{"LATENCY_CONSOLE", "", "the target for url (a .vv URL), file (a .vv path) and direct (host:port[:tls_port], [ipv6]:port)"},
	{"LATENCY_RYLL", "ryll (fake: fakeryll, built automatically; qemu: ryll if installed, else fakeryll's real SPICE client)", "the ryll binary"},
	{"LATENCY_QEMU", DefaultQemu, "qemu: the QEMU binary"},
	{"LATENCY_RYLL_SOCKET", "", "the control socket of a ryll that is already running: attach to it (its console is whatever it shows); no console is provisioned and no ryll is started or stopped"},
	{"LATENCY_RYLL_VERBOSE", "0", "1 passes -v to ryll (debug logging into ryll-<run>.log)"},
	{"LATENCY_TRANSCRIPT", "0", "1 writes every control-socket line sent and received, secrets redacted, to latency-<run>-transcript.ndjson"},
	{"LATENCY_RESULTS_DIR", "results", "where the CSV, sidecar, ryll log and junit.xml go"},
	{"LATENCY_RUN_ID", "UTC time + random suffix", "names the run's files and server"},
	{"LATENCY_METRIC", measure.KeypressToScreen.Short(), "keypress (key to the first draw), repaint (key to the last draw of the repaint) or ping (PING interval from latency events); both keypress figures are always measured"},
	{"LATENCY_SAMPLES", fmt.Sprint(defaults.Samples), "samples to collect"},
	{"LATENCY_CADENCE", human(defaults.Cadence), "time from one key press to the next (before jitter); the measurement may wait longer for a quiet gap"},
	{"LATENCY_CADENCE_JITTER", human(defaults.Jitter), "random extra delay in [0, jitter) added to each gap, so presses do not phase-lock with the guest's display refresh"},
	{"LATENCY_KEY_HOLD", human(defaults.Hold), "time between key down and key up"},
	{"LATENCY_WINDOW", "min(cadence, " + human(measure.DefaultMaxWindow) + ")", "how long after a key press its first draw may come; none in the window is a miss (late if a draw comes after it)"},
	{"LATENCY_QUIET", "the window, at least 300ms, at most " + human(measure.DefaultQuiet), "no draw at all for this long, after the previous window, before the next press: a late draw can never be taken for a later press"},
	{"LATENCY_SETTLE", human(measure.DefaultSettle), "a repaint ends when no draw has come for this long (the repaint metric's last draw)"},
	{"LATENCY_MAX_MISSES", fmt.Sprint(measure.DefaultMaxMisses), "misses in a row that stop the run early (no draw follows a key)"},
	{"LATENCY_MAX_CONTAMINATION", fmt.Sprint(measure.DefaultMaxContamination), "largest estimated share of samples that may come from draws no key caused; above it the run fails"},
	{"LATENCY_MAX_DURATION", human(defaults.MaxDuration), "the run stops after this long even if samples are missing"},
	{"LATENCY_READY_TIMEOUT", "60s", "how long ryll has to answer hello and show a surface"},
	{"LATENCY_SCANCODE", "0x39", "the key pressed (AT set-1 make code; 0x39 is space)"},
	{"LATENCY_SANITY_MIN", "keypress, repaint: 0.001, ping: 0", "smallest sane sample, seconds"},
	{"LATENCY_SANITY_MAX", "keypress, repaint: 0.5, ping: 20", "largest sane sample, seconds"},
	{"LATENCY_EXPECT_P50", "", "min-max in seconds (e.g. 0.005-0.05): the Sanity check also fails when the median is outside it"},
	{"LATENCY_CONSOLES", "1", "consoles measured at once in one run (see Many consoles)"},
	{"LATENCY_PARALLEL", "4", "consoles provisioned and started at the same time"},
	{"LATENCY_B_PROVIDER", "", "A/B: where the B leg's console comes from (same forms as LATENCY_PROVIDER; default the A leg's provider). Setting any LATENCY_B_* runs the A/B"},
	{"LATENCY_B_CONSOLE", "", "A/B: the B leg's target, of the same forms as LATENCY_CONSOLE (e.g. a Kerbside .vv URL for the server whose hypervisor port A measures)"},
	{"LATENCY_B_PROXY", "", "A/B with qemu: the B leg goes through a SPICE proxy of our own in front of the same guest: nodelay, nagle (one write per message, no TCP_NODELAY) or delay:DUR"},
	{"LATENCY_AB_BLOCK", "10", "A/B: presses per block; the legs alternate ABAB... in blocks (ryll reconnected per block) until each has LATENCY_SAMPLES samples"},
	{"LATENCY_AB_MAX_ADDED", "10ms", "A/B: the run fails when B adds more than this to the median of either keypress figure and the difference is significant"},
	{"LATENCY_IMAGE", "uefi-latency-guest", "openstack: Glance image name"},
	{"LATENCY_IMAGE_URL", DefaultImageURL, "openstack: where to fetch the image when it is missing (`none`: never upload)"},
	{"LATENCY_FLAVOR", "vdi-tiny", "openstack: flavor name (created if missing and allowed)"},
	{"LATENCY_NETWORK", "public1", "openstack: network name"},
	{"LATENCY_BOOT_TIMEOUT", "10m", "openstack: how long the server has to become ACTIVE"},
	{"LATENCY_KEEP_SERVER", "0", "openstack: 1 keeps the server after the run"},
	{"LATENCY_OPENSTACK_CONSOLE", "spice-direct", "openstack: `spice-direct` measures through Kerbside (Nova 2025.1+); `direct` measures the server's direct leg, the hypervisor's address behind a console token (admin only; spice-html5 on older clouds)"},
}

// defaults are the measurement's own defaults: the loadtest's defaults
// are derived from them, not typed again.
var defaults = measure.DefaultConfig(measure.KeypressToScreen)

// human prints a duration the way people write one (2s, 200ms, 10m).
func human(d time.Duration) string {
	s := d.String()
	for _, z := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, z) {
			s = strings.TrimSuffix(s, z[1:])
		}
	}
	return s
}

// maxConsoles bounds one run: each console is a ryll process and a
// server.
const maxConsoles = 500

// DefaultImageURL is where the test guest image is published.
const DefaultImageURL = "https://images.shakenfist.com/testimages/uefi-latency-guest.qcow2"

// Load reads the configuration through getenv (os.Getenv in production,
// a map in tests) and validates it. The error lists every problem.
func Load(getenv func(string) string) (*Config, error) {
	p := &parser{getenv: getenv}
	c := &Config{
		Provider:     Provider(p.str("LATENCY_PROVIDER", string(ProviderAuto))),
		Qemu:         p.str("LATENCY_QEMU", DefaultQemu),
		Console:      getenv("LATENCY_CONSOLE"),
		Ryll:         getenv("LATENCY_RYLL"),
		RyllVerbose:  p.boolean("LATENCY_RYLL_VERBOSE"),
		Transcript:   p.boolean("LATENCY_TRANSCRIPT"),
		ResultsDir:   p.str("LATENCY_RESULTS_DIR", "results"),
		RunID:        getenv("LATENCY_RUN_ID"),
		Metric:       p.metric("LATENCY_METRIC", defaults.Metric),
		Samples:      p.positiveInt("LATENCY_SAMPLES", defaults.Samples),
		Cadence:      p.duration("LATENCY_CADENCE", defaults.Cadence, true),
		Jitter:       p.duration("LATENCY_CADENCE_JITTER", defaults.Jitter, false),
		KeyHold:      p.duration("LATENCY_KEY_HOLD", defaults.Hold, true),
		MaxDuration:  p.duration("LATENCY_MAX_DURATION", defaults.MaxDuration, true),
		Quiet:        p.duration("LATENCY_QUIET", 0, true),
		Settle:       p.duration("LATENCY_SETTLE", defaults.Settle, true),
		MaxMisses:    p.positiveInt("LATENCY_MAX_MISSES", defaults.MaxMisses),
		ReadyTimeout: p.duration("LATENCY_READY_TIMEOUT", 60*time.Second, true),
		Scancode:     p.scancode("LATENCY_SCANCODE", 0x39),
		Consoles:     p.positiveInt("LATENCY_CONSOLES", 1),
		Parallel:     p.positiveInt("LATENCY_PARALLEL", 4),
		Cloud: Cloud{
			Image:       p.str("LATENCY_IMAGE", "uefi-latency-guest"),
			ImageURL:    p.strAllowEmpty("LATENCY_IMAGE_URL", DefaultImageURL),
			Flavor:      p.str("LATENCY_FLAVOR", "vdi-tiny"),
			Network:     p.str("LATENCY_NETWORK", "public1"),
			BootTimeout: p.duration("LATENCY_BOOT_TIMEOUT", 10*time.Minute, true),
			KeepServer:  p.boolean("LATENCY_KEEP_SERVER"),
			Console:     p.str("LATENCY_OPENSTACK_CONSOLE", "spice-direct"),
		},
	}
	c.RyllSocket = strings.TrimSpace(getenv("LATENCY_RYLL_SOCKET"))
	switch {
	case c.RyllSocket != "":
		if c.Provider != ProviderAuto {
			p.failf("LATENCY_RYLL_SOCKET attaches to a ryll that already runs, whose console is its own: leave LATENCY_PROVIDER unset (it is %s)", c.Provider)
		}
		if st, err := os.Stat(c.RyllSocket); err != nil {
			p.failf("LATENCY_RYLL_SOCKET=%q: %v", c.RyllSocket, err)
		} else if st.Mode()&os.ModeSocket == 0 {
			p.failf("LATENCY_RYLL_SOCKET=%q is not a socket: want ryll's --control-socket path", c.RyllSocket)
		}
		c.Provider = ProviderAttached
	case c.Provider == ProviderAuto:
		c.Provider, c.AutoReason = resolveAuto(getenv, c.Qemu)
	}
	if c.Cloud.Console != "spice-direct" && c.Cloud.Console != "direct" {
		p.failf("LATENCY_OPENSTACK_CONSOLE=%q: want spice-direct (through Kerbside) or direct (the hypervisor's address; admin only)", c.Cloud.Console)
	}
	c.Requested = c.Provider
	c.Window = p.duration("LATENCY_WINDOW", min(c.Cadence, measure.DefaultMaxWindow), true)
	c.MaxContamination = p.float("LATENCY_MAX_CONTAMINATION", defaults.MaxContamination)
	if c.MaxContamination <= 0 || c.MaxContamination > 1 {
		p.failf("LATENCY_MAX_CONTAMINATION=%g: want a share in (0, 1], e.g. 0.01 for 1%%", c.MaxContamination)
	}
	if c.RunID == "" {
		c.RunID = runid.New(time.Now())
	} else if err := runid.ValidateLen(c.RunID, maxRunID); err != nil {
		p.failf("LATENCY_RUN_ID: %v (it names files and servers, and leaves room for -c<i> and -p<k>)", err)
	}

	switch {
	case c.Metric.Keypress():
		c.SanityMin = p.float("LATENCY_SANITY_MIN", DefaultKeypressMin)
		c.SanityMax = p.float("LATENCY_SANITY_MAX", DefaultKeypressMax)
	case c.Metric == measure.PingInterval:
		c.SanityMin = p.float("LATENCY_SANITY_MIN", DefaultPingMin)
		c.SanityMax = p.float("LATENCY_SANITY_MAX", DefaultPingMax)
	}
	if v := strings.TrimSpace(getenv("LATENCY_EXPECT_P50")); v != "" {
		lo, hi, ok := strings.Cut(v, "-")
		a, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
		if !ok || err1 != nil || err2 != nil || a < 0 || a >= b {
			p.failf("LATENCY_EXPECT_P50=%q: want min-max in seconds with 0 <= min < max, e.g. 0.005-0.05", v)
		} else {
			c.ExpectP50Min, c.ExpectP50Max, c.ExpectP50Set = a, b, true
		}
	}
	if c.SanityMin < 0 || c.SanityMin >= c.SanityMax {
		p.failf("LATENCY_SANITY_MIN=%g, LATENCY_SANITY_MAX=%g: want 0 <= min < max (seconds)", c.SanityMin, c.SanityMax)
	}

	switch c.Provider {
	case ProviderAttached:
		if c.Console != "" {
			p.failf("LATENCY_CONSOLE is set but LATENCY_RYLL_SOCKET attaches to a running ryll: unset one of them")
		}
	case ProviderFake, ProviderOpenStack, ProviderQemu:
		if c.Console != "" {
			p.failf("LATENCY_CONSOLE is set but LATENCY_PROVIDER=%s does not use it: unset it, or set LATENCY_PROVIDER to url, file or direct", c.Provider)
		}
	case ProviderURL:
		if !strings.HasPrefix(c.Console, "http://") && !strings.HasPrefix(c.Console, "https://") {
			p.failf("LATENCY_PROVIDER=url needs LATENCY_CONSOLE=http(s)://... (a URL that answers with a .vv file; value not shown)")
		}
	case ProviderFile:
		if c.Console == "" {
			p.failf("LATENCY_PROVIDER=file needs LATENCY_CONSOLE=/path/to/console.vv")
		} else if st, err := os.Stat(c.Console); err != nil {
			p.failf("LATENCY_CONSOLE=%q: %v", c.Console, err)
		} else if st.IsDir() {
			p.failf("LATENCY_CONSOLE=%q is a directory: want a .vv file", c.Console)
		}
	case ProviderDirect:
		if _, err := address.ParseDirect(c.Console); err != nil {
			p.failf("LATENCY_PROVIDER=direct needs LATENCY_CONSOLE=host:port or host:port:tls_port: %v", err)
		}
	default:
		p.failf("LATENCY_PROVIDER=%q: want auto, qemu, fake, openstack, url, file or direct", c.Provider)
	}

	if c.Cadence > 0 && c.KeyHold >= c.Cadence {
		p.failf("LATENCY_KEY_HOLD=%s must be shorter than LATENCY_CADENCE=%s", c.KeyHold, c.Cadence)
	}
	if c.Metric.Keypress() && c.Cadence > 0 && c.Window > 0 && c.Samples > 0 {
		mc := c.Measure()
		if c.Quiet != 0 && c.Quiet <= c.Settle {
			p.failf("LATENCY_QUIET=%s must be longer than LATENCY_SETTLE=%s: the quiet gap must outlast the gaps inside a repaint", c.Quiet, c.Settle)
		}
		// Presses are at least this far apart, so this many samples cannot
		// be collected in time even with no miss.
		least := time.Duration(c.Samples) * mc.MinPressInterval()
		if least > c.MaxDuration {
			p.failf("LATENCY_SAMPLES=%d needs at least %s (each press waits max(LATENCY_CADENCE=%s, LATENCY_WINDOW+quiet gap=%s)), more than LATENCY_MAX_DURATION=%s: raise LATENCY_MAX_DURATION to at least %s, or take fewer samples",
				c.Samples, least, c.Cadence, mc.WithDefaults().Window+mc.WithDefaults().Quiet, c.MaxDuration,
				(least + time.Duration(c.Samples)*c.Jitter/2 + c.ReadyTimeout).Round(time.Second))
		}
	}
	if c.Consoles > 1 && c.Provider != ProviderOpenStack && c.Provider != ProviderFake && c.Provider != ProviderQemu {
		p.failf("LATENCY_CONSOLES=%d with LATENCY_PROVIDER=%s: that provider names one console, and a SPICE server serves one client; use openstack or fake for several", c.Consoles, c.Provider)
	}
	if c.Consoles > maxConsoles {
		p.failf("LATENCY_CONSOLES=%d: at most %d in one run; spread larger loads over several machines (README, Many consoles)", c.Consoles, maxConsoles)
	}
	if c.Ryll != "" && strings.ContainsRune(c.Ryll, os.PathSeparator) {
		if st, err := os.Stat(c.Ryll); err != nil {
			p.failf("LATENCY_RYLL=%q: %v", c.Ryll, err)
		} else if st.IsDir() || st.Mode()&0o111 == 0 {
			p.failf("LATENCY_RYLL=%q is not an executable file", c.Ryll)
		}
	}
	loadAB(p, getenv, c)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// loadAB reads the LATENCY_B_* and LATENCY_AB_* settings: any B setting
// turns the A/B on.
func loadAB(p *parser, getenv func(string) string, c *Config) {
	bp, bc, bx := strings.TrimSpace(getenv("LATENCY_B_PROVIDER")), getenv("LATENCY_B_CONSOLE"), strings.TrimSpace(getenv("LATENCY_B_PROXY"))
	block := p.positiveInt("LATENCY_AB_BLOCK", 10)
	maxAdded := p.duration("LATENCY_AB_MAX_ADDED", 10*time.Millisecond, true)
	if bp == "" && bc == "" && bx == "" {
		return
	}
	ab := &AB{BProvider: Provider(bp), BConsole: bc, BProxy: bx, Block: block, MaxAdded: maxAdded}
	if ab.BProvider == "" {
		ab.BProvider = c.Provider
	}
	c.AB = ab
	if !c.Metric.Keypress() {
		p.failf("the A/B (LATENCY_B_*) compares keypress figures: LATENCY_METRIC=%s cannot be compared that way", c.Metric.Short())
	}
	if c.Consoles > 1 {
		p.failf("the A/B (LATENCY_B_*) measures one guest two ways: LATENCY_CONSOLES=%d is not supported with it", c.Consoles)
	}
	if bx != "" {
		if _, err := spiceproxy.Parse(bx); err != nil {
			p.failf("LATENCY_B_PROXY: %v", err)
		}
	}
	if c.Metric.Keypress() && c.Cadence > 0 && c.Samples > 0 && 2*time.Duration(c.Samples)*c.Measure().MinPressInterval() > c.MaxDuration {
		p.failf("the A/B takes LATENCY_SAMPLES=%d per leg, at least %s for both legs, more than LATENCY_MAX_DURATION=%s: raise it or take fewer samples",
			c.Samples, 2*time.Duration(c.Samples)*c.Measure().MinPressInterval(), c.MaxDuration)
	}
	switch {
	case bx != "":
		if c.Provider != ProviderQemu {
			p.failf("LATENCY_B_PROXY needs LATENCY_PROVIDER=qemu (our proxy in front of our own guest); for another console point LATENCY_B_CONSOLE at the proxied console instead")
		}
		if bp != "" || bc != "" {
			p.failf("LATENCY_B_PROXY makes the B leg itself: leave LATENCY_B_PROVIDER and LATENCY_B_CONSOLE unset")
		}
		ab.BProvider = ProviderQemu
	case (ab.BProvider == ProviderOpenStack || ab.BProvider == ProviderFake) && (c.Provider == ProviderOpenStack || c.Provider == ProviderFake):
		// One server, both ways: A its direct leg, B its spice-direct
		// console through Kerbside.
		if bc != "" {
			p.failf("LATENCY_B_PROVIDER=%s reaches the A leg's own server: leave LATENCY_B_CONSOLE unset", ab.BProvider)
		}
		if c.Cloud.Console != "direct" {
			p.failf("LATENCY_B_PROVIDER=%s measures the server through Kerbside against its direct leg: set LATENCY_OPENSTACK_CONSOLE=direct for the A leg", ab.BProvider)
		}
		ab.SameServer = true
	case ab.BProvider == ProviderQemu || ab.BProvider == ProviderFake || ab.BProvider == ProviderOpenStack:
		p.failf("LATENCY_B_PROVIDER=%s would boot another guest; the B leg must reach the same guest as A: use url, file or direct (or LATENCY_B_PROXY with qemu, or openstack with an openstack A leg)", ab.BProvider)
	default:
		switch ab.BProvider {
		case ProviderURL:
			if !strings.HasPrefix(bc, "http://") && !strings.HasPrefix(bc, "https://") {
				p.failf("LATENCY_B_PROVIDER=url needs LATENCY_B_CONSOLE=http(s)://... (value not shown)")
			}
		case ProviderFile:
			if bc == "" {
				p.failf("LATENCY_B_PROVIDER=file needs LATENCY_B_CONSOLE=/path/to/console.vv")
			} else if st, err := os.Stat(bc); err != nil || st.IsDir() {
				p.failf("LATENCY_B_CONSOLE=%q: want a readable .vv file", bc)
			}
		case ProviderDirect:
			if _, err := address.ParseDirect(bc); err != nil {
				p.failf("LATENCY_B_PROVIDER=direct needs LATENCY_B_CONSOLE=host:port or host:port:tls_port: %v", err)
			}
		default:
			p.failf("LATENCY_B_PROVIDER=%q: want url, file or direct", ab.BProvider)
		}
	}
}

// DefaultQemu is the QEMU the qemu provider runs, looked up in PATH.
const DefaultQemu = "qemu-system-x86_64"

// resolveAuto picks the provider a newcomer should meet: the real SPICE
// lane when QEMU is installed (looked up in the PATH getenv gives, so a
// test's environment decides), the fake chain otherwise, and says why.
func resolveAuto(getenv func(string) string, qemu string) (Provider, string) {
	if bin, ok := lookPath(qemu, getenv("PATH")); ok {
		return ProviderQemu, fmt.Sprintf("LATENCY_PROVIDER is not set and QEMU is installed (%s): measuring a real SPICE session with a local guest; set LATENCY_PROVIDER=fake for the simulator", bin)
	}
	return ProviderFake, fmt.Sprintf("LATENCY_PROVIDER is not set and %s is not installed: running the fake chain (simulated SPICE); apt-get install -y qemu-system-x86 for the real lane", qemu)
}

// lookPath finds name in path (a PATH value), as exec.LookPath does for
// the process's own PATH.
func lookPath(name, path string) (string, bool) {
	if strings.ContainsRune(name, os.PathSeparator) {
		st, err := os.Stat(name)
		return name, err == nil && !st.IsDir() && st.Mode()&0o111 != 0
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// Measure is the measurement's configuration for these settings (no
// callbacks, logger or sources: the loadtest adds those).
func (c *Config) Measure() measure.Config {
	mc := measure.DefaultConfig(c.Metric)
	mc.Samples = c.Samples
	mc.MaxDuration = c.MaxDuration
	mc.Cadence = c.Cadence
	mc.Jitter = c.Jitter
	mc.Hold = c.KeyHold
	mc.Window = c.Window
	mc.Quiet = c.Quiet
	mc.Settle = c.Settle
	mc.MaxMisses = c.MaxMisses
	mc.MaxContamination = c.MaxContamination
	return mc
}

// maxRunID leaves room, within runid.MaxLen, for the console and pod
// suffixes (-p<k>-c<i>) a configured run id may still get.
const maxRunID = 48
