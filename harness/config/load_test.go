package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRampSettings(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LOAD": "8, 16,32"}))
	require.NoError(t, err)
	require.NotNil(t, c.Ramp)
	r := c.Ramp
	assert.Equal(t, []int{0, 8, 16, 32}, r.Steps, "0, the baseline, is put first")
	assert.Equal(t, "synthetic", r.Source)
	assert.Equal(t, "video", r.Activity)
	assert.Equal(t, int64(1_000_000), r.Rate)
	assert.Equal(t, 2, r.Repeat)
	assert.Equal(t, 10*time.Millisecond, r.MaxAdded)
	assert.False(t, r.TargetSet)
	assert.Equal(t, "nodelay", r.Proxy.String(), "a ramp's proxy defaults to nodelay")
	assert.Nil(t, c.AB)

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LOAD": "0,4", "LATENCY_LOAD_SOURCE": "qemu",
		"LATENCY_LOAD_ACTIVITY": "scroll", "LATENCY_LOAD_RATE": "500kbit", "LATENCY_LOAD_REPEAT": "3",
		"LATENCY_LOAD_MAX_ADDED": "5ms", "LATENCY_LOAD_TARGET": "4", "LATENCY_PROXY": "delay:2ms"}))
	require.NoError(t, err)
	r = c.Ramp
	assert.Equal(t, []int{0, 4}, r.Steps)
	assert.Equal(t, "qemu", r.Source)
	assert.Equal(t, "scroll", r.Activity)
	assert.Equal(t, int64(500_000), r.Rate)
	assert.Equal(t, 3, r.Repeat)
	assert.Equal(t, 5*time.Millisecond, r.MaxAdded)
	assert.True(t, r.TargetSet)
	assert.Equal(t, 4, r.Target)
	assert.Equal(t, "delay:2ms", r.Proxy.String())

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LOAD": "0,4", "LATENCY_PROXY": "cpu:200us"}))
	require.NoError(t, err)
	assert.Equal(t, "cpu:200µs", c.Ramp.Proxy.String(), "the proxy that costs CPU per message")

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu"}))
	require.NoError(t, err)
	assert.Nil(t, c.Ramp, "no LATENCY_LOAD: no ramp")
}

func TestRampProblems(t *testing.T) {
	q := func(kv ...string) map[string]string {
		m := map[string]string{"LATENCY_PROVIDER": "qemu"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"with an A/B":          {q("LATENCY_LOAD", "0,8", "LATENCY_B_PROXY", "nagle"), "one run does one of them"},
		"not qemu":             {map[string]string{"LATENCY_PROVIDER": "direct", "LATENCY_CONSOLE": "h:1", "LATENCY_LOAD": "0,8"}, "LATENCY_LOAD needs LATENCY_PROVIDER=qemu"},
		"several consoles":     {q("LATENCY_LOAD", "0,8", "LATENCY_CONSOLES", "2"), "LATENCY_CONSOLES=2 is not supported"},
		"ping metric":          {q("LATENCY_LOAD", "0,8", "LATENCY_METRIC", "ping"), "cannot be ramped"},
		"not a number":         {q("LATENCY_LOAD", "0,eight"), `"eight" is not a number of sessions`},
		"negative":             {q("LATENCY_LOAD", "0,-8"), "is not a number of sessions"},
		"not increasing":       {q("LATENCY_LOAD", "0,16,8"), "strictly increasing"},
		"baseline only":        {q("LATENCY_LOAD", "0"), "needs a step above 0"},
		"bad source":           {q("LATENCY_LOAD", "0,8", "LATENCY_LOAD_SOURCE", "docker"), "LATENCY_LOAD_SOURCE"},
		"bad activity":         {q("LATENCY_LOAD", "0,8", "LATENCY_LOAD_ACTIVITY", "idle"), "LATENCY_LOAD_ACTIVITY"},
		"bad rate":             {q("LATENCY_LOAD", "0,8", "LATENCY_LOAD_RATE", "fast"), "LATENCY_LOAD_RATE"},
		"unlimited rate":       {q("LATENCY_LOAD", "0,8", "LATENCY_LOAD_RATE", "unlimited"), "finite bit rate"},
		"bad repeat":           {q("LATENCY_LOAD", "0,8", "LATENCY_LOAD_REPEAT", "0"), "LATENCY_LOAD_REPEAT"},
		"bad max added":        {q("LATENCY_LOAD", "0,8", "LATENCY_LOAD_MAX_ADDED", "-1ms"), "LATENCY_LOAD_MAX_ADDED"},
		"bad target":           {q("LATENCY_LOAD", "0,8", "LATENCY_LOAD_TARGET", "0"), "LATENCY_LOAD_TARGET"},
		"bad proxy":            {q("LATENCY_LOAD", "0,8", "LATENCY_PROXY", "slow"), "LATENCY_PROXY"},
		"proxy without a ramp": {q("LATENCY_PROXY", "nagle"), "LATENCY_PROXY is set but LATENCY_LOAD is not"},
		"source without ramp":  {q("LATENCY_LOAD_SOURCE", "synthetic"), "LATENCY_LOAD_SOURCE is set but LATENCY_LOAD is not"},
		"does not fit":         {q("LATENCY_LOAD", "0,8,16,32", "LATENCY_SAMPLES", "300"), "at each of 4 steps"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// An openstack ramp: the measured console through Kerbside, more servers
// as the busy sessions; its source is openstack by default.
func TestRampOpenStack(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_LOAD": "0,2", "LATENCY_LOAD_IMAGE": "busy-video",
		"LATENCY_LINK": "rtt=20ms"}))
	require.NoError(t, err)
	require.NotNil(t, c.Ramp)
	r := c.Ramp
	assert.Equal(t, []int{0, 2}, r.Steps)
	assert.Equal(t, LoadOpenStack, r.Source, "openstack is the default source with the openstack provider")
	assert.True(t, r.Remote, "the proxy under test is Kerbside, not ours")
	assert.Equal(t, "as the image busy-video does", r.Activity, "the busy servers' activity is their image's, said so")
	assert.Zero(t, r.Rate, "no synthetic rate on openstack")
	require.NotNil(t, c.Link, "LATENCY_LINK works with an openstack ramp")

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_LOAD": "0,2", "LATENCY_LOAD_SOURCE": "openstack"}))
	require.NoError(t, err)
	assert.Equal(t, "as the image uefi-latency-guest does", c.Ramp.Activity, "LATENCY_LOAD_IMAGE defaults to LATENCY_IMAGE")

	c, err = Load(env(map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LOAD": "0,2"}))
	require.NoError(t, err)
	assert.False(t, c.Ramp.Remote, "on qemu the proxy under test is ours")
}

// Every refusal of an openstack ramp happens in Load, naming why, before
// anything is provisioned.
func TestRampOpenStackProblems(t *testing.T) {
	os := func(kv ...string) map[string]string {
		m := map[string]string{"LATENCY_PROVIDER": "openstack", "LATENCY_LOAD": "0,2"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"synthetic source": {os("LATENCY_LOAD_SOURCE", "synthetic"), []string{"LATENCY_LOAD_SOURCE=\"synthetic\" with LATENCY_PROVIDER=openstack", "cannot cross it"}},
		"qemu source":      {os("LATENCY_LOAD_SOURCE", "qemu"), []string{"LATENCY_LOAD_SOURCE=\"qemu\"", "Kerbside"}},
		"a proxy of ours":  {os("LATENCY_PROXY", "nodelay"), []string{"LATENCY_PROXY=\"nodelay\" with LATENCY_PROVIDER=openstack", "the proxy under test is Kerbside"}},
		"an activity":      {os("LATENCY_LOAD_ACTIVITY", "video"), []string{"LATENCY_LOAD_ACTIVITY", "LATENCY_LOAD_IMAGE"}},
		"a rate":           {os("LATENCY_LOAD_RATE", "1mbit"), []string{"LATENCY_LOAD_RATE", "synthetic sessions' rate"}},
		"the direct leg":   {os("LATENCY_OPENSTACK_CONSOLE", "direct"), []string{"LATENCY_OPENSTACK_CONSOLE=direct with LATENCY_LOAD"}},
		"several consoles": {os("LATENCY_CONSOLES", "2"), []string{"LATENCY_CONSOLES=2 is not supported"}},
		"an A/B":           {os("LATENCY_B_PROVIDER", "openstack"), []string{"one run does one of them"}},
		"openstack on qemu": {map[string]string{"LATENCY_PROVIDER": "qemu", "LATENCY_LOAD": "0,2", "LATENCY_LOAD_SOURCE": "openstack"},
			[]string{"it needs LATENCY_PROVIDER=openstack"}},
		"the fake provider": {map[string]string{"LATENCY_PROVIDER": "fake", "LATENCY_LOAD": "0,2"}, []string{"LATENCY_LOAD needs LATENCY_PROVIDER=qemu", "or openstack"}},
		"several at once": {os("LATENCY_LOAD_SOURCE", "synthetic", "LATENCY_PROXY", "nagle"),
			[]string{"LATENCY_LOAD_SOURCE", "LATENCY_PROXY=\"nagle\""}},
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
