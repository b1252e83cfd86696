package sim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/sim"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultConfig(t *testing.T) {
	c := sim.DefaultConfig()
	assert.Equal(t, sim.Version{Major: 1, Minor: 2}, c.ProtocolVersion)
	assert.Equal(t, 20*time.Millisecond, c.DrawDelay)
	assert.Zero(t, c.DrawJitter)
	assert.Equal(t, 30*time.Millisecond, c.DisplayRefresh)
	assert.Equal(t, 23, c.DrawsPerKey, "the boot-sector guest's 23 strips")
	assert.Equal(t, 3*time.Millisecond, c.DrawSpread)
	assert.Zero(t, c.DrawTail, "direct, no proxy stall")
	assert.Equal(t, 1, c.DrawTailCount)
	assert.Zero(t, c.BackgroundRate)
	assert.Equal(t, sim.BackgroundPoisson, c.BackgroundPattern)
	assert.Equal(t, sim.DropNewest, c.QueueDrop, "ryll's code, not its document")
	assert.Zero(t, c.InputsDelay)
	assert.Equal(t, sim.PingPattern{Mode: sim.PingSpice}, c.Ping)
	assert.False(t, c.Agent, "ryll starts with agent_connected false; the latency guest has no vdagent")
	assert.Zero(t, c.AgentAfter)
	assert.Equal(t, uint64(1), c.Seed)
	assert.Equal(t, 1024, c.SurfaceWidth)
	assert.Equal(t, 768, c.SurfaceHeight)
	assert.Empty(t, c.TruthFile)
}

func TestKnobNames(t *testing.T) {
	for _, k := range sim.Knobs() {
		assert.Equal(t, "fake-"+k.Name, k.FlagName())
		assert.Equal(t, "FAKERYLL_"+strings.ToUpper(strings.ReplaceAll(k.Name, "-", "_")), k.EnvName())
		assert.NotEmpty(t, k.Usage)
	}
	names := map[string]bool{}
	for _, k := range sim.Knobs() {
		names[k.Name] = true
	}
	for _, want := range []string{"protocol-version", "draw-delay", "draw-jitter", "display-refresh", "draws-per-key",
		"draw-spread", "draw-tail", "draw-tail-count", "ping-pattern", "background-rate", "background-pattern",
		"flood", "queue-drop", "crash-after", "hang-after", "startup-delay", "surfaces-delay", "inputs-delay",
		"agent", "seed", "surface-size", "truth-file"} {
		assert.True(t, names[want], "knob %s", want)
	}
}

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags map[string]string
		env   map[string]string
		check func(t *testing.T, c sim.Config)
	}{
		{"env", nil, map[string]string{"FAKERYLL_DRAW_DELAY": "55ms", "FAKERYLL_PING_PATTERN": "200ms"}, func(t *testing.T, c sim.Config) {
			assert.Equal(t, 55*time.Millisecond, c.DrawDelay)
			assert.Equal(t, sim.PingPattern{Mode: sim.PingSteady, Interval: 200 * time.Millisecond}, c.Ping)
		}},
		{"flag wins over env", map[string]string{"draw-delay": "5ms"}, map[string]string{"FAKERYLL_DRAW_DELAY": "55ms"}, func(t *testing.T, c sim.Config) {
			assert.Equal(t, 5*time.Millisecond, c.DrawDelay)
		}},
		{"protocol 1.0", map[string]string{"protocol-version": "1.0"}, nil, func(t *testing.T, c sim.Config) {
			assert.Equal(t, sim.Version{Major: 1, Minor: 0}, c.ProtocolVersion)
		}},
		{"agent false", nil, map[string]string{"FAKERYLL_AGENT": "false"}, func(t *testing.T, c sim.Config) {
			assert.False(t, c.Agent)
		}},
		{"agent later", map[string]string{"agent": "2s"}, nil, func(t *testing.T, c sim.Config) {
			assert.False(t, c.Agent)
			assert.Equal(t, 2*time.Second, c.AgentAfter)
		}},
		{"ping none", map[string]string{"ping-pattern": "none"}, nil, func(t *testing.T, c sim.Config) {
			assert.Equal(t, sim.PingNone, c.Ping.Mode)
		}},
		{"surface size", map[string]string{"surface-size": "640x480"}, nil, func(t *testing.T, c sim.Config) {
			assert.Equal(t, 640, c.SurfaceWidth)
			assert.Equal(t, 480, c.SurfaceHeight)
		}},
		{"sub-microsecond rounds", map[string]string{"draw-jitter": "1500ns"}, nil, func(t *testing.T, c sim.Config) {
			assert.Equal(t, 2*time.Microsecond, c.DrawJitter)
		}},
		{"agent true", map[string]string{"agent": "true"}, nil, func(t *testing.T, c sim.Config) {
			assert.True(t, c.Agent)
			assert.Zero(t, c.AgentAfter)
		}},
		{"repaint shape", map[string]string{"draws-per-key": "5", "draw-spread": "4ms", "draw-tail": "40ms", "draw-tail-count": "2"}, nil, func(t *testing.T, c sim.Config) {
			assert.Equal(t, 5, c.DrawsPerKey)
			assert.Equal(t, 4*time.Millisecond, c.DrawSpread)
			assert.Equal(t, 40*time.Millisecond, c.DrawTail)
			assert.Equal(t, 2, c.DrawTailCount)
		}},
		{"background and queue", nil, map[string]string{"FAKERYLL_BACKGROUND_PATTERN": "bursty", "FAKERYLL_QUEUE_DROP": "oldest", "FAKERYLL_INPUTS_DELAY": "2s"}, func(t *testing.T, c sim.Config) {
			assert.Equal(t, sim.BackgroundBursty, c.BackgroundPattern)
			assert.Equal(t, "bursty", c.BackgroundPattern.String())
			assert.Equal(t, sim.DropOldest, c.QueueDrop)
			assert.Equal(t, "oldest", c.QueueDrop.String())
			assert.Equal(t, 2*time.Second, c.InputsDelay)
		}},
		{"steady background", map[string]string{"background-pattern": "steady"}, nil, func(t *testing.T, c sim.Config) {
			assert.Equal(t, sim.BackgroundSteady, c.BackgroundPattern)
		}},
		{"rates and seed", map[string]string{"flood": "1e5", "background-rate": "2.5", "seed": "42", "truth-file": "/tmp/t"}, nil, func(t *testing.T, c sim.Config) {
			assert.Equal(t, 1e5, c.Flood)
			assert.Equal(t, 2.5, c.BackgroundRate)
			assert.Equal(t, uint64(42), c.Seed)
			assert.Equal(t, "/tmp/t", c.TruthFile)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := sim.LoadConfig(tc.flags, envOf(tc.env))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestLoadConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flags    map[string]string
		env      map[string]string
		mentions []string
	}{
		{"bad duration flag", map[string]string{"draw-delay": "soon"}, nil, []string{"--fake-draw-delay"}},
		{"bad duration env", nil, map[string]string{"FAKERYLL_DRAW_DELAY": "soon"}, []string{"FAKERYLL_DRAW_DELAY"}},
		{"negative", map[string]string{"display-refresh": "-1ms"}, nil, []string{"--fake-display-refresh"}},
		{"huge", map[string]string{"crash-after": "100000h"}, nil, []string{"--fake-crash-after"}},
		{"protocol", map[string]string{"protocol-version": "one"}, nil, []string{"--fake-protocol-version"}},
		{"protocol major 0", map[string]string{"protocol-version": "0.9"}, nil, []string{"--fake-protocol-version"}},
		{"draws", map[string]string{"draws-per-key": "-1"}, nil, []string{"--fake-draws-per-key"}},
		{"ping", map[string]string{"ping-pattern": "often"}, nil, []string{"--fake-ping-pattern"}},
		{"ping too fast", map[string]string{"ping-pattern": "1us"}, nil, []string{"--fake-ping-pattern"}},
		{"flood", map[string]string{"flood": "lots"}, nil, []string{"--fake-flood"}},
		{"rate NaN", map[string]string{"background-rate": "NaN"}, nil, []string{"--fake-background-rate"}},
		{"background pattern", map[string]string{"background-pattern": "random"}, nil, []string{"--fake-background-pattern"}},
		{"queue drop", nil, map[string]string{"FAKERYLL_QUEUE_DROP": "middle"}, []string{"FAKERYLL_QUEUE_DROP"}},
		{"tail count", map[string]string{"draw-tail-count": "-1"}, nil, []string{"--fake-draw-tail-count"}},
		{"spread", map[string]string{"draw-spread": "-1ms"}, nil, []string{"--fake-draw-spread"}},
		{"inputs delay", map[string]string{"inputs-delay": "soon"}, nil, []string{"--fake-inputs-delay"}},
		{"old knob name", map[string]string{"spontaneous-draws": "1"}, nil, []string{"spontaneous-draws"}},
		{"agent", map[string]string{"agent": "maybe"}, nil, []string{"--fake-agent"}},
		{"seed", map[string]string{"seed": "-4"}, nil, []string{"--fake-seed"}},
		{"size", map[string]string{"surface-size": "1024"}, nil, []string{"--fake-surface-size"}},
		{"size zero", map[string]string{"surface-size": "0x10"}, nil, []string{"--fake-surface-size"}},
		{"unknown knob", map[string]string{"speed": "1"}, nil, []string{"speed"}},
		{"all reported together", map[string]string{"draw-delay": "x"}, map[string]string{"FAKERYLL_SEED": "y"}, []string{"--fake-draw-delay", "FAKERYLL_SEED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sim.LoadConfig(tc.flags, envOf(tc.env))
			require.Error(t, err)
			for _, m := range tc.mentions {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	v, err := sim.ParseVersion("1.12")
	require.NoError(t, err)
	assert.Equal(t, "1.12", v.String())
	assert.True(t, v.AtLeast(1, 2))
	assert.False(t, sim.Version{Major: 1, Minor: 1}.AtLeast(1, 2))
	assert.True(t, sim.Version{Major: 2, Minor: 0}.AtLeast(1, 2))
	for _, bad := range []string{"", "1", "1.", ".1", "1.2.3", "a.b", "-1.0", "1.+2", " 1.2"} {
		_, err := sim.ParseVersion(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	_, err := sim.New(sim.Config{SocketPath: "x"})
	assert.Error(t, err, "a zero Config is not usable")
	c := sim.DefaultConfig()
	_, err = sim.New(c)
	assert.Error(t, err, "no socket path")
}
