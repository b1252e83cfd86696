package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/link"
)

func TestLinkForms(t *testing.T) {
	for value, want := range map[string]link.Profile{
		"lan":             {Name: "lan"},
		"wan-20ms-50mbit": {Name: "wan-20ms-50mbit", RTT: 20 * time.Millisecond, Rate: 50_000_000, Queue: 125_000},
		"wan-80ms-10mbit": {Name: "wan-80ms-10mbit", RTT: 80 * time.Millisecond, Rate: 10_000_000, Queue: 100_000},
		"wan-80ms-1mbit":  {Name: "wan-80ms-1mbit", RTT: 80 * time.Millisecond, Rate: 1_000_000, Queue: 64 << 10},
		"rtt=80ms,rate=10mbit,jitter=5ms,queue=64KiB": {RTT: 80 * time.Millisecond, Rate: 10_000_000, Jitter: 5 * time.Millisecond, Queue: 64 << 10},
		"wan-80ms-10mbit,jitter=5ms":                  {RTT: 80 * time.Millisecond, Rate: 10_000_000, Jitter: 5 * time.Millisecond, Queue: 100_000},
	} {
		t.Run(value, func(t *testing.T) {
			c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LINK": value}))
			require.NoError(t, err)
			require.NotNil(t, c.Link)
			assert.Equal(t, want, *c.Link)
			assert.Nil(t, c.AB, "LATENCY_LINK alone is no A/B")
		})
	}
	c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "qemu"}))
	require.NoError(t, err)
	assert.Nil(t, c.Link, "unset: no link, as before")
}

func TestLinkRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"bad form":       {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LINK": "wan-80ms"}, []string{"LATENCY_LINK", `"wan-80ms" is not a named profile`, "lan, wan-20ms-50mbit, wan-80ms-10mbit, wan-80ms-1mbit", "rtt=80ms,rate=10mbit,jitter=5ms,queue=64KiB"}},
		"bad part":       {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LINK": "rtt=80ms,rate=10mbps"}, []string{"LATENCY_LINK", "ambiguous"}},
		"bad b form":     {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_B_LINK": "rtt=80"}, []string{"LATENCY_B_LINK", "not a duration", "named profile ("}},
		"fake":           {map[string]string{"LATENCY_PROVIDER": "fake", "LATENCY_LINK": "lan"}, []string{"LATENCY_LINK", "simulator", "LATENCY_PROVIDER=qemu"}},
		"auto is fake":   {map[string]string{"LATENCY_LINK": "lan"}, []string{"LATENCY_LINK", "simulator", "LATENCY_PROVIDER=qemu"}},
		"fake b":         {map[string]string{"LATENCY_PROVIDER": "fake", "LATENCY_B_LINK": "lan"}, []string{"LATENCY_B_LINK", "simulator", "LATENCY_PROVIDER=qemu"}},
		"b alone on url": {map[string]string{"LATENCY_PROVIDER": "url", "LATENCY_CONSOLE": "https://k.example/c?token=t", "LATENCY_B_LINK": "lan"}, []string{"LATENCY_B_LINK alone", "LATENCY_PROVIDER=url"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestBLinkMakesTheABOfTheSameConsole(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LINK": "lan", "LATENCY_B_LINK": "rtt=80ms"}))
	require.NoError(t, err)
	require.NotNil(t, c.AB, "LATENCY_B_LINK turns the A/B on")
	assert.True(t, c.AB.SameGuest)
	assert.False(t, c.AB.Proxied())
	a, b := c.Leg(false), c.Leg(true)
	require.NotNil(t, a.Link)
	require.NotNil(t, b.Link)
	assert.Equal(t, "lan", a.Link.Name)
	assert.Equal(t, 80*time.Millisecond, b.Link.RTT)
	assert.Equal(t, ProviderQemu, b.Provider)

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_B_LINK": "wan-80ms-1mbit"}))
	require.NoError(t, err)
	assert.Nil(t, c.Leg(false).Link, "A through no link")
	assert.Equal(t, "wan-80ms-1mbit", c.Leg(true).Link.Name)

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "hv1:5900:5901", "LATENCY_B_LINK": "lan"}))
	require.NoError(t, err)
	assert.Equal(t, "hv1:5900:5901", c.Leg(true).Console.Direct.String(), "B is A's own console")

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LINK": "wan-20ms-50mbit", "LATENCY_B_PROXY": "nagle"}))
	require.NoError(t, err)
	assert.True(t, c.AB.Proxied())
	assert.False(t, c.AB.SameGuest)
	assert.Equal(t, "wan-20ms-50mbit", c.Leg(true).Link.Name, "without LATENCY_B_LINK, B crosses A's link too (in front of the proxy)")

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_B_LINK": "lan", "LATENCY_B_PROXY": "nodelay"}))
	require.NoError(t, err)
	assert.True(t, c.AB.Proxied())
	assert.Equal(t, "lan", c.Leg(true).Link.Name)
	assert.Nil(t, c.Leg(false).Link)
}
