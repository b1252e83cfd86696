// Package console decides, once, where the console under test comes from,
// and hands the rest of the loadtest one Console whatever the source.
//
// The measurement does not know whether it talks to a fake or a real
// cloud: the fake provider runs the real OpenStack provisioning code
// (gophercloud, auth, catalog, microversions) against fixtures/fakecloud,
// and ryll (or fakeryll) then fetches the .vv file from the console URL
// exactly as it would from Kerbside. The url, file and direct providers
// need no cloud at all.
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
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
	// run: the console URL, the fake cloud's password, and so on. The
	// loadtest scrubs ryll's log with them and searches its outputs for
	// them.
	Secrets []string

	// FakeCloud is the in-process fake cloud of the fake provider (nil
	// otherwise); tests use it to see what the run did to the cloud.
	FakeCloud *fakecloud.Cloud

	cloud     *cloud.Cloud
	fakeCloud *fakecloud.Cloud
	keep      bool
	logger    *slog.Logger
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
	// FakeCloud tunes the fake provider's cloud.
	FakeCloud fakecloud.Options
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
	c := &Console{Provider: cfg.Provider, keep: cfg.Cloud.KeepServer, logger: logger}
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
		fc, err := fakecloud.Start(opts.FakeCloud)
		if err != nil {
			return nil, fmt.Errorf("start the fake cloud: %w", err)
		}
		c.fakeCloud, c.FakeCloud = fc, fc
		c.Secrets = append(c.Secrets, fc.Secrets()...)
		env := fc.Env()
		logger.Info("fake cloud started", "auth_url", fc.AuthURL())
		// The image, if missing, comes from the fake cloud's own
		// download URL, so the laptop run streams an upload too but never
		// reaches the internet.
		if err := c.provision(ctx, cfg, cloud.EnvFromMap(env), fc.ImageURL(), opts); err != nil {
			c.closeQuietly()
			return nil, err
		}
	case config.ProviderOpenStack:
		getenv := opts.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		if pw := getenv("OS_PASSWORD"); pw != "" {
			c.Secrets = append(c.Secrets, pw)
		}
		if err := c.provision(ctx, cfg, getenv, cfg.Cloud.ImageURL, opts); err != nil {
			c.closeQuietly()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown provider %q", cfg.Provider)
	}
	return c, nil
}

func (c *Console) provision(ctx context.Context, cfg *config.Config, getenv func(string) string, imageURL string, opts Options) error {
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
		RunID:         cfg.RunID,
		Logger:        c.logger,
	}
	con, err := cl.Provision(ctx, cc)
	if err != nil {
		return fmt.Errorf("provision a console: %w", err)
	}
	c.URL = con.URL
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

// Close deletes what Open provisioned (unless LATENCY_KEEP_SERVER) and
// stops the fake cloud. It is safe to call more than once. Give it a
// context that outlives the run's (cloud.CleanupContext).
func (c *Console) Close(ctx context.Context) error {
	var errs []error
	if c.cloud != nil {
		if err := c.cloud.Cleanup(ctx); err != nil {
			errs = append(errs, fmt.Errorf("clean up the cloud: %w", err))
		}
		c.cloud.Close()
		c.cloud = nil
	}
	if c.fakeCloud != nil {
		if n := c.fakeCloud.ServersAlive(); n > 0 && !c.keep && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("fake cloud still has %d server(s) after cleanup", n))
		}
		c.fakeCloud.Close()
		c.fakeCloud = nil
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
	default:
		return string(c.Provider) + " " + c.Direct
	}
}
