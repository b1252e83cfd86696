package console

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/guest"
)

// TestActivityProbe boots each activity through the qemu provider: an
// idle guest is not probed (it draws nothing without a key); a busy one
// is, by a real SPICE client, before ryll would connect, and the busier
// the activity the more it sends. The figures are logged for the guide.
func TestActivityProbe(t *testing.T) {
	needQemu(t)
	var mu sync.Mutex
	bytesPerS := map[string]float64{}
	// Each activity its own guest, probed side by side (a probe takes
	// seconds by design); the group ends when every one has.
	t.Run("each", func(t *testing.T) {
		for _, activity := range guest.Activities {
			t.Run(activity, func(t *testing.T) {
				t.Parallel()
				var logs bytes.Buffer
				cfg := load(t, map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_ACTIVITY": activity, "LATENCY_RESULTS_DIR": t.TempDir()})
				c, err := Open(t.Context(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close(t.Context()) })
				if activity == guest.ActivityIdle {
					assert.Nil(t, c.ActivityProbe, "an idle guest is not probed")
					return
				}
				p := c.ActivityProbe
				require.NotNil(t, p)
				t.Logf("%s: %.1f messages/s, %.1f draws/s, %.0f bytes/s over %s", activity, p.MessagesPerS(), p.DrawsPerS(), p.BytesPerS(), p.Duration)
				assert.Positive(t, p.Messages)
				assert.Positive(t, p.Bytes)
				assert.InDelta(t, probeSpan.Seconds(), p.Duration.Seconds(), 1, "the span counted")
				assert.NotContains(t, logs.String(), c.Secrets[0], "the password is in no log line")
				mu.Lock()
				bytesPerS[activity] = p.BytesPerS()
				mu.Unlock()
			})
		}
	})
	if len(bytesPerS) == 3 {
		assert.Less(t, bytesPerS[guest.ActivityTyping], bytesPerS[guest.ActivityScroll], "typing sends less than scroll")
		assert.Less(t, bytesPerS[guest.ActivityScroll], bytesPerS[guest.ActivityVideo], "scroll sends less than video")
	}
}
