package main

import (
	"bytes"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func seed(fc *fakecloud.Cloud, name string, age time.Duration, ours bool) string {
	s := fakecloud.ServerSeed{Name: name, Created: time.Now().Add(-age)}
	if ours {
		s.Tags = []string{cloud.Tag}
		s.Metadata = map[string]string{cloud.MetaLoadtest: cloud.MetaLoadtestValue, cloud.MetaRunID: name}
	}
	return fc.SeedServer(s)
}

func TestSweepCommand(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantGone  []string // roles deleted
		wantOut   string
		wantInErr string
	}{
		{name: "default keeps the last hour", args: nil, wantGone: []string{"old"}, wantOut: "deleted 1 server(s) older than 1h0m0s"},
		{name: "everything", args: []string{"-older-than", "0"}, wantGone: []string{"old", "new"}, wantOut: "deleted 2 server(s)"},
		{name: "dry run", args: []string{"-older-than", "0s", "-dry-run"}, wantOut: "would delete 2 server(s)"},
		{name: "bad flag", args: []string{"-older-than", "soon"}, wantCode: 2, wantInErr: "invalid value"},
		{name: "negative age", args: []string{"-older-than", "-1h"}, wantCode: 2, wantInErr: "must not be negative"},
		{name: "stray argument", args: []string{"all"}, wantCode: 2, wantInErr: `unexpected argument "all"`},
		{name: "help", args: []string{"-h"}, wantCode: 0, wantInErr: "usage: latency-sweep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := fakecloud.New(t, fakecloud.Options{})
			ids := map[string]string{
				"old":     seed(fc, "latency-old", 2*time.Hour, true),
				"new":     seed(fc, "latency-new", 0, true),
				"foreign": seed(fc, "latency-foreign", 2*time.Hour, false),
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, cloud.EnvFromMap(fc.Env()), &stdout, &stderr,
				cloud.WithPollInterval(time.Millisecond), cloud.WithRetries(1, time.Millisecond))
			require.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			assert.Contains(t, stdout.String(), tc.wantOut)
			assert.Contains(t, stderr.String(), tc.wantInErr)

			var want []string
			for role, id := range ids {
				gone := false
				for _, g := range tc.wantGone {
					gone = gone || g == role
				}
				if !gone {
					want = append(want, id)
				}
			}
			var alive []string
			for _, s := range fc.Servers() {
				alive = append(alive, s.ID)
			}
			sort.Strings(want)
			sort.Strings(alive)
			assert.Equal(t, want, alive)
			for _, s := range fc.Secrets() {
				assert.NotContains(t, stdout.String()+stderr.String(), s)
			}
		})
	}
}

func TestSweepCommandWithoutCredentials(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), nil, cloud.EnvFromMap(nil), &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.True(t, strings.Contains(stderr.String(), "no OpenStack credentials"), stderr.String())
}
