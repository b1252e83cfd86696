package control

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// surfaceDrawnWith is a surface_drawn event whose data carries rect as
// given (raw JSON; "" leaves it out).
func surfaceDrawnWith(rect string) Event {
	data := `{"display_channel_id": 0, "surface_id": 0, "produced_at_secs": 1.5, "wallclock_us": 1717000000123456`
	if rect != "" {
		data += `, "rect": ` + rect
	}
	return Event{Name: EventSurfaceDrawn, Data: json.RawMessage(data + "}")}
}

func TestSurfaceDrawnRect(t *testing.T) {
	for _, tc := range []struct {
		name string
		rect string
		want *Rect
	}{
		{"absent (protocol 1.2)", "", nil},
		{"null", "null", nil},
		{"Kerbside's rig: [l,t,r,b]", "[32, 0, 64, 48]", &Rect{Left: 32, Top: 0, Right: 64, Bottom: 48}},
		{"empty box", "[5, 5, 5, 5]", &Rect{Left: 5, Top: 5, Right: 5, Bottom: 5}},
		{"the largest", "[0, 0, 65536, 65536]", &Rect{Right: MaxRectCoord, Bottom: MaxRectCoord}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := surfaceDrawnWith(tc.rect).SurfaceDrawn()
			require.NoError(t, err)
			assert.Equal(t, tc.want, d.Rect)
			assert.Equal(t, uint64(1717000000123456), d.WallclockUS, "the 1.2 fields are read as before")
		})
	}
}

// TestSurfaceDrawnHostileRect: a rect that is not four integers in range
// is a clear error (ErrMalformed, naming rect), never a panic and never a
// box made up from part of it.
func TestSurfaceDrawnHostileRect(t *testing.T) {
	for _, rect := range []string{
		"[]", "[1, 2, 3]", "[1, 2, 3, 4, 5]", // wrong length
		"[-1, 0, 10, 10]", "[0, -5, 10, 10]", // negative
		"[0, 0, 65537, 10]", "[0, 0, 10, 99999999999]", "[0, 0, 1e300, 10]", // huge
		"[0, 0, 99999999999999999999999, 10]", "[0, 0, -1e300, 10]",
		"[10, 0, 5, 10]", "[0, 10, 10, 5]", // inside out
		"[0.5, 0, 10, 10]", `["0", 0, 10, 10]`, "[null, 0, 10, 10]", // not integers
		`{"l": 0}`, `"0,0,10,10"`, "true", "7", // not an array
	} {
		t.Run(rect, func(t *testing.T) {
			var err error
			assert.NotPanics(t, func() { _, err = surfaceDrawnWith(rect).SurfaceDrawn() })
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrMalformed), "%v", err)
			assert.Contains(t, err.Error(), "rect")
		})
	}
}
