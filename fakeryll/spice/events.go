package spice

import "time"

// Event is something the session reports: Draw, Ping, SurfaceCreated,
// SurfaceDestroyed, AgentConnected or Dropped.
type Event interface{ isEvent() }

// Draw is one display message that changes a surface (see IsDraw). The
// box is the damaged area the server stated; no image is decoded. A
// STREAM_DATA names only its stream, so its surface and box are the
// stream's from STREAM_CREATE (surface 0 and an empty box for a stream
// the server never created). Received is taken as soon as the whole
// message has been read: it is the moment to stamp a surface_drawn with.
type Draw struct {
	Channel  uint8 // display channel id
	Surface  uint32
	Box      Rect
	Type     MessageType
	Received time.Time
}

// Ping is a server PING on the main channel, answered before it is
// reported. ryll's latency sample is the gap between the Received times
// of two consecutive Pings.
type Ping struct {
	ID       uint32
	Size     int // body bytes: 12, or 256 012 for spice-server's bandwidth probe
	Received time.Time
}

// SurfaceCreated reports a SURFACE_CREATE.
type SurfaceCreated struct {
	Surface
	Received time.Time
}

// SurfaceDestroyed reports a SURFACE_DESTROY.
type SurfaceDestroyed struct {
	Channel  uint8
	ID       uint32
	Received time.Time
}

// AgentConnected reports the guest agent (vdagent) coming or going.
type AgentConnected struct {
	Connected bool
	Received  time.Time
}

// Dropped says that Count events were lost because the consumer did not
// keep up with Events; it is delivered before the next event that fits.
type Dropped struct {
	Count uint64
}

func (Draw) isEvent()             {}
func (Ping) isEvent()             {}
func (SurfaceCreated) isEvent()   {}
func (SurfaceDestroyed) isEvent() {}
func (AgentConnected) isEvent()   {}
func (Dropped) isEvent()          {}
