package measure

import "fmt"

// Rect is a draw's damaged box, or the key's region, in surface pixels:
// Left and Top inclusive, Right and Bottom exclusive, as SPICE's boxes are.
// The zero Rect is no region.
type Rect struct {
	Left, Top, Right, Bottom int
}

// IsZero reports whether r is the zero Rect (no region).
func (r Rect) IsZero() bool { return r == Rect{} }

// Overlaps reports whether r and o share at least one pixel. Boxes that
// only meet at an edge do not: a draw just below the key's region is not
// the key's.
func (r Rect) Overlaps(o Rect) bool {
	if r.Left >= r.Right || r.Top >= r.Bottom || o.Left >= o.Right || o.Top >= o.Bottom {
		return false // an empty box damages nothing
	}
	return r.Left < o.Right && o.Left < r.Right && r.Top < o.Bottom && o.Top < r.Bottom
}

// String is l,t,r,b, the form LATENCY_KEY_REGION takes.
func (r Rect) String() string { return fmt.Sprintf("%d,%d,%d,%d", r.Left, r.Top, r.Right, r.Bottom) }

// Check says what is wrong with r as a key region: it must have an area
// and lie in non-negative coordinates.
func (r Rect) Check() error {
	if r.Left < 0 || r.Top < 0 || r.Right <= r.Left || r.Bottom <= r.Top {
		return fmt.Errorf("region %s: want left,top,right,bottom with 0 <= left < right and 0 <= top < bottom", r)
	}
	return nil
}

// Activity counts the draws of a keypress run by where the client said
// they were, against Config.KeyRegion. With a key region, only draws
// whose box touches it can answer a press (both figures: the first draw
// and the end of the repaint); the others are the guest's own activity,
// counted here and nowhere else: they are not background, they never
// delay a press and they never end a burst. A draw without a box cannot
// be placed, so it is judged as every draw is without a region (and a
// busy guest then fails the run on its background).
type Activity struct {
	// KeyRegion is the region the run judged by; zero for none.
	KeyRegion Rect
	// InKey counts draws whose box touches KeyRegion; Outside those whose
	// box does not (the activity); NoRect the draws without a box. Without
	// a key region every draw is counted as NoRect or InKey (it has a box).
	InKey, Outside, NoRect int
}

// Draws is every draw counted.
func (a Activity) Draws() int { return a.InKey + a.Outside + a.NoRect }

// Rates are draws per second over d: in the key region, outside it, and
// without a box.
func (a Activity) Rates(d float64) (inKey, outside, noRect float64) {
	if d <= 0 {
		return 0, 0, 0
	}
	return float64(a.InKey) / d, float64(a.Outside) / d, float64(a.NoRect) / d
}

// place counts d and reports whether it may answer a press: it has no box
// or no key region is set, or its box touches the region.
func (a *Activity) place(d Draw) bool {
	switch {
	case !d.HasRect:
		a.NoRect++
		return true
	case a.KeyRegion.IsZero() || d.Rect.Overlaps(a.KeyRegion):
		a.InKey++
		return true
	default:
		a.Outside++
		return false
	}
}

// busyHint is what a run refused for its background adds, so that the
// person whose guest is busy on purpose knows what to do.
func (a Activity) busyHint() string {
	switch {
	case a.KeyRegion.IsZero():
		return ". If the guest is busy on purpose (LATENCY_ACTIVITY), measure with a key region " +
			"(the qemu provider's guest has one; else LATENCY_KEY_REGION=l,t,r,b) and a client that reports " +
			"each draw's rect on surface_drawn, so that only draws in the key's region count; or set LATENCY_ACTIVITY=idle"
	case a.NoRect > 0:
		return fmt.Sprintf(". The client reported no rectangle on %d draw(s), so draws outside the key region (%s) "+
			"could not be told from the key's: use a client that reports rect on surface_drawn (fakeryll's SPICE "+
			"client; a ryll patched as Kerbside's rig does; not ryll 1.2), or set LATENCY_ACTIVITY=idle", a.NoRect, a.KeyRegion)
	}
	return ""
}
