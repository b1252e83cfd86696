package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/measure"
)

// Var documents one environment variable.
type Var struct {
	Name    string
	Default string
	Help    string
	// By is who reads the variable when it is not the loadtest's
	// configuration (Load): a tool that sets it for the loadtest, a
	// test, the container. Empty for the loadtest's own settings. Such a
	// name is still known: it may be in the loadtest's environment, and
	// Load must not call it a typo.
	By string
}

// Vars lists every LATENCY_* variable the project knows, with its
// default, in the order the README's tables show them: the loadtest's
// settings first, then the names the tools around it read. It is the one
// list of known names: Load refuses any other LATENCY_* name, and tests
// keep the README and every LATENCY_* name in the repository in step
// with it.
var Vars = []Var{
	{Name: "LATENCY_PROVIDER", Default: "auto", Help: "where the console comes from: qemu (a local guest, real SPICE), fake (simulated), openstack, url, file or direct; auto is qemu where " + DefaultQemu + " is installed, else fake"},
	{Name: "LATENCY_CONSOLE", Help: "the target for url (a .vv URL), file (a .vv path) and direct (host:port[:tls_port], [ipv6]:port)"},
	{Name: "LATENCY_RYLL", Default: "ryll (fake: fakeryll, built automatically; qemu: ryll if installed, else fakeryll's real SPICE client)", Help: "the ryll binary"},
	{Name: "LATENCY_QEMU", Default: DefaultQemu, Help: "qemu: the QEMU binary"},
	{Name: "LATENCY_RYLL_SOCKET", Help: "the control socket of a ryll that is already running: attach to it (its console is whatever it shows); no console is provisioned and no ryll is started or stopped"},
	{Name: "LATENCY_RYLL_VERBOSE", Default: "0", Help: "1 passes -v to ryll (debug logging into ryll-<run>.log)"},
	{Name: "LATENCY_TRANSCRIPT", Default: "0", Help: "1 writes every control-socket line sent and received, secrets redacted, to latency-<run>-transcript.ndjson"},
	{Name: "LATENCY_RESULTS_DIR", Default: "results", Help: "where the CSV, sidecar, ryll log and junit.xml go"},
	{Name: "LATENCY_RUN_ID", Default: "UTC time + random suffix", Help: "names the run's files and server"},
	{Name: "LATENCY_METRIC", Default: measure.KeypressToScreen.Short(), Help: "keypress (key to the first draw), repaint (key to the last draw of the repaint) or ping (PING interval from latency events); both keypress figures are always measured"},
	{Name: "LATENCY_SAMPLES", Default: fmt.Sprintf("%d (ping: %d)", defaults.Samples, measure.DefaultConfig(measure.PingInterval).Samples), Help: "samples to collect (an A/B: a leg); 100 so that an equivalent A/B proves its pass (docs/guide.md, the A/B)"},
	{Name: "LATENCY_CADENCE", Default: human(defaults.Cadence), Help: "time from one key press to the next (before jitter); the measurement may wait longer for a quiet gap"},
	{Name: "LATENCY_CADENCE_JITTER", Default: human(defaults.Jitter), Help: "random extra delay in [0, jitter) added to each gap, so presses do not phase-lock with the guest's display refresh"},
	{Name: "LATENCY_KEY_HOLD", Default: human(defaults.Hold), Help: "time between key down and key up"},
	{Name: "LATENCY_WINDOW", Default: "min(cadence, " + human(measure.DefaultMaxWindow) + ")", Help: "how long after a key press its first draw may come; none in the window is a miss (late if a draw comes after it)"},
	{Name: "LATENCY_QUIET", Default: "the window, at least 300ms, at most " + human(measure.DefaultQuiet), Help: "no draw at all for this long, after the previous window, before the next press: a late draw can never be taken for a later press"},
	{Name: "LATENCY_SETTLE", Default: human(measure.DefaultSettle), Help: "a repaint ends when no draw has come for this long (the repaint metric's last draw)"},
	{Name: "LATENCY_MAX_MISSES", Default: fmt.Sprint(measure.DefaultMaxMisses), Help: "misses in a row that stop the run early (no draw follows a key)"},
	{Name: "LATENCY_MAX_CONTAMINATION", Default: fmt.Sprint(measure.DefaultMaxContamination), Help: "largest estimated share of samples that may come from draws no key caused; above it the run fails"},
	{Name: "LATENCY_MAX_DURATION", Default: human(defaults.MaxDuration), Help: "the run stops after this long even if samples are missing"},
	{Name: "LATENCY_READY_TIMEOUT", Default: "60s", Help: "how long ryll has to answer hello and show a surface"},
	{Name: "LATENCY_SCANCODE", Default: "0x39", Help: "the key pressed (AT set-1 make code; 0x39 is space)"},
	{Name: "LATENCY_ACTIVITY", Default: "idle", Help: "qemu: what the guest does by itself below the key's region: idle (nothing), typing (a cell changes 4 times a second), scroll (the area scrolls 10 lines a second) or video (the whole area changes every display refresh); a busy guest is measured only with a client that reports draw rectangles (see Activity and rectangles)"},
	{Name: "LATENCY_KEY_REGION", Default: "qemu: the guest's key region (0,0,720,48; idle: the whole screen, 0,0,720,400); others: none", Help: "left,top,right,bottom in pixels: only draws whose rect touches it answer a press (both figures); draws outside it are counted as activity"},
	{Name: "LATENCY_SANITY_MIN", Default: "keypress, repaint: 0.001, ping: 0", Help: "smallest sane sample, seconds"},
	{Name: "LATENCY_SANITY_MAX", Default: "keypress, repaint: 0.5, ping: 20", Help: "largest sane sample, seconds"},
	{Name: "LATENCY_EXPECT_P50", Help: "min-max in seconds (e.g. 0.005-0.05): the Sanity check also fails when the median is outside it"},
	{Name: "LATENCY_CONSOLES", Default: "1", Help: "consoles measured at once in one run (see Many consoles)"},
	{Name: "LATENCY_PARALLEL", Default: "4", Help: "consoles provisioned and started at the same time"},
	{Name: "LATENCY_B_PROVIDER", Help: "A/B: where the B leg's console comes from (same forms as LATENCY_PROVIDER; default the A leg's provider). Setting any LATENCY_B_* runs the A/B"},
	{Name: "LATENCY_B_CONSOLE", Help: "A/B: the B leg's target, of the same forms as LATENCY_CONSOLE (e.g. a Kerbside .vv URL for the server whose hypervisor port A measures)"},
	{Name: "LATENCY_B_PROXY", Help: "A/B with qemu: the B leg goes through a SPICE proxy of our own in front of the same guest: nodelay, nagle (one write per message, no TCP_NODELAY) or delay:DUR"},
	{Name: "LATENCY_LINK", Help: "a link (user-space delay, jitter, rate, queue) between the client and the console it dials, every channel, both ways: lan, wan-20ms-50mbit, wan-80ms-10mbit, wan-80ms-1mbit, or rtt=80ms,rate=10mbit,jitter=5ms,queue=64KiB (a name may take overrides); not with the fake provider; unset: none"},
	{Name: "LATENCY_B_LINK", Help: "A/B: the B leg's link (forms of LATENCY_LINK; default LATENCY_LINK's); set alone it measures the same console (qemu, direct, file) through it against A through LATENCY_LINK or none; with LATENCY_B_PROXY it sits in front of the proxy"},
	{Name: "LATENCY_AB_BLOCK", Default: "10", Help: "A/B: presses per block; the legs alternate ABAB... in blocks (ryll reconnected per block) until each has LATENCY_SAMPLES samples"},
	{Name: "LATENCY_AB_MAX_ADDED", Default: "10ms", Help: "A/B: a keypress figure passes only when the upper end of the 95 % interval of B−A lies below this; it fails when B adds more and the difference is significant; anything between is inconclusive (the run fails)"},
	{Name: "LATENCY_LOAD", Help: "a load ramp (qemu or openstack): steps of busy sessions, e.g. 0,8,16,32, run beside the measured console through the same proxy (LATENCY_PROXY); 0, the baseline, is put first when missing; unset: no ramp"},
	{Name: "LATENCY_LOAD_SOURCE", Default: "synthetic (openstack with LATENCY_PROVIDER=openstack)", Help: "ramp: what the busy sessions are: synthetic (SPICE sessions of our own, cheap) or qemu (guests running LATENCY_LOAD_ACTIVITY), both qemu provider only; openstack (more servers booted from LATENCY_LOAD_IMAGE, each viewed through its own console through Kerbside), the only one on openstack"},
	{Name: "LATENCY_LOAD_ACTIVITY", Default: "video", Help: "ramp: what a busy session's display does: typing, scroll or video (refused on openstack: the busy servers do what LATENCY_LOAD_IMAGE does)"},
	{Name: "LATENCY_LOAD_RATE", Default: "1mbit", Help: "ramp, synthetic: each busy session's display bit rate (bit, kbit, mbit, gbit); refused on openstack"},
	{Name: "LATENCY_LOAD_REPEAT", Default: "2", Help: "ramp: interleaved rounds over all the steps (0,8,16,32,32,16,8,0 for 2); each step takes LATENCY_SAMPLES samples in all"},
	{Name: "LATENCY_LOAD_MAX_ADDED", Default: "10ms", Help: "ramp: the knee is the first step whose repaint p95 lies more than this above the baseline's, proven (the lower end of the 95 % interval of the difference above it)"},
	{Name: "LATENCY_LOAD_TARGET", Help: "ramp: N sessions: the run fails when the knee is at or below N, and passes only when every step up to N is proven within LATENCY_LOAD_MAX_ADDED"},
	{Name: "LATENCY_PROXY", Default: "nodelay (with LATENCY_LOAD)", Help: "ramp, qemu: the proxy under test for the measured console and every busy session: nodelay, nagle, delay:DUR or cpu:DUR (CPU spent per message); refused on openstack, where the proxy under test is Kerbside"},
	{Name: "LATENCY_IMAGE", Default: "uefi-latency-guest", Help: "openstack: Glance image name"},
	{Name: "LATENCY_IMAGE_URL", Default: DefaultImageURL, Help: "openstack: where to fetch the image when it is missing (`none`: never upload)"},
	{Name: "LATENCY_FLAVOR", Default: "vdi-tiny", Help: "openstack: flavor name (created if missing and allowed)"},
	{Name: "LATENCY_NETWORK", Default: "public1", Help: "openstack: network name"},
	{Name: "LATENCY_BOOT_TIMEOUT", Default: "10m", Help: "openstack: how long the server has to become ACTIVE"},
	{Name: "LATENCY_KEEP_SERVER", Default: "0", Help: "openstack: 1 keeps the server after the run"},
	{Name: "LATENCY_OPENSTACK_CONSOLE", Default: "spice-direct", Help: "openstack: `spice-direct` measures through Kerbside (Nova 2025.1+); `direct` measures the server's direct leg, the hypervisor's address behind a console token (admin only; spice-html5 on older clouds)"},
	{Name: "LATENCY_LOAD_IMAGE", Default: "LATENCY_IMAGE", Help: "openstack: the Glance image of the busy servers the ramp boots beside the measured console (uploaded from LATENCY_IMAGE_URL only when it is LATENCY_IMAGE)"},

	// Read by the tools around the loadtest, not by Load.
	{Name: "LATENCY_ALLOW_SIMULATOR", By: "the project's own tests", Help: "1 lets fakeryll's simulator stand in for ryll against a real provider (the openstack provider against a fake cloud in a test); the run is recorded as simulated"},
	{Name: "LATENCY_LIFELINE", By: "latency-run", Help: "set by latency-run for the loadtest it starts: a pipe whose end means latency-run is gone, and the run stops as on SIGTERM"},
	{Name: "LATENCY_PID_FILE", By: "latency-run", Help: "set by latency-run (make loadtest) for the loadtest it starts, which writes its pid there so that a stop reaches it"},
	{Name: "LATENCY_TEST_BINARY", Default: "/usr/local/bin/latency.test", By: "the container", Help: "the container's entrypoint: the compiled loadtest it runs"},
	{Name: "LATENCY_TEST_TIMEOUT", Default: "40m", By: "the container", Help: "the container's entrypoint: the loadtest's -test.timeout"},
	{Name: "LATENCY_UID", Default: "1000", By: "the container", Help: "build argument of the container image: the uid the loadtest runs as"},
	{Name: "LATENCY_GID", Default: "1000", By: "the container", Help: "build argument of the container image: the gid the loadtest runs as"},
	{Name: "LATENCY_E2E_REAL", Default: "0", By: "tests", Help: "1 runs the real SPICE lane's end-to-end tests (make loadtest-real and make test-ab set it)"},
	{Name: "LATENCY_RUN_TEST_AS_MAIN", By: "tests", Help: "cmd/latency-run's tests: makes the test binary act as the command it tests"},
	{Name: "LATENCY_CHILD_ROLE", By: "the loadtest itself", Help: "set by the loadtest for the processes it starts from its own binary (harness/loadrig): proxy (the proxy under test) or generator (synthetic busy sessions); not for users"},
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

// Prefix starts every variable of the project's own: a name with it that
// Vars does not list is a mistake, and Load says so.
const Prefix = "LATENCY_"

// KnownNames is every name in Vars.
func KnownNames() []string {
	out := make([]string, len(Vars))
	for i, v := range Vars {
		out[i] = v.Name
	}
	return out
}

// Unknown is the one way a name nobody knows is reported, by Load and by
// the composition root's checks of other prefixes (FAKERYLL_*): the name,
// and the nearest known one when it is near enough to be a typo.
func Unknown(name string, known []string) string {
	if near := Nearest(name, known); near != "" {
		return fmt.Sprintf("%s: unknown; did you mean %s?", name, near)
	}
	return fmt.Sprintf("%s: unknown (no variable of that name; see docs/reference.md, Configuration)", name)
}

// Nearest is the known name closest to name by edit distance, or "" when
// none is close enough to be a typo of it (at most a third of its
// length, and at most 4, edits away).
func Nearest(name string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		if d := editDistance(name, k); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > min(4, max(1, len(name)/3)) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes: the
// names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unknownNames reports every LATENCY_* name of environ that Vars does
// not list.
func (p *parser) unknownNames(environ []string) {
	known := KnownNames()
	isKnown := make(map[string]bool, len(known))
	for _, k := range known {
		isKnown[k] = true
	}
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, Prefix) || isKnown[name] || seen[name] {
			continue
		}
		seen[name] = true
		p.failf("%s", Unknown(name, known))
	}
}
