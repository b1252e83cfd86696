package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/link"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// Ramp is the configuration of a load ramp (LATENCY_LOAD): the
// measured console takes its samples at each step of busy sessions
// running beside it, through the same proxy.
type Ramp struct {
	// Steps are the busy sessions of each step, strictly increasing,
	// Steps[0] == 0: the baseline (0 is put first when LATENCY_LOAD
	// leaves it out).
	Steps []int
	// Source makes the busy sessions: "synthetic" (SPICE sessions of
	// our own), "qemu" (guests running Activity) or "openstack" (more
	// servers booted from LATENCY_LOAD_IMAGE, each viewed through its
	// own console through Kerbside).
	Source string
	// Activity is what a busy session's display does: typing, scroll
	// or video; on openstack, whatever the busy servers' image does
	// (said so, with the image's name).
	Activity string
	// Rate is each synthetic session's display bit rate, in bits per
	// second; 0 on openstack (the image sets it).
	Rate int64
	// Repeat is how many interleaved rounds of all the steps the ramp
	// takes (each step's LATENCY_SAMPLES split over them).
	Repeat int
	// MaxAdded is the margin of the knee: the first step whose repaint
	// p95 lies more than this above the baseline's, with significance.
	MaxAdded time.Duration
	// Target fails the run when the knee is at or below it (TargetSet).
	Target    int
	TargetSet bool
	// Proxy is the proxy under test (LATENCY_PROXY, parsed once) for the
	// measured console and every busy session; unused on openstack,
	// where the proxy under test is Kerbside (Remote).
	Proxy spiceproxy.Mode
	// Remote is set on openstack: the proxy under test is Kerbside,
	// whatever the spice-direct consoles point at, not a process of
	// ours, so its CPU is not measured here.
	Remote bool
}

// The sources and activities of busy sessions.
const (
	LoadSynthetic = "synthetic"
	LoadQemu      = "qemu"
	LoadOpenStack = "openstack"
)

// loadActivities are LATENCY_LOAD_ACTIVITY's values.
var loadActivities = []string{"typing", "scroll", "video"}

// loadLoad reads LATENCY_LOAD and its settings. A ramp needs the qemu
// provider (our guest behind our proxy) or the openstack provider (the
// server's console through Kerbside, with more servers as the busy
// sessions), and refuses to run with an A/B, several consoles or a
// metric other than a keypress figure; its settings without
// LATENCY_LOAD, and those that mean nothing to the provider, are
// mistakes, said so here, before anything is provisioned.
func loadLoad(p *parser, c *Config) {
	steps := strings.TrimSpace(p.raw("LATENCY_LOAD"))
	defSource := LoadSynthetic
	if c.Provider == ProviderOpenStack {
		defSource = LoadOpenStack
	}
	l := &Ramp{
		Source:   p.str("LATENCY_LOAD_SOURCE", defSource),
		Activity: p.str("LATENCY_LOAD_ACTIVITY", "video"),
		Repeat:   p.positiveInt("LATENCY_LOAD_REPEAT", 2),
		MaxAdded: p.duration("LATENCY_LOAD_MAX_ADDED", 10*time.Millisecond, true),
		Rate:     1_000_000,
	}
	if v := strings.TrimSpace(p.raw("LATENCY_LOAD_RATE")); v != "" {
		prof, err := link.Parse("rate=" + v)
		switch {
		case err != nil:
			p.failName("LATENCY_LOAD_RATE", "LATENCY_LOAD_RATE=%q: want a bit rate such as 1mbit or 500kbit", v)
		case prof.Rate <= 0:
			p.failName("LATENCY_LOAD_RATE", "LATENCY_LOAD_RATE=%q: a busy session needs a finite bit rate, e.g. 1mbit", v)
		default:
			l.Rate = prof.Rate
		}
	}
	if v := strings.TrimSpace(p.raw("LATENCY_LOAD_TARGET")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			p.failName("LATENCY_LOAD_TARGET", "LATENCY_LOAD_TARGET=%q: want a number of sessions above 0", v)
		}
		l.Target, l.TargetSet = n, err == nil && n > 0
	}
	proxy := strings.TrimSpace(p.raw("LATENCY_PROXY"))
	if steps == "" {
		for _, name := range []string{"LATENCY_LOAD_SOURCE", "LATENCY_LOAD_ACTIVITY", "LATENCY_LOAD_RATE", "LATENCY_LOAD_REPEAT", "LATENCY_LOAD_MAX_ADDED", "LATENCY_LOAD_TARGET", "LATENCY_PROXY"} {
			if _, set := p.lookup(name); set {
				p.failf("%s is set but LATENCY_LOAD is not: it belongs to a load ramp (set LATENCY_LOAD=0,8,16,32, or unset it; an A/B's proxy is LATENCY_B_PROXY)", name)
			}
		}
		return
	}
	c.Ramp = l
	l.Steps = p.steps("LATENCY_LOAD", steps)
	if c.AB != nil {
		p.failf("LATENCY_LOAD runs a load ramp and LATENCY_B_* an A/B: one run does one of them; unset LATENCY_LOAD or every LATENCY_B_* variable")
	}
	switch c.Provider {
	case ProviderQemu:
		loadLocalRamp(p, l, proxy)
	case ProviderOpenStack:
		loadCloudRamp(p, c, l, proxy)
	default:
		p.failf("LATENCY_LOAD needs LATENCY_PROVIDER=qemu (our guest behind our own proxy, with the busy sessions through the same proxy) "+
			"or openstack (the server's console through Kerbside, with more servers as the busy sessions); it is %s, which the ramp does not support", c.Provider)
	}
	if c.Consoles > 1 {
		p.failf("LATENCY_LOAD measures one console while busy sessions run beside it: LATENCY_CONSOLES=%d is not supported with it", c.Consoles)
	}
	mc := c.Measure
	if !mc.Metric.Keypress() {
		p.failf("LATENCY_LOAD judges the keypress figures: LATENCY_METRIC=%s cannot be ramped", mc.Metric.Short())
	}
	if n := len(l.Steps); n > 0 && mc.Metric.Keypress() && len(mc.Problems()) == 0 {
		if least := time.Duration(n*mc.Samples) * mc.MinPressInterval(); least > mc.MaxDuration {
			p.failf("the ramp takes LATENCY_SAMPLES=%d at each of %d steps, at least %s, more than LATENCY_MAX_DURATION=%s: raise it or take fewer samples or steps",
				mc.Samples, n, least, mc.MaxDuration)
		}
	}
}

// loadLocalRamp checks a qemu ramp's source, activity and proxy under
// test (ours, LATENCY_PROXY).
func loadLocalRamp(p *parser, l *Ramp, proxy string) {
	if l.Source != LoadSynthetic && l.Source != LoadQemu {
		hint := ""
		if l.Source == LoadOpenStack {
			hint = " (openstack boots busy servers in a cloud: it needs LATENCY_PROVIDER=openstack)"
		}
		p.failName("LATENCY_LOAD_SOURCE", "LATENCY_LOAD_SOURCE=%q: want synthetic (SPICE sessions of our own) or qemu (guests running LATENCY_LOAD_ACTIVITY)%s", l.Source, hint)
	}
	if !contains(loadActivities, l.Activity) {
		p.failName("LATENCY_LOAD_ACTIVITY", "LATENCY_LOAD_ACTIVITY=%q: want typing, scroll or video", l.Activity)
	}
	if proxy == "" {
		proxy = "nodelay"
	}
	m, err := spiceproxy.Parse(proxy)
	if err != nil {
		p.failName("LATENCY_PROXY", "LATENCY_PROXY: %v", err)
	}
	l.Proxy = m
}

// loadCloudRamp checks an openstack ramp: the measured console is the
// server's spice-direct console and the busy sessions are more servers
// (LATENCY_LOAD_IMAGE), each through its own console; the proxy under
// test is Kerbside, whatever those consoles point at. What only our own
// proxy or our own sessions have is refused, naming why: a synthetic or
// qemu session of ours cannot be put through Kerbside (it proxies the
// consoles of the cloud's servers only), LATENCY_PROXY would be a second
// proxy nobody measures, and the busy servers do what their image does.
func loadCloudRamp(p *parser, c *Config, l *Ramp, proxy string) {
	l.Remote = true
	if l.Source != LoadOpenStack {
		p.failName("LATENCY_LOAD_SOURCE", "LATENCY_LOAD_SOURCE=%q with LATENCY_PROVIDER=openstack: the proxy under test is Kerbside, which proxies "+
			"the consoles of the cloud's servers only, so our own synthetic or qemu sessions cannot cross it; want openstack "+
			"(more servers booted from LATENCY_LOAD_IMAGE, the default here)", l.Source)
	}
	if proxy != "" {
		p.failName("LATENCY_PROXY", "LATENCY_PROXY=%q with LATENCY_PROVIDER=openstack: the proxy under test is Kerbside (whatever the "+
			"spice-direct consoles point at), not one of ours; unset LATENCY_PROXY", proxy)
	}
	if v := strings.TrimSpace(p.raw("LATENCY_LOAD_ACTIVITY")); v != "" {
		p.failName("LATENCY_LOAD_ACTIVITY", "LATENCY_LOAD_ACTIVITY=%q with LATENCY_PROVIDER=openstack: the busy servers do what their image "+
			"does; choose an activity image with LATENCY_LOAD_IMAGE and unset LATENCY_LOAD_ACTIVITY", v)
	}
	if v := strings.TrimSpace(p.raw("LATENCY_LOAD_RATE")); v != "" {
		p.failName("LATENCY_LOAD_RATE", "LATENCY_LOAD_RATE=%q with LATENCY_PROVIDER=openstack: it is the synthetic sessions' rate; "+
			"the busy servers send what their image draws (unset it)", v)
	}
	if c.Cloud.Console != "spice-direct" {
		p.failName("LATENCY_OPENSTACK_CONSOLE", "LATENCY_OPENSTACK_CONSOLE=%s with LATENCY_LOAD: the busy servers load Kerbside, "+
			"and the direct leg measures around it; an openstack ramp measures the spice-direct console (unset it)", c.Cloud.Console)
	}
	l.Activity = "as the image " + c.Cloud.LoadImage + " does"
	l.Rate = 0
}

// maxLoadSessions bounds a step: more sessions than one host carries
// are a typo.
const maxLoadSessions = 10000

// steps reads a ramp's steps: whole numbers, strictly increasing; 0 is
// put first when missing, as the baseline every step is judged against.
func (p *parser) steps(name, v string) []int {
	var out []int
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 || n > maxLoadSessions {
			p.failName(name, "%s=%q: %q is not a number of sessions (0..%d); want steps such as 0,8,16,32", name, v, part, maxLoadSessions)
			return nil
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			p.failName(name, "%s=%q: steps must be strictly increasing (the ramp interleaves them itself)", name, v)
			return nil
		}
		out = append(out, n)
	}
	if out[0] != 0 {
		out = append([]int{0}, out...)
	}
	if len(out) < 2 {
		p.failName(name, "%s=%q: a ramp needs a step above 0 (0 is the baseline)", name, v)
		return nil
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
