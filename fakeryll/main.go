// Command fakeryll stands in for "ryll --headless --control-socket PATH":
// it takes ryll's own command line, serves ryll's control-socket protocol
// (sim.Server) and behind it either simulates a SPICE session (package
// sim, the default) whose behaviour is tuned by --fake-* flags or
// FAKERYLL_* environment variables, or, with --fake-session spice, opens
// a real SPICE session to the console (package live). See README.md.
//
// Exit status follows ryll: 2 for usage errors, 1 for configuration, .vv
// and fetch errors, 0 when the session ends or on SIGINT. SIGTERM is not
// handled, so the process dies of the signal as ryll does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/fakeryll/live"
	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
	"github.com/shakenfist/kerbside-latency/fakeryll/vv"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// version is fakeryll's own version; the protocol version it speaks is a
// knob.
const version = "1.0.0"

// fetchTimeout bounds the --url GET, like ryll's HTTP client default.
const fetchTimeout = 30 * time.Second

// The two sessions --fake-session chooses between.
const (
	sessionSim   = "sim"
	sessionSPICE = "spice"
)

// sessionKnob picks the session behind the control socket. It follows the
// simulation knobs' flag and environment convention but is fakeryll's
// own, not the simulator's.
var sessionKnob = sim.Knob{
	Name:    "session",
	Default: sessionSim,
	Usage:   "the SPICE session behind the control socket: sim (simulated) or spice (a real session to the --direct, --file or --url console)",
}

// serverKnobs are the simulation knobs that configure the control server
// itself, so they apply to a real session too.
var serverKnobs = map[string]bool{"protocol-version": true, "queue-drop": true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a command-line error: exit 2, as clap does.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakeryll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "URL to fetch .vv configuration file from")
	file := fs.String("file", "", "Path to local .vv configuration file")
	direct := fs.String("direct", "", "Direct connection string: HOST:PORT or HOST:PORT:TLS_PORT")
	headless := fs.Bool("headless", false, "Run in headless mode (the only mode fakeryll simulates)")
	socket := fs.String("control-socket", "", "Bind the control socket at `PATH` (needs --headless)")
	var verbose bool
	fs.BoolVar(&verbose, "verbose", false, "Enable verbose logging")
	fs.BoolVar(&verbose, "v", false, "Enable verbose logging (shorthand)")
	showVersion := fs.Bool("version", false, "Print version")
	sessionFlag := fs.String(sessionKnob.FlagName(), sessionKnob.Default, sessionKnob.Usage+" (env "+sessionKnob.EnvName()+")")
	noRectFlag := fs.String(live.NoRectKnob.FlagName(), live.NoRectKnob.Default, live.NoRectKnob.Usage+" (env "+live.NoRectKnob.EnvName()+")")
	knobFlags := map[string]*string{}
	for _, k := range sim.Knobs() {
		knobFlags[k.Name] = fs.String(k.FlagName(), k.Default, k.Usage+" (env "+k.EnvName()+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *showVersion {
		// The records name what stood in for ryll: a simulator, or a
		// real SPICE client.
		what := "control-socket protocol simulator, ryll-compatible"
		if m, err := sessionMode(given[sessionKnob.FlagName()], *sessionFlag, getenv); err == nil && m == sessionSPICE {
			what = "ryll's control socket over a real SPICE session"
		}
		fmt.Fprintf(stdout, "fakeryll %s (%s)\n", version, what)
		return 0
	}
	cfg, err := checkArgs(fs, given, *headless, knobFlags, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	mode, err := sessionMode(given[sessionKnob.FlagName()], *sessionFlag, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	noRectValue := *noRectFlag
	if v, ok := getenv(live.NoRectKnob.EnvName()); ok && !given[live.NoRectKnob.FlagName()] {
		noRectValue = v
	}
	noRect, err := live.ParseNoRect(noRectValue)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if mode == sessionSPICE {
		log.Info("fakeryll v" + version + " (ryll's control socket over a real SPICE session)")
	} else {
		log.Info("fakeryll v" + version + " (simulated ryll)")
	}

	console, err := loadConsole(ctx, given, *url, *file, *direct, log)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	for _, w := range console.Warnings {
		log.Warn(".vv: " + w)
	}
	log.Info(fmt.Sprintf("Connecting to %s:%d (TLS: %t)", console.Host, console.Port, console.HasTLS()))
	log.Info("Running in headless mode")

	cfg.SocketPath = *socket
	cfg.Logger = log
	if mode == sessionSPICE {
		if ignored := simOnlyKnobsSet(given, getenv); len(ignored) > 0 {
			log.Warn("simulation knobs have no effect on a real SPICE session", "knobs", strings.Join(ignored, ","))
		}
		return runSPICE(ctx, cfg, console, noRect, log, stderr)
	}
	s, err := sim.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// sessionMode resolves --fake-session / FAKERYLL_SESSION (the flag wins).
func sessionMode(flagGiven bool, flagValue string, getenv func(string) (string, bool)) (string, error) {
	v, src := sessionKnob.Default, ""
	if flagGiven {
		v, src = flagValue, "--"+sessionKnob.FlagName()
	} else if e, ok := getenv(sessionKnob.EnvName()); ok {
		v, src = e, sessionKnob.EnvName()
	}
	switch m := strings.TrimSpace(v); m {
	case sessionSim, sessionSPICE:
		return m, nil
	default:
		return "", usageError{fmt.Sprintf("%s=%q: want %s or %s", src, v, sessionSim, sessionSPICE)}
	}
}

// simOnlyKnobsSet lists the simulation knobs given by flag or environment
// that a real session ignores (all but the control server's own).
func simOnlyKnobsSet(given map[string]bool, getenv func(string) (string, bool)) []string {
	var out []string
	for _, k := range sim.Knobs() {
		if serverKnobs[k.Name] {
			continue
		}
		if _, inEnv := getenv(k.EnvName()); given[k.FlagName()] || inEnv {
			out = append(out, k.Name)
		}
	}
	return out
}

// runSPICE serves the control socket from a real SPICE session to
// console. Like ryll in headless mode it exits 0 when the session ends,
// whether it closed or never linked (the cause is logged), and 1 only
// when the control socket could not be set up.
func runSPICE(ctx context.Context, cfg sim.Config, console vv.Config, noRect bool, log *slog.Logger, stderr io.Writer) int {
	sc := spice.Config{
		Host:     console.Host,
		Port:     int(console.Port),
		TLSPort:  int(console.TLSPort),
		Password: console.Password,
		// A .vv keeps the PEM on one line with its newlines escaped, as
		// GKeyFile (virt-viewer's reader) writes them.
		CA:          []byte(strings.ReplaceAll(console.CA, `\n`, "\n")),
		HostSubject: console.HostSubject,
		Logger:      log,
	}
	session := live.New(sc, log, nil)
	if noRect {
		session.OmitRect()
	}
	srv, err := sim.NewServer(sim.ServerConfig{
		SocketPath:      cfg.SocketPath,
		Logger:          log,
		ProtocolVersion: cfg.ProtocolVersion,
		QueueDrop:       cfg.QueueDrop,
	}, session)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// checkArgs applies ryll's command-line rules (one source at most,
// --control-socket needs --headless) and fakeryll's own (headless with a
// control socket only), then resolves the simulation knobs.
func checkArgs(fs *flag.FlagSet, given map[string]bool, headless bool, knobFlags map[string]*string, getenv func(string) (string, bool)) (sim.Config, error) {
	if fs.NArg() > 0 {
		return sim.Config{}, usageError{fmt.Sprintf("unexpected argument '%s' found", fs.Arg(0))}
	}
	var sources []string
	for _, name := range []string{"url", "file", "direct"} {
		if given[name] {
			sources = append(sources, "--"+name)
		}
	}
	if len(sources) > 1 {
		return sim.Config{}, usageError{fmt.Sprintf("the argument '%s' cannot be used with '%s'", sources[0], sources[1])}
	}
	if given["control-socket"] && !headless {
		return sim.Config{}, usageError{"the following required arguments were not provided: --headless (--control-socket needs --headless)"}
	}
	if !headless {
		return sim.Config{}, usageError{"fakeryll simulates headless mode only: pass --headless"}
	}
	if !given["control-socket"] {
		return sim.Config{}, usageError{"fakeryll simulates the control socket: pass --control-socket PATH"}
	}
	set := map[string]string{}
	for name, v := range knobFlags {
		if given["fake-"+name] {
			set[name] = *v
		}
	}
	cfg, err := sim.LoadConfig(set, getenv)
	if err != nil {
		return sim.Config{}, usageError{strings.ReplaceAll(err.Error(), "\n", "; ")}
	}
	return cfg, nil
}

// loadConsole reads the console description the way ryll does. With no
// source at all it fails with ryll's own message (a configuration error,
// exit 1, as in ryll).
func loadConsole(ctx context.Context, given map[string]bool, rawURL, file, direct string, log *slog.Logger) (vv.Config, error) {
	switch {
	case given["url"]:
		u, err := secret.ParseURL(rawURL)
		if err != nil {
			return vv.Config{}, err
		}
		log.Debug("fetching .vv", "url", u)
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		return vv.Fetch(ctx, &http.Client{Timeout: fetchTimeout}, u)
	case given["file"]:
		return vv.ReadFile(file)
	case given["direct"]:
		return vv.ParseDirect(direct)
	default:
		//lint:ignore ST1005 ryll's own message, kept word for word.
		return vv.Config{}, errors.New("Must specify one of --url, --file, or --direct")
	}
}
