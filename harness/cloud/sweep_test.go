package cloud_test

import (
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

// seedSweepWorld plants loadtest leftovers and servers that only look like
// them, and returns the IDs by role.
func seedSweepWorld(fc *fakecloud.Cloud) map[string]string {
	old := time.Now().Add(-2 * time.Hour)
	ours := func(run string) map[string]string {
		return map[string]string{cloud.MetaLoadtest: cloud.MetaLoadtestValue, cloud.MetaRunID: run, cloud.MetaStarted: old.Format(time.RFC3339)}
	}
	return map[string]string{
		"ours-old": fc.SeedServer(fakecloud.ServerSeed{Name: "latency-a", Tags: []string{cloud.Tag}, Metadata: ours("a"), Created: old}),
		"ours-new": fc.SeedServer(fakecloud.ServerSeed{Name: "latency-b", Tags: []string{cloud.Tag, "extra"}, Metadata: ours("b")}),
		"ours-err": fc.SeedServer(fakecloud.ServerSeed{Name: "latency-c", Tags: []string{cloud.Tag}, Metadata: ours("c"), Created: old, Status: "ERROR"}),
		// Look-alikes that must survive every sweep.
		"tag-only":       fc.SeedServer(fakecloud.ServerSeed{Name: "latency-d", Tags: []string{cloud.Tag}, Created: old}),
		"meta-only":      fc.SeedServer(fakecloud.ServerSeed{Name: "latency-e", Metadata: ours("e"), Created: old}),
		"name-only":      fc.SeedServer(fakecloud.ServerSeed{Name: "latency-f", Created: old}),
		"other-loadtest": fc.SeedServer(fakecloud.ServerSeed{Name: "latency-g", Tags: []string{cloud.Tag}, Metadata: map[string]string{cloud.MetaLoadtest: "other", cloud.MetaRunID: "g"}, Created: old}),
		"no-run-id":      fc.SeedServer(fakecloud.ServerSeed{Name: "latency-h", Tags: []string{cloud.Tag}, Metadata: map[string]string{cloud.MetaLoadtest: cloud.MetaLoadtestValue}, Created: old}),
		"similar-tag":    fc.SeedServer(fakecloud.ServerSeed{Name: "latency-i", Tags: []string{cloud.Tag + "-x"}, Metadata: ours("i"), Created: old}),
		"someone-else":   fc.SeedServer(fakecloud.ServerSeed{Name: "web-1", Created: old}),
	}
}

func pick(ids map[string]string, roles ...string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		out = append(out, ids[r])
	}
	sort.Strings(out)
	return out
}

func aliveIDs(fc *fakecloud.Cloud) []string {
	var out []string
	for _, s := range fc.Servers() {
		out = append(out, s.ID)
	}
	sort.Strings(out)
	return out
}

func TestSweepChoosesByTagAndMetadataOnly(t *testing.T) {
	all := []string{"ours-old", "ours-new", "ours-err", "tag-only", "meta-only", "name-only", "other-loadtest", "no-run-id", "similar-tag", "someone-else"}
	tests := []struct {
		name      string
		opts      cloud.SweepOptions
		want      []string
		wantAlive []string
	}{
		{name: "older than an hour", opts: cloud.SweepOptions{OlderThan: time.Hour}, want: []string{"ours-old", "ours-err"}},
		{name: "any age", opts: cloud.SweepOptions{}, want: []string{"ours-old", "ours-new", "ours-err"}},
		{name: "dry run", opts: cloud.SweepOptions{DryRun: true}, want: []string{"ours-old", "ours-new", "ours-err"}, wantAlive: all},
		{name: "older than anything", opts: cloud.SweepOptions{OlderThan: 24 * time.Hour}, want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, fakecloud.Options{})
			ids := seedSweepWorld(e.fc)
			got, err := e.c.Sweep(t.Context(), tc.opts)
			require.NoError(t, err)
			sort.Strings(got)
			assert.Equal(t, pick(ids, tc.want...), got)

			alive := tc.wantAlive
			if alive == nil {
				for _, r := range all {
					keep := true
					for _, w := range tc.want {
						keep = keep && r != w
					}
					if keep {
						alive = append(alive, r)
					}
				}
			}
			assert.Equal(t, pick(ids, alive...), aliveIDs(e.fc))

			// Listing is by tag, never by name.
			lists := e.fc.CallsTo(http.MethodGet, fakecloud.ComputePrefix+"/servers/detail")
			require.Len(t, lists, 1)
			assert.Equal(t, "tags=kerbside-latency", lists[0].RawQuery)
		})
	}
}

func TestSweepSkipsTheRunInProgress(t *testing.T) {
	e := setup(t, fakecloud.Options{})
	con, err := e.c.Provision(t.Context(), e.config("mine"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, e.cleanup(t)) })
	ids := seedSweepWorld(e.fc)
	got, err := e.c.Sweep(t.Context(), cloud.SweepOptions{})
	require.NoError(t, err)
	sort.Strings(got)
	assert.Equal(t, pick(ids, "ours-old", "ours-new", "ours-err"), got)
	assert.NotContains(t, got, con.ServerID)
}

func TestSweepFailures(t *testing.T) {
	t.Run("old cloud", func(t *testing.T) {
		e := setup(t, fakecloud.Options{MaxMicroversion: "2.20"})
		_, err := e.c.Sweep(t.Context(), cloud.SweepOptions{})
		require.ErrorIs(t, err, cloud.ErrMicroversion)
		assert.Contains(t, err.Error(), "tags filter needs 2.26")
	})
	t.Run("negative age", func(t *testing.T) {
		e := setup(t, fakecloud.Options{})
		_, err := e.c.Sweep(t.Context(), cloud.SweepOptions{OlderThan: -time.Second})
		require.ErrorContains(t, err, "negative")
	})
	t.Run("delete keeps failing", func(t *testing.T) {
		e := setup(t, fakecloud.Options{})
		ids := seedSweepWorld(e.fc)
		e.fc.FailNext(fakecloud.Failure{Count: 4, Status: 500, Method: http.MethodDelete, Path: fakecloud.ComputePrefix + "/servers/" + ids["ours-old"]})
		got, err := e.c.Sweep(t.Context(), cloud.SweepOptions{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), ids["ours-old"])
		assert.Len(t, got, 3)
		assert.Contains(t, aliveIDs(e.fc), ids["ours-old"])
		assert.NotContains(t, aliveIDs(e.fc), ids["ours-new"], "other deletions went ahead")
	})
}
