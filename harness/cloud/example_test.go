package cloud_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

// The cleanup pattern: Cleanup is deferred right after Connect, with a
// context of its own, so it runs on success, failure, timeout, panic and
// SIGINT/SIGTERM (which cancel ctx, not the cleanup).
func ExampleCloud_Provision() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	c, err := cloud.Connect(ctx, os.Getenv, cloud.WithLogger(log))
	if err != nil {
		log.Error("connect", "error", err)
		return
	}
	defer c.Close()
	defer func() {
		cctx, cancel := cloud.CleanupContext(ctx, 5*time.Minute) // WithoutCancel + timeout
		defer cancel()
		if err := c.Cleanup(cctx); err != nil {
			log.Error("cleanup", "error", err)
		}
	}()

	con, err := c.Provision(ctx, cloud.Config{RunID: cloud.NewRunID(time.Now())})
	if err != nil {
		log.Error("provision", "error", err)
		return
	}
	log.Info("console", "url", con.URL) // prints redacted; pass con.URL.Reveal() to ryll only
}
