package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadImage: the busy servers boot the measured console's image
// unless LATENCY_LOAD_IMAGE names another.
func TestLoadImage(t *testing.T) {
	c, err := Load(env(map[string]string{"LATENCY_IMAGE": "my-guest"}))
	require.NoError(t, err)
	assert.Equal(t, "my-guest", c.Cloud.LoadImage, "default: LATENCY_IMAGE")

	c, err = Load(env(map[string]string{"LATENCY_IMAGE": "my-guest", "LATENCY_LOAD_IMAGE": "busy-video"}))
	require.NoError(t, err)
	assert.Equal(t, "busy-video", c.Cloud.LoadImage)
	assert.Equal(t, "my-guest", c.Cloud.Image, "the measured console keeps its own")
}
