package spice

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ChannelType is a SPICE channel type (SPICE_CHANNEL_* in enums.h).
type ChannelType uint8

// The channel types this client knows by name.
const (
	ChannelMain    ChannelType = 1
	ChannelDisplay ChannelType = 2
	ChannelInputs  ChannelType = 3
	ChannelCursor  ChannelType = 4
)

func (c ChannelType) String() string {
	switch c {
	case ChannelMain:
		return "main"
	case ChannelDisplay:
		return "display"
	case ChannelInputs:
		return "inputs"
	case ChannelCursor:
		return "cursor"
	}
	return fmt.Sprintf("channel-type-%d", uint8(c))
}

// Link header and common capabilities (protocol.h).
const (
	spiceMagic        = 0x51444552 // "REDQ" little-endian
	spiceVersionMajor = 2
	spiceVersionMinor = 2

	linkHeaderSize = 16
	linkMessSize   = 18
	pubKeySize     = 162 // SPICE_TICKET_PUBKEY_BYTES
	linkReplySize  = 4 + pubKeySize + 12
	ticketSize     = 128 // SPICE_TICKET_KEY_PAIR_LENGTH / 8
	// maxPasswordLength is SPICE_MAX_PASSWORD_LENGTH.
	maxPasswordLength = 60

	capAuthSelection = 0 // SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION
	capAuthSpice     = 1 // SPICE_COMMON_CAP_AUTH_SPICE
	capAuthSASL      = 2 // SPICE_COMMON_CAP_AUTH_SASL
	capMiniHeader    = 3 // SPICE_COMMON_CAP_MINI_HEADER

	authMechanismSpice = 1 // SpiceLinkAuthMechanism: SPICE_COMMON_CAP_AUTH_SPICE
)

// Message types (enums.h). Server messages are msg*, client ones msgc*.
const (
	msgMigrate          = 1
	msgSetAck           = 3
	msgPing             = 4
	msgWaitForChannels  = 5
	msgDisconnecting    = 6
	msgNotify           = 7
	msgcAckSync         = 1
	msgcAck             = 2
	msgcPong            = 3
	msgMainInit         = 103
	msgMainChannelsList = 104
	msgMainAgentConn    = 107
	msgMainAgentDisconn = 108
	msgMainAgentConnTok = 115
	msgcMainAttach      = 104
	msgcDisplayInit     = 101
	msgcInputsKeyDown   = 101
	msgcInputsKeyUp     = 102
)

// MessageType is a display-channel server message type, as carried by a
// Draw so a consumer can tell a DRAW_COPY from a STREAM_DATA.
type MessageType uint16

// Display-channel server messages (SPICE_MSG_DISPLAY_* in enums.h).
const (
	DisplayCopyBits             MessageType = 104
	DisplayStreamCreate         MessageType = 122
	DisplayStreamData           MessageType = 123
	DisplayStreamDestroy        MessageType = 125
	DisplayStreamDestroyAll     MessageType = 126
	DisplayDrawFill             MessageType = 302
	DisplayDrawOpaque           MessageType = 303
	DisplayDrawCopy             MessageType = 304
	DisplayDrawBlend            MessageType = 305
	DisplayDrawBlackness        MessageType = 306
	DisplayDrawWhiteness        MessageType = 307
	DisplayDrawInvers           MessageType = 308
	DisplayDrawRop3             MessageType = 309
	DisplayDrawStroke           MessageType = 310
	DisplayDrawText             MessageType = 311
	DisplayDrawTransparent      MessageType = 312
	DisplayDrawAlphaBlend       MessageType = 313
	DisplaySurfaceCreate        MessageType = 314
	DisplaySurfaceDestroy       MessageType = 315
	DisplayStreamDataSized      MessageType = 316
	DisplayMonitorsConfig       MessageType = 317
	DisplayDrawComposite        MessageType = 318
	DisplayStreamActivateReport MessageType = 319
	DisplayGLScanoutUnix        MessageType = 320
	DisplayGLDraw               MessageType = 321
)

var messageNames = map[MessageType]string{
	DisplayCopyBits:             "COPY_BITS",
	DisplayStreamCreate:         "STREAM_CREATE",
	DisplayStreamData:           "STREAM_DATA",
	DisplayStreamDestroy:        "STREAM_DESTROY",
	DisplayStreamDestroyAll:     "STREAM_DESTROY_ALL",
	DisplayDrawFill:             "DRAW_FILL",
	DisplayDrawOpaque:           "DRAW_OPAQUE",
	DisplayDrawCopy:             "DRAW_COPY",
	DisplayDrawBlend:            "DRAW_BLEND",
	DisplayDrawBlackness:        "DRAW_BLACKNESS",
	DisplayDrawWhiteness:        "DRAW_WHITENESS",
	DisplayDrawInvers:           "DRAW_INVERS",
	DisplayDrawRop3:             "DRAW_ROP3",
	DisplayDrawStroke:           "DRAW_STROKE",
	DisplayDrawText:             "DRAW_TEXT",
	DisplayDrawTransparent:      "DRAW_TRANSPARENT",
	DisplayDrawAlphaBlend:       "DRAW_ALPHA_BLEND",
	DisplaySurfaceCreate:        "SURFACE_CREATE",
	DisplaySurfaceDestroy:       "SURFACE_DESTROY",
	DisplayStreamDataSized:      "STREAM_DATA_SIZED",
	DisplayMonitorsConfig:       "MONITORS_CONFIG",
	DisplayDrawComposite:        "DRAW_COMPOSITE",
	DisplayStreamActivateReport: "STREAM_ACTIVATE_REPORT",
	DisplayGLScanoutUnix:        "GL_SCANOUT_UNIX",
	DisplayGLDraw:               "GL_DRAW",
}

func (m MessageType) String() string {
	if n, ok := messageNames[m]; ok {
		return n
	}
	return fmt.Sprintf("display-message-%d", uint16(m))
}

// Data headers (protocol.h): SpiceMiniDataHeader when both sides have
// MINI_HEADER, SpiceDataHeader otherwise.
const (
	miniHeaderSize = 6  // u16 type, u32 size
	fullHeaderSize = 18 // u64 serial, u16 type, u32 size, u32 sub_list
)

// MaxMessageSize bounds the body of one server message. spice-server's
// largest messages are image draws of a full surface and the main
// channel's 256 KiB bandwidth PING; a size above this bound is a broken
// or hostile server, and ends the session instead of allocating.
const MaxMessageSize = 64 << 20

// ErrProtocol marks a server that broke the protocol: a message too large,
// too short for its type, or a link reply that does not parse. Errors
// wrapping it name the channel and the message.
var ErrProtocol = errors.New("spice protocol violation")

// msgReader reads data messages from one channel's connection.
type msgReader struct {
	r    *bufio.Reader
	mini bool
	max  uint32
	hdr  [fullHeaderSize]byte
	buf  []byte
}

func newMsgReader(r io.Reader, mini bool) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(r, 64<<10), mini: mini, max: MaxMessageSize}
}

// retainLimit is the largest body buffer kept between messages; larger
// bodies get a buffer of their own that is dropped after use.
const retainLimit = 1 << 20

// next reads one message. The body is valid until the next call. It
// returns io.EOF only at a message boundary; a message cut short is
// io.ErrUnexpectedEOF, and a size beyond the bound wraps ErrProtocol.
func (m *msgReader) next() (typ uint16, body []byte, err error) {
	n := miniHeaderSize
	if !m.mini {
		n = fullHeaderSize
	}
	if _, err := io.ReadFull(m.r, m.hdr[:n]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("read message header: %w", err)
		}
		return 0, nil, err
	}
	var size uint32
	if m.mini {
		typ = binary.LittleEndian.Uint16(m.hdr[0:])
		size = binary.LittleEndian.Uint32(m.hdr[2:])
	} else {
		// serial (8 bytes) is not checked; sub_list (offset of a
		// SpiceSubMessageList) is not used by spice-server's channels
		// this client links, and is ignored.
		typ = binary.LittleEndian.Uint16(m.hdr[8:])
		size = binary.LittleEndian.Uint32(m.hdr[10:])
	}
	if size > m.max {
		return typ, nil, fmt.Errorf("%w: message type %d claims %d bytes, more than the %d-byte limit", ErrProtocol, typ, size, m.max)
	}
	body, err = m.readBody(int(size))
	if err != nil {
		return typ, nil, fmt.Errorf("read body of message type %d (%d bytes): %w", typ, size, noEOF(err))
	}
	return typ, body, nil
}

// readBody reads n bytes, growing its buffer only as bytes arrive so that
// a header claiming a large size costs memory only if the data follows.
func (m *msgReader) readBody(n int) ([]byte, error) {
	if n <= cap(m.buf) {
		m.buf = m.buf[:n]
		_, err := io.ReadFull(m.r, m.buf)
		return m.buf, err
	}
	buf := make([]byte, 0, min(n, 64<<10))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(m.r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return nil, err
		}
	}
	if n <= retainLimit {
		m.buf = buf
	}
	return buf, nil
}

// noEOF turns a clean EOF inside a message into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// frame builds one client message with the header the link agreed on.
// serial is the channel's client serial; it is used and advanced only for
// the full header.
func frame(mini bool, serial *uint64, typ uint16, body []byte) []byte {
	if mini {
		b := make([]byte, miniHeaderSize, miniHeaderSize+len(body))
		binary.LittleEndian.PutUint16(b[0:], typ)
		binary.LittleEndian.PutUint32(b[2:], uint32(len(body)))
		return append(b, body...)
	}
	*serial++
	b := make([]byte, fullHeaderSize, fullHeaderSize+len(body))
	binary.LittleEndian.PutUint64(b[0:], *serial)
	binary.LittleEndian.PutUint16(b[8:], typ)
	binary.LittleEndian.PutUint32(b[10:], uint32(len(body)))
	// sub_list (b[14:18]) stays 0: no sub-messages.
	return append(b, body...)
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// hasCap reports whether capability bit is set in a SPICE caps array.
func hasCap(caps []uint32, bit uint) bool {
	w := bit / 32
	return int(w) < len(caps) && caps[w]&(1<<(bit%32)) != 0
}
