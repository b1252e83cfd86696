package cloud_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
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

// syncBuffer is a log sink safe for the concurrent writes slog may make.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a fake cloud, a Cloud connected to it through the real
// gophercloud path, and the captured debug log.
type env struct {
	fc   *fakecloud.Cloud
	c    *cloud.Cloud
	logs *syncBuffer
	log  *slog.Logger
}

func newLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// fastOptions makes waits and retries quick without changing behaviour.
func fastOptions(log *slog.Logger) []cloud.Option {
	return []cloud.Option{
		cloud.WithLogger(log), cloud.WithPollInterval(2 * time.Millisecond), cloud.WithRetries(3, time.Millisecond),
	}
}

func setup(t *testing.T, opts fakecloud.Options, before ...func(*fakecloud.Cloud)) *env {
	t.Helper()
	fc := fakecloud.New(t, opts)
	for _, f := range before {
		f(fc)
	}
	log, buf := newLogger()
	c, err := cloud.Connect(t.Context(), cloud.EnvFromMap(fc.Env()), fastOptions(log)...)
	require.NoError(t, err, "connect to the fake cloud")
	t.Cleanup(c.Close)
	return &env{fc: fc, c: c, logs: buf, log: log}
}

// config is a run against the fake, uploading from its image URL.
func (e *env) config(runID string) cloud.Config {
	return cloud.Config{ImageURL: e.fc.ImageURL(), RunID: runID, BootTimeout: 30 * time.Second}
}

// cleanup runs Cleanup the way callers must: with a fresh bounded context.
func (e *env) cleanup(t *testing.T) error {
	t.Helper()
	ctx, cancel := cloud.CleanupContext(t.Context(), 30*time.Second)
	defer cancel()
	return e.c.Cleanup(ctx)
}

// assertNoSecrets checks that no fake secret appears in any of texts.
func assertNoSecrets(t *testing.T, fc *fakecloud.Cloud, texts map[string]string) {
	t.Helper()
	secrets := fc.Secrets()
	require.NotEmpty(t, secrets)
	for name, text := range texts {
		for _, s := range secrets {
			assert.NotContains(t, text, s, "a fake-cloud secret leaked into %s", name)
		}
	}
}

// fetch GETs u and returns status and body.
func fetch(t *testing.T, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds, failing the test after a bound. It is
// readiness, not timing: nothing asserts how long it took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, time.Millisecond, "waiting for %s", what)
}

func countCalls(fc *fakecloud.Cloud, method, prefix string) int {
	return len(fc.CallsTo(method, prefix))
}

func statuses(calls []fakecloud.Call) []int {
	out := make([]int, len(calls))
	for i, c := range calls {
		out[i] = c.Status
	}
	return out
}

func logLines(buf *syncBuffer, msg string) []string {
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `"msg":"`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}

var _ = context.Background
