package control

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Event names the protocol document defines. Subscribe takes any names;
// these exist so callers do not retype strings the server must match.
const (
	// EventLatency is the interval between two server PINGs as ryll saw
	// them. It is not a round-trip time.
	EventLatency = "latency"
	// EventAgentConnected fires when the guest's vdagent comes or goes.
	EventAgentConnected = "agent_connected"
	// EventPasteCompleted reports a paste that typed all its text.
	EventPasteCompleted = "paste_completed"
	// EventPasteFailed reports a paste that stopped early.
	EventPasteFailed = "paste_failed"
	// EventDropped reports events the SERVER discarded for a slow client.
	EventDropped = "dropped"
	// EventSurfaceDrawn (protocol 1.1+) fires once per display draw
	// command; its wallclock is the loadtest's time-of-first-pixel.
	EventSurfaceDrawn = "surface_drawn"
	// EventDigestUpdated (1.1+, feature-gated) carries a decoded visual
	// digest.
	EventDigestUpdated = "digest_updated"
)

// Event is one unsolicited line from the server. Data is passed through
// untouched, so events and fields this client does not know still reach
// the caller; use the typed decoders for the ones it does.
type Event struct {
	// Name is the event name (see the Event* constants).
	Name string
	// Data is the event's data object exactly as the server sent it.
	Data json.RawMessage
	// Received is the local wall clock (with its monotonic reading) taken
	// when the line was read, before it was decoded, so queueing inside
	// this client does not skew it.
	Received time.Time
}

// SurfaceDrawn is the data of a surface_drawn event.
type SurfaceDrawn struct {
	DisplayChannelID uint8   `json:"display_channel_id"`
	SurfaceID        uint32  `json:"surface_id"`
	ProducedAtSecs   float64 `json:"produced_at_secs"`
	WallclockUS      uint64  `json:"wallclock_us"`
	// Rect is the draw's damaged box, when the server sends one: protocol
	// 1.2 has none; a ryll patched as Kerbside's key-to-draw rig does, and
	// fakeryll's SPICE client, add `rect: [l,t,r,b]`. Nil when absent.
	Rect *Rect `json:"rect,omitempty"`
}

// Rect is a draw's damaged box in surface pixels, as surface_drawn's
// rect [left, top, right, bottom] gives it: right and bottom exclusive.
type Rect struct {
	Left, Top, Right, Bottom int
}

// MaxRectCoord bounds a rect's coordinates: no SPICE surface is wider or
// taller (spice-server caps a surface well below it).
const MaxRectCoord = 1 << 16

// parseRect reads surface_drawn's optional rect: absent or null is nil;
// anything but four integers 0 <= left <= right <= MaxRectCoord and
// 0 <= top <= bottom <= MaxRectCoord is an error, never a guess.
func parseRect(raw json.RawMessage) (*Rect, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var ns []*int64 // a pointer each: null is no number, not 0
	if err := json.Unmarshal(raw, &ns); err != nil {
		return nil, fmt.Errorf("rect %.40s: want [left, top, right, bottom] integers: %v", raw, err)
	}
	if len(ns) != 4 {
		return nil, fmt.Errorf("rect %.40s: %d numbers, want 4 [left, top, right, bottom]", raw, len(ns))
	}
	var v [4]int64
	for i, n := range ns {
		if n == nil || *n < 0 || *n > MaxRectCoord {
			return nil, fmt.Errorf("rect %.40s: want 4 integers in 0..%d", raw, MaxRectCoord)
		}
		v[i] = *n
	}
	if v[0] > v[2] || v[1] > v[3] {
		return nil, fmt.Errorf("rect %.40s: want left <= right and top <= bottom", raw)
	}
	return &Rect{Left: int(v[0]), Top: int(v[1]), Right: int(v[2]), Bottom: int(v[3])}, nil
}

// Wallclock is the server's wall clock when it translated the draw. It is
// the same host clock as SendKey's sentAt when ryll runs locally.
func (s SurfaceDrawn) Wallclock() time.Time { return unixMicro(s.WallclockUS) }

// Latency is the data of a latency event.
type Latency struct {
	SampleMS    float64 `json:"sample_ms"`
	WallclockUS uint64  `json:"wallclock_us"`
}

// Wallclock is the server's wall clock when it emitted the sample.
func (l Latency) Wallclock() time.Time { return unixMicro(l.WallclockUS) }

// Dropped is the data of a dropped event: how many events the server
// discarded since its previous dropped event because we read too slowly.
type Dropped struct {
	Count uint32 `json:"count"`
}

// The decoders of the events the loadtest does not subscribe to
// (agent_connected, paste_completed, paste_failed, digest_updated) are
// unexported, tested in this package: see the note in verbs.go.

// agentConnectedEvent is the data of an agent_connected event.
type agentConnectedEvent struct {
	Connected bool `json:"connected"`
}

// pasteCompletedEvent is the data of a paste_completed event.
type pasteCompletedEvent struct {
	// RequestID is the id of the paste request (as returned by paste), or
	// 0 when the server sent an id this client could not have sent.
	RequestID uint64
	// RawRequestID is request_id as sent, for ids that are not ours.
	RawRequestID json.RawMessage
	CharsSent    uint32
}

// pasteFailedEvent is the data of a paste_failed event.
type pasteFailedEvent struct {
	// RequestID is as in pasteCompletedEvent.
	RequestID    uint64
	RawRequestID json.RawMessage
	// Reason is for humans; the document says not to parse it.
	Reason string
}

// digestUpdatedEvent is the data of a digest_updated event. Events are left raw:
// they follow another crate's schema and unknown variants must be skipped.
type digestUpdatedEvent struct {
	FrameCounter    uint32            `json:"frame_counter"`
	FramebufferHash uint32            `json:"framebuffer_hash"`
	Events          []json.RawMessage `json:"events"`
	WallclockUS     uint64            `json:"wallclock_us"`
}

// Wallclock is the server's wall clock when it translated the digest.
func (d digestUpdatedEvent) Wallclock() time.Time { return unixMicro(d.WallclockUS) }

func unixMicro(us uint64) time.Time {
	return time.UnixMicro(int64(min(us, 1<<63-1)))
}

// SurfaceDrawn decodes a surface_drawn event. Every field of protocol
// 1.2 is required: a missing wallclock would silently become a bogus
// latency sample. rect is optional, and one that is not four integers in
// range is an error (ErrMalformed), not a box.
func (e Event) SurfaceDrawn() (SurfaceDrawn, error) {
	var raw struct {
		DisplayChannelID *uint8          `json:"display_channel_id"`
		SurfaceID        *uint32         `json:"surface_id"`
		ProducedAtSecs   *float64        `json:"produced_at_secs"`
		WallclockUS      *uint64         `json:"wallclock_us"`
		Rect             json.RawMessage `json:"rect"`
	}
	if err := e.decode(EventSurfaceDrawn, &raw); err != nil {
		return SurfaceDrawn{}, err
	}
	if err := required(EventSurfaceDrawn, "display_channel_id", raw.DisplayChannelID != nil,
		"surface_id", raw.SurfaceID != nil, "produced_at_secs", raw.ProducedAtSecs != nil,
		"wallclock_us", raw.WallclockUS != nil); err != nil {
		return SurfaceDrawn{}, err
	}
	rect, err := parseRect(raw.Rect)
	if err != nil {
		return SurfaceDrawn{}, fmt.Errorf("decode %s event: %w: %v", EventSurfaceDrawn, ErrMalformed, err)
	}
	return SurfaceDrawn{DisplayChannelID: *raw.DisplayChannelID, SurfaceID: *raw.SurfaceID,
		ProducedAtSecs: *raw.ProducedAtSecs, WallclockUS: *raw.WallclockUS, Rect: rect}, nil
}

// Latency decodes a latency event; both fields are required.
func (e Event) Latency() (Latency, error) {
	var raw struct {
		SampleMS    *float64 `json:"sample_ms"`
		WallclockUS *uint64  `json:"wallclock_us"`
	}
	if err := e.decode(EventLatency, &raw); err != nil {
		return Latency{}, err
	}
	if err := required(EventLatency, "sample_ms", raw.SampleMS != nil, "wallclock_us", raw.WallclockUS != nil); err != nil {
		return Latency{}, err
	}
	return Latency{*raw.SampleMS, *raw.WallclockUS}, nil
}

// Dropped decodes a dropped event; count is required.
func (e Event) Dropped() (Dropped, error) {
	var raw struct {
		Count *uint32 `json:"count"`
	}
	if err := e.decode(EventDropped, &raw); err != nil {
		return Dropped{}, err
	}
	if err := required(EventDropped, "count", raw.Count != nil); err != nil {
		return Dropped{}, err
	}
	return Dropped{*raw.Count}, nil
}

// agentConnected decodes an agent_connected event; connected is required.
func (e Event) agentConnected() (agentConnectedEvent, error) {
	var raw struct {
		Connected *bool `json:"connected"`
	}
	if err := e.decode(EventAgentConnected, &raw); err != nil {
		return agentConnectedEvent{}, err
	}
	if err := required(EventAgentConnected, "connected", raw.Connected != nil); err != nil {
		return agentConnectedEvent{}, err
	}
	return agentConnectedEvent{*raw.Connected}, nil
}

// pasteCompleted decodes a paste_completed event.
func (e Event) pasteCompleted() (pasteCompletedEvent, error) {
	var raw struct {
		RequestID json.RawMessage `json:"request_id"`
		CharsSent *uint32         `json:"chars_sent"`
	}
	if err := e.decode(EventPasteCompleted, &raw); err != nil {
		return pasteCompletedEvent{}, err
	}
	if err := required(EventPasteCompleted, "request_id", len(raw.RequestID) > 0, "chars_sent", raw.CharsSent != nil); err != nil {
		return pasteCompletedEvent{}, err
	}
	_, id := decodeID(raw.RequestID)
	return pasteCompletedEvent{RequestID: id, RawRequestID: raw.RequestID, CharsSent: *raw.CharsSent}, nil
}

// pasteFailed decodes a paste_failed event.
func (e Event) pasteFailed() (pasteFailedEvent, error) {
	var raw struct {
		RequestID json.RawMessage `json:"request_id"`
		Reason    *string         `json:"reason"`
	}
	if err := e.decode(EventPasteFailed, &raw); err != nil {
		return pasteFailedEvent{}, err
	}
	if err := required(EventPasteFailed, "request_id", len(raw.RequestID) > 0, "reason", raw.Reason != nil); err != nil {
		return pasteFailedEvent{}, err
	}
	_, id := decodeID(raw.RequestID)
	return pasteFailedEvent{RequestID: id, RawRequestID: raw.RequestID, Reason: *raw.Reason}, nil
}

// digestUpdated decodes a digest_updated event.
func (e Event) digestUpdated() (digestUpdatedEvent, error) {
	var raw struct {
		FrameCounter    *uint32           `json:"frame_counter"`
		FramebufferHash *uint32           `json:"framebuffer_hash"`
		Events          []json.RawMessage `json:"events"`
		WallclockUS     *uint64           `json:"wallclock_us"`
	}
	if err := e.decode(EventDigestUpdated, &raw); err != nil {
		return digestUpdatedEvent{}, err
	}
	if err := required(EventDigestUpdated, "frame_counter", raw.FrameCounter != nil,
		"framebuffer_hash", raw.FramebufferHash != nil, "wallclock_us", raw.WallclockUS != nil); err != nil {
		return digestUpdatedEvent{}, err
	}
	return digestUpdatedEvent{*raw.FrameCounter, *raw.FramebufferHash, raw.Events, *raw.WallclockUS}, nil
}

// decode checks the event's name and unmarshals its data object.
func (e Event) decode(want string, v any) error {
	if e.Name != want {
		return fmt.Errorf("decode %s event: %w: event is %q", want, ErrInvalidArgument, e.Name)
	}
	if len(e.Data) == 0 || e.Data[0] != '{' {
		return fmt.Errorf("decode %s event: %w: data is not an object", want, ErrMalformed)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s event: %w: %v", want, ErrMalformed, err)
	}
	return nil
}

// required takes (name, present) pairs and names the first missing field.
func required(event string, pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if present, _ := pairs[i+1].(bool); !present {
			return fmt.Errorf("decode %s event: %w: missing %s", event, ErrMalformed, pairs[i])
		}
	}
	return nil
}

// eventQueue sits between the reader goroutine and the Events channel so
// the reader never waits for the consumer. It is a ring that grows on
// demand up to max entries; when full it drops the OLDEST event (as the
// server does), keeping the most recent draws, and counts the drop.
type eventQueue struct {
	mu      sync.Mutex
	buf     []Event
	head, n int
	max     int
	dropped uint64
	notify  chan struct{} // capacity 1: "something was pushed"
}

func newEventQueue(max int) *eventQueue {
	return &eventQueue{max: max, notify: make(chan struct{}, 1)}
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	if q.n == q.max {
		q.buf[q.head] = Event{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.dropped++
	}
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = ev
	q.n++
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// grow doubles the ring (up to max), unrolling it to start at index 0.
func (q *eventQueue) grow() {
	size := min(max(2*len(q.buf), 64), q.max)
	nb := make([]Event, size)
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *eventQueue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return Event{}, false
	}
	ev := q.buf[q.head]
	q.buf[q.head] = Event{} // let the data be collected
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return ev, true
}

func (q *eventQueue) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
