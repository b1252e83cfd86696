package loadrig

import (
	"errors"
	"fmt"
	"strings"
)

// Activity is what a synthetic busy session's screen does: draws of a
// set size at a set rate, as issue 21's guest activities make them. The
// sizes are of raw bitmaps, as the synthetic server sends them (loadgen
// draws are uncompressed): a real guest's draws are smaller for the same
// screen change, so a preset errs on the side of more bytes.
type Activity struct {
	Name string
	// DrawSize is one DRAW_COPY body in bytes (loadgen rounds it up to
	// whole rows of its 1024-pixel-wide surface past 4 KiB).
	DrawSize int
	// DrawsPerSecond is the rate of draws.
	DrawsPerSecond int
}

// The presets, by name.
var (
	// Typing: a small region (a word's worth of text cells, 1 KiB)
	// changes a few times a second: 8 draws/s, 66 kbit/s.
	Typing = Activity{Name: "typing", DrawSize: 1 << 10, DrawsPerSecond: 8}
	// Scroll: the whole text screen moves, strip after strip: 16 KiB
	// draws (four 1024-pixel rows) at 60 per second, 7.9 Mbit/s.
	Scroll = Activity{Name: "scroll", DrawSize: 16 << 10, DrawsPerSecond: 60}
	// Video: large areas change on every refresh: 256 KiB draws (a
	// 1024x64 band) at 30 per second, 63 Mbit/s.
	Video = Activity{Name: "video", DrawSize: 256 << 10, DrawsPerSecond: 30}
)

// Activities lists the presets in order of weight.
var Activities = []Activity{Typing, Scroll, Video}

// ParseActivity returns the preset named s.
func ParseActivity(s string) (Activity, error) {
	for _, a := range Activities {
		if a.Name == s {
			return a, nil
		}
	}
	names := make([]string, len(Activities))
	for i, a := range Activities {
		names[i] = a.Name
	}
	return Activity{}, fmt.Errorf("%w %q: want one of %s", ErrBadActivity, s, strings.Join(names, ", "))
}

// ErrBadActivity is wrapped by ParseActivity's error.
var ErrBadActivity = errors.New("not a synthetic activity")

// BitsPerSecond is the activity's display rate, counted over draw bodies
// (the SPICE headers add a little).
func (a Activity) BitsPerSecond() int64 { return int64(a.DrawSize) * 8 * int64(a.DrawsPerSecond) }

func (a Activity) String() string { return a.Name }
