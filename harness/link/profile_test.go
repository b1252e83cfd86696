package link

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	good := []struct {
		in   string
		want Profile
	}{
		{"lan", Profile{Name: "lan"}},
		{"wan-20ms-50mbit", Profile{Name: "wan-20ms-50mbit", RTT: 20 * time.Millisecond, Rate: 50_000_000, Queue: 125_000}},
		{"wan-80ms-10mbit", Profile{Name: "wan-80ms-10mbit", RTT: 80 * time.Millisecond, Rate: 10_000_000, Queue: 100_000}},
		{"wan-80ms-1mbit", Profile{Name: "wan-80ms-1mbit", RTT: 80 * time.Millisecond, Rate: 1_000_000, Queue: 64 << 10}},
		{"rtt=80ms,rate=10mbit,jitter=5ms,queue=64KiB", Profile{RTT: 80 * time.Millisecond, Rate: 10_000_000, Jitter: 5 * time.Millisecond, Queue: 64 << 10}},
		{"rtt=80ms", Profile{RTT: 80 * time.Millisecond}},
		{"rtt=0s", Profile{}},
		{"rate=1.5Mbit", Profile{Rate: 1_500_000, Queue: 64 << 10}},
		{"rate=512kbit,queue=4096", Profile{Rate: 512_000, Queue: 4096}},
		{"rate=1gbit,queue=2MiB,rtt=1ms", Profile{RTT: time.Millisecond, Rate: 1_000_000_000, Queue: 2 << 20}},
		{"wan-80ms-10mbit,jitter=5ms", Profile{RTT: 80 * time.Millisecond, Jitter: 5 * time.Millisecond, Rate: 10_000_000, Queue: 100_000}},
		{"wan-80ms-1mbit,rate=unlimited", Profile{RTT: 80 * time.Millisecond}},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			back, err := Parse(got.Explicit())
			require.NoError(t, err, "Explicit %q reads back", got.Explicit())
			got.Name = ""
			assert.Equal(t, got, back, "Explicit %q reads back to the same link", got.Explicit())
		})
	}
	bad := []struct{ in, says string }{
		{"", "empty"},
		{"wan", `"wan" is not a named profile`},
		{"LAN", `"LAN" is not a named profile`},
		{"rtt=80", `rtt=80: "80" is not a duration`},
		{"rtt=-1ms", "negative"},
		{"rtt=80s", "rtt 1m20s is outside 0 to 10s"},
		{"rtt=80ms,rate=10mbps", `"10mbps" is ambiguous`},
		{"rate=10", `"10" has no unit`},
		{"rate=xmbit", `"x" is not a positive number of mbit`},
		{"rate=1bit", "rate 1bit is outside 8kbit to 100gbit"},
		{"rtt=10ms,jitter=6ms", "jitter 6ms is outside 0 to rtt/2 (5ms)"},
		{"jitter=1ms", "jitter 1ms is outside 0 to rtt/2 (0s)"},
		{"queue=64KiB", "queue 64KiB without a rate"},
		{"rate=1mbit,queue=1KiB", "queue 1KiB is outside 4KiB to 1GiB"},
		{"rate=1mbit,queue=64kB", `"64kB" is not a positive whole number of bytes`},
		{"rtt=1ms,rtt=2ms", "rtt is given twice"},
		{"delay=1ms", "delay=1ms: unknown key"},
		{"rtt=1ms,lan", `"lan" is not key=value`},
		{"rtt=80,rate=10", `"80" is not a duration`},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrBadProfile), "errors.Is(err, ErrBadProfile): %v", err)
			assert.Contains(t, err.Error(), tc.says)
			assert.Contains(t, err.Error(), "rtt=80ms,rate=10mbit,jitter=5ms,queue=64KiB", "quotes the accepted forms")
			assert.Contains(t, err.Error(), "wan-80ms-1mbit", "names the profiles")
		})
	}
	// Every bad part is named at once.
	_, err := Parse("rtt=80,rate=10")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"80" is not a duration`)
	assert.Contains(t, err.Error(), `"10" has no unit`)
}

func TestValidate(t *testing.T) {
	assert.NoError(t, Profile{}.Validate(), "the zero profile is lan")
	err := Profile{RTT: time.Millisecond, Jitter: time.Second}.Validate()
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrBadProfile)
	assert.ErrorContains(t, Profile{Rate: 1_000_000}.Validate(), "queue 0B is outside")
}

func TestProfileJSON(t *testing.T) {
	p, err := Parse("wan-80ms-10mbit,jitter=5ms")
	require.NoError(t, err)
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, map[string]any{
		"explicit": "rtt=80ms,jitter=5ms,rate=10mbit,queue=100000B", "rtt_s": 0.08, "jitter_s": 0.005,
		"rate_bits_per_s": 1e7, "queue_bytes": 1e5,
	}, got)
	named, err := Parse("lan")
	require.NoError(t, err)
	b, err = json.Marshal(named)
	require.NoError(t, err)
	assert.JSONEq(t, `{"name":"lan","explicit":"rtt=0s","rtt_s":0,"jitter_s":0,"rate_bits_per_s":0,"queue_bytes":0}`, string(b))
	assert.Equal(t, "lan (rtt=0s)", named.String())
}

func TestProfilesAreValid(t *testing.T) {
	for _, p := range Profiles() {
		assert.NoError(t, p.Validate(), p.Name)
		got, err := Parse(p.Name)
		assert.NoError(t, err)
		assert.Equal(t, p, got)
	}
}
