// Package console decides, once, where the console under test comes from,
// and hands the rest of the loadtest one Console whatever the source: a
// server booted on OpenStack with its spice-direct console URL, a .vv URL,
// a .vv file, or a direct host:port.
//
// It does not know whether its peer is real. The fake provider never
// reaches it: the composition root (latency_test.go) starts a fake cloud
// and hands this package the openstack provider with the fake's
// credentials, so the same provisioning code runs in both cases.
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Console is a console ready to hand to ryll: exactly one of URL, File
// and Direct is set.
type Console struct {
	Provider config.Provider
	URL      secret.URL
	File     string
	Direct   string
	// ServerID and ServerName are set when a server was booted.
	ServerID   string
	ServerName string
	// Secrets are values that must never appear in any output of the
	// run: the console URL, OS_PASSWORD, a .vv password. The loadtest
	// scrubs ryll's log and its records with them.
	Secrets []string

	cloud  *cloud.Cloud
	logger *slog.Logger
}

// Options are what Open needs besides the configuration.
type Options struct {
	// Getenv reads OS_* variables for the openstack provider
	// (os.Getenv when nil).
	Getenv func(string) string
	Logger *slog.Logger
	// CloudOptions tune the cloud client (poll interval, retries); tests
	// shorten them.
	CloudOptions []cloud.Option
}

// Open provisions the console named by cfg. On error everything it made
// is already cleaned up; on success the caller must call Close, with a
// context that still has time left (see cloud.CleanupContext), even when
// the run failed or was interrupted.
func Open(ctx context.Context, cfg *config.Config, opts Options) (*Console, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{Provider: cfg.Provider, logger: logger}
	switch cfg.Provider {
	case config.ProviderURL:
		u, err := secret.ParseURL(cfg.Console)
		if err != nil {
			return nil, fmt.Errorf("LATENCY_CONSOLE: %w", err)
		}
		c.URL = u
		c.Secrets = urlSecrets(u)
		logger.Info("console from a .vv URL", "url", u)
	case config.ProviderFile:
		pw, err := vvPassword(cfg.Console)
		if err != nil {
			return nil, fmt.Errorf("LATENCY_CONSOLE .vv file: %w", err)
		}
		c.File = cfg.Console
		if pw != "" {
			// ryll may echo it at debug level; scrub it from its log.
			c.Secrets = append(c.Secrets, pw)
		}
		logger.Info("console from a .vv file", "file", cfg.Console)
	case config.ProviderDirect:
		c.Direct = cfg.Console
		logger.Info("console direct", "address", cfg.Console)
	case config.ProviderFake:
		// A guard, not a provider: running the openstack code here with
		// whatever OS_* the caller has could boot a server on a real
		// cloud when the user asked for a fake one.
		return nil, errors.New("LATENCY_PROVIDER=fake is wired by the loadtest's composition root (latency_test.go), which stands in the fake cloud and fakeryll; this program did not wire it")
	case config.ProviderOpenStack:
		getenv := opts.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		if pw := getenv("OS_PASSWORD"); pw != "" {
			c.Secrets = append(c.Secrets, pw)
		}
		if err := c.provision(ctx, cfg, getenv, opts); err != nil {
			c.closeQuietly()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown provider %q", cfg.Provider)
	}
	return c, nil
}

func (c *Console) provision(ctx context.Context, cfg *config.Config, getenv func(string) string, opts Options) error {
	imageURL := cfg.Cloud.ImageURL
	cl, err := cloud.Connect(ctx, getenv, append([]cloud.Option{cloud.WithLogger(c.logger)}, opts.CloudOptions...)...)
	if err != nil {
		return fmt.Errorf("connect to OpenStack: %w", err)
	}
	c.cloud = cl
	cc := cloud.Config{
		Image:         cfg.Cloud.Image,
		ImageURL:      imageURL,
		NoImageUpload: imageURL == "",
		Flavor:        cfg.Cloud.Flavor,
		Network:       cfg.Cloud.Network,
		BootTimeout:   cfg.Cloud.BootTimeout,
		KeepServer:    cfg.Cloud.KeepServer,
		Console:       cloud.ConsoleMode(cfg.Cloud.Console),
		RunID:         cfg.RunID,
		Logger:        c.logger,
	}
	con, err := cl.Provision(ctx, cc)
	if err != nil {
		return fmt.Errorf("provision a console: %w", err)
	}
	c.URL, c.Direct = con.URL, con.Direct
	c.ServerID, c.ServerName = con.ServerID, con.ServerName
	c.Secrets = append(c.Secrets, urlSecrets(con.URL)...)
	return nil
}

// vvPassword reads the SPICE password of a .vv file, so that it can be
// scrubbed from every output. It does not validate the file: ryll does,
// and reports its own errors.
func vvPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == "password" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", nil
}

// urlSecrets is the URL itself; the redactor in harness/ryll also hides
// its query values on their own.
func urlSecrets(u secret.URL) []string {
	if u.IsZero() {
		return nil
	}
	return []string{u.Reveal()}
}

// Close deletes what Open provisioned (unless LATENCY_KEEP_SERVER). It is
// safe to call more than once. Give it a context that outlives the run's
// (cloud.CleanupContext).
func (c *Console) Close(ctx context.Context) error {
	var errs []error
	if c.cloud != nil {
		if err := c.cloud.Cleanup(ctx); err != nil {
			errs = append(errs, fmt.Errorf("clean up the cloud: %w", err))
		}
		c.cloud.Close()
		c.cloud = nil
	}
	return errors.Join(errs...)
}

func (c *Console) closeQuietly() {
	ctx, cancel := cloud.CleanupContext(context.Background(), cloud.DefaultCleanupTimeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		c.logger.Error("cleanup after a failed provisioning", "err", err)
	}
}

// Describe is a one-line, secret-free description for logs and the
// sidecar.
func (c *Console) Describe() string {
	switch {
	case !c.URL.IsZero():
		s := string(c.Provider) + " " + c.URL.Redacted()
		if c.ServerName != "" {
			s += " (server " + c.ServerName + " " + c.ServerID + ")"
		}
		return s
	case c.File != "":
		return string(c.Provider) + " " + c.File
	case c.ServerName != "":
		return string(c.Provider) + " direct " + c.Direct + " (server " + c.ServerName + " " + c.ServerID + ")"
	default:
		return string(c.Provider) + " " + c.Direct
	}
}
