// Command latency-sweep deletes servers that earlier latency loadtest runs
// left behind (a killed run, a KeepServer run, a crashed CI job).
//
// It selects servers only by the loadtest's tag AND its metadata (see
// harness/cloud.Sweep), never by name, so nothing else in the project can
// be touched. Credentials come from OS_CLOUD (clouds.yaml) or OS_* variables.
//
//	latency-sweep [-older-than 1h] [-dry-run] [-timeout 10m] [-v]
//
// -older-than defaults to 1h so that a run in progress elsewhere in the
// same project survives; pass -older-than 0 to sweep everything. Exit
// status: 0 done, 1 a failure, 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: arguments, environment and outputs are
// passed in, so tests can drive it against the fake cloud.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, opts ...cloud.Option) int {
	fs := flag.NewFlagSet("latency-sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	olderThan := fs.Duration("older-than", time.Hour, "only delete servers created at least this long ago (0: all)")
	dryRun := fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	verbose := fs.Bool("v", false, "debug logging")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: latency-sweep [-older-than DURATION] [-dry-run] [-timeout DURATION] [-v]")
		fmt.Fprintln(stderr, "Deletes servers left by earlier latency loadtest runs, chosen by tag and metadata only.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "latency-sweep: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *olderThan < 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "latency-sweep: -older-than must not be negative and -timeout must be positive")
		return 2
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	c, err := cloud.Connect(ctx, env, append([]cloud.Option{cloud.WithLogger(log)}, opts...)...)
	if err != nil {
		log.Error("sweep failed", "error", err)
		return 1
	}
	defer c.Close()
	ids, err := c.Sweep(ctx, cloud.SweepOptions{OlderThan: *olderThan, DryRun: *dryRun})
	verb := "deleted"
	if *dryRun {
		verb = "would delete"
	}
	for _, id := range ids {
		fmt.Fprintf(stdout, "%s %s\n", verb, id)
	}
	if err != nil {
		log.Error("sweep failed", "error", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s %d server(s) older than %s\n", verb, len(ids), *olderThan)
	return 0
}
