package loadgen

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// The wire constants below come from spice-protocol's protocol.h and
// enums.h and spice-common's spice.proto (version 2.2).
const (
	spiceMagic   = 0x51444552 // "REDQ" read as a little-endian u32
	versionMajor = 2
	versionMinor = 2

	linkHeaderSize = 16  // magic, major, minor, size
	linkMessSize   = 18  // SpiceLinkMess up to its capabilities
	pubKeySize     = 162 // SPICE_TICKET_PUBKEY_BYTES: DER of a 1024-bit RSA key
	linkReplySize  = 4 + pubKeySize + 12
	ticketSize     = 128 // RSA-1024 ciphertext
	rsaBits        = 1024
	maxPassword    = 60 // SPICE_MAX_PASSWORD_LENGTH

	// maxLinkMess bounds a client's SpiceLinkMess with its capabilities
	// (spice-server reads it into a 4 KiB buffer).
	maxLinkMess = 4096
	// maxCapWords bounds each capability array we accept or parse.
	maxCapWords = 64

	capAuthSelection = 0
	capAuthSpice     = 1
	capMiniHeader    = 3

	authSpice = 1 // the auth mechanism that names SPICE tickets

	miniHeaderSize = 6  // u16 type, u32 size
	fullHeaderSize = 18 // u64 serial, u16 type, u32 size, u32 sub_list
)

// Channel types (SPICE_CHANNEL_*).
const (
	chanMain    = 1
	chanDisplay = 2
	chanInputs  = 3
)

// Link results (SPICE_LINK_ERR_*).
const (
	linkOK               = 0
	linkErrError         = 1
	linkErrInvalidMagic  = 2
	linkErrInvalidData   = 3
	linkErrVersion       = 4
	linkErrPermission    = 7
	linkErrBadConnection = 8
	linkErrNoChannel     = 9
)

// Message types. msg* are the server's, msgc* the client's.
const (
	msgSetAck          = 3
	msgPing            = 4
	msgcAckSync        = 1
	msgcAck            = 2
	msgcPong           = 3
	msgcDisconnecting  = 6
	msgMainInit        = 103
	msgMainChannels    = 104
	msgcMainClientInfo = 101
	msgcMainAttach     = 104
	msgDisplayMark     = 102
	msgDisplayCopy     = 304
	msgSurfaceCreate   = 314
	msgcDisplayInit    = 101
	msgcDisplayLast    = 105 // PREFERRED_VIDEO_CODEC_TYPE; 101..105 are display client messages
	msgInputsInit      = 101
)

// Errors a link or a channel ends with; errors wrapping them say where.
var (
	// ErrPermissionDenied: the ticket did not decrypt to the password.
	ErrPermissionDenied = errors.New("spice link refused: wrong password (PERMISSION_DENIED)")
	// ErrProtocol: the peer broke the SPICE protocol (bad magic, sizes that
	// do not add up, an unknown or malformed message).
	ErrProtocol = errors.New("spice protocol violation")
)

// LinkRefusedError is a link the server answered with a code other than
// OK.
type LinkRefusedError struct {
	Channel uint8
	Code    uint32
}

func (e *LinkRefusedError) Error() string {
	return fmt.Sprintf("spice link of channel type %d refused with code %d (%s)", e.Channel, e.Code, linkCodeName(e.Code))
}

// Is makes errors.Is(err, ErrPermissionDenied) true for a refused ticket.
func (e *LinkRefusedError) Is(target error) bool {
	return target == ErrPermissionDenied && e.Code == linkErrPermission
}

func linkCodeName(c uint32) string {
	names := []string{"OK", "ERROR", "INVALID_MAGIC", "INVALID_DATA", "VERSION_MISMATCH",
		"NEED_SECURED", "NEED_UNSECURED", "PERMISSION_DENIED", "BAD_CONNECTION_ID", "CHANNEL_NOT_AVAILABLE"}
	if int(c) < len(names) {
		return names[c]
	}
	return "unknown"
}

// linkMess is what a client asked for in its SpiceLinkMess.
type linkMess struct {
	connID     uint32
	channel    uint8
	channelID  uint8
	commonCaps []uint32
}

func hasCap(caps []uint32, bit uint) bool {
	w := bit / 32
	return int(w) < len(caps) && caps[w]&(1<<(bit%32)) != 0
}

// serverKey is the RSA key tickets are encrypted with, and its public
// half as the 162-byte DER the link reply carries.
type serverKey struct {
	priv *rsa.PrivateKey
	der  []byte
}

func newServerKey() (serverKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return serverKey{}, fmt.Errorf("generate the %d-bit RSA ticket key: %w", rsaBits, err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return serverKey{}, fmt.Errorf("encode the RSA ticket key: %w", err)
	}
	if len(der) != pubKeySize {
		return serverKey{}, fmt.Errorf("the RSA ticket key encodes to %d bytes, SPICE carries %d", len(der), pubKeySize)
	}
	return serverKey{priv: k, der: der}, nil
}

// acceptLink runs the server side of the link handshake on conn, which
// the caller bounds with a deadline. route says whether the channel
// exists (a link error code, linkOK if it does); admit, called once the
// ticket is good, says whether its session does. password empty accepts
// any ticket, as spice-server does with ticketing disabled. It returns
// the link and whether both sides use the mini data header.
func acceptLink(conn io.ReadWriter, key serverKey, password string, route, admit func(linkMess) uint32) (linkMess, bool, error) {
	var hdr [linkHeaderSize]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return linkMess{}, false, fmt.Errorf("read link header: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(hdr[0:]); m != spiceMagic {
		_ = writeLinkError(conn, linkErrInvalidMagic)
		return linkMess{}, false, fmt.Errorf("%w: link magic %#08x is not \"REDQ\"", ErrProtocol, m)
	}
	if major := le.Uint32(hdr[4:]); major != versionMajor {
		_ = writeLinkError(conn, linkErrVersion)
		return linkMess{}, false, fmt.Errorf("%w: client speaks SPICE %d.x, this server %d.%d", ErrProtocol, major, versionMajor, versionMinor)
	}
	size := le.Uint32(hdr[12:])
	if size < linkMessSize || size > maxLinkMess {
		_ = writeLinkError(conn, linkErrInvalidData)
		return linkMess{}, false, fmt.Errorf("%w: link message of %d bytes (want %d..%d)", ErrProtocol, size, linkMessSize, maxLinkMess)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(conn, body); err != nil {
		return linkMess{}, false, fmt.Errorf("read link message (%d bytes): %w", size, unexpected(err))
	}
	lm := linkMess{connID: le.Uint32(body[0:]), channel: body[4], channelID: body[5]}
	ncommon, nchan, off := le.Uint32(body[6:]), le.Uint32(body[10:]), le.Uint32(body[14:])
	if ncommon > maxCapWords || nchan > maxCapWords || uint64(off)+4*uint64(ncommon+nchan) > uint64(size) || off < linkMessSize {
		_ = writeLinkError(conn, linkErrInvalidData)
		return linkMess{}, false, fmt.Errorf("%w: link message capabilities (%d common, %d channel at offset %d) do not fit its %d bytes", ErrProtocol, ncommon, nchan, off, size)
	}
	for i := range ncommon {
		lm.commonCaps = append(lm.commonCaps, le.Uint32(body[off+4*i:]))
	}
	if code := route(lm); code != linkOK {
		_ = writeLinkError(conn, code)
		return lm, false, &LinkRefusedError{Channel: lm.channel, Code: code}
	}

	caps := uint32(1<<capAuthSelection | 1<<capAuthSpice | 1<<capMiniHeader)
	out := make([]byte, 0, linkHeaderSize+linkReplySize+4)
	out = le.AppendUint32(out, spiceMagic)
	out = le.AppendUint32(out, versionMajor)
	out = le.AppendUint32(out, versionMinor)
	out = le.AppendUint32(out, linkReplySize+4)
	out = le.AppendUint32(out, linkOK)
	out = append(out, key.der...)
	out = le.AppendUint32(out, 1)             // num_common_caps
	out = le.AppendUint32(out, 0)             // num_channel_caps
	out = le.AppendUint32(out, linkReplySize) // caps_offset
	out = le.AppendUint32(out, caps)
	if _, err := conn.Write(out); err != nil {
		return lm, false, fmt.Errorf("send link reply: %w", err)
	}

	if hasCap(lm.commonCaps, capAuthSelection) {
		var mech [4]byte
		if _, err := io.ReadFull(conn, mech[:]); err != nil {
			return lm, false, fmt.Errorf("read auth mechanism: %w", err)
		}
		if m := le.Uint32(mech[:]); m != authSpice {
			_ = writeLinkResult(conn, linkErrInvalidData)
			return lm, false, fmt.Errorf("%w: auth mechanism %d (only SPICE tickets, %d, are served)", ErrProtocol, m, authSpice)
		}
	}
	ticket := make([]byte, ticketSize)
	if _, err := io.ReadFull(conn, ticket); err != nil {
		return lm, false, fmt.Errorf("read ticket: %w", unexpected(err))
	}
	if password != "" && !ticketMatches(key, ticket, password) {
		_ = writeLinkResult(conn, linkErrPermission)
		return lm, false, ErrPermissionDenied
	}
	if code := admit(lm); code != linkOK {
		_ = writeLinkResult(conn, code)
		return lm, false, &LinkRefusedError{Channel: lm.channel, Code: code}
	}
	if err := writeLinkResult(conn, linkOK); err != nil {
		return lm, false, fmt.Errorf("send link result: %w", err)
	}
	return lm, hasCap(lm.commonCaps, capMiniHeader), nil
}

// ticketMatches decrypts a ticket and compares it, up to its NUL, with
// password in constant time. Neither value is ever logged.
func ticketMatches(key serverKey, ticket []byte, password string) bool {
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, key.priv, ticket, nil)
	if err != nil {
		return false
	}
	if i := strings.IndexByte(string(plain), 0); i >= 0 {
		plain = plain[:i]
	}
	return subtle.ConstantTimeCompare(plain, []byte(password)) == 1
}

// writeLinkError answers a link message with a SpiceLinkReply that
// carries only an error code, as spice-server does.
func writeLinkError(w io.Writer, code uint32) error {
	le := binary.LittleEndian
	out := make([]byte, linkHeaderSize+linkReplySize)
	le.PutUint32(out[0:], spiceMagic)
	le.PutUint32(out[4:], versionMajor)
	le.PutUint32(out[8:], versionMinor)
	le.PutUint32(out[12:], linkReplySize)
	le.PutUint32(out[16:], code)
	_, err := w.Write(out)
	return err
}

func writeLinkResult(w io.Writer, code uint32) error {
	_, err := w.Write(binary.LittleEndian.AppendUint32(nil, code))
	return err
}

// dialLink runs the client side of the link handshake on conn (bounded
// by the caller's deadline) and returns whether both sides use the mini
// data header. offerMini false leaves MINI_HEADER out of the client's
// capabilities, as an old client would.
func dialLink(conn io.ReadWriter, connID uint32, channel, channelID uint8, password string, offerMini bool) (bool, error) {
	if len(password) > maxPassword {
		return false, fmt.Errorf("password longer than %d bytes (SPICE_MAX_PASSWORD_LENGTH)", maxPassword)
	}
	le := binary.LittleEndian
	out := make([]byte, 0, linkHeaderSize+linkMessSize+4)
	out = le.AppendUint32(out, spiceMagic)
	out = le.AppendUint32(out, versionMajor)
	out = le.AppendUint32(out, versionMinor)
	out = le.AppendUint32(out, linkMessSize+4)
	out = le.AppendUint32(out, connID)
	out = append(out, channel, channelID)
	out = le.AppendUint32(out, 1) // num_common_caps
	out = le.AppendUint32(out, 0) // num_channel_caps
	out = le.AppendUint32(out, linkMessSize)
	caps := uint32(1<<capAuthSelection | 1<<capAuthSpice)
	if offerMini {
		caps |= 1 << capMiniHeader
	}
	out = le.AppendUint32(out, caps)
	if _, err := conn.Write(out); err != nil {
		return false, fmt.Errorf("send link message: %w", err)
	}
	var hdr [linkHeaderSize]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return false, fmt.Errorf("read link reply header: %w", err)
	}
	if m := le.Uint32(hdr[0:]); m != spiceMagic {
		return false, fmt.Errorf("%w: link reply magic %#08x is not \"REDQ\"", ErrProtocol, m)
	}
	size := le.Uint32(hdr[12:])
	if size < 4 || size > maxLinkMess {
		return false, fmt.Errorf("%w: link reply of %d bytes", ErrProtocol, size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(conn, body); err != nil {
		return false, fmt.Errorf("read link reply (%d bytes): %w", size, unexpected(err))
	}
	if code := le.Uint32(body); code != linkOK {
		return false, &LinkRefusedError{Channel: channel, Code: code}
	}
	if major := le.Uint32(hdr[4:]); major != versionMajor {
		return false, fmt.Errorf("%w: server speaks SPICE %d.x", ErrProtocol, major)
	}
	if size < linkReplySize {
		return false, fmt.Errorf("%w: link reply of %d bytes, want at least %d", ErrProtocol, size, linkReplySize)
	}
	ncommon, off := le.Uint32(body[4+pubKeySize:]), le.Uint32(body[12+pubKeySize:])
	if ncommon > maxCapWords || uint64(off)+4*uint64(ncommon) > uint64(size) {
		return false, fmt.Errorf("%w: link reply capabilities do not fit its %d bytes", ErrProtocol, size)
	}
	var common []uint32
	for i := range ncommon {
		common = append(common, le.Uint32(body[off+4*i:]))
	}
	pub, err := x509.ParsePKIXPublicKey(body[4 : 4+pubKeySize])
	if err != nil {
		return false, fmt.Errorf("%w: link reply public key: %v", ErrProtocol, err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return false, fmt.Errorf("%w: link reply public key is %T, want RSA", ErrProtocol, pub)
	}
	if hasCap(common, capAuthSelection) {
		if !hasCap(common, capAuthSpice) {
			return false, fmt.Errorf("the server offers no SPICE ticket authentication")
		}
		if _, err := conn.Write(le.AppendUint32(nil, authSpice)); err != nil {
			return false, fmt.Errorf("send auth mechanism: %w", err)
		}
	}
	ticket, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaPub, append([]byte(password), 0), nil)
	if err != nil {
		return false, fmt.Errorf("encrypt the ticket with the server's key: %w", err)
	}
	if _, err := conn.Write(ticket); err != nil {
		return false, fmt.Errorf("send ticket: %w", err)
	}
	var res [4]byte
	if _, err := io.ReadFull(conn, res[:]); err != nil {
		return false, fmt.Errorf("read link result: %w", err)
	}
	if code := le.Uint32(res[:]); code != linkOK {
		return false, &LinkRefusedError{Channel: channel, Code: code}
	}
	return offerMini && hasCap(common, capMiniHeader), nil
}

// unexpected turns a clean EOF in the middle of something into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// msgReader reads data messages (mini or full header) from one channel.
// Bodies are read only when asked for; the rest is discarded unread.
type msgReader struct {
	r    *bufio.Reader
	mini bool
	hdr  [fullHeaderSize]byte
	buf  []byte
}

func newMsgReader(conn net.Conn, mini bool, size int) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(conn, size), mini: mini}
}

// header reads the next message's type and body size. io.EOF means the
// peer closed at a message boundary.
func (m *msgReader) header() (typ uint16, size uint32, err error) {
	n := miniHeaderSize
	if !m.mini {
		n = fullHeaderSize
	}
	if _, err := io.ReadFull(m.r, m.hdr[:n]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, 0, fmt.Errorf("read message header: %w", err)
		}
		return 0, 0, err
	}
	le := binary.LittleEndian
	if m.mini {
		return le.Uint16(m.hdr[0:]), le.Uint32(m.hdr[2:]), nil
	}
	return le.Uint16(m.hdr[8:]), le.Uint32(m.hdr[10:]), nil
}

// body reads a message body of size bytes, refusing more than max. It
// is valid until the next call.
func (m *msgReader) body(typ uint16, size uint32, max uint32) ([]byte, error) {
	if size > max {
		return nil, fmt.Errorf("%w: message type %d of %d bytes, more than the %d this channel takes", ErrProtocol, typ, size, max)
	}
	if cap(m.buf) < int(size) {
		m.buf = make([]byte, size)
	}
	m.buf = m.buf[:size]
	if _, err := io.ReadFull(m.r, m.buf); err != nil {
		return nil, fmt.Errorf("read body of message type %d (%d bytes): %w", typ, size, unexpected(err))
	}
	return m.buf, nil
}

// skip discards a message body unread.
func (m *msgReader) skip(typ uint16, size uint32) error {
	if _, err := m.r.Discard(int(size)); err != nil {
		return fmt.Errorf("skip body of message type %d (%d bytes): %w", typ, size, unexpected(err))
	}
	return nil
}

// headerSize is the data header's size on a channel.
func headerSize(mini bool) int {
	if mini {
		return miniHeaderSize
	}
	return fullHeaderSize
}

// appendHeader appends a data header; serial is used by the full header
// only (spice-server numbers each channel's messages from 1).
func appendHeader(dst []byte, mini bool, serial uint64, typ uint16, size int) []byte {
	le := binary.LittleEndian
	if !mini {
		dst = le.AppendUint64(dst, serial)
	}
	dst = le.AppendUint16(dst, typ)
	dst = le.AppendUint32(dst, uint32(size))
	if !mini {
		dst = le.AppendUint32(dst, 0) // sub_list: none
	}
	return dst
}
