package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/remoteconsoles"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/runid"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Defaults for Config, and the markers every loadtest server carries.
const (
	DefaultImage       = "uefi-latency-guest"
	DefaultImageURL    = "https://images.shakenfist.com/testimages/uefi-latency-guest.qcow2"
	DefaultFlavor      = "vdi-tiny"
	DefaultNetwork     = "public1"
	DefaultBootTimeout = 10 * time.Minute
	// DefaultImageTimeout bounds download, upload and waiting for active.
	DefaultImageTimeout = 30 * time.Minute

	// Tag marks loadtest servers; Sweep lists by it.
	Tag = "kerbside-latency"
	// MetaLoadtest (value MetaLoadtestValue), MetaRunID and MetaStarted are
	// server metadata naming the loadtest, the run and its start time.
	// Sweep deletes only servers carrying both the tag and this metadata.
	MetaLoadtest      = "kerbside-loadtest"
	MetaLoadtestValue = "latency"
	MetaRunID         = "kerbside-latency-run-id"
	MetaStarted       = "kerbside-latency-started-at"
	// ServerNamePrefix starts every loadtest server's name.
	ServerNamePrefix = "latency-"

	// ConsoleMicroversion is the compute microversion that added
	// spice-direct consoles (Nova 2025.1).
	ConsoleMicroversion = "2.99"

	// The flavor shape Provision creates when the flavor is missing.
	flavorRAM, flavorDisk, flavorVCPUs = 512, 2, 1
	flavorVideoSpec, flavorVideoRAM    = "hw_video:ram_max_mb", "64"

	statusLogEvery   = 15 * time.Second
	progressLogEvery = 5 * time.Second
	createAttempts   = 2
)

var (
	baseMV          = microversion{2, 1}
	minRemoteMV     = microversion{2, 6}  // POST /servers/{id}/remote-consoles
	minTokenMV      = microversion{2, 31} // os-console-auth-tokens for SPICE tokens
	minFlavorDescMV = microversion{2, 55} // a flavor's description
	minConsoleMV    = microversion{2, 99}
	minTagsMV       = microversion{2, 52} // tags in the create request
	minListTagMV    = microversion{2, 26} // tags filter and tags in answers
)

// Errors callers may want to tell apart with errors.Is.
var (
	// ErrMicroversion: the cloud's compute API is too old for what was
	// asked (spice-direct needs 2.99, tags need 2.52).
	ErrMicroversion = errors.New("compute API microversion not supported by this cloud")
	// ErrFlavorForbidden: the flavor is missing and this account may not
	// create it.
	ErrFlavorForbidden = errors.New("flavor creation forbidden")
	// ErrBootFailed: the server went to ERROR.
	ErrBootFailed = errors.New("server boot failed")
	// ErrBootTimeout: the server was not ACTIVE within BootTimeout.
	ErrBootTimeout = errors.New("server boot timed out")
)

// Config describes one provisioning run. Zero fields take the defaults.
type Config struct {
	// Image is the Glance image name to boot (DefaultImage).
	Image string
	// ImageURL is where to fetch the image when Glance lacks it
	// (DefaultImageURL). Set NoImageUpload to forbid the upload.
	ImageURL      string
	NoImageUpload bool
	// Flavor is the flavor name (DefaultFlavor); it is created when
	// missing if the account may.
	Flavor string
	// Network is the Neutron network name (DefaultNetwork).
	Network string
	// BootTimeout bounds waiting for ACTIVE (DefaultBootTimeout).
	BootTimeout time.Duration
	// ImageTimeout bounds the image download, upload and activation
	// (DefaultImageTimeout).
	ImageTimeout time.Duration
	// KeepServer makes Cleanup leave the server running, and say so.
	KeepServer bool
	// Console is the console to hand back (ConsoleSpiceDirect when empty).
	Console ConsoleMode
	// RunID names the run: the server is ServerNamePrefix+RunID. Letters,
	// digits, '.', '_' and '-', at most 63; generated when empty.
	RunID string
	// Logger receives this run's logs (default: the Cloud's logger).
	Logger *slog.Logger
}

// Console is a provisioned server and its console: URL for a spice-direct
// console, Direct for the direct leg (Config.Console).
type Console struct {
	// ServerID and ServerName identify the booted server.
	ServerID   string
	ServerName string
	// RunID is Config.RunID, generated or given.
	RunID string
	// URL is the Kerbside URL that serves the .vv file. It is a credential:
	// hand URL.Reveal() to ryll only; log URL (it prints redacted).
	URL secret.URL
	// Direct is the hypervisor's SPICE address, for ryll's --direct
	// (ConsoleDirect only).
	Direct address.Direct
	// ConsoleType is the Nova console type opened: "spice-direct", or
	// "spice-html5" for the direct leg on a cloud older than 2025.1.
	ConsoleType string
}

// run is the state Cleanup needs about the one server a Cloud makes.
type run struct {
	id, name   string
	started    time.Time
	keep       bool
	log        *slog.Logger
	createSent bool     // a create request may have reached Nova
	serverIDs  []string // servers known to be ours
	cleaned    bool
}

func (r *run) addServer(id string) {
	if id != "" && !slices.Contains(r.serverIDs, id) {
		r.serverIDs = append(r.serverIDs, id)
	}
}

func (cfg *Config) applyDefaults(fallback *slog.Logger) error {
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.ImageURL == "" && !cfg.NoImageUpload {
		cfg.ImageURL = DefaultImageURL
	}
	if cfg.NoImageUpload {
		cfg.ImageURL = ""
	}
	if cfg.Flavor == "" {
		cfg.Flavor = DefaultFlavor
	}
	if cfg.Network == "" {
		cfg.Network = DefaultNetwork
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = DefaultBootTimeout
	}
	if cfg.ImageTimeout == 0 {
		cfg.ImageTimeout = DefaultImageTimeout
	}
	if cfg.BootTimeout < 0 || cfg.ImageTimeout < 0 {
		return fmt.Errorf("invalid config: BootTimeout (%s) and ImageTimeout (%s) must be positive", cfg.BootTimeout, cfg.ImageTimeout)
	}
	if cfg.RunID == "" {
		cfg.RunID = NewRunID(time.Now())
	}
	if err := runid.Validate(cfg.RunID); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = fallback
	}
	if cfg.Console == "" {
		cfg.Console = ConsoleSpiceDirect
	}
	if cfg.Console != ConsoleSpiceDirect && cfg.Console != ConsoleDirect {
		return fmt.Errorf("invalid config: console mode %q (want %q or %q)", cfg.Console, ConsoleSpiceDirect, ConsoleDirect)
	}
	return nil
}

// NewRunID returns a run id made of the time and a random suffix
// (runid.New).
func NewRunID(now time.Time) string { return runid.New(now) }

// Provision makes sure the image, flavor and network exist, boots a
// server, waits for it to be ACTIVE and opens its console: a spice-direct
// console, or with ConsoleDirect the hypervisor's address behind a console
// token. Before anything is created it checks that the cloud can give that
// console (see preflight), so a cloud too old or an account without the
// rights fails at once, having made nothing.
//
// Whatever Provision returns, the caller must run Cleanup, with a context
// that outlives the one given here (a cancelled Provision still leaves a
// server behind):
//
//	c, err := cloud.Connect(ctx, os.Getenv)
//	...
//	defer func() {
//		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
//		defer cancel()
//		if err := c.Cleanup(cctx); err != nil { log.Error(...) }
//	}()
//	con, err := c.Provision(ctx, cloud.Config{})
//
// With ctx from signal.NotifyContext, SIGINT and SIGTERM cancel Provision
// and the deferred Cleanup still runs; a panic runs it too.
func (c *Cloud) Provision(ctx context.Context, cfg Config) (*Console, error) {
	if err := cfg.applyDefaults(c.log); err != nil {
		return nil, err
	}
	name := ServerNamePrefix + cfg.RunID
	log := cfg.Logger.With("run_id", cfg.RunID, "server", name)

	c.mu.Lock()
	if c.run != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("provision %s: this Cloud already provisioned run %s; use one Cloud per run", name, c.run.id)
	}
	c.run = &run{id: cfg.RunID, name: name, started: time.Now().UTC(), keep: cfg.KeepServer, log: log}
	r := c.run
	c.mu.Unlock()

	if err := c.preflight(ctx, cfg.Console, log); err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	log.Info("provisioning", "image", cfg.Image, "flavor", cfg.Flavor, "network", cfg.Network, "boot_timeout", cfg.BootTimeout,
		"console", string(cfg.Console))

	imageID, err := c.ensureImage(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	flavorID, err := c.ensureFlavor(ctx, cfg.Flavor, log)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	networkID, err := c.findNetwork(ctx, cfg.Network, log)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	serverID, err := c.createServer(ctx, r, imageID, flavorID, networkID)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	if err := c.waitActive(ctx, serverID, name, cfg.BootTimeout, log); err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	con := &Console{ServerID: serverID, ServerName: name, RunID: cfg.RunID}
	if cfg.Console == ConsoleDirect {
		con.Direct, con.ConsoleType, err = c.directConsole(ctx, serverID, log)
	} else {
		con.URL, err = c.spiceDirect(ctx, serverID, log)
		con.ConsoleType = "spice-direct"
	}
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	return con, nil
}

// mvName is a client's microversion for messages ("" is Nova's 2.1).
func mvName(v string) string {
	if v == "" {
		return "2.1"
	}
	return v
}

// computeErr wraps err from a compute call, naming a microversion refusal
// (406, or 400/404 mentioning the version) as ErrMicroversion.
func computeErr(sc *gophercloud.ServiceClient, what string, err error) error {
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		body := strings.ToLower(string(code.Body))
		mentions := strings.Contains(body, "version") || strings.Contains(body, "spice-direct")
		if code.Actual == http.StatusNotAcceptable || (mentions && (code.Actual == http.StatusBadRequest || code.Actual == http.StatusNotFound)) {
			return fmt.Errorf("%s: %w: the cloud refused compute microversion %s (HTTP %d: %s)",
				what, ErrMicroversion, mvName(sc.Microversion), code.Actual, strings.TrimSpace(string(code.Body)))
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ensureFlavor finds the flavor by name (Nova has no name filter: list and
// match), creating it with the loadtest shape when missing.
func (c *Cloud) ensureFlavor(ctx context.Context, name string, log *slog.Logger) (string, error) {
	find := func() (*flavors.Flavor, error) {
		lc := c.at(baseMV)
		pages, err := flavors.ListDetail(lc, flavors.ListOpts{}).AllPages(ctx)
		if err != nil {
			return nil, computeErr(lc, "list flavors", err)
		}
		all, err := flavors.ExtractFlavors(pages)
		if err != nil {
			return nil, fmt.Errorf("read flavor list: %w", err)
		}
		for i := range all {
			if all[i].Name == name {
				return &all[i], nil
			}
		}
		return nil, nil
	}
	f, err := find()
	if err != nil {
		return "", err
	}
	if f != nil {
		log.Info("flavor found", "flavor", name, "flavor_id", f.ID, "ram_mb", f.RAM, "disk_gb", f.Disk, "vcpus", f.VCPUs)
		if f.ExtraSpecs != nil && f.ExtraSpecs[flavorVideoSpec] == "" {
			log.Warn("flavor lacks the video RAM extra spec the guest expects", "flavor", name, "extra_spec", flavorVideoSpec+"="+flavorVideoRAM)
		}
		return f.ID, nil
	}

	forbidden := func(err error) error {
		return fmt.Errorf("%w: flavor %q does not exist and this account may not create it (%v); an admin must create it "+
			"with %d MB RAM, %d GB disk, %d vCPU and extra spec %s=%s, e.g. "+
			"openstack flavor create --ram %d --disk %d --vcpus %d --property %s=%s %s",
			ErrFlavorForbidden, name, summarize(err), flavorRAM, flavorDisk, flavorVCPUs, flavorVideoSpec, flavorVideoRAM,
			flavorRAM, flavorDisk, flavorVCPUs, flavorVideoSpec, flavorVideoRAM, name)
	}
	log.Info("flavor missing; creating it", "flavor", name, "ram_mb", flavorRAM, "disk_gb", flavorDisk, "vcpus", flavorVCPUs)
	disk := flavorDisk
	fc := c.at(minFlavorDescMV)
	opts := flavors.CreateOpts{Name: name, RAM: flavorRAM, VCPUs: flavorVCPUs, Disk: &disk}
	if c.effective(minFlavorDescMV).atLeast(minFlavorDescMV) {
		opts.Description = "kerbside latency loadtest guest" // a field since 2.55
	}
	created, err := flavors.Create(ctx, fc, opts).Extract()
	switch {
	case gophercloud.ResponseCodeIs(err, http.StatusForbidden):
		return "", forbidden(err)
	case gophercloud.ResponseCodeIs(err, http.StatusConflict):
		// Someone made it between our list and our create.
		if f, ferr := find(); ferr == nil && f != nil {
			return f.ID, nil
		}
		return "", computeErr(fc, "create flavor "+name, err)
	case err != nil:
		return "", computeErr(fc, "create flavor "+name, err)
	}
	_, err = flavors.CreateExtraSpecs(ctx, c.at(baseMV), created.ID, flavors.ExtraSpecsOpts{flavorVideoSpec: flavorVideoRAM}).Extract()
	if gophercloud.ResponseCodeIs(err, http.StatusForbidden) {
		return "", forbidden(err)
	}
	if err != nil {
		return "", computeErr(c.at(baseMV), fmt.Sprintf("set extra specs on flavor %s (%s)", name, created.ID), err)
	}
	log.Info("flavor created", "flavor", name, "flavor_id", created.ID)
	return created.ID, nil
}

// findNetwork resolves a Neutron network name to its ID; none or several
// matches are errors, since booting on the wrong network fails later and
// less clearly.
func (c *Cloud) findNetwork(ctx context.Context, name string, log *slog.Logger) (string, error) {
	nc, err := c.serviceClient(ctx, "network", 2, "v2.0/")
	if err != nil {
		return "", err
	}
	pages, err := networks.List(nc, networks.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("list networks named %q: %w", name, err)
	}
	all, err := networks.ExtractNetworks(pages)
	if err != nil {
		return "", fmt.Errorf("read network list: %w", err)
	}
	switch len(all) {
	case 0:
		return "", fmt.Errorf("network %q not found (set Config.Network to one this project can use)", name)
	case 1:
		log.Info("network found", "network", name, "network_id", all[0].ID)
		return all[0].ID, nil
	}
	ids := make([]string, len(all))
	for i, n := range all {
		ids[i] = n.ID
	}
	return "", fmt.Errorf("network name %q is ambiguous: %d networks (%s); rename one or use a unique name", name, len(all), strings.Join(ids, ", "))
}

// createServer boots the run's server. A create that fails is never
// simply repeated: first look for the server by the run's tag and name
// (the request may have worked and only the answer been lost), and only
// when none exists and the failure was transient, try once more.
func (c *Cloud) createServer(ctx context.Context, r *run, imageID, flavorID, networkID string) (string, error) {
	if c.maxMicroversion.known() && !c.maxMicroversion.atLeast(minTagsMV) {
		return "", fmt.Errorf("create server: %w: tagging at create needs %s, this cloud's maximum is %s", ErrMicroversion, "2.52", c.maxMicroversion)
	}
	sc := c.at(minTagsMV)
	opts := servers.CreateOpts{
		Name: r.name, ImageRef: imageID, FlavorRef: flavorID,
		Networks: []servers.Network{{UUID: networkID}},
		Tags:     []string{Tag},
		Metadata: map[string]string{
			MetaLoadtest: MetaLoadtestValue,
			MetaRunID:    r.id,
			MetaStarted:  r.started.Format(time.RFC3339),
		},
	}
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		r.createSent = true
		c.mu.Unlock()
		srv, err := servers.Create(ctx, sc, opts, nil).Extract()
		if err == nil {
			c.mu.Lock()
			r.addServer(srv.ID)
			c.mu.Unlock()
			r.log.Info("server create accepted", "server_id", srv.ID)
			return srv.ID, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("create server %s: %w", r.name, err)
		}
		found, ferr := c.findRunServers(ctx, r)
		if ferr == nil && len(found) > 0 {
			c.mu.Lock()
			for _, id := range found {
				r.addServer(id)
			}
			c.mu.Unlock()
			r.log.Warn("server create failed but the server exists; using it", "server_id", found[0], "error", summarize(err))
			return found[0], nil
		}
		if ferr != nil || !transient(err) || attempt >= createAttempts {
			if ferr != nil {
				return "", fmt.Errorf("create server %s: %w (and looking for it afterwards failed: %v)", r.name, createErr(sc, "create", err), ferr)
			}
			return "", createErr(sc, "create server "+r.name, err)
		}
		r.log.Warn("server create failed and no server was made; trying again", "attempt", attempt, "error", summarize(err))
		if !sleep(ctx, c.backoffFor(uint(attempt))) {
			return "", fmt.Errorf("create server %s: %w", r.name, ctx.Err())
		}
	}
}

// findRunServers lists the servers of run r: our tag (filtered by Nova),
// then the exact name and the run ID in metadata (checked here, so the
// match does not depend on how a cloud reads a name filter). It finds a
// server whose create answer was lost.
func (c *Cloud) findRunServers(ctx context.Context, r *run) ([]string, error) {
	if c.maxMicroversion.known() && !c.maxMicroversion.atLeast(minListTagMV) {
		return nil, fmt.Errorf("list servers: %w: the tags filter needs 2.26, this cloud's maximum is %s", ErrMicroversion, c.maxMicroversion)
	}
	lc := c.at(minListTagMV)
	pages, err := servers.List(lc, servers.ListOpts{Tags: Tag}).AllPages(ctx)
	if err != nil {
		return nil, computeErr(lc, "list servers of run "+r.id, err)
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, fmt.Errorf("read server list: %w", err)
	}
	var ids []string
	for _, s := range all {
		// A missing tags field is trusted to the server-side filter; a
		// present one must hold our tag.
		tagged := s.Tags == nil || slices.Contains(*s.Tags, Tag)
		if tagged && s.Name == r.name && s.Metadata[MetaRunID] == r.id && s.Metadata[MetaLoadtest] == MetaLoadtestValue {
			ids = append(ids, s.ID)
		}
	}
	return ids, nil
}

var errBootTimeout = errors.New("boot timeout")

// waitActive polls the server until ACTIVE, failing at once on ERROR with
// the server's fault message, and after timeout. servers.WaitForStatus is
// not used because it keeps waiting through ERROR.
func (c *Cloud) waitActive(ctx context.Context, id, name string, timeout time.Duration, log *slog.Logger) error {
	wctx, cancel := context.WithTimeoutCause(ctx, timeout, errBootTimeout)
	defer cancel()
	start := time.Now()
	var lastLog time.Time
	lastStatus, lastTask := "", ""
	for {
		s, err := servers.Get(wctx, c.at(baseMV), id).Extract()
		switch {
		case err != nil && wctx.Err() != nil:
			// handled below with the cause
		case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
			return fmt.Errorf("%w: server %s (%s) disappeared while booting", ErrBootFailed, name, id)
		case err != nil:
			return computeErr(c.at(baseMV), fmt.Sprintf("poll server %s (%s)", name, id), err)
		case s.Status == "ACTIVE":
			log.Info("server active", "server_id", id, "boot_time", time.Since(start).Round(time.Millisecond))
			return nil
		case s.Status == "ERROR":
			msg := s.Fault.Message
			if msg == "" {
				msg = "no fault message given"
			}
			return fmt.Errorf("%w: server %s (%s) went to ERROR: %s", ErrBootFailed, name, id, msg)
		case s.Status == "DELETED" || s.Status == "SOFT_DELETED":
			return fmt.Errorf("%w: server %s (%s) was deleted while booting", ErrBootFailed, name, id)
		default:
			lastStatus, lastTask = s.Status, s.TaskState
			if time.Since(lastLog) >= statusLogEvery {
				log.Info("waiting for server", "server_id", id, "status", s.Status, "task_state", s.TaskState,
					"elapsed", time.Since(start).Round(time.Second), "timeout", timeout)
				lastLog = time.Now()
			}
		}
		if wctx.Err() != nil || !sleep(wctx, c.poll) {
			if errors.Is(context.Cause(wctx), errBootTimeout) && ctx.Err() == nil {
				return fmt.Errorf("%w: server %s (%s) not ACTIVE after %s (last status %s, task state %q)",
					ErrBootTimeout, name, id, timeout, lastStatus, lastTask)
			}
			return fmt.Errorf("wait for server %s (%s): %w", name, id, ctx.Err())
		}
	}
}

// spiceDirect opens a spice-direct console at microversion 2.99. The URL
// is a credential and is handled only as a secret.URL from here on.
func (c *Cloud) spiceDirect(ctx context.Context, id string, log *slog.Logger) (secret.URL, error) {
	cc := *c.compute
	cc.Microversion = ConsoleMicroversion
	rc, err := remoteconsoles.Create(ctx, &cc, id, remoteconsoles.CreateOpts{
		Protocol: remoteconsoles.ConsoleProtocolSPICE,
		Type:     remoteconsoles.ConsoleType("spice-direct"),
	}).Extract()
	if err != nil {
		return secret.URL{}, computeErr(&cc, "open spice-direct console on server "+id, err)
	}
	if rc == nil || rc.Type != "spice-direct" || rc.Protocol != "spice" {
		return secret.URL{}, fmt.Errorf("open spice-direct console on server %s: unexpected answer (protocol %q, type %q)",
			id, safeField(rc, func(r *remoteconsoles.RemoteConsole) string { return r.Protocol }),
			safeField(rc, func(r *remoteconsoles.RemoteConsole) string { return r.Type }))
	}
	u, err := secret.ParseURL(rc.URL)
	if err != nil {
		return secret.URL{}, fmt.Errorf("open spice-direct console on server %s: %w", id, err)
	}
	log.Info("console ready", "server_id", id, "console_url", u.Redacted())
	return u, nil
}

func safeField(rc *remoteconsoles.RemoteConsole, f func(*remoteconsoles.RemoteConsole) string) string {
	if rc == nil {
		return ""
	}
	return f(rc)
}

// SpiceDirect asks Nova for a new spice-direct console for a server this
// run booted. The B leg of an A/B reaches the same server through
// Kerbside this way, with a fresh console for every block: a Kerbside
// .vv carries a one-time password, so a block cannot reuse the last one's.
func (c *Cloud) SpiceDirect(ctx context.Context, serverID string) (secret.URL, error) {
	return c.spiceDirect(ctx, serverID, c.log)
}
