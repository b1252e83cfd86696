package guestload

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/loadgen"
	"github.com/shakenfist/kerbside-latency/harness/runid"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Defaults of CloudConfig.
const (
	// DefaultCloudFlowTimeout bounds one busy server's first draw once
	// its console is linked: a UEFI guest paints within seconds of
	// ACTIVE; the boot itself is bounded by BootTimeout.
	DefaultCloudFlowTimeout = 2 * time.Minute
	// fetchTimeout bounds the GET of one console URL.
	fetchTimeout = 30 * time.Second
)

// CloudConfig says what busy servers boot and how their viewers reach
// their consoles.
type CloudConfig struct {
	// Getenv reads the OS_* credentials (os.Getenv when nil).
	Getenv func(string) string
	// CloudOptions tune the cloud client (poll interval, retries).
	CloudOptions []cloud.Option
	// Image is the busy servers' Glance image (LATENCY_LOAD_IMAGE).
	// ImageURL uploads it when Glance lacks it; empty never uploads.
	Image, ImageURL string
	// Flavor, Network and BootTimeout are the measured console's
	// (LATENCY_FLAVOR, LATENCY_NETWORK, LATENCY_BOOT_TIMEOUT); zero
	// values take harness/cloud's defaults.
	Flavor, Network string
	BootTimeout     time.Duration
	// RunID is the run's id: busy server i is latency-<RunID>-l<i>,
	// tagged and with run metadata <RunID>-l<i>, so make sweep finds it.
	RunID string
	// Router, when set, gives each viewer its way to Kerbside (a link in
	// front of it); nil dials the .vv's address.
	Router load.Router
	// HTTPClient fetches the console URLs (a 30 s client when nil).
	HTTPClient *http.Client
	// Parallel bounds the servers provisioned at once (DefaultParallel).
	Parallel int
	// FlowTimeout bounds a linked console's first draw
	// (DefaultCloudFlowTimeout).
	FlowTimeout time.Duration
	// StopTimeout bounds deleting the servers of one Set, or of Close
	// (cloud.DefaultCleanupTimeout).
	StopTimeout time.Duration
	// Logger receives the source's progress; nil discards it.
	Logger *slog.Logger
}

// CloudConfigFrom is the busy servers' part of the run's configuration:
// LATENCY_LOAD_IMAGE (uploaded from LATENCY_IMAGE_URL only when it is
// the measured console's own image), and the measured console's flavor,
// network, boot timeout and run id.
func CloudConfigFrom(c *config.Config) CloudConfig {
	cc := CloudConfig{
		Image: c.Cloud.LoadImage, Flavor: c.Cloud.Flavor, Network: c.Cloud.Network,
		BootTimeout: c.Cloud.BootTimeout, RunID: c.RunID,
	}
	if cc.Image == "" || cc.Image == c.Cloud.Image {
		cc.Image, cc.ImageURL = c.Cloud.Image, c.Cloud.ImageURL
	}
	return cc
}

// Cloud is the "openstack" load.Source: more servers booted beside the
// measured console, each viewed through its own spice-direct console,
// that is through Kerbside.
type Cloud struct {
	cfg  CloudConfig
	pool *pool
	log  *slog.Logger

	mu      sync.Mutex
	secrets []string
}

var _ load.Source = (*Cloud)(nil)

// NewCloud checks the configuration and returns a source with no server
// booted.
func NewCloud(cfg CloudConfig) (*Cloud, error) {
	if cfg.Image == "" {
		return nil, fmt.Errorf("guestload openstack: no image for the busy servers (LATENCY_LOAD_IMAGE)")
	}
	// Room for the "-l<i>" each server adds (up to 9999 servers).
	if err := runid.ValidateLen(cfg.RunID, runid.MaxLen-len("-l9999")); err != nil {
		return nil, fmt.Errorf("guestload openstack: the busy servers' names: %w", err)
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if cfg.FlowTimeout <= 0 {
		cfg.FlowTimeout = DefaultCloudFlowTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = cloud.DefaultCleanupTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cloud{cfg: cfg, log: cfg.Logger}
	if pw := cfg.Getenv("OS_PASSWORD"); pw != "" {
		c.secrets = append(c.secrets, pw)
	}
	c.pool = newPool("openstack", c.start, cfg.Parallel, cfg.StopTimeout, cfg.Logger)
	return c, nil
}

// Name is "openstack".
func (c *Cloud) Name() string { return "openstack" }

// Set makes exactly n busy servers run, each with its viewer flowing
// through Kerbside; see load.Source. Servers beyond n are deleted.
func (c *Cloud) Set(ctx context.Context, n int) error { return c.pool.set(ctx, n) }

// Sample reports what the viewers read (the servers' processes are the
// cloud's: none are listed); a session that ended by itself is an error.
func (c *Cloud) Sample(ctx context.Context) (load.Sample, error) { return c.pool.sample(ctx) }

// Close deletes every busy server (in parallel, bounded by StopTimeout),
// also those a failed Set could not delete. Safe to call more than once.
func (c *Cloud) Close(ctx context.Context) error { return c.pool.close(ctx) }

// Secrets are the values no output of the run may show: every console
// URL (and its token) and .vv password the source handled, and
// OS_PASSWORD.
func (c *Cloud) Secrets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.secrets...)
}

func (c *Cloud) addSecrets(s ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range s {
		if v != "" {
			c.secrets = append(c.secrets, v)
		}
	}
}

// start boots busy server i, fetches its spice-direct .vv through
// Kerbside and links a viewer with it.
func (c *Cloud) start(ctx context.Context, i int) (_ *session, err error) {
	id := c.cfg.RunID + "-l" + strconv.Itoa(i)
	name := cloud.ServerNamePrefix + id
	t0 := time.Now()
	cl, err := cloud.Connect(ctx, c.cfg.Getenv, append([]cloud.Option{cloud.WithLogger(c.log)}, c.cfg.CloudOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("busy server %s: connect to OpenStack: %w", name, err)
	}
	// From here on the server may exist: the session's stop deletes it.
	s := &session{name: name, stop: func(ctx context.Context) error {
		defer cl.Close()
		return cl.Cleanup(ctx)
	}}
	con, err := cl.Provision(ctx, cloud.Config{
		Image: c.cfg.Image, ImageURL: c.cfg.ImageURL, NoImageUpload: c.cfg.ImageURL == "",
		Flavor: c.cfg.Flavor, Network: c.cfg.Network, BootTimeout: c.cfg.BootTimeout,
		Console: cloud.ConsoleSpiceDirect, RunID: id, Logger: c.log,
	})
	if err != nil {
		return s, fmt.Errorf("busy server %s: %w", name, err)
	}
	c.addSecrets(con.URL.Parts()...)
	booted := time.Since(t0)
	body, err := c.fetch(ctx, con.URL)
	if err != nil {
		return s, fmt.Errorf("busy server %s: %w", name, err)
	}
	v, err := parseVV(body)
	if err != nil {
		return s, fmt.Errorf("busy server %s: the .vv from %s: %w", name, con.URL.Redacted(), err)
	}
	c.addSecrets(v.Password.Reveal())
	tc, err := v.tlsConfig()
	if err != nil {
		return s, fmt.Errorf("busy server %s: %w", name, err)
	}
	addr := v.addr()
	if c.cfg.Router != nil {
		if addr, err = c.route(ctx, v); err != nil {
			return s, fmt.Errorf("busy server %s: %w", name, err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, c.cfg.FlowTimeout)
	defer cancel()
	cli, err := loadgen.Dial(fctx, loadgen.ClientConfig{Addr: addr, Password: v.Password, TLS: tc})
	if err != nil {
		return s, fmt.Errorf("busy server %s: link its console (%s, via %s): %w", name, v.addr(), addr, err)
	}
	s.client = cli
	if err := waitFlowing(fctx, cli, nil, c.cfg.FlowTimeout); err != nil {
		return s, fmt.Errorf("busy server %s: %w", name, err)
	}
	c.log.Info("busy server flowing", "server", name, "server_id", con.ServerID, "console", v.addr(), "via", addr, "tls", tc != nil,
		"boot", booted.Round(time.Millisecond), "first_draw", time.Since(t0).Round(time.Millisecond))
	return s, nil
}

// route asks the Router for the way to the console's address.
func (c *Cloud) route(ctx context.Context, v vvConsole) (string, error) {
	port := v.TLSPort
	if port == 0 {
		port = v.Port
	}
	ip, err := netip.ParseAddr(v.Host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", v.Host)
		if lerr != nil || len(ips) == 0 {
			return "", fmt.Errorf("resolve the console's host %q for the route to it: %v", v.Host, lerr)
		}
		ip = ips[0]
	}
	target := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	via, err := c.cfg.Router(ctx, target)
	if err != nil {
		return "", fmt.Errorf("a route to the console %s: %w", target, err)
	}
	return via.String(), nil
}

// fetch GETs a console URL as the measured console's is fetched: the
// status checked (Kerbside's tokens are one-time), the size bounded, the
// URL in errors only redacted.
func (c *Cloud) fetch(ctx context.Context, u secret.URL) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Reveal(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch the console's .vv from %s: %w", u.Redacted(), secret.StripURLError(err))
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the console's .vv from %s: %w", u.Redacted(), secret.StripURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxVV+1))
	if err != nil {
		return nil, fmt.Errorf("fetch the console's .vv from %s: read: %w", u.Redacted(), secret.StripURLError(err))
	}
	if resp.StatusCode/100 != 2 {
		hint := ""
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound {
			hint = ": the console token is unknown, used or expired (Kerbside's tokens are one-time)"
		}
		return nil, fmt.Errorf("fetch the console's .vv from %s: HTTP %d%s", u.Redacted(), resp.StatusCode, hint)
	}
	return body, nil
}
