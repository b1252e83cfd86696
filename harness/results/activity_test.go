package results

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestActivityInSidecarAndSummary: the activity object round-trips
// through the sidecar's JSON, and the summary states the draws per second
// in and out of the key region and the bytes per second at a client.
func TestActivityInSidecarAndSummary(t *testing.T) {
	s := Sidecar{RunID: "r", Metric: "keypress_to_screen", Unit: "s", Activity: &Activity{
		Activity: "video", KeyRegion: []int{0, 0, 720, 48}, DurationS: 52.5,
		DrawsInKey: 1827, DrawsOutside: 37443, InKeyPerS: 34.8, OutsidePerS: 713.2,
		Probe: &ActivityProbe{Client: "loadgen", DurationS: 3, Messages: 2221, Draws: 2221, Bytes: 7695933,
			MessagesPerS: 740.1, DrawsPerS: 740.1, BytesPerS: 2564587},
	}}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var back Sidecar
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, s.Activity, back.Activity)
	assert.Contains(t, string(b), `"activity":{"activity":"video","key_region":[0,0,720,48]`)

	var out bytes.Buffer
	require.NoError(t, WriteSummary(&out, s))
	assert.Contains(t, out.String(), "video: 713.2 draws/s outside the key region 0,0,720,48, 34.8/s in it; at a SPICE client 2564.6 kB/s, 740.1 messages/s")

	var none bytes.Buffer
	s.Activity = nil
	require.NoError(t, WriteSummary(&none, s))
	assert.NotContains(t, none.String(), "activity", "no activity line for a run without one")
}
