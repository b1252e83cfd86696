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
	"net/http"
	"os"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// Console is a console ready to hand to ryll (see RyllSource). A
// console URL is fetched once, at Open, into a private 0600 .vv file.
type Console struct {
	Provider config.Provider
	URL      secret.URL
	File     string
	// Direct is a SPICE server's address, parsed once (by the
	// configuration, or from Nova's answer for the direct leg).
	Direct address.Direct
	// ServerID and ServerName are set when a server was booted.
	ServerID   string
	ServerName string
	// Secrets are values that must never appear in any output of the
	// run: the console URL, OS_PASSWORD, a .vv password. The loadtest
	// scrubs ryll's log and its records with them.
	Secrets []string

	// QemuVersion, Accelerator and QemuLog describe the guest of the
	// qemu provider.
	QemuVersion string
	Accelerator string
	QemuLog     string
	// ActivityProbe is a busy guest's display traffic at a SPICE client
	// (LATENCY_ACTIVITY other than idle), taken before ryll connected.
	ActivityProbe *ActivityProbe

	cloud *cloud.Cloud
	vm    *qemu.VM
	// proxy and shared are set for a console that reaches another
	// console's guest through a SPICE proxy of ours (Proxied).
	proxy  *spiceproxy.Proxy
	shared *qemu.VM
	// routed describes the proxy under test of a load ramp that a
	// Routed console reaches its guest through ("" otherwise).
	routed string
	// same is the console whose server this one reaches another way
	// (SameServer).
	same *Console
	// link is the link in front of what the client dials (PutLink).
	link       *linked
	privateDir string
	logger     *slog.Logger
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
	// HTTPClient fetches console URLs (a 30 s client when nil).
	HTTPClient *http.Client
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
		u := cfg.Console.URL
		c.URL = u
		c.Secrets = urlSecrets(u)
		logger.Info("console from a .vv URL", "url", u)
		if err := c.fetchVV(ctx, opts.HTTPClient); err != nil {
			c.closeQuietly()
			return nil, err
		}
	case config.ProviderFile:
		pw, err := vvPassword(cfg.Console.File)
		if err != nil {
			return nil, fmt.Errorf("LATENCY_CONSOLE .vv file: %w", err)
		}
		c.File = cfg.Console.File
		if pw != "" {
			// ryll may echo it at debug level; scrub it from its log.
			c.Secrets = append(c.Secrets, pw)
		}
		logger.Info("console from a .vv file", "file", cfg.Console.File)
	case config.ProviderDirect:
		c.Direct = cfg.Console.Direct
		logger.Info("console direct", "address", c.Direct.String())
	case config.ProviderQemu:
		if err := c.openQemu(ctx, cfg); err != nil {
			c.closeQuietly()
			return nil, err
		}
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
		if !c.URL.IsZero() { // a spice-direct console URL; the direct leg has an address
			if err := c.fetchVV(ctx, opts.HTTPClient); err != nil {
				c.closeQuietly()
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unknown provider %q", cfg.Provider)
	}
	if cfg.Link != nil {
		if err := c.PutLink(ctx, *cfg.Link); err != nil {
			c.closeQuietly()
			return nil, err
		}
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
	return vvPasswordOf(b), nil
}

// urlSecrets is the URL and its parts that may be its token
// (secret.URL.Parts).
func urlSecrets(u secret.URL) []string { return u.Parts() }

// Close deletes what Open provisioned (unless LATENCY_KEEP_SERVER). It is
// safe to call more than once. Give it a context that outlives the run's
// (cloud.CleanupContext).
func (c *Console) Close(ctx context.Context) error {
	var errs []error
	if err := c.stopLink(); err != nil {
		errs = append(errs, err)
	}
	if c.vm != nil {
		if err := c.vm.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop QEMU: %w", err))
		}
		c.vm = nil
	}
	if c.proxy != nil {
		if err := c.proxy.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop the SPICE proxy: %w", err))
		}
		c.proxy, c.shared = nil, nil
	}
	if c.privateDir != "" {
		if err := os.RemoveAll(c.privateDir); err != nil {
			errs = append(errs, fmt.Errorf("remove the console's private directory: %w", err))
		}
		c.privateDir = ""
	}
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

// RyllSource is what ryll is given: exactly one of a .vv file (also for
// a fetched console URL, whose token must stay off the command line), a
// URL, or a direct address.
func (c *Console) RyllSource() (u secret.URL, file string, direct address.Direct) {
	switch {
	case c.File != "":
		return secret.URL{}, c.File, address.Direct{}
	case !c.URL.IsZero():
		return c.URL, "", address.Direct{}
	default:
		return secret.URL{}, "", c.Direct
	}
}

// Describe is a one-line, secret-free description for logs and the
// sidecar, its link included.
func (c *Console) Describe() string { return c.describeSource() + c.describeLink() }

func (c *Console) describeSource() string {
	switch {
	case c.routed != "":
		return fmt.Sprintf("%s guest through the proxy under test %s", c.Provider, c.routed)
	case !c.URL.IsZero():
		s := string(c.Provider) + " " + c.URL.Redacted()
		if c.ServerName != "" {
			s += " (server " + c.ServerName + " " + c.ServerID + ")"
		}
		return s
	case c.proxy != nil:
		return fmt.Sprintf("%s guest through the SPICE proxy %s (%s)", c.Provider, c.proxy.Addr(), c.proxy.Mode())
	case c.shared != nil:
		return fmt.Sprintf("%s guest of the A leg at %s", c.Provider, guestAddr(c.shared))
	case c.vm != nil:
		host, port := c.vm.SpiceAddr()
		return fmt.Sprintf("%s %s:%d (QEMU %s, %s, pid %d)", c.Provider, host, port, c.QemuVersion, c.Accelerator, c.vm.Pid())
	case c.File != "":
		return string(c.Provider) + " " + c.File
	case c.ServerName != "":
		return string(c.Provider) + " direct " + c.Direct.String() + " (server " + c.ServerName + " " + c.ServerID + ")"
	default:
		return string(c.Provider) + " " + c.Direct.String()
	}
}
