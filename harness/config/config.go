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
	"os"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/runid"
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
)

// Metric names what one sample measures.
type Metric string

// The metrics.
const (
	// MetricKeypress is keypress-to-screen: from just before send_key
	// down is written to the wallclock_us of the first surface_drawn at
	// or after it. It is what a person feels.
	MetricKeypress Metric = "keypress"
	// MetricPing is the seed plan's metric: the interval between two
	// consecutive SPICE server PINGs as ryll saw them (latency events).
	// It is not a round-trip time.
	MetricPing Metric = "ping"
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

	ResultsDir   string
	RunID        string
	Samples      int
	Cadence      time.Duration
	KeyHold      time.Duration
	Jitter       time.Duration
	Window       time.Duration
	MaxDuration  time.Duration
	ReadyTimeout time.Duration
	Scancode     uint16

	Metric    Metric
	SanityMin float64
	SanityMax float64

	// Consoles is how many consoles one run measures at once; Parallel
	// bounds how many are provisioned and started at the same time.
	Consoles int
	Parallel int

	Cloud Cloud
}

// Cloud holds the OpenStack settings used by the openstack provider.
type Cloud struct {
	Image       string
	ImageURL    string
	Flavor      string
	Network     string
	BootTimeout time.Duration
	KeepServer  bool
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
	{"LATENCY_PROVIDER", "fake", "where the console comes from: fake, openstack, url, file or direct"},
	{"LATENCY_CONSOLE", "", "the target for url (a .vv URL), file (a .vv path) and direct (host:port[:tls_port])"},
	{"LATENCY_RYLL", "ryll (fake: fakeryll, built automatically)", "the ryll binary"},
	{"LATENCY_RYLL_VERBOSE", "0", "1 passes -v to ryll (debug logging into ryll-<run>.log)"},
	{"LATENCY_RESULTS_DIR", "results", "where the CSV, sidecar, ryll log and junit.xml go"},
	{"LATENCY_RUN_ID", "UTC time + random suffix", "names the run's files and server"},
	{"LATENCY_METRIC", "keypress", "keypress (keypress-to-screen from surface_drawn) or ping (PING interval from latency events)"},
	{"LATENCY_SAMPLES", "60", "samples to collect"},
	{"LATENCY_CADENCE", "2s", "time from one key press to the next (before jitter)"},
	{"LATENCY_CADENCE_JITTER", "200ms", "random extra delay in [0, jitter) added to each gap, so presses do not phase-lock with the guest's display refresh"},
	{"LATENCY_KEY_HOLD", "100ms", "time between key down and key up"},
	{"LATENCY_WINDOW", "min(cadence, 1s)", "how long after a key press a draw still counts; none in the window is a miss"},
	{"LATENCY_MAX_DURATION", "600s", "the run stops after this long even if samples are missing"},
	{"LATENCY_READY_TIMEOUT", "60s", "how long ryll has to answer hello and show a surface"},
	{"LATENCY_SCANCODE", "0x39", "the key pressed (AT set-1 make code; 0x39 is space)"},
	{"LATENCY_SANITY_MIN", "keypress: 0.001, ping: 0", "smallest sane sample, seconds"},
	{"LATENCY_SANITY_MAX", "keypress: 0.5, ping: 20", "largest sane sample, seconds"},
	{"LATENCY_CONSOLES", "1", "consoles measured at once in one run (see Many consoles)"},
	{"LATENCY_PARALLEL", "4", "consoles provisioned and started at the same time"},
	{"LATENCY_IMAGE", "uefi-latency-guest", "openstack: Glance image name"},
	{"LATENCY_IMAGE_URL", "https://images.shakenfist.com/testimages/uefi-latency-guest.qcow2", "openstack: where to fetch the image when it is missing (`none`: never upload)"},
	{"LATENCY_FLAVOR", "vdi-tiny", "openstack: flavor name (created if missing and allowed)"},
	{"LATENCY_NETWORK", "public1", "openstack: network name"},
	{"LATENCY_BOOT_TIMEOUT", "10m", "openstack: how long the server has to become ACTIVE"},
	{"LATENCY_KEEP_SERVER", "0", "openstack: 1 keeps the server after the run"},
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
		Provider:     Provider(p.str("LATENCY_PROVIDER", string(ProviderFake))),
		Console:      getenv("LATENCY_CONSOLE"),
		Ryll:         getenv("LATENCY_RYLL"),
		RyllVerbose:  p.boolean("LATENCY_RYLL_VERBOSE"),
		ResultsDir:   p.str("LATENCY_RESULTS_DIR", "results"),
		RunID:        getenv("LATENCY_RUN_ID"),
		Metric:       Metric(p.str("LATENCY_METRIC", string(MetricKeypress))),
		Samples:      p.positiveInt("LATENCY_SAMPLES", 60),
		Cadence:      p.duration("LATENCY_CADENCE", 2*time.Second, true),
		Jitter:       p.duration("LATENCY_CADENCE_JITTER", 200*time.Millisecond, false),
		KeyHold:      p.duration("LATENCY_KEY_HOLD", 100*time.Millisecond, true),
		MaxDuration:  p.duration("LATENCY_MAX_DURATION", 600*time.Second, true),
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
		},
	}
	c.Requested = c.Provider
	c.Window = p.duration("LATENCY_WINDOW", min(c.Cadence, time.Second), true)
	if c.RunID == "" {
		c.RunID = runid.New(time.Now())
	} else if err := runid.ValidateLen(c.RunID, maxRunID); err != nil {
		p.failf("LATENCY_RUN_ID: %v (it names files and servers, and leaves room for -c<i> and -p<k>)", err)
	}

	switch c.Metric {
	case MetricKeypress:
		c.SanityMin = p.float("LATENCY_SANITY_MIN", DefaultKeypressMin)
		c.SanityMax = p.float("LATENCY_SANITY_MAX", DefaultKeypressMax)
	case MetricPing:
		c.SanityMin = p.float("LATENCY_SANITY_MIN", DefaultPingMin)
		c.SanityMax = p.float("LATENCY_SANITY_MAX", DefaultPingMax)
	default:
		p.failf("LATENCY_METRIC=%q: want keypress or ping", c.Metric)
	}
	if c.SanityMin < 0 || c.SanityMin >= c.SanityMax {
		p.failf("LATENCY_SANITY_MIN=%g, LATENCY_SANITY_MAX=%g: want 0 <= min < max (seconds)", c.SanityMin, c.SanityMax)
	}

	switch c.Provider {
	case ProviderFake, ProviderOpenStack:
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
		p.failf("LATENCY_PROVIDER=%q: want fake, openstack, url, file or direct", c.Provider)
	}

	if c.Cadence > 0 && c.KeyHold >= c.Cadence {
		p.failf("LATENCY_KEY_HOLD=%s must be shorter than LATENCY_CADENCE=%s", c.KeyHold, c.Cadence)
	}
	if c.Cadence > 0 && c.Window > c.Cadence {
		p.failf("LATENCY_WINDOW=%s must not be longer than LATENCY_CADENCE=%s, or one press's window would overlap the next press", c.Window, c.Cadence)
	}
	if c.Metric == MetricKeypress && c.Cadence > 0 && c.Samples > 0 &&
		time.Duration(c.Samples)*c.Cadence > c.MaxDuration {
		// Presses are at least a cadence apart, so this many samples
		// cannot be collected in time even with no miss.
		p.failf("LATENCY_SAMPLES=%d at LATENCY_CADENCE=%s needs at least %s, more than LATENCY_MAX_DURATION=%s: raise LATENCY_MAX_DURATION to at least %s, or take fewer samples",
			c.Samples, c.Cadence, time.Duration(c.Samples)*c.Cadence, c.MaxDuration,
			(time.Duration(c.Samples)*(c.Cadence+c.Jitter/2) + c.ReadyTimeout).Round(time.Second))
	}
	if c.Consoles > 1 && c.Provider != ProviderOpenStack && c.Provider != ProviderFake {
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
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// maxRunID leaves room, within runid.MaxLen, for the console and pod
// suffixes (-p<k>-c<i>) a configured run id may still get.
const maxRunID = 48
