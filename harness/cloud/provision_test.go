package cloud_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

func TestProvisionBootsTaggedServerAndOpensConsole(t *testing.T) {
	tests := []struct {
		name         string
		opts         fakecloud.Options
		wantUpload   bool
		wantFlavorMk bool
		wantPercent  bool
	}{
		{name: "everything missing", wantUpload: true, wantFlavorMk: true, wantPercent: true},
		{name: "download without length", opts: fakecloud.Options{ImageUnknownLength: true}, wantUpload: true, wantFlavorMk: true},
		{
			name: "image and flavor exist",
			opts: fakecloud.Options{
				Images:  []string{cloud.DefaultImage},
				Flavors: []fakecloud.Flavor{{Name: cloud.DefaultFlavor, RAM: 512, Disk: 2, VCPUs: 1, ExtraSpecs: map[string]string{"hw_video:ram_max_mb": "64"}}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.opts)
			con, err := e.c.Provision(t.Context(), e.config("happy-1"))
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, e.cleanup(t)) })

			assert.Equal(t, "latency-happy-1", con.ServerName)
			assert.Equal(t, "happy-1", con.RunID)
			servers := e.fc.Servers()
			require.Len(t, servers, 1)
			srv := servers[0]
			assert.Equal(t, con.ServerID, srv.ID)
			assert.Equal(t, "ACTIVE", srv.Status)
			assert.Equal(t, []string{cloud.Tag}, srv.Tags)
			assert.Equal(t, cloud.MetaLoadtestValue, srv.Metadata[cloud.MetaLoadtest])
			assert.Equal(t, "happy-1", srv.Metadata[cloud.MetaRunID])
			assert.NotEmpty(t, srv.Metadata[cloud.MetaStarted])

			// Creating with tags needs 2.52, the console 2.99: the create must
			// have been sent at a microversion that allows both.
			for _, call := range e.fc.CallsTo(http.MethodPost, fakecloud.ComputePrefix+"/servers") {
				assert.Equal(t, "compute 2.99", call.Header.Get("OpenStack-API-Version"), call.Path)
			}

			tokens := e.fc.ConsoleTokens()
			require.Len(t, tokens, 1)
			assert.Contains(t, con.URL.Reveal(), "?token="+tokens[0])
			assert.NotContains(t, con.URL.String(), tokens[0])
			status, vv := fetch(t, con.URL.Reveal())
			require.Equal(t, http.StatusOK, status)
			assert.True(t, strings.HasPrefix(vv, "[virt-viewer]\n"), vv)
			assert.Contains(t, vv, "type=spice\n")
			assert.Contains(t, vv, "delete-this-file=1\n")

			imgs := e.fc.Images()
			require.Len(t, imgs, 1)
			if tc.wantUpload {
				assert.Equal(t, e.fc.Options().ImageSize, imgs[0].UploadedBytes, "the whole download reached Glance")
				assert.Equal(t, "qcow2", imgs[0].DiskFormat)
				assert.Equal(t, "bare", imgs[0].ContainerFormat)
				assert.Equal(t, map[string]string{"hw_firmware_type": "uefi", "hw_video_ram": "64"}, imgs[0].Properties)
				done := logLines(e.logs, "image upload complete")
				require.Len(t, done, 1)
				assert.Contains(t, done[0], `"bytes":1048576`)
				if tc.wantPercent {
					assert.Contains(t, done[0], `"percent":"100.0"`)
				} else {
					assert.NotContains(t, done[0], "percent")
				}
			} else {
				assert.Zero(t, countCalls(e.fc, http.MethodGet, fakecloud.DownloadPath), "no download when the image exists")
			}
			var flavorCreated bool
			for _, f := range e.fc.Flavors() {
				if f.Name == cloud.DefaultFlavor {
					flavorCreated = true
					assert.Equal(t, 512, f.RAM)
					assert.Equal(t, 2, f.Disk)
					assert.Equal(t, 1, f.VCPUs)
					assert.Equal(t, "64", f.ExtraSpecs["hw_video:ram_max_mb"])
				}
			}
			assert.True(t, flavorCreated)
			assert.Equal(t, tc.wantFlavorMk, countCalls(e.fc, http.MethodPost, fakecloud.ComputePrefix+"/flavors") > 0)
		})
	}
}

func TestCleanupDeletesAndIsIdempotent(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	_, err := e.c.Provision(t.Context(), e.config("idem"))
	require.NoError(t, err)
	require.Equal(t, 1, e.fc.ServersAlive())

	require.NoError(t, e.cleanup(t))
	assert.Zero(t, e.fc.ServersAlive())
	deletes := countCalls(e.fc, http.MethodDelete, fakecloud.ComputePrefix+"/servers/")
	assert.Equal(t, 1, deletes)

	require.NoError(t, e.cleanup(t), "a second Cleanup is a no-op")
	assert.Equal(t, deletes, countCalls(e.fc, http.MethodDelete, fakecloud.ComputePrefix+"/servers/"))
}

func TestCleanupWithoutProvisionDoesNothing(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	before := len(e.fc.Calls())
	require.NoError(t, e.cleanup(t))
	assert.Len(t, e.fc.Calls(), before)
}

func TestProvisionRefusesSecondRunAndBadConfig(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	for _, cfg := range []cloud.Config{
		{RunID: "has space"}, {RunID: "../etc"}, {RunID: strings.Repeat("a", 64)}, {RunID: "ok", BootTimeout: -1},
	} {
		_, err := e.c.Provision(t.Context(), cfg)
		require.Error(t, err, "%+v", cfg)
		assert.Contains(t, err.Error(), "invalid config")
	}
	assert.Zero(t, countCalls(e.fc, "", fakecloud.ComputePrefix+"/servers"), "bad config makes no server")

	_, err := e.c.Provision(t.Context(), e.config("first"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, e.cleanup(t)) })
	_, err = e.c.Provision(t.Context(), e.config("second"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "one Cloud per run")
	assert.Equal(t, 1, e.fc.ServersAlive())
}

func TestCancelMidBootStillDeletesServer(t *testing.T) {
	tests := []struct {
		name   string
		cancel func(t *testing.T, cancel context.CancelFunc)
		notify bool
	}{
		{name: "context cancelled", cancel: func(_ *testing.T, cancel context.CancelFunc) { cancel() }},
		{name: "SIGTERM", notify: true, cancel: func(t *testing.T, _ context.CancelFunc) {
			require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakecloud.Options{}, (*fakecloud.Cloud).BuildForever)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.notify {
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
				defer stop()
			}
			done := make(chan error, 1)
			go func() {
				_, err := e.c.Provision(ctx, e.config("cancel"))
				done <- err
			}()
			waitFor(t, "the server to be created", func() bool { return e.fc.ServersAlive() == 1 })
			tc.cancel(t, cancel)
			err := <-done
			require.Error(t, err)
			assert.ErrorIs(t, err, context.Canceled)
			assert.NotErrorIs(t, err, cloud.ErrBootTimeout)

			// The provisioning context is dead; Cleanup gets its own.
			cctx, ccancel := cloud.CleanupContext(ctx, 0)
			ccancel()
			require.Error(t, e.c.Cleanup(cctx), "an expired cleanup context fails rather than hangs")
			require.NoError(t, e.cleanup(t))
			assert.Zero(t, e.fc.ServersAlive())
		})
	}
}

func TestPanicAfterProvisionStillCleansUp(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	run := func() {
		defer func() {
			ctx, cancel := cloud.CleanupContext(t.Context(), 30*time.Second)
			defer cancel()
			assert.NoError(t, e.c.Cleanup(ctx))
		}()
		_, err := e.c.Provision(t.Context(), e.config("panic"))
		require.NoError(t, err)
		require.Equal(t, 1, e.fc.ServersAlive())
		panic("measurement blew up")
	}
	assert.PanicsWithValue(t, "measurement blew up", run)
	assert.Zero(t, e.fc.ServersAlive())
}

func TestKeepServerLeavesItRunning(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	cfg := e.config("keep")
	cfg.KeepServer = true
	con, err := e.c.Provision(t.Context(), cfg)
	require.NoError(t, err)
	require.NoError(t, e.cleanup(t))
	assert.Equal(t, 1, e.fc.ServersAlive())
	assert.Zero(t, countCalls(e.fc, http.MethodDelete, ""))
	kept := logLines(e.logs, "KeepServer is set: leaving the server running; delete it yourself or run make sweep")
	require.Len(t, kept, 1)
	assert.Contains(t, kept[0], con.ServerID)
}

func TestNetworkMustResolveToOne(t *testing.T) {
	tests := []struct {
		name    string
		network string
		extra   []string
		want    string
	}{
		{name: "missing", network: "nope", want: `network "nope" not found`},
		{name: "ambiguous", network: "dup", extra: []string{"dup", "dup"}, want: `network name "dup" is ambiguous`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakecloud.Options{})
			for _, n := range tc.extra {
				e.fc.AddNetwork(n)
			}
			cfg := e.config("net")
			cfg.Network = tc.network
			_, err := e.c.Provision(t.Context(), cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Zero(t, e.fc.ServersAlive())
			require.NoError(t, e.cleanup(t))
		})
	}
}

func TestImageProblems(t *testing.T) {
	t.Run("no URL to upload from", func(t *testing.T) {
		e := setup(t, fakecloud.Options{})
		cfg := e.config("img")
		cfg.NoImageUpload = true
		_, err := e.c.Provision(t.Context(), cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `image "uefi-latency-guest" not found in Glance and no image URL`)
		assert.Empty(t, e.fc.Images())
	})
	t.Run("download fails", func(t *testing.T) {
		e := setup(t, fakecloud.Options{})
		cfg := e.config("img")
		cfg.ImageURL = e.fc.URL() + "/downloads/missing.qcow2?sig=s3cr3t"
		_, err := e.c.Provision(t.Context(), cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "HTTP 404")
		assert.NotContains(t, err.Error(), "s3cr3t", "a signed download URL is not quoted")
		assert.NotContains(t, e.logs.String(), "s3cr3t")
		assert.Empty(t, e.fc.Images(), "no half-made image is left")
	})
	t.Run("upload fails", func(t *testing.T) {
		e := setup(t, fakecloud.Options{})
		e.fc.FailNext(fakecloud.Failure{Method: http.MethodPut, PathPrefix: fakecloud.ImagePrefix + "/v2/images/", Status: http.StatusInternalServerError})
		_, err := e.c.Provision(t.Context(), e.config("img"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "upload image uefi-latency-guest")
		assert.Equal(t, 1, countCalls(e.fc, http.MethodPut, fakecloud.ImagePrefix), "an upload is not repeated")
		assert.Empty(t, e.fc.Images(), "the unfinished image was deleted")
	})
	t.Run("only a non-active image", func(t *testing.T) {
		// A queued image of the same name, as a failed earlier upload
		// leaves, is not booted: a fresh one is uploaded.
		e := setup(t, fakecloud.Options{})
		stale := e.fc.AddImage(cloud.DefaultImage)
		e.fc.SetImageStatus(stale, "queued")
		_, err := e.c.Provision(t.Context(), e.config("img"))
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, e.cleanup(t)) })
		servers := e.fc.Servers()
		require.Len(t, servers, 1)
		assert.NotEqual(t, stale, servers[0].ImageID)
		assert.Len(t, e.fc.Images(), 2)
	})
}

func TestErrorsAreTyped(t *testing.T) {
	e := setup(t, fakecloud.Options{}, func(fc *fakecloud.Cloud) { fc.BootError("No valid host was found. ") })
	_, err := e.c.Provision(t.Context(), e.config("typed"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, cloud.ErrBootFailed))
	assert.False(t, errors.Is(err, cloud.ErrBootTimeout))
	require.NoError(t, e.cleanup(t))
}
