package spicetest

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
)

func TestUnion(t *testing.T) {
	left := spice.Rect{Top: 0, Left: 0, Bottom: 400, Right: 32}
	rest := spice.Rect{Top: 2, Left: 32, Bottom: 31, Right: 720}
	assert.Equal(t, spice.Rect{}, Union(spice.Rect{}), "nothing covers nothing")
	assert.Equal(t, left, Union(spice.Rect{}, left), "the empty box is no corner at 0,0")
	assert.Equal(t, spice.Rect{Bottom: 400, Right: 720}, Union(left, rest))
	assert.Equal(t, spice.Rect{Bottom: 400, Right: 720}, Union(spice.Rect{}, Boxes([]spice.Draw{{Box: rest}, {Box: left}})...), "in any order")
	assert.Empty(t, Boxes(nil))
}
