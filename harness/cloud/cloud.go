package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/utils"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Defaults for the knobs Connect takes as options.
const (
	DefaultRetries      = 4
	DefaultRetryBackoff = 500 * time.Millisecond
	DefaultPollInterval = 5 * time.Second
	// maxRetryDelay caps one backoff step, and a 429's Retry-After.
	maxRetryDelay = 15 * time.Second
	// responseHeaderTimeout bounds every API call, including the ones
	// gophercloud's endpoint discovery makes without a context.
	responseHeaderTimeout = 2 * time.Minute
)

// Cloud is a connection to one OpenStack project, used for one loadtest
// run: Provision at most once, then Cleanup (any number of times).
type Cloud struct {
	provider *gophercloud.ProviderClient
	compute  *gophercloud.ServiceClient
	eo       gophercloud.EndpointOpts
	log      *slog.Logger
	http     *http.Client // OpenStack APIs (the cloud's CA, if any)
	download *http.Client // the image URL (system CAs)
	poll     time.Duration
	retries  int
	backoff  time.Duration

	// maxMicroversion is the compute API's maximum, or zero when version
	// discovery failed (then 2.99 is tried and errors are interpreted).
	maxMicroversion microversion

	mu        sync.Mutex // guards run
	run       *run
	cleanupMu sync.Mutex // one Cleanup at a time
}

// Option changes how Connect sets up a Cloud.
type Option func(*connectOptions)

type connectOptions struct {
	log     *slog.Logger
	retries int
	backoff time.Duration
	poll    time.Duration
}

// WithLogger sends the package's logs to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(o *connectOptions) { o.log = l } }

// WithRetries sets how often a transient failure of an idempotent call
// (GET, HEAD, DELETE: 5xx, connection reset) is retried, and the first
// backoff step, which doubles up to 15 s with jitter.
func WithRetries(n int, base time.Duration) Option {
	return func(o *connectOptions) { o.retries, o.backoff = n, base }
}

// WithPollInterval sets how often server and image state is polled
// (default 5 s). Tests use a few milliseconds.
func WithPollInterval(d time.Duration) Option { return func(o *connectOptions) { o.poll = d } }

// Connect authenticates and returns a Cloud. Credentials come from env,
// never from the process environment directly (pass os.Getenv for that):
// OS_CLOUD selects a cloud in clouds.yaml (searched where openstackclient
// searches, or OS_CLIENT_CONFIG_FILE); otherwise OS_AUTH_URL, OS_USERNAME,
// OS_PASSWORD, OS_PROJECT_NAME or OS_PROJECT_ID, a domain, and optionally
// OS_REGION_NAME, OS_INTERFACE, OS_CACERT. Tokens are renewed on 401, so
// long runs outlive a token.
func Connect(ctx context.Context, env func(string) string, opts ...Option) (*Cloud, error) {
	if env == nil {
		return nil, errors.New("connect to OpenStack: nil environment lookup (pass os.Getenv or EnvFromMap)")
	}
	o := connectOptions{retries: DefaultRetries, backoff: DefaultRetryBackoff, poll: DefaultPollInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.retries < 0 || o.backoff <= 0 || o.poll <= 0 {
		return nil, fmt.Errorf("connect to OpenStack: retries (%d), backoff (%s) and poll interval (%s) must be positive", o.retries, o.backoff, o.poll)
	}

	ao, eo, tlsCfg, src, err := authFromEnv(env)
	if err != nil {
		return nil, fmt.Errorf("connect to OpenStack: %w", err)
	}
	ao.AllowReauth = true

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = responseHeaderTimeout
	tr.TLSClientConfig = tlsCfg
	hc := &http.Client{Transport: tr}
	// The image comes from a public server: a cloud's private CA must not
	// replace the system roots for it.
	dtr := http.DefaultTransport.(*http.Transport).Clone()
	dtr.ResponseHeaderTimeout = responseHeaderTimeout
	dl := &http.Client{Transport: dtr}
	provider, err := config.NewProviderClient(ctx, ao, config.WithHTTPClient(*hc))
	if err != nil {
		return nil, fmt.Errorf("authenticate to %s (credentials from %s): %w", secret.RedactURL(ao.IdentityEndpoint), src, err)
	}
	provider.UserAgent.Prepend("kerbside-latency")

	c := &Cloud{
		provider: provider, eo: eo, log: o.log, http: hc, download: dl, poll: o.poll,
		retries: o.retries, backoff: o.backoff,
	}
	provider.RetryFunc = c.retry
	provider.RetryBackoffFunc = c.rateLimited
	provider.MaxBackoffRetries = uint(max(o.retries, 1))

	c.compute, err = c.serviceClient(ctx, "compute", 2, "")
	if err != nil {
		return nil, err
	}
	if mv, err := utils.GetSupportedMicroversions(ctx, c.compute); err != nil {
		// Each call is then sent at the lowest microversion it needs (see
		// at): a server create that works at 2.52 must not fail because
		// 2.99 was asked of a cloud that lacks it.
		c.log.Warn("could not read the compute API's microversion range; each call will ask for the microversion it needs and the errors will be read",
			"error", err)
	} else {
		c.maxMicroversion = microversion{mv.MaxMajor, mv.MaxMinor}
		c.compute.Microversion = c.maxMicroversion.capAt(microversion{2, 99}).String()
	}
	c.log.Info("connected to OpenStack", "credentials", src.String(), "auth_url", secret.RedactURL(ao.IdentityEndpoint),
		"region", eo.Region, "compute_endpoint", c.compute.Endpoint,
		"compute_max_microversion", c.maxMicroversion.String(), "compute_microversion", c.compute.Microversion)
	return c, nil
}

// Close releases the HTTP connections the Cloud keeps open. Call it after
// the last Cleanup or Sweep.
func (c *Cloud) Close() {
	c.http.CloseIdleConnections()
	c.download.CloseIdleConnections()
}

// serviceClient finds a service in the token's catalog and checks that the
// endpoint offers the major version, as gophercloud's NewComputeV2,
// NewImageV2 and NewNetworkV2 do (an unversioned endpoint is probed with a
// GET), but under ctx: gophercloud's own endpoint locator probes with
// context.TODO(), which a deadline or a signal could not stop.
func (c *Cloud) serviceClient(ctx context.Context, typ string, version int, resourceSuffix string) (*gophercloud.ServiceClient, error) {
	eo := c.eo
	eo.ApplyDefaults(typ)
	eo.Version = version
	var catalog *tokens.ServiceCatalog
	var err error
	switch r := c.provider.GetAuthResult().(type) {
	case tokens.CreateResult:
		catalog, err = r.ExtractServiceCatalog()
	case tokens.GetResult:
		catalog, err = r.ExtractServiceCatalog()
	default:
		err = errors.New("no Keystone v3 service catalog (identity v2 is not supported)")
	}
	if err != nil {
		return nil, fmt.Errorf("read the service catalog: %w", err)
	}
	endpoint, err := openstack.V3Endpoint(ctx, c.provider, catalog, eo)
	if err != nil {
		return nil, fmt.Errorf("find the %s v%d endpoint (region %q, interface %s): %w", typ, version, eo.Region, eo.Availability, err)
	}
	sc := &gophercloud.ServiceClient{ProviderClient: c.provider, Endpoint: endpoint, Type: typ}
	if resourceSuffix != "" {
		sc.ResourceBase = endpoint + resourceSuffix
	}
	return sc, nil
}

func (s authSource) String() string {
	if s.cloud != "" {
		return s.kind + " cloud " + strconv.Quote(s.cloud)
	}
	return s.kind
}

// retry is gophercloud's RetryFunc: it retries transient failures of
// idempotent calls with bounded exponential backoff. A create (POST) is
// never repeated here: the caller decides after looking for what it made.
// It returns err unchanged when giving up, so gophercloud's error types
// (ResponseCodeIs) keep working.
func (c *Cloud) retry(ctx context.Context, method, rawURL string, _ *gophercloud.RequestOpts, err error, failCount uint) error {
	if int(failCount) > c.retries || !idempotent(method) || !transient(err) || ctx.Err() != nil {
		return err
	}
	d := c.backoffFor(failCount)
	c.log.Warn("transient OpenStack error; retrying", "method", method, "url", secret.RedactURL(rawURL),
		"attempt", failCount, "max_retries", c.retries, "delay", d, "error", summarize(err))
	if !sleep(ctx, d) {
		return err
	}
	return nil
}

// rateLimited is gophercloud's RetryBackoffFunc for 429/498: wait what
// Retry-After asks (capped), then let gophercloud try again.
func (c *Cloud) rateLimited(ctx context.Context, respErr *gophercloud.ErrUnexpectedResponseCode, err error, retries uint) error {
	d := c.backoffFor(retries)
	if respErr != nil {
		if s, perr := strconv.Atoi(respErr.ResponseHeader.Get("Retry-After")); perr == nil && s >= 0 {
			d = min(time.Duration(s)*time.Second, maxRetryDelay)
		}
	}
	c.log.Warn("OpenStack rate limit; waiting", "delay", d, "attempt", retries)
	if !sleep(ctx, d) {
		if err != nil {
			return err
		}
		return ctx.Err()
	}
	return nil
}

func (c *Cloud) backoffFor(n uint) time.Duration {
	d := c.backoff << min(n-1, 10)
	d = min(d, maxRetryDelay)
	return d/2 + rand.N(d/2+1) // jitter in [d/2, d]
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// transient reports whether err is worth another try: a 5xx gateway or
// server error, or the connection failing under the request.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		switch code.Actual {
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// summarize shortens an error for a log line: the status for HTTP errors
// (their bodies can be long), the message otherwise.
func summarize(err error) string {
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		return fmt.Sprintf("HTTP %d", code.Actual)
	}
	return secret.StripURLError(err).Error()
}

// at returns the compute client for a call that needs microversion need.
// When the cloud's range is known, that is the negotiated microversion
// (the cloud's maximum, at most 2.99; callers check need against it).
// When discovery failed, it is need itself, so that no call is sent at a
// microversion higher than it needs and refused for it.
func (c *Cloud) at(need microversion) *gophercloud.ServiceClient {
	if c.maxMicroversion.known() {
		return c.compute
	}
	cc := *c.compute
	cc.Microversion = need.String()
	return &cc
}

// effective is the microversion a call made through at(need) is sent at.
func (c *Cloud) effective(need microversion) microversion {
	if c.maxMicroversion.known() {
		return c.maxMicroversion.capAt(minConsoleMV)
	}
	return need
}

// microversion is a compute API microversion; the zero value is unknown.
type microversion struct{ major, minor int }

func (m microversion) known() bool { return m.major > 0 }

func (m microversion) atLeast(o microversion) bool {
	return m.major > o.major || (m.major == o.major && m.minor >= o.minor)
}

func (m microversion) capAt(o microversion) microversion {
	if m.atLeast(o) {
		return o
	}
	return m
}

func (m microversion) String() string {
	if !m.known() {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", m.major, m.minor)
}
