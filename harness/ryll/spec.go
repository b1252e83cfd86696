package ryll

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/childproc"
	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// Spec says how to run one ryll. Exactly one console source (URL, File or
// Direct) must be set: ryll itself would otherwise fail with a usage error
// after we had already spent a start on it.
type Spec struct {
	// Binary is the ryll executable: a path, or a name looked up in PATH.
	Binary string

	// URL is a console URL (Kerbside's spice-direct answer). ryll GETs it
	// and parses the body as a .vv file. It carries a one-time token, so
	// it is a secret.URL and its raw form is always scrubbed from the log.
	URL secret.URL
	// File is a local .vv file.
	File string
	// Direct is a SPICE server with no password and no CA, parsed once
	// where the user gave it (harness/address).
	Direct address.Direct

	// Verbose passes -v so ryll logs at debug level.
	Verbose bool

	// ExtraEnv is added to the child's environment as KEY=VALUE entries
	// (for example FAKERYLL_* knobs of the stand-in). It overrides the
	// inherited entries of the same name. OS_* names are refused: the
	// child has no business with OpenStack credentials.
	ExtraEnv []string

	// LogPath receives everything ryll writes to stdout and stderr, with
	// secrets scrubbed, e.g. results/ryll-<run>.log. It is required: a
	// ryll failure without its log cannot be diagnosed after the run.
	LogPath string
	// AppendLog appends to LogPath instead of truncating it.
	AppendLog bool

	// Secrets are further strings to scrub from the log, the tail and
	// every error (a SPICE password, for example). URL.Reveal() is
	// always scrubbed too.
	Secrets []string

	// Logger receives the manager's own progress messages. Nil discards
	// them.
	Logger *slog.Logger

	// Grace bounds each rung of the Stop ladder. Zero fields take the
	// defaults (DefaultGrace).
	Grace Grace

	// TailLines is how many of the last output lines are kept in memory
	// for error messages. Zero means DefaultTailLines.
	TailLines int
}

// Grace is how long Stop waits after each signal before escalating. Each
// wait is bounded so a wedged ryll can never hang the loadtest.
type Grace struct {
	// Interrupt is the wait after SIGINT, the signal ryll handles by
	// stopping its control server and unlinking the socket.
	Interrupt time.Duration
	// Terminate is the wait after SIGTERM.
	Terminate time.Duration
	// Kill is the wait after SIGKILL, only for the kernel to reap it.
	Kill time.Duration
}

// DefaultGrace is used for zero fields of Spec.Grace. SIGINT gets the
// longest wait because it is the only signal after which ryll cleans up.
var DefaultGrace = Grace{Interrupt: 3 * time.Second, Terminate: 2 * time.Second, Kill: 2 * time.Second}

// DefaultTailLines is the default size of the in-memory output tail: enough
// to show a Rust error and its context, short enough for a test message.
const DefaultTailLines = childproc.DefaultTailLines

// maxSocketPath is the longest control socket path accepted, in bytes.
// sun_path is 108 bytes on Linux and 104 on the BSDs and macOS, both
// including the terminating NUL; the smaller bound keeps us portable.
const maxSocketPath = 103

// socketName is the control socket's file name inside the private
// directory; short because the whole path is capped.
const socketName = "c.sock"

// withDefaults returns g with zero fields taken from DefaultGrace.
func (g Grace) withDefaults() Grace {
	if g.Interrupt <= 0 {
		g.Interrupt = DefaultGrace.Interrupt
	}
	if g.Terminate <= 0 {
		g.Terminate = DefaultGrace.Terminate
	}
	if g.Kill <= 0 {
		g.Kill = DefaultGrace.Kill
	}
	return g
}

// validate reports every problem with s at once, so a misconfigured run
// is fixed in one go.
func (s Spec) validate() error {
	var errs []error
	if s.Binary == "" {
		errs = append(errs, errors.New("no ryll binary given"))
	}
	var sources []string
	if !s.URL.IsZero() {
		sources = append(sources, "URL")
	}
	if s.File != "" {
		sources = append(sources, "File")
	}
	if !s.Direct.IsZero() {
		sources = append(sources, "Direct")
		if err := s.Direct.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("direct console: %w", err))
		}
	}
	switch len(sources) {
	case 0:
		errs = append(errs, errors.New("no console source: set exactly one of URL, File or Direct"))
	case 1:
	default:
		errs = append(errs, fmt.Errorf("%d console sources (%s): set exactly one of URL, File or Direct",
			len(sources), strings.Join(sources, ", ")))
	}
	if s.LogPath == "" {
		errs = append(errs, errors.New("no LogPath: ryll's output must be kept for diagnosis"))
	}
	if _, err := envOverlay(s.ExtraEnv); err != nil {
		errs = append(errs, err)
	}
	if s.TailLines < 0 {
		errs = append(errs, fmt.Errorf("TailLines %d is negative", s.TailLines))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid ryll spec: %w", errors.Join(errs...))
	}
	return nil
}

// directFileName is the .vv file written into the private directory for
// a direct address that ryll's --direct cannot take (an IPv6 host).
const directFileName = "direct.vv"

// consoleFile returns the .vv content to hand ryll instead of --direct,
// or "" when --direct can take the address as it is. ryll splits
// --direct on every colon, so an IPv6 host goes through a file.
func (s Spec) consoleFile() string {
	d := s.Direct
	if d.IsZero() {
		return ""
	}
	if _, ok := d.RyllArg(); ok {
		return ""
	}
	vv := fmt.Sprintf("[virt-viewer]\ntype=spice\nhost=%s\nport=%d\n", d.Host, d.Port)
	if d.TLSPort != 0 {
		vv += fmt.Sprintf("tls-port=%d\n", d.TLSPort)
	}
	return vv
}

// args builds ryll's command line (without argv[0]). The result holds the
// raw URL: it is handed to exec and nowhere else. privateDir is the
// private directory of the run's socket, where consoleFile is written.
func (s Spec) args(privateDir, socketPath string) []string {
	a := []string{"--headless"}
	switch {
	case !s.URL.IsZero():
		a = append(a, "--url", s.URL.Reveal())
	case s.File != "":
		a = append(a, "--file", s.File)
	case s.consoleFile() != "":
		a = append(a, "--file", filepath.Join(privateDir, directFileName))
	case !s.Direct.IsZero():
		arg, _ := s.Direct.RyllArg()
		a = append(a, "--direct", arg)
	}
	a = append(a, "--control-socket", socketPath)
	if s.Verbose {
		a = append(a, "-v")
	}
	return a
}

// redactedArgs is args with the URL in its redacted form, for logging.
func (s Spec) redactedArgs(privateDir, socketPath string) []string {
	a := s.args(privateDir, socketPath)
	if !s.URL.IsZero() {
		for i, v := range a {
			if v == s.URL.Reveal() {
				a[i] = s.URL.Redacted()
			}
		}
	}
	return a
}

// secrets is every string to scrub: Secrets, and the URL's parts
// (secret.URL.Parts: the URL, its path, query and user info whole and its
// token-sized pieces on their own), in case ryll logs the token without
// the rest of the URL.
func (s Spec) secrets() []string {
	return append(slices.Clone(s.Secrets), s.URL.Parts()...)
}

// inheritedEnv names the parent's variables passed on to ryll: what a
// Rust binary needs to find things, format text, place temporary files,
// trust a custom CA when fetching a console URL, and log as asked. The
// list is an allow-list on purpose: the loadtest's own environment holds
// OpenStack credentials (OS_PASSWORD and friends) that ryll must never
// see, and a deny-list would miss the next one.
var inheritedEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ",
	"LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME",
	"RUST_LOG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
}

// envOverlay parses ExtraEnv into ordered name/value pairs, refusing
// malformed entries and OS_* names.
func envOverlay(extra []string) ([][2]string, error) {
	var out [][2]string
	var errs []error
	for i, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		switch {
		case !ok || name == "":
			// Never quote the entry: it might be a credential.
			errs = append(errs, fmt.Errorf("ExtraEnv entry %d is not NAME=VALUE", i))
		case strings.HasPrefix(strings.ToUpper(name), "OS_"):
			errs = append(errs, fmt.Errorf("ExtraEnv %s refused: OpenStack settings never go to ryll", name))
		default:
			out = append(out, [2]string{name, value})
		}
	}
	return out, errors.Join(errs...)
}

// childEnv builds ryll's whole environment: the allow-listed variables of
// the parent (via lookup, normally os.LookupEnv) overlaid with extra.
func childEnv(lookup func(string) (string, bool), extra []string) ([]string, error) {
	overlay, err := envOverlay(extra)
	if err != nil {
		return nil, err
	}
	var env []string
	set := map[string]int{}
	add := func(name, value string) {
		if i, ok := set[name]; ok {
			env[i] = name + "=" + value
			return
		}
		set[name] = len(env)
		env = append(env, name+"="+value)
	}
	for _, name := range inheritedEnv {
		if v, ok := lookup(name); ok {
			add(name, v)
		}
	}
	for _, kv := range overlay {
		add(kv[0], kv[1])
	}
	return env, nil
}

// socketDirPrefix names the private directories in TMPDIR.
const socketDirPrefix = "ryll-"

// makeSocketDir creates the private directory for the control socket and
// returns the socket path. The directory is 0700 so no other user can
// connect to (and drive) the console through ryll's socket. It names
// this harness as its owner (harness/tmpdir), and directories left by
// harnesses that died (SIGKILL gives no chance to clean up) are removed
// first.
func makeSocketDir() (dir, path string, err error) {
	dir, err = tmpdir.Make(socketDirPrefix)
	if err != nil {
		return "", "", fmt.Errorf("control socket directory: %w", err)
	}
	path = dir + string(os.PathSeparator) + socketName
	if len(path) > maxSocketPath {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("control socket path %q is %d bytes, over the %d-byte limit of Unix socket paths: set TMPDIR to a shorter directory",
			path, len(path), maxSocketPath)
	}
	return dir, path, nil
}
