package spice

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Rect is a SPICE Rect: the damaged box of a draw, in surface pixels.
type Rect struct {
	Top, Left, Bottom, Right int32
}

// Surface is a display surface the server created.
type Surface struct {
	Channel uint8 // display channel id
	ID      uint32
	Width   uint32
	Height  uint32
	Format  uint32 // SPICE surface_fmt, e.g. 32 for 32_xRGB
	Primary bool
}

// stream is what STREAM_CREATE said about a video stream: STREAM_DATA
// messages name only the stream, so their surface and box come from here.
type stream struct {
	surface uint32
	dest    Rect
}

// display is one display channel's state. handle is pure (no I/O) so the
// fuzz target can drive it with any bytes.
type display struct {
	channel uint8

	mu       sync.Mutex
	surfaces map[uint32]Surface
	streams  map[uint32]stream
}

func newDisplay(channel uint8) *display {
	return &display{channel: channel, surfaces: map[uint32]Surface{}, streams: map[uint32]stream{}}
}

// minDisplayBase is SpiceMsgDisplayBase up to the clip: surface_id and box.
const minDisplayBase = 4 + 16

// handle interprets one display-channel message. It returns the event to
// report, if any. Messages that are not about surfaces or drawing return
// nil; a message too short for its type is an error wrapping ErrProtocol.
func (d *display) handle(typ uint16, body []byte, now time.Time) (Event, error) {
	mt := MessageType(typ)
	short := func(want int) error {
		return fmt.Errorf("%w: %s of %d bytes, want at least %d", ErrProtocol, mt, len(body), want)
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(body[off:]) }
	rect := func(off int) Rect {
		return Rect{
			Top: int32(u32(off)), Left: int32(u32(off + 4)),
			Bottom: int32(u32(off + 8)), Right: int32(u32(off + 12)),
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch mt {
	case DisplaySurfaceCreate:
		if len(body) < 20 {
			return nil, short(20)
		}
		s := Surface{Channel: d.channel, ID: u32(0), Width: u32(4), Height: u32(8), Format: u32(12), Primary: u32(16)&1 != 0}
		d.surfaces[s.ID] = s
		return SurfaceCreated{Surface: s, Received: now}, nil
	case DisplaySurfaceDestroy:
		if len(body) < 4 {
			return nil, short(4)
		}
		id := u32(0)
		delete(d.surfaces, id)
		return SurfaceDestroyed{Channel: d.channel, ID: id, Received: now}, nil
	case DisplayStreamCreate:
		// surface_id, id, flags u8, codec u8, stamp u64, stream w/h,
		// src w/h, dest Rect at 34, clip.
		if len(body) < 50 {
			return nil, short(50)
		}
		d.streams[u32(4)] = stream{surface: u32(0), dest: rect(34)}
		return nil, nil
	case DisplayStreamDestroy:
		if len(body) < 4 {
			return nil, short(4)
		}
		delete(d.streams, u32(0))
		return nil, nil
	case DisplayStreamDestroyAll:
		clear(d.streams)
		return nil, nil
	case DisplayStreamData:
		// StreamDataHeader {id, multi_media_time}, data_size, data.
		if len(body) < 8 {
			return nil, short(8)
		}
		st := d.streams[u32(0)] // an unknown stream is reported on surface 0
		return Draw{Channel: d.channel, Surface: st.surface, Box: st.dest, Type: mt, Received: now}, nil
	case DisplayStreamDataSized:
		// StreamDataHeader, width, height, dest Rect at 16, data_size, data.
		if len(body) < 32 {
			return nil, short(32)
		}
		st := d.streams[u32(0)]
		return Draw{Channel: d.channel, Surface: st.surface, Box: rect(16), Type: mt, Received: now}, nil
	case DisplayGLDraw:
		// x, y, w, h on the primary surface (GL scanout).
		if len(body) < 16 {
			return nil, short(16)
		}
		x, y, w, h := int32(u32(0)), int32(u32(4)), int32(u32(8)), int32(u32(12))
		return Draw{Channel: d.channel, Surface: 0, Box: Rect{Top: y, Left: x, Bottom: y + h, Right: x + w}, Type: mt, Received: now}, nil
	}
	if isDisplayBaseDraw(mt) {
		if len(body) < minDisplayBase {
			return nil, short(minDisplayBase)
		}
		return Draw{Channel: d.channel, Surface: u32(0), Box: rect(4), Type: mt, Received: now}, nil
	}
	return nil, nil
}

// isDisplayBaseDraw reports the draws that start with SpiceMsgDisplayBase
// {surface_id, box, clip}: DRAW_FILL..DRAW_ALPHA_BLEND, DRAW_COMPOSITE and
// COPY_BITS (which ryll also reports as a surface_drawn).
func isDisplayBaseDraw(mt MessageType) bool {
	return (mt >= DisplayDrawFill && mt <= DisplayDrawAlphaBlend) || mt == DisplayDrawComposite || mt == DisplayCopyBits
}

// IsDraw reports whether a display message type changes a surface's
// pixels. MONITORS_CONFIG, STREAM_ACTIVATE_REPORT, SURFACE_CREATE and the
// stream bookkeeping messages are not draws.
func IsDraw(mt MessageType) bool {
	return isDisplayBaseDraw(mt) || mt == DisplayStreamData || mt == DisplayStreamDataSized || mt == DisplayGLDraw
}

func (d *display) snapshot(into []Surface) []Surface {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.surfaces {
		into = append(into, s)
	}
	return into
}

func sortSurfaces(s []Surface) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Channel != s[j].Channel {
			return s[i].Channel < s[j].Channel
		}
		return s[i].ID < s[j].ID
	})
}
