package cloud_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

func TestBootErrorFailsFastWithFaultMessage(t *testing.T) {
	const msg = "No valid host was found. There are not enough hosts available."
	e := setup(t, fakecloud.Options{BootAfterGets: 1}, func(fc *fakecloud.Cloud) { fc.BootError(msg) })
	_, err := e.c.Provision(t.Context(), e.config("booterr"))
	require.Error(t, err)
	assert.ErrorIs(t, err, cloud.ErrBootFailed)
	assert.Contains(t, err.Error(), "went to ERROR: "+msg)
	// Fail fast: the first GET after ERROR ends the wait.
	gets := countCalls(e.fc, http.MethodGet, fakecloud.ComputePrefix+"/servers/")
	assert.Equal(t, 2, gets, "one GET in BUILD, one that saw ERROR")

	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive(), "a server in ERROR is deleted too")
}

func TestBuildForeverTimesOut(t *testing.T) {
	e := setup(t, fakecloud.Options{}, (*fakecloud.Cloud).BuildForever)
	cfg := e.config("slowboot")
	// Long enough for a poll to see BUILD on a loaded host (at 20 ms,
	// beside a second make test, none had answered: "last status ").
	cfg.BootTimeout = 500 * time.Millisecond
	_, err := e.c.Provision(t.Context(), cfg)
	require.Error(t, err)
	assert.ErrorIs(t, err, cloud.ErrBootTimeout)
	assert.Contains(t, err.Error(), "not ACTIVE after 500ms (last status BUILD")
	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive())
}

func TestTransientErrorsOnIdempotentCallsAreRetried(t *testing.T) {
	tests := []struct {
		name    string
		failure fakecloud.Failure
	}{
		{name: "503 on flavor list", failure: fakecloud.Failure{Count: 2, Status: 503, Method: http.MethodGet, PathPrefix: fakecloud.ComputePrefix + "/flavors"}},
		{name: "502 on server poll", failure: fakecloud.Failure{Count: 3, Status: 502, Method: http.MethodGet, PathPrefix: fakecloud.ComputePrefix + "/servers/"}},
		{name: "500 on image list", failure: fakecloud.Failure{Count: 1, Status: 500, Method: http.MethodGet, PathPrefix: fakecloud.ImagePrefix + "/v2/images"}},
		{name: "504 on network list", failure: fakecloud.Failure{Count: 1, Status: 504, Method: http.MethodGet, PathPrefix: fakecloud.NetworkPrefix + "/v2.0/networks"}},
		{name: "connection reset on server poll", failure: fakecloud.Failure{Count: 2, Reset: true, Method: http.MethodGet, PathPrefix: fakecloud.ComputePrefix + "/servers/"}},
		{name: "503 on delete", failure: fakecloud.Failure{Count: 2, Status: 503, Method: http.MethodDelete}},
		{name: "503 after the delete happened", failure: fakecloud.Failure{Count: 1, Status: 503, Method: http.MethodDelete, AfterHandling: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakecloud.Options{})
			e.fc.FailNext(tc.failure)
			_, err := e.c.Provision(t.Context(), e.config("retry"))
			require.NoError(t, err)
			require.NoError(t, e.cleanup(t))
			assert.Zero(t, e.fc.ServersAlive())
			if tc.failure.Status != 0 {
				var failed int
				for _, call := range e.fc.Calls() {
					if call.Status == tc.failure.Status {
						failed++
					}
				}
				assert.Equal(t, tc.failure.Count, failed, "every injected failure was hit")
				assert.NotEmpty(t, logLines(e.logs, "transient OpenStack error; retrying"))
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	e.fc.FailNext(fakecloud.Failure{Count: 100, Status: 503, Method: http.MethodGet, PathPrefix: fakecloud.ComputePrefix + "/flavors"})
	_, err := e.c.Provision(t.Context(), e.config("bounded"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "list flavors")
	assert.Equal(t, 4, countCalls(e.fc, http.MethodGet, fakecloud.ComputePrefix+"/flavors"), "1 try + 3 retries")
}

func TestFailedCreateIsNotBlindlyRepeated(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		status    int
		wantErr   bool
		wantPosts int
	}{
		{name: "one 503: look, find nothing, create again", failures: 1, status: 503, wantPosts: 2},
		{name: "two 503s: give up", failures: 2, status: 503, wantErr: true, wantPosts: 2},
		{name: "400: not transient, no second create", failures: 1, status: 400, wantErr: true, wantPosts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakecloud.Options{})
			e.fc.FailNext(fakecloud.Failure{Count: tc.failures, Status: tc.status, Method: http.MethodPost, Path: fakecloud.ComputePrefix + "/servers"})
			_, err := e.c.Provision(t.Context(), e.config("create"))
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			var seq []string
			for _, call := range e.fc.Calls() {
				switch {
				case call.Method == http.MethodPost && call.Path == fakecloud.ComputePrefix+"/servers":
					seq = append(seq, fmt.Sprintf("create:%d", call.Status))
				case call.Method == http.MethodGet && call.Path == fakecloud.ComputePrefix+"/servers/detail":
					seq = append(seq, "list")
				}
			}
			assert.Equal(t, tc.wantPosts, strings.Count(strings.Join(seq, ","), "create:"), "%v", seq)
			for i, s := range seq {
				if strings.HasPrefix(s, "create:") && s != "create:202" {
					require.Less(t, i+1, len(seq), "%v", seq)
					assert.Equal(t, "list", seq[i+1], "a failed create is followed by a look for the server: %v", seq)
				}
			}
			require.NoError(t, e.cleanup(t))
			assert.Zero(t, e.fc.ServersAlive())
		})
	}
}

func TestLostCreateResponseAdoptsTheServer(t *testing.T) {
	e := setup(t, fakecloud.Options{}, (*fakecloud.Cloud).LoseNextCreateResponse)
	con, err := e.c.Provision(t.Context(), e.config("lost"))
	require.NoError(t, err)
	creates := 0
	for _, call := range e.fc.CallsTo(http.MethodPost, fakecloud.ComputePrefix+"/servers") {
		if call.Path == fakecloud.ComputePrefix+"/servers" {
			creates++
		}
	}
	assert.Equal(t, 1, creates, "create sent once")
	require.Equal(t, 1, e.fc.ServersAlive(), "no duplicate server")
	assert.Equal(t, e.fc.Servers()[0].ID, con.ServerID)
	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive())
}

func TestCleanupFindsServerWhoseIDWasNeverLearned(t *testing.T) {
	e := setup(t, fakecloud.Options{}, func(fc *fakecloud.Cloud) {
		fc.LoseNextCreateResponse()
		// The look for the server fails too, so Provision never learns it.
		fc.FailNext(fakecloud.Failure{Count: 4, Status: 500, Method: http.MethodGet, Path: fakecloud.ComputePrefix + "/servers/detail"})
	})
	_, err := e.c.Provision(t.Context(), e.config("orphan"))
	require.Error(t, err)
	require.Equal(t, 1, e.fc.ServersAlive(), "the server exists though Provision failed")

	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive())
	assert.NotEmpty(t, logLines(e.logs, "found a server of this run whose create answer was lost"))
}

func TestCleanupOnlyTouchesItsOwnRun(t *testing.T) {
	e := setup(t, fakecloud.Options{}, (*fakecloud.Cloud).LoseNextCreateResponse)
	other := e.fc.SeedServer(fakecloud.ServerSeed{
		Name: "latency-orphan", Tags: []string{cloud.Tag},
		Metadata: map[string]string{cloud.MetaLoadtest: cloud.MetaLoadtestValue, cloud.MetaRunID: "someone-else"},
	})
	_, err := e.c.Provision(t.Context(), e.config("orphan"))
	require.NoError(t, err)
	require.NoError(t, e.cleanup(t))
	servers := e.fc.Servers()
	require.Len(t, servers, 1)
	assert.Equal(t, other, servers[0].ID)
}

func TestFlavorCreateForbiddenSaysAdminMustCreateIt(t *testing.T) {
	e := setup(t, fakecloud.Options{}, (*fakecloud.Cloud).ForbidFlavorCreate)
	_, err := e.c.Provision(t.Context(), e.config("noflavor"))
	require.Error(t, err)
	assert.ErrorIs(t, err, cloud.ErrFlavorForbidden)
	for _, want := range []string{`flavor "vdi-tiny"`, "an admin must create it", "512 MB RAM", "2 GB disk", "1 vCPU", "hw_video:ram_max_mb=64", "HTTP 403"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Zero(t, countCalls(e.fc, http.MethodPost, fakecloud.ComputePrefix+"/servers"))
	require.NoError(t, e.cleanup(t))
}

func TestDeleteNotFoundMeansGone(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	_, err := e.c.Provision(t.Context(), e.config("gone"))
	require.NoError(t, err)
	e.fc.DeleteNotFound()
	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive())
	assert.Equal(t, []int{404}, statuses(e.fc.CallsTo(http.MethodDelete, "")))
}

func TestCloudWithoutSpiceDirect(t *testing.T) {
	t.Run("known from version discovery", func(t *testing.T) {
		e := setup(t, fakecloud.Options{}, (*fakecloud.Cloud).NoSpiceDirect)
		_, err := e.c.Provision(t.Context(), e.config("old"))
		require.Error(t, err)
		assert.ErrorIs(t, err, cloud.ErrMicroversion)
		assert.Contains(t, err.Error(), "spice-direct consoles need compute microversion 2.99")
		assert.Contains(t, err.Error(), "maximum is 2.95")
		assert.Contains(t, err.Error(), "Version 2.99 is not supported by the API. Minimum is 2.1 and maximum is 2.95.", "Nova's own refusal")
		assert.Contains(t, err.Error(), "LATENCY_OPENSTACK_CONSOLE=direct")
		assert.Zero(t, countCalls(e.fc, http.MethodPost, fakecloud.ComputePrefix), "nothing is created on a cloud that cannot give a console")
		assert.Zero(t, countCalls(e.fc, http.MethodPost, fakecloud.ImagePrefix))
		require.NoError(t, e.cleanup(t))
	})
	t.Run("refused with 406", func(t *testing.T) {
		// The cloud is downgraded after discovery: the first 2.99 call is
		// refused and the error must say why.
		e := setup(t, fakecloud.Options{})
		require.NoError(t, e.fc.SetMaxMicroversion("2.95"))
		_, err := e.c.Provision(t.Context(), e.config("old"))
		require.Error(t, err)
		assert.ErrorIs(t, err, cloud.ErrMicroversion)
		assert.Contains(t, err.Error(), "refused compute microversion 2.99")
		assert.Contains(t, err.Error(), "maximum is 2.95")
		require.NoError(t, e.cleanup(t))
	})
}

func TestSlowAnswers(t *testing.T) {
	t.Run("slow but within bounds", func(t *testing.T) {
		e := setup(t, fakecloud.Options{})
		e.fc.SetDelay(5 * time.Millisecond)
		_, err := e.c.Provision(t.Context(), e.config("slow"))
		require.NoError(t, err)
		require.NoError(t, e.cleanup(t))
		assert.Zero(t, e.fc.ServersAlive())
	})
	t.Run("slower than the caller's deadline", func(t *testing.T) {
		e := setup(t, fakecloud.Options{})
		e.fc.SetDelay(time.Hour)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := e.c.Provision(ctx, e.config("slow"))
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		e.fc.SetDelay(0)
		require.NoError(t, e.cleanup(t))
		assert.Zero(t, e.fc.ServersAlive())
	})
}

func TestExpiredTokenIsRenewed(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	e.fc.ExpireTokens()
	_, err := e.c.Provision(t.Context(), e.config("reauth"))
	require.NoError(t, err)
	e.fc.ExpireTokens()
	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive())
	assert.Equal(t, 3, countCalls(e.fc, http.MethodPost, fakecloud.IdentityPrefix+"/v3/auth/tokens"), "initial auth and two renewals")
	var unauthorized int
	for _, call := range e.fc.Calls() {
		if call.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	assert.Equal(t, 2, unauthorized)
}

func TestSecretsStayWhereTheyBelong(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	con, err := e.c.Provision(t.Context(), e.config("secrets"))
	require.NoError(t, err)
	require.NoError(t, e.cleanup(t))
	// Also drive error paths, whose messages must be clean too.
	e2 := setup(t, fakecloud.Options{}, func(fc *fakecloud.Cloud) { fc.BootError("") })
	_, err2 := e2.c.Provision(t.Context(), e2.config("secrets2"))
	require.Error(t, err2)
	require.NoError(t, e2.cleanup(t))

	tokens := e.fc.ConsoleTokens()
	require.Len(t, tokens, 1)
	assert.Contains(t, con.URL.Reveal(), tokens[0])
	assertNoSecrets(t, e.fc, map[string]string{"log": e.logs.String(), "console %v": con.URL.String()})
	assertNoSecrets(t, e2.fc, map[string]string{"log": e2.logs.String(), "error": err2.Error()})
	assert.Contains(t, e.logs.String(), `"console_url":"`+e.fc.URL()+`/[redacted]"`)

	// The password goes to Keystone only, tokens only in X-Auth-Token to
	// the cloud's APIs, never to the image download or Kerbside.
	pw := e.fc.Password()
	for _, call := range e.fc.Calls() {
		raw := call.RawQuery + string(call.Body)
		if call.Path != fakecloud.IdentityPrefix+"/v3/auth/tokens" {
			assert.NotContains(t, raw, pw, "%s %s", call.Method, call.Path)
		}
		if call.Path == fakecloud.DownloadPath || call.Path == fakecloud.KerbsidePath {
			assert.Empty(t, call.Header.Get("X-Auth-Token"), call.Path)
		}
		for _, s := range e.fc.Secrets() {
			assert.NotContains(t, call.Path, s)
		}
	}
}
