package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"slices"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// HelloResult is the server's answer to hello. Treat its slices as
// read-only: the Client keeps the same result for SupportsMethod.
type HelloResult struct {
	ServerName       string   `json:"server_name"`
	ProtocolVersion  string   `json:"protocol_version"`
	SupportedMethods []string `json:"supported_methods"`
	SupportedEvents  []string `json:"supported_events"`
	// Version is ProtocolVersion parsed; gate features with AtLeast.
	Version Version `json:"-"`
	// Received is the local wall clock when the answer was read.
	Received time.Time `json:"-"`
}

// SupportsMethod reports whether the server listed the verb; a newer or
// older server may differ from the protocol document.
func (h HelloResult) SupportsMethod(name string) bool {
	return slices.Contains(h.SupportedMethods, name)
}

// SupportsEvent reports whether the server can emit the event (a 1.0
// server has no surface_drawn, and digest_updated is feature-gated).
func (h HelloResult) SupportsEvent(name string) bool {
	return slices.Contains(h.SupportedEvents, name)
}

// Hello performs the handshake the server requires before other verbs,
// sending ProtocolVersion. Any 1.x answer is accepted. A server of another
// major version (its answer, or a protocol_version_mismatch refusal)
// yields *VersionMismatchError and ends the connection, as the server
// itself does.
func (c *Client) Hello(ctx context.Context) (HelloResult, error) {
	params := struct {
		ClientName      string `json:"client_name"`
		ProtocolVersion string `json:"protocol_version"`
	}{c.opts.ClientName, ProtocolVersion}
	raw, info, err := c.roundTrip(ctx, "hello", params)
	if err != nil {
		if pe, ok := err.(*ProtocolError); ok && pe.Code == CodeProtocolVersionMismatch {
			vm := &VersionMismatchError{Client: ProtocolVersion, Cause: pe}
			c.end(vm)
			return HelloResult{}, vm
		}
		return HelloResult{}, err
	}
	var h HelloResult
	if err := json.Unmarshal(raw, &h); err != nil {
		err = fmt.Errorf("control hello: %w: result: %v", ErrMalformed, err)
		c.end(err)
		return HelloResult{}, err
	}
	v, err := ParseVersion(h.ProtocolVersion)
	if err != nil {
		err = fmt.Errorf("control hello: %w: server %w", ErrMalformed, err)
		c.end(err)
		return HelloResult{}, err
	}
	if v.Major != clientVersion.Major {
		vm := &VersionMismatchError{Client: ProtocolVersion, Server: h.ProtocolVersion}
		c.end(vm)
		return HelloResult{}, vm
	}
	h.Version, h.Received = v, info.received
	c.hello.Store(&h)
	return h, nil
}

// Server returns the last successful hello answer, and false before one.
func (c *Client) Server() (HelloResult, bool) {
	h := c.hello.Load()
	if h == nil {
		return HelloResult{}, false
	}
	return *h, true
}

// SupportsMethod reports whether the server listed the verb in hello
// (false before Hello).
func (c *Client) SupportsMethod(name string) bool {
	h, ok := c.Server()
	return ok && h.SupportsMethod(name)
}

// SupportsEvent reports whether the server listed the event in hello
// (false before Hello).
func (c *Client) SupportsEvent(name string) bool {
	h, ok := c.Server()
	return ok && h.SupportsEvent(name)
}

// Surface is one display surface the server knows about.
type Surface struct {
	ChannelID uint8  `json:"channel_id"`
	SurfaceID uint32 `json:"surface_id"`
	Width     uint32 `json:"width"`
	Height    uint32 `json:"height"`
}

// Status is the session state at one instant. A display is ready once
// Surfaces is non-empty.
type Status struct {
	SpiceConnected bool
	AgentConnected bool
	Surfaces       []Surface
	// Received is the local wall clock when the answer was read.
	Received time.Time
}

// Status asks for the session state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	raw, info, err := c.roundTrip(ctx, "status", nil)
	if err != nil {
		return Status{}, err
	}
	var r struct {
		SpiceConnected *bool     `json:"spice_connected"`
		AgentConnected *bool     `json:"agent_connected"`
		Surfaces       []Surface `json:"surfaces"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Status{}, fmt.Errorf("control status: %w: result: %v", ErrMalformed, err)
	}
	if r.SpiceConnected == nil || r.AgentConnected == nil {
		return Status{}, fmt.Errorf("control status: %w: result lacks spice_connected or agent_connected", ErrMalformed)
	}
	return Status{*r.SpiceConnected, *r.AgentConnected, r.Surfaces, info.received}, nil
}

// KeyState says what send_key does with the key.
type KeyState string

const (
	// KeyDown presses the key and leaves it down.
	KeyDown KeyState = "down"
	// KeyUp releases the key (the server sets the break bit).
	KeyUp KeyState = "up"
	// KeyPress sends down then up in one operation.
	KeyPress KeyState = "press"
)

// IsExtendedScancode reports whether code carries the 0xE0 prefix.
func IsExtendedScancode(code uint16) bool { return code>>8 == 0xE0 }

// CheckScancode reports whether code is a plausible logical AT set-1 make
// code: 0x01-0x7F, optionally with the 0xE0 prefix in the high byte
// (0xE04B is left arrow). It refuses break codes (bit 0x80; the server
// sets it for up), byte-swapped wire values such as 0x4BE0, and the 0xE1
// prefix, which the protocol cannot carry.
func CheckScancode(code uint16) error {
	hi, lo := code>>8, code&0xFF
	if hi != 0 && hi != 0xE0 {
		return fmt.Errorf("%w 0x%04X: high byte must be 0x00 or the 0xE0 prefix (pass the logical code, not a byte-swapped wire value)", ErrInvalidScancode, code)
	}
	if lo == 0 || lo&0x80 != 0 {
		return fmt.Errorf("%w 0x%04X: low byte must be a make code 0x01-0x7F (the server sets the break bit for up)", ErrInvalidScancode, code)
	}
	return nil
}

// SendKey sends one scancode. sentAt is the local wall clock (with its
// monotonic reading) taken just before the request line was written, the
// loadtest's keypress time; it is zero if the line was never written. An
// extended (0xE0) code is refused locally unless the server speaks 1.2 or
// later, because older servers swapped its bytes on the way to the guest.
func (c *Client) SendKey(ctx context.Context, scancode uint16, state KeyState) (sentAt time.Time, err error) {
	if err := CheckScancode(scancode); err != nil {
		return time.Time{}, fmt.Errorf("control send_key: %w", err)
	}
	switch state {
	case KeyDown, KeyUp, KeyPress:
	default:
		return time.Time{}, fmt.Errorf("control send_key: %w: key state %q, want down, up or press", ErrInvalidArgument, state)
	}
	if IsExtendedScancode(scancode) {
		h, ok := c.Server()
		if !ok {
			return time.Time{}, fmt.Errorf("control send_key 0x%04X: %w: the server's version decides whether extended scancodes are safe", scancode, ErrNoHello)
		}
		if !h.Version.AtLeast(1, 2) {
			return time.Time{}, fmt.Errorf("control send_key 0x%04X: %w: server speaks protocol %s, this client %s; an older server would swap the key's bytes",
				scancode, ErrExtendedKeyUnsupported, h.ProtocolVersion, ProtocolVersion)
		}
	}
	params := struct {
		Scancode uint16   `json:"scancode"`
		State    KeyState `json:"state"`
	}{scancode, state}
	_, info, err := c.roundTrip(ctx, "send_key", params)
	return info.sentAt, err
}

// The verbs from here to subscription's (paste, screenshot, unsubscribe,
// callInto) complete the protocol but serve no product code: the loadtest
// presses keys and reads draws. They stay unexported, tested in this
// package, so the exported surface is what the loadtest uses; export one
// when a product needs it.

// defaultCharDelay asks paste to leave char_delay_ms out, so the server
// uses its own default (10 ms).
const defaultCharDelay time.Duration = -1

// pasteAck is the server's acceptance of a paste. The typing happens
// later; a paste_completed or paste_failed event whose RequestID equals
// this RequestID reports how it ended.
type pasteAck struct {
	RequestID uint64
	// Received is the local wall clock when the acceptance was read.
	Received time.Time
}

// Paste asks the server to type text (US-QWERTY, printable ASCII) with
// charDelay between characters, whole milliseconds; defaultCharDelay (any
// negative value) leaves the choice to the server. The text never appears
// in logs or errors, since it may be a password.
func (c *Client) paste(ctx context.Context, text string, charDelay time.Duration) (pasteAck, error) {
	params := struct {
		Text        string  `json:"text"`
		CharDelayMS *uint32 `json:"char_delay_ms,omitempty"`
	}{Text: text}
	if charDelay >= 0 {
		ms := charDelay.Milliseconds()
		if ms > math.MaxUint32 {
			return pasteAck{}, fmt.Errorf("control paste: %w: char delay %s exceeds the protocol's u32 milliseconds", ErrInvalidArgument, charDelay)
		}
		v := uint32(ms)
		params.CharDelayMS = &v
	}
	// The transcript shows the request's shape, never the text.
	shown := params
	shown.Text = secret.Redacted
	_, info, err := c.call(ctx, "paste", params, shown)
	if err != nil {
		return pasteAck{}, err
	}
	return pasteAck{RequestID: info.id, Received: info.received}, nil
}

// imageFormat is a screenshot encoding.
type imageFormat string

const (
	// formatPNG is a PNG file: small, slow to encode, good for artefacts.
	formatPNG imageFormat = "png"
	// formatRGBA is raw pixels, 4 bytes each, row-major from top-left.
	formatRGBA imageFormat = "rgba"
)

// shot is a captured surface.
type shot struct {
	Width, Height int
	// Format is the encoding the server used.
	Format imageFormat
	// Data is the PNG file (png) or the raw RGBA pixels (rgba), decoded
	// from base64.
	Data []byte
	// Image is the decoded picture. For rgba it is an *image.NRGBA
	// sharing Data.
	Image image.Image
	// Received is the local wall clock when the answer was read.
	Received time.Time
}

// screenshot captures surfaceID (nil: the primary surface) in format (""
// leaves the choice to the server, which picks png). Answers of several
// megabytes are expected; raw RGBA is checked to hold exactly
// width*height*4 bytes and a PNG to have the stated size.
func (c *Client) screenshot(ctx context.Context, surfaceID *uint32, format imageFormat) (*shot, error) {
	switch format {
	case "", formatPNG, formatRGBA:
	default:
		return nil, fmt.Errorf("control screenshot: %w: format %q, want png or rgba", ErrInvalidArgument, format)
	}
	params := struct {
		SurfaceID *uint32     `json:"surface_id,omitempty"`
		Format    imageFormat `json:"format,omitempty"`
	}{surfaceID, format}
	raw, info, err := c.roundTrip(ctx, "screenshot", params)
	if err != nil {
		return nil, err
	}
	img, err := decodeScreenshot(raw)
	if err != nil {
		return nil, fmt.Errorf("control screenshot: %w", err)
	}
	img.Received = info.received
	return img, nil
}

func decodeScreenshot(raw json.RawMessage) (*shot, error) {
	var r struct {
		Width  *uint32 `json:"width"`
		Height *uint32 `json:"height"`
		Format *string `json:"format"`
		Data   *[]byte `json:"data_base64"` // encoding/json decodes base64
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: result: %v", ErrMalformed, err)
	}
	if r.Width == nil || r.Height == nil || r.Format == nil || r.Data == nil {
		return nil, fmt.Errorf("%w: result lacks width, height, format or data_base64", ErrMalformed)
	}
	w, h, data := int(*r.Width), int(*r.Height), *r.Data
	shot := &shot{Width: w, Height: h, Format: imageFormat(*r.Format), Data: data}
	switch shot.Format {
	case formatRGBA:
		if want := uint64(w) * uint64(h) * 4; uint64(len(data)) != want {
			return nil, fmt.Errorf("%w: rgba %dx%d needs %d bytes, got %d", ErrMalformed, w, h, want, len(data))
		}
		shot.Image = &image.NRGBA{Pix: data, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
	case formatPNG:
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: png header: %v", ErrMalformed, err)
		}
		if cfg.Width != w || cfg.Height != h {
			return nil, fmt.Errorf("%w: png is %dx%d, result says %dx%d", ErrMalformed, cfg.Width, cfg.Height, w, h)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: png: %v", ErrMalformed, err)
		}
		shot.Image = img
	default:
		return nil, fmt.Errorf("%w: unknown format %q", ErrMalformed, shot.Format)
	}
	return shot, nil
}

// Subscribe asks for events by name and returns the names the server
// accepted; names it does not know are silently left out, so check the
// answer for any event the caller depends on.
func (c *Client) Subscribe(ctx context.Context, events ...string) ([]string, error) {
	return c.subscription(ctx, "subscribe", "subscribed", events)
}

// Unsubscribe stops events by name and returns the names that were
// actually removed (names not subscribed are left out).
func (c *Client) unsubscribe(ctx context.Context, events ...string) ([]string, error) {
	return c.subscription(ctx, "unsubscribe", "unsubscribed", events)
}

func (c *Client) subscription(ctx context.Context, method, field string, events []string) ([]string, error) {
	if events == nil {
		events = []string{}
	}
	params := struct {
		Events []string `json:"events"`
	}{events}
	raw, _, err := c.roundTrip(ctx, method, params)
	if err != nil {
		return nil, err
	}
	var r map[string]json.RawMessage
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("control %s: %w: result: %v", method, ErrMalformed, err)
	}
	list, ok := r[field]
	if !ok {
		return nil, fmt.Errorf("control %s: %w: result lacks %s", method, ErrMalformed, field)
	}
	var names []string
	if err := json.Unmarshal(list, &names); err != nil {
		return nil, fmt.Errorf("control %s: %w: %s: %v", method, ErrMalformed, field, err)
	}
	return names, nil
}

// Call sends any verb and decodes its result into result (if non-nil). It
// is for verbs newer than this client; the named methods check their
// arguments and results more closely.
func (c *Client) callInto(ctx context.Context, method string, params, result any) (received time.Time, err error) {
	raw, info, err := c.roundTrip(ctx, method, params)
	if err != nil {
		return info.received, err
	}
	if result != nil {
		if err := json.Unmarshal(raw, result); err != nil {
			return info.received, fmt.Errorf("control %s: %w: result: %v", method, ErrMalformed, err)
		}
	}
	return info.received, nil
}
