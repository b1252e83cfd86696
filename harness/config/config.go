// Package config reads the loadtest's configuration from the environment.
//
// The loadtest is driven by `go test`, which cannot share custom flags
// across packages, so every setting is an environment variable
// (LATENCY_*, plus the standard OS_* / OS_CLOUD read by the cloud
// package). Load judges everything at once and reports every problem in
// one error, before anything is provisioned: a run that fails after ten
// minutes of booting because of a typo in a duration wastes a cloud and a
// person's time. That includes the measurement's own rules (measure
// exports them, and Load applies them), and names nobody knows: a
// misspelt sample count must not run sixty samples without a word.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/link"
	"github.com/shakenfist/kerbside-latency/harness/measure"
	"github.com/shakenfist/kerbside-latency/harness/runid"
	"github.com/shakenfist/kerbside-latency/harness/secret"
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
	// Console is the target of the url, file and direct providers,
	// parsed once (LATENCY_CONSOLE); zero for the others.
	Console Target

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

	// Measure is the measurement's settings (metric, samples, cadence,
	// window, quiet gap, settle, limits), every zero field defaulted and
	// judged by the measurement's own rules, once, here: the one value
	// the loadtest measures with and records. The loadtest adds only its
	// callbacks and logger.
	Measure measure.Config

	ReadyTimeout time.Duration
	Scancode     uint16
	// Activity is what the qemu provider's guest does by itself below
	// the key's region (LATENCY_ACTIVITY, one of guest.Activities; idle
	// by default). The key's region is Measure.KeyRegion.
	Activity string

	// ExpectP50 bounds the median when set (ExpectP50Set): a guard for a
	// lane whose latency is known, such as the real SPICE lane in CI.
	ExpectP50Min, ExpectP50Max float64
	ExpectP50Set               bool
	SanityMin                  float64
	SanityMax                  float64

	// Link is the link (LATENCY_LINK) between the client and the console
	// it dials, on every channel and both ways, parsed once; nil for none
	// (the console is dialled as it is). An A/B leg's Config holds that
	// leg's link (Leg).
	Link *link.Profile

	// Consoles is how many consoles one run measures at once; Parallel
	// bounds how many are provisioned and started at the same time.
	Consoles int
	Parallel int

	Cloud Cloud

	// AB, when set, measures a second console source for the same guest
	// (the B leg) against the first, in alternating blocks.
	AB *AB
	// Ramp, when set, runs a load ramp (LATENCY_LOAD): the console
	// measured at each step of busy sessions beside it.
	Ramp *Ramp
}

// Target is a console the user names (LATENCY_CONSOLE,
// LATENCY_B_CONSOLE), parsed once by Load into what the rest of the
// loadtest hands ryll: exactly one field is set for the url, file and
// direct providers, none for the others.
type Target struct {
	// URL answers with a .vv file (url). It carries a token, so it is a
	// secret.URL: printing it shows only its scheme and host.
	URL secret.URL
	// File is a local .vv file (file).
	File string
	// Direct is a SPICE server's address (direct).
	Direct address.Direct
}

// IsZero reports whether t names no console.
func (t Target) IsZero() bool { return t.URL.IsZero() && t.File == "" && t.Direct.IsZero() }

// AB is the configuration of an A/B run.
type AB struct {
	// BProvider and BConsole are the B leg's source, of the same forms as
	// Provider and Console.
	BProvider Provider
	BConsole  Target
	// BProxy puts our own SPICE proxy in front of the qemu guest for the
	// B leg (LATENCY_B_PROXY: nodelay, nagle, delay:DUR), parsed once;
	// the zero Mode for none.
	BProxy spiceproxy.Mode
	// SameServer: the B leg is the A leg's own server through its
	// spice-direct console (Kerbside), A being that server's direct leg
	// (LATENCY_OPENSTACK_CONSOLE=direct): one server, both ways.
	SameServer bool
	// SameGuest: the B leg is the A leg's qemu guest reached again, only
	// through another link (LATENCY_B_LINK set alone with qemu).
	SameGuest bool
	// BLink is the B leg's link: LATENCY_B_LINK, or LATENCY_LINK's when
	// that is unset (both legs cross the same kind of link); nil for
	// none. With BProxy the link sits in front of the proxy.
	BLink *link.Profile
	// BLinkSet says LATENCY_B_LINK was given.
	BLinkSet bool
	// Block is how many presses a leg measures before the other's turn.
	Block int
	// MaxAdded is the threshold of the A/B's equivalence check: a figure
	// passes only when the upper end of the interval of B − A is below it.
	MaxAdded time.Duration
}

// Proxied reports whether the B leg goes through our own SPICE proxy.
func (ab *AB) Proxied() bool { return ab.BProxy != spiceproxy.Mode{} }

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
	out.Link = c.AB.BLink
	if c.AB.SameServer {
		out.Provider, out.Requested, out.Console = c.Provider, c.Requested, Target{}
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
	// LoadImage is LATENCY_LOAD_IMAGE: the busy servers' image (Image
	// by default).
	LoadImage string
}

// DefaultImageURL is where the test guest image is published.
const DefaultImageURL = "https://images.shakenfist.com/testimages/uefi-latency-guest.qcow2"

// DefaultQemu is the QEMU the qemu provider runs, looked up in PATH.
const DefaultQemu = "qemu-system-x86_64"

// maxConsoles bounds one run: each console is a ryll process and a
// server.
const maxConsoles = 500

// maxRunID leaves room, within runid.MaxLen, for the console and pod
// suffixes (-p<k>-c<i>) a configured run id may still get.
const maxRunID = 48

// Rule is a further check of the environment that Load runs with its
// own, so that its problems are reported in the same one message: the
// composition root passes the fakes' (fixtures/fakechain checks the
// FAKERYLL_* names, which this package may not know). Each string is
// one problem, written as Load writes its own (Unknown for a name).
type Rule func(environ []string) []string

// Load reads the configuration from environ (os.Environ() in
// production; KEY=VALUE entries, the first of a name winning as with
// os.Getenv) and judges it, with rules, before anything is provisioned.
// The error lists every problem.
func Load(environ []string, rules ...Rule) (*Config, error) {
	p := newParser(environ)
	c := &Config{}
	loadRun(p, c)
	loadSource(p, c)
	loadMeasure(p, c)
	loadActivity(p, c)
	loadSanity(p, c)
	loadConsoles(p, c)
	c.Cloud = loadCloud(p)
	loadLoadImage(p, c)
	loadLink(p, c)
	loadAB(p, c)
	loadLoad(p, c)
	p.unknownNames(environ)
	for _, rule := range rules {
		p.errs = append(p.errs, rule(environ)...)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// loadRun reads what names and records the run and how ryll is run.
func loadRun(p *parser, c *Config) {
	c.Ryll = p.raw("LATENCY_RYLL")
	c.RyllVerbose = p.boolean("LATENCY_RYLL_VERBOSE")
	c.Transcript = p.boolean("LATENCY_TRANSCRIPT")
	c.ResultsDir = p.str("LATENCY_RESULTS_DIR", "results")
	c.ReadyTimeout = p.duration("LATENCY_READY_TIMEOUT", 60*time.Second, true)
	c.Scancode = p.scancode("LATENCY_SCANCODE", 0x39)
	c.RunID = p.raw("LATENCY_RUN_ID")
	if c.RunID == "" {
		c.RunID = runid.New(time.Now())
	} else if err := runid.ValidateLen(c.RunID, maxRunID); err != nil {
		p.failf("LATENCY_RUN_ID: %v (it names files and servers, and leaves room for -c<i> and -p<k>)", err)
	}
	if c.Ryll != "" && strings.ContainsRune(c.Ryll, os.PathSeparator) {
		if st, err := os.Stat(c.Ryll); err != nil {
			p.failf("LATENCY_RYLL=%q: %v", c.Ryll, err)
		} else if st.IsDir() || st.Mode()&0o111 == 0 {
			p.failf("LATENCY_RYLL=%q is not an executable file", c.Ryll)
		}
	}
}

// loadSource reads where the console comes from: the provider (auto
// resolved), a running ryll to attach to, or the console the url, file
// and direct providers name.
func loadSource(p *parser, c *Config) {
	c.Provider = Provider(p.str("LATENCY_PROVIDER", string(ProviderAuto)))
	c.Qemu = p.str("LATENCY_QEMU", DefaultQemu)
	console := p.raw("LATENCY_CONSOLE")
	c.RyllSocket = strings.TrimSpace(p.raw("LATENCY_RYLL_SOCKET"))
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
		c.Provider, c.AutoReason = resolveAuto(p.raw("PATH"), c.Qemu)
	}
	c.Requested = c.Provider
	switch c.Provider {
	case ProviderAttached:
		if console != "" {
			p.failf("LATENCY_CONSOLE is set but LATENCY_RYLL_SOCKET attaches to a running ryll: unset one of them")
		}
	case ProviderFake, ProviderOpenStack, ProviderQemu:
		if console != "" {
			p.failf("LATENCY_CONSOLE is set but LATENCY_PROVIDER=%s does not use it: unset it, or set LATENCY_PROVIDER to url, file or direct", c.Provider)
		}
	case ProviderURL, ProviderFile, ProviderDirect:
		c.Console = p.target("LATENCY_PROVIDER", "LATENCY_CONSOLE", c.Provider, console)
	default:
		p.failf("LATENCY_PROVIDER=%q: want auto, qemu, fake, openstack, url, file or direct", c.Provider)
	}
}

// target parses the console a url, file or direct provider names.
// provVar and consVar are the variables to name in a problem; a URL's
// value is never quoted (it carries a token).
func (p *parser) target(provVar, consVar string, prov Provider, s string) Target {
	switch prov {
	case ProviderURL:
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			p.failf("%s=url needs %s=http(s)://... (a URL that answers with a .vv file; value not shown)", provVar, consVar)
			return Target{}
		}
		u, err := secret.ParseURL(s)
		if err != nil {
			p.failf("%s: %v", consVar, err)
			return Target{}
		}
		return Target{URL: u}
	case ProviderFile:
		if s == "" {
			p.failf("%s=file needs %s=/path/to/console.vv", provVar, consVar)
		} else if st, err := os.Stat(s); err != nil {
			p.failf("%s=%q: %v", consVar, s, err)
		} else if st.IsDir() {
			p.failf("%s=%q is a directory: want a .vv file", consVar, s)
		}
		return Target{File: s}
	default: // ProviderDirect
		d, err := address.ParseDirect(s)
		if err != nil {
			p.failf("%s=direct needs %s=host:port or host:port:tls_port: %v", provVar, consVar, err)
		}
		return Target{Direct: d}
	}
}

// measureVars names, for each measurement setting, the variable that
// sets it. The fields missing here are derived by the measurement from
// these (grace, late wait, baseline, max quiet wait): a test checks that
// every field is one or the other.
var measureVars = map[measure.Field]string{
	measure.FieldMetric:           "LATENCY_METRIC",
	measure.FieldSamples:          "LATENCY_SAMPLES",
	measure.FieldMaxDuration:      "LATENCY_MAX_DURATION",
	measure.FieldCadence:          "LATENCY_CADENCE",
	measure.FieldJitter:           "LATENCY_CADENCE_JITTER",
	measure.FieldHold:             "LATENCY_KEY_HOLD",
	measure.FieldWindow:           "LATENCY_WINDOW",
	measure.FieldQuiet:            "LATENCY_QUIET",
	measure.FieldSettle:           "LATENCY_SETTLE",
	measure.FieldMaxMisses:        "LATENCY_MAX_MISSES",
	measure.FieldMaxContamination: "LATENCY_MAX_CONTAMINATION",
	measure.FieldKeyRegion:        "LATENCY_KEY_REGION",
}

// loadMeasure reads the measurement's settings into one measure.Config,
// lets the measurement fill what the user left unset (the window from
// the cadence, the quiet gap from the window: its defaults, not typed
// again here), and judges the result by the measurement's own rules.
func loadMeasure(p *parser, c *Config) {
	mc := measure.DefaultConfig(p.metric("LATENCY_METRIC", defaults.Metric))
	// The window and the quiet gap are derived from the cadence unless
	// set: leave them to the measurement.
	mc.Window = 0
	p.setInt(&mc.Samples, "LATENCY_SAMPLES")
	p.setDuration(&mc.Cadence, "LATENCY_CADENCE", true)
	p.setDuration(&mc.Jitter, "LATENCY_CADENCE_JITTER", false)
	p.setDuration(&mc.Hold, "LATENCY_KEY_HOLD", true)
	p.setDuration(&mc.Window, "LATENCY_WINDOW", true)
	p.setDuration(&mc.Quiet, "LATENCY_QUIET", true)
	p.setDuration(&mc.Settle, "LATENCY_SETTLE", true)
	p.setDuration(&mc.MaxDuration, "LATENCY_MAX_DURATION", true)
	p.setInt(&mc.MaxMisses, "LATENCY_MAX_MISSES")
	p.setShare(&mc.MaxContamination, "LATENCY_MAX_CONTAMINATION")
	mc = mc.WithDefaults()
	c.Measure = mc
	problems := mc.Problems()
	for _, pr := range problems {
		p.measureProblem(pr)
	}
	if len(problems) > 0 || !mc.Metric.Keypress() {
		return
	}
	// Presses are at least this far apart, so this many samples cannot
	// be collected in time even with no miss.
	least := time.Duration(mc.Samples) * mc.MinPressInterval()
	if least > mc.MaxDuration {
		p.failf("LATENCY_SAMPLES=%d needs at least %s (each press waits max(LATENCY_CADENCE=%s, LATENCY_WINDOW+quiet gap=%s)), more than LATENCY_MAX_DURATION=%s: raise LATENCY_MAX_DURATION to at least %s, or take fewer samples",
			mc.Samples, least, mc.Cadence, mc.Window+mc.Quiet, mc.MaxDuration,
			(least + time.Duration(mc.Samples)*mc.Jitter/2 + c.ReadyTimeout).Round(time.Second))
	}
}

// measureProblem reports a measurement rule the settings break, naming
// the variables involved (with the value each has, and whether the user
// set it). A problem about a variable that did not even parse is left
// out: it would judge the default standing in for it.
func (p *parser) measureProblem(pr measure.Problem) {
	var names []string
	for _, f := range pr.Fields {
		name, ok := measureVars[f]
		if !ok {
			names = append(names, "(derived "+string(f)+")")
			continue
		}
		if p.bad[name] {
			return
		}
		if v, set := p.lookup(name); set {
			names = append(names, fmt.Sprintf("%s=%s", name, strings.TrimSpace(v)))
		} else {
			names = append(names, name+" (unset: its default)")
		}
	}
	p.failf("%s: %s", strings.Join(names, ", "), pr.Msg)
}

// loadSanity reads the range every sample must lie in and the expected
// median.
func loadSanity(p *parser, c *Config) {
	lo, hi := DefaultKeypressMin, DefaultKeypressMax
	if c.Measure.Metric == measure.PingInterval {
		lo, hi = DefaultPingMin, DefaultPingMax
	}
	c.SanityMin = p.float("LATENCY_SANITY_MIN", lo)
	c.SanityMax = p.float("LATENCY_SANITY_MAX", hi)
	if c.SanityMin < 0 || c.SanityMin >= c.SanityMax {
		p.failf("LATENCY_SANITY_MIN=%g, LATENCY_SANITY_MAX=%g: want 0 <= min < max (seconds)", c.SanityMin, c.SanityMax)
	}
	c.ExpectP50Min, c.ExpectP50Max, c.ExpectP50Set = p.floatRange("LATENCY_EXPECT_P50")
}

// loadConsoles reads how many consoles one run measures, and how many
// are started at once.
func loadConsoles(p *parser, c *Config) {
	c.Consoles = p.positiveInt("LATENCY_CONSOLES", 1)
	c.Parallel = p.positiveInt("LATENCY_PARALLEL", 4)
	if c.Consoles > 1 && c.Provider != ProviderOpenStack && c.Provider != ProviderFake && c.Provider != ProviderQemu {
		p.failf("LATENCY_CONSOLES=%d with LATENCY_PROVIDER=%s: that provider names one console, and a SPICE server serves one client; use openstack or fake for several", c.Consoles, c.Provider)
	}
	if c.Consoles > maxConsoles {
		p.failf("LATENCY_CONSOLES=%d: at most %d in one run; spread larger loads over several machines (docs/guide.md, Many consoles)", c.Consoles, maxConsoles)
	}
}

// loadCloud reads the openstack provider's settings.
func loadCloud(p *parser) Cloud {
	cl := Cloud{
		Image:       p.str("LATENCY_IMAGE", "uefi-latency-guest"),
		ImageURL:    p.strAllowEmpty("LATENCY_IMAGE_URL", DefaultImageURL),
		Flavor:      p.str("LATENCY_FLAVOR", "vdi-tiny"),
		Network:     p.str("LATENCY_NETWORK", "public1"),
		BootTimeout: p.duration("LATENCY_BOOT_TIMEOUT", 10*time.Minute, true),
		KeepServer:  p.boolean("LATENCY_KEEP_SERVER"),
		Console:     p.str("LATENCY_OPENSTACK_CONSOLE", "spice-direct"),
	}
	if cl.Console != "spice-direct" && cl.Console != "direct" {
		p.failf("LATENCY_OPENSTACK_CONSOLE=%q: want spice-direct (through Kerbside) or direct (the hypervisor's address; admin only)", cl.Console)
	}
	return cl
}

// loadAB reads the LATENCY_B_* and LATENCY_AB_* settings: any B setting
// turns the A/B on.
func loadAB(p *parser, c *Config) {
	bp, bc, bx := strings.TrimSpace(p.raw("LATENCY_B_PROVIDER")), p.raw("LATENCY_B_CONSOLE"), strings.TrimSpace(p.raw("LATENCY_B_PROXY"))
	bl := strings.TrimSpace(p.raw("LATENCY_B_LINK"))
	block := p.positiveInt("LATENCY_AB_BLOCK", 10)
	maxAdded := p.duration("LATENCY_AB_MAX_ADDED", 10*time.Millisecond, true)
	if bp == "" && bc == "" && bx == "" && bl == "" {
		return
	}
	ab := &AB{BProvider: Provider(bp), Block: block, MaxAdded: maxAdded}
	if ab.BProvider == "" {
		ab.BProvider = c.Provider
	}
	c.AB = ab
	mc := c.Measure
	if !mc.Metric.Keypress() {
		p.failf("the A/B (LATENCY_B_*) compares keypress figures: LATENCY_METRIC=%s cannot be compared that way", mc.Metric.Short())
	}
	if c.Consoles > 1 {
		p.failf("the A/B (LATENCY_B_*) measures one guest two ways: LATENCY_CONSOLES=%d is not supported with it", c.Consoles)
	}
	if bx != "" {
		m, err := spiceproxy.Parse(bx)
		if err != nil {
			p.failf("LATENCY_B_PROXY: %v", err)
		}
		ab.BProxy = m
	}
	if mc.Metric.Keypress() && len(mc.Problems()) == 0 && 2*time.Duration(mc.Samples)*mc.MinPressInterval() > mc.MaxDuration {
		p.failf("the A/B takes LATENCY_SAMPLES=%d per leg, at least %s for both legs, more than LATENCY_MAX_DURATION=%s: raise it or take fewer samples",
			mc.Samples, 2*time.Duration(mc.Samples)*mc.MinPressInterval(), mc.MaxDuration)
	}
	loadBLink(p, c, bl)
	loadBLeg(p, c, bp, bc, bx)
}

// loadBLeg decides what the B leg is: our proxy in front of the qemu
// guest, the A leg's own server through Kerbside, or a console the user
// names; it must reach the same guest as A.
func loadBLeg(p *parser, c *Config, bp, bc, bx string) {
	ab := c.AB
	switch {
	case bp == "" && bc == "" && bx == "":
		// LATENCY_B_LINK alone: the same console, through B's link.
		sameConsole(p, c)
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
	case ab.BProvider == ProviderURL || ab.BProvider == ProviderFile || ab.BProvider == ProviderDirect:
		ab.BConsole = p.target("LATENCY_B_PROVIDER", "LATENCY_B_CONSOLE", ab.BProvider, bc)
	default:
		p.failf("LATENCY_B_PROVIDER=%q: want url, file or direct", ab.BProvider)
	}
}

// sameConsole makes the B leg the A leg's own console reached through
// LATENCY_B_LINK only: the qemu guest (its SPICE port dialled again), or
// the same direct address or .vv file. A console URL may be one-time
// (Kerbside's) and an openstack A leg would boot a second server.
func sameConsole(p *parser, c *Config) {
	ab := c.AB
	switch c.Provider {
	case ProviderQemu:
		ab.BProvider, ab.SameGuest = ProviderQemu, true
	case ProviderDirect, ProviderFile:
		ab.BProvider, ab.BConsole = c.Provider, c.Console
	case ProviderFake, ProviderAttached:
		// refuseLink said why.
	default:
		p.failf("LATENCY_B_LINK alone measures the A leg's console again through another link: LATENCY_PROVIDER=%s cannot be reached twice that way; use qemu, direct or file, or name the B leg (LATENCY_B_PROVIDER, LATENCY_B_CONSOLE)", c.Provider)
	}
}

// resolveAuto picks the provider a newcomer should meet: the real SPICE
// lane when QEMU is installed (looked up in path, the environment's
// PATH, so a test's environment decides), the fake chain otherwise, and
// says why.
func resolveAuto(path, qemu string) (Provider, string) {
	if bin, ok := lookPath(qemu, path); ok {
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
