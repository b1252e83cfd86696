// Command fakeryll stands in for "ryll --headless --control-socket PATH":
// it takes ryll's own command line, serves ryll's control-socket protocol
// and simulates a SPICE session (package sim) whose behaviour is tuned by
// --fake-* flags or FAKERYLL_* environment variables. See README.md.
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

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
	"github.com/shakenfist/kerbside-latency/fakeryll/vv"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// version is fakeryll's own version; the protocol version it speaks is a
// knob.
const version = "1.0.0"

// fetchTimeout bounds the --url GET, like ryll's HTTP client default.
const fetchTimeout = 30 * time.Second

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
	if *showVersion {
		fmt.Fprintf(stdout, "fakeryll %s (control-socket protocol simulator, ryll-compatible)\n", version)
		return 0
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	cfg, err := checkArgs(fs, given, *headless, knobFlags, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("fakeryll v" + version + " (simulated ryll)")

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
