package config

import (
	"strconv"
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/measure"
)

// loadActivity reads what the measured guest does by itself
// (LATENCY_ACTIVITY: the qemu provider boots guest.ImageFor it) and where
// the key's repaint draws (LATENCY_KEY_REGION; the qemu provider's guest
// brings its own, guest.KeyRegionFor the activity). With a region, only draws whose rect
// touches it answer a press, so a busy console can be measured by a
// client that reports rectangles; without one, or without rectangles,
// the activity is background and the run is refused, saying why.
func loadActivity(p *parser, c *Config) {
	c.Activity = strings.ToLower(p.str("LATENCY_ACTIVITY", guest.ActivityIdle))
	if _, err := guest.ImageFor(c.Activity); err != nil {
		p.failName("LATENCY_ACTIVITY", "LATENCY_ACTIVITY=%q: want %s", c.Activity, strings.Join(guest.Activities, ", "))
		c.Activity = guest.ActivityIdle
	} else if c.Activity != guest.ActivityIdle && c.Provider != ProviderQemu {
		p.failf("LATENCY_ACTIVITY=%s makes the qemu provider's guest busy, but LATENCY_PROVIDER=%s: its console shows whatever it shows. Use LATENCY_PROVIDER=qemu, or leave LATENCY_ACTIVITY unset (idle)", c.Activity, c.Provider)
	}
	if v, set := p.lookup("LATENCY_KEY_REGION"); set && strings.TrimSpace(v) != "" {
		r, err := parseRegion(v)
		if err != nil {
			p.failName("LATENCY_KEY_REGION", "LATENCY_KEY_REGION=%q: %v", v, err)
			return
		}
		c.Measure.KeyRegion = r
		return
	}
	if c.Provider == ProviderQemu {
		k := guest.KeyRegionFor(c.Activity)
		c.Measure.KeyRegion = measure.Rect{Left: k.Left, Top: k.Top, Right: k.Right, Bottom: k.Bottom}
	}
}

// parseRegion reads l,t,r,b in pixels (right and bottom exclusive).
func parseRegion(s string) (measure.Rect, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return measure.Rect{}, errRegion
	}
	var n [4]int
	for i, part := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v > maxRegionCoord {
			return measure.Rect{}, errRegion
		}
		n[i] = v
	}
	r := measure.Rect{Left: n[0], Top: n[1], Right: n[2], Bottom: n[3]}
	if err := r.Check(); err != nil {
		return measure.Rect{}, err
	}
	return r, nil
}

// maxRegionCoord bounds a region's coordinates, as surface_drawn's rect
// is bounded.
const maxRegionCoord = 1 << 16

var errRegion = regionError("want left,top,right,bottom in pixels, e.g. 0,0,720,48 (right and bottom exclusive)")

type regionError string

func (e regionError) Error() string { return string(e) }
