package cloud

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
)

// osVars are every variable openstack.AuthOptionsFromEnv reads; each parity
// case sets them all (unset ones to "") so the process environment cannot
// leak in.
var osVars = []string{
	"OS_AUTH_URL", "OS_USERNAME", "OS_USERID", "OS_PASSWORD", "OS_PASSCODE", "OS_TENANT_ID", "OS_TENANT_NAME",
	"OS_PROJECT_ID", "OS_PROJECT_NAME", "OS_DOMAIN_ID", "OS_DOMAIN_NAME", "OS_APPLICATION_CREDENTIAL_ID",
	"OS_APPLICATION_CREDENTIAL_NAME", "OS_APPLICATION_CREDENTIAL_SECRET", "OS_SYSTEM_SCOPE",
}

// TestAuthOptionsMatchGophercloud shows that reading OS_* through a lookup
// gives what gophercloud's own AuthOptionsFromEnv gives from the process.
func TestAuthOptionsMatchGophercloud(t *testing.T) {
	base := map[string]string{"OS_AUTH_URL": "http://keystone/v3", "OS_USERNAME": "u", "OS_PASSWORD": "p"}
	tests := []struct {
		name string
		set  map[string]string
	}{
		{name: "project name and domain name", set: map[string]string{"OS_PROJECT_NAME": "proj", "OS_DOMAIN_NAME": "Default"}},
		{name: "project ID", set: map[string]string{"OS_PROJECT_ID": "abc"}},
		{name: "tenant aliases", set: map[string]string{"OS_TENANT_ID": "t1", "OS_TENANT_NAME": "tn", "OS_DOMAIN_ID": "default"}},
		{name: "project overrides tenant", set: map[string]string{"OS_TENANT_ID": "t1", "OS_PROJECT_ID": "p1"}},
		{name: "user ID", set: map[string]string{"OS_USERNAME": "", "OS_USERID": "uid", "OS_PROJECT_ID": "abc"}},
		{name: "system scope", set: map[string]string{"OS_SYSTEM_SCOPE": "all", "OS_DOMAIN_ID": "default"}},
		{name: "app credential", set: map[string]string{"OS_USERNAME": "", "OS_PASSWORD": "", "OS_APPLICATION_CREDENTIAL_ID": "ac", "OS_APPLICATION_CREDENTIAL_SECRET": "s"}},
		{name: "missing auth URL", set: map[string]string{"OS_AUTH_URL": ""}},
		{name: "missing user", set: map[string]string{"OS_USERNAME": ""}},
		{name: "missing password", set: map[string]string{"OS_PASSWORD": ""}},
		{name: "project name without domain", set: map[string]string{"OS_PROJECT_NAME": "proj"}},
		{name: "app credential without secret", set: map[string]string{"OS_APPLICATION_CREDENTIAL_NAME": "ac"}},
		{name: "app credential name without domain", set: map[string]string{"OS_PASSWORD": "", "OS_APPLICATION_CREDENTIAL_NAME": "ac", "OS_APPLICATION_CREDENTIAL_SECRET": "s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for _, k := range osVars {
				vars[k] = ""
			}
			for k, v := range base {
				vars[k] = v
			}
			for k, v := range tc.set {
				vars[k] = v
			}
			for k, v := range vars {
				t.Setenv(k, v)
			}
			want, wantErr := openstack.AuthOptionsFromEnv()
			got, gotErr := authOptionsFromLookup(EnvFromMap(vars))
			if wantErr != nil {
				require.Error(t, gotErr)
				if tc.name == "project name without domain" {
					// gophercloud says OS_PROJECT_ID is missing, to a user
					// who set OS_PROJECT_NAME; ours names what is missing.
					assert.Contains(t, gotErr.Error(), "OS_PROJECT_NAME needs the project's domain: set OS_PROJECT_DOMAIN_NAME")
					return
				}
				assert.Equal(t, wantErr.Error(), gotErr.Error())
				return
			}
			require.NoError(t, gotErr)
			assert.Equal(t, want, got)
		})
	}
}

func TestAuthOptionsOpenrcDomains(t *testing.T) {
	got, err := authOptionsFromLookup(EnvFromMap(map[string]string{
		"OS_AUTH_URL": "http://keystone/v3", "OS_USERNAME": "u", "OS_PASSWORD": "p", "OS_PROJECT_NAME": "proj",
		"OS_USER_DOMAIN_NAME": "Users", "OS_PROJECT_DOMAIN_ID": "projects",
	}))
	require.NoError(t, err)
	assert.Equal(t, "Users", got.DomainName, "user domain")
	require.NotNil(t, got.Scope)
	assert.Equal(t, gophercloud.AuthScope{ProjectName: "proj", DomainID: "projects"}, *got.Scope)
}

// TestServiceClientsMatchGophercloud shows that building service clients
// under a context yields the endpoints gophercloud's constructors yield.
func TestServiceClientsMatchGophercloud(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{})
	c, err := Connect(t.Context(), EnvFromMap(fc.Env()))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	tests := []struct {
		typ    string
		suffix string
		theirs func(*gophercloud.ProviderClient, gophercloud.EndpointOpts) (*gophercloud.ServiceClient, error)
	}{
		{"compute", "", openstack.NewComputeV2},
		{"image", "v2/", openstack.NewImageV2},
		{"network", "v2.0/", openstack.NewNetworkV2},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			want, err := tc.theirs(c.provider, c.eo)
			require.NoError(t, err)
			got, err := c.serviceClient(t.Context(), tc.typ, 2, tc.suffix)
			require.NoError(t, err)
			assert.Equal(t, want.Endpoint, got.Endpoint)
			assert.Equal(t, want.ResourceBaseURL(), got.ResourceBaseURL())
			assert.Equal(t, want.Type, got.Type)
		})
	}
}

func TestTransient(t *testing.T) {
	code := func(n int) error {
		return gophercloud.ErrUnexpectedResponseCode{Actual: n, Method: "GET", URL: "http://x"}
	}
	tests := []struct {
		err  error
		want bool
	}{
		{code(500), true}, {code(502), true}, {code(503), true}, {code(504), true},
		{code(400), false}, {code(401), false}, {code(404), false}, {code(409), false}, {code(501), false},
		{fmt.Errorf("wrapped: %w", code(503)), true},
		{&url.Error{Op: "Get", URL: "http://x", Err: syscall.ECONNRESET}, true},
		{&url.Error{Op: "Get", URL: "http://x", Err: syscall.ECONNREFUSED}, true},
		{&url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, true},
		{os.ErrDeadlineExceeded, true},
		{errors.New("json: cannot unmarshal"), false},
		{fmt.Errorf("x: %w", errors.Join(errors.New("y"), io.ErrUnexpectedEOF)), true},
		{nil, false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, transient(tc.err), "%v", tc.err)
	}
}

func TestRetryOnlyIdempotentAndBounded(t *testing.T) {
	c := &Cloud{retries: 2, backoff: time.Microsecond}
	c.log = discardLogger()
	err503 := gophercloud.ErrUnexpectedResponseCode{Actual: 503}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodDelete} {
		assert.NoError(t, c.retry(t.Context(), m, "http://x", nil, err503, 1), m)
		assert.NoError(t, c.retry(t.Context(), m, "http://x", nil, err503, 2), m)
		assert.Equal(t, err503, c.retry(t.Context(), m, "http://x", nil, err503, 3), "%s: bounded", m)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch} {
		assert.Equal(t, err503, c.retry(t.Context(), m, "http://x", nil, err503, 1), "%s is never retried", m)
	}
}

func TestBackoffIsBoundedWithJitter(t *testing.T) {
	c := &Cloud{backoff: 100 * time.Millisecond}
	for n := uint(1); n < 70; n++ {
		d := c.backoffFor(n)
		full := min(100*time.Millisecond<<min(n-1, 10), maxRetryDelay)
		assert.GreaterOrEqual(t, d, full/2, n)
		assert.LessOrEqual(t, d, full, n)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
