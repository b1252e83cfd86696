package spiceproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The SPICE wire constants the framer needs, from spice-protocol's
// protocol.h (/usr/include/spice-1/spice/protocol.h).
const (
	spiceMagic = 0x51444552 // "REDQ" little-endian

	linkHeaderSize = 16  // SpiceLinkHeader: magic, major, minor, size
	linkMessSize   = 18  // SpiceLinkMess without its caps
	pubKeySize     = 162 // SPICE_TICKET_PUBKEY_BYTES
	linkReplySize  = 4 + pubKeySize + 12
	linkResultSize = 4 // the u32 link result after the ticket
	authMechSize   = 4 // SpiceLinkAuthMechanism

	capAuthSelection = 0 // SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION
	capMiniHeader    = 3 // SPICE_COMMON_CAP_MINI_HEADER

	authMechanismSpice = 1 // SPICE_COMMON_CAP_AUTH_SPICE as a mechanism

	miniHeaderSize = 6  // SpiceMiniDataHeader: u16 type, u32 size
	fullHeaderSize = 18 // SpiceDataHeader: u64 serial, u16 type, u32 size, u32 sub_list

	// maxLinkBody bounds the link message and reply the framer holds.
	// Real ones are under 200 bytes plus a few capability words.
	maxLinkBody = 64 << 10
	// maxCapWords bounds each capability array.
	maxCapWords = 1024
)

// header is which data header a channel's server messages carry.
type header int

const (
	fullHeader header = iota
	miniHeader
)

func (h header) size() int {
	if h == miniHeader {
		return miniHeaderSize
	}
	return fullHeaderSize
}

// messageSize is the body size a data header announces.
func (h header) messageSize(hdr []byte) uint32 {
	if h == miniHeader {
		return binary.LittleEndian.Uint32(hdr[2:])
	}
	return binary.LittleEndian.Uint32(hdr[10:])
}

func (h header) String() string {
	if h == miniHeader {
		return "mini header"
	}
	return "full header"
}

// linkHeader checks a SpiceLinkHeader and returns the size of the body
// that follows it.
func linkHeader(b []byte) (uint32, error) {
	if m := binary.LittleEndian.Uint32(b); m != spiceMagic {
		return 0, fmt.Errorf("magic %#08x is not \"REDQ\"", m)
	}
	size := binary.LittleEndian.Uint32(b[12:])
	if size > maxLinkBody {
		return 0, fmt.Errorf("link body of %d bytes (limit %d)", size, maxLinkBody)
	}
	return size, nil
}

// commonCaps reads the common capability words of a SpiceLinkMess
// (fixed part at 0) or SpiceLinkReply (fixed part after the error and
// the public key) body. The caps offset counts from the start of the
// body in both.
func commonCaps(body []byte, fixed int) ([]uint32, error) {
	if len(body) < fixed+12 {
		return nil, fmt.Errorf("body of %d bytes is too short", len(body))
	}
	ncommon := binary.LittleEndian.Uint32(body[fixed:])
	nchan := binary.LittleEndian.Uint32(body[fixed+4:])
	off := binary.LittleEndian.Uint32(body[fixed+8:])
	if ncommon > maxCapWords || nchan > maxCapWords {
		return nil, fmt.Errorf("%d common and %d channel capability words", ncommon, nchan)
	}
	end := uint64(off) + 4*uint64(ncommon+nchan)
	if uint64(off) < uint64(fixed+12) || end > uint64(len(body)) {
		return nil, fmt.Errorf("capabilities at bytes %d..%d of a %d-byte body", off, end, len(body))
	}
	caps := make([]uint32, ncommon)
	for i := range caps {
		caps[i] = binary.LittleEndian.Uint32(body[off+4*uint32(i):])
	}
	return caps, nil
}

func hasCap(caps []uint32, c uint) bool {
	w := c / 32
	return int(w) < len(caps) && caps[w]&(1<<(c%32)) != 0
}

// clientCaps reads the common caps of the client's SpiceLinkMess body.
func clientCaps(body []byte) ([]uint32, error) {
	caps, err := commonCaps(body, 6)
	if err != nil {
		return nil, fmt.Errorf("link message: %w", err)
	}
	return caps, nil
}

// serverCaps reads the server's SpiceLinkReply body: an error code
// other than OK, or the common caps.
func serverCaps(body []byte) ([]uint32, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("link reply of %d bytes", len(body))
	}
	if code := binary.LittleEndian.Uint32(body); code != 0 {
		return nil, fmt.Errorf("server refused the link (SPICE_LINK_ERR %d)", code)
	}
	if len(body) < linkReplySize {
		return nil, fmt.Errorf("link reply of %d bytes, want at least %d", len(body), linkReplySize)
	}
	caps, err := commonCaps(body, 4+pubKeySize)
	if err != nil {
		return nil, fmt.Errorf("link reply: %w", err)
	}
	return caps, nil
}

// linker follows one channel's link exchange in lock step, forwarding
// every part as soon as it is read: the client's SpiceLinkHeader and
// SpiceLinkMess, the server's header and SpiceLinkReply, and the
// client's auth mechanism when both sides offered AUTH_SELECTION. What
// follows (the client's ticket, the server's link result) is left to the
// two directions. It learns which data header the server will use: the
// mini header when both sides offered MINI_HEADER (spice-server picks it
// from the client's caps, spice-gtk and ryll from the server's).
//
// A part that does not parse ends the following with why set; a stream
// that ends sets clientEOF or serverEOF and returns errEOF; a socket
// error is returned as it is. In every case each byte read has been
// forwarded, so the caller can carry on forwarding from the readers.
type linker struct {
	cr, sr             io.Reader
	toServer, toClient io.Writer

	why                  string
	channel              string
	clientEOF, serverEOF bool
}

func (l *linker) run() (header, error) {
	var lh [linkHeaderSize]byte
	if err := l.part(l.cr, l.toServer, lh[:], &l.clientEOF, "client link header"); err != nil {
		return 0, err
	}
	size, ok := l.checkHeader(lh[:], "client")
	if !ok {
		return 0, nil
	}
	mess := make([]byte, size)
	if err := l.part(l.cr, l.toServer, mess, &l.clientEOF, "client link message"); err != nil {
		return 0, err
	}
	ccaps, err := clientCaps(mess)
	if err != nil {
		l.why = err.Error()
		return 0, nil
	}
	l.channel = fmt.Sprintf("%d:%d", mess[4], mess[5]) // type:id

	if err := l.part(l.sr, l.toClient, lh[:], &l.serverEOF, "server link header"); err != nil {
		return 0, err
	}
	if size, ok = l.checkHeader(lh[:], "server"); !ok {
		return 0, nil
	}
	reply := make([]byte, size)
	if err := l.part(l.sr, l.toClient, reply, &l.serverEOF, "server link reply"); err != nil {
		return 0, err
	}
	scaps, err := serverCaps(reply)
	if err != nil {
		l.why = err.Error()
		return 0, nil
	}

	if hasCap(ccaps, capAuthSelection) && hasCap(scaps, capAuthSelection) {
		var mech [authMechSize]byte
		if err := l.part(l.cr, l.toServer, mech[:], &l.clientEOF, "client auth mechanism"); err != nil {
			return 0, err
		}
		if m := binary.LittleEndian.Uint32(mech[:]); m != authMechanismSpice {
			// SASL (2) puts a negotiation before the link result.
			l.why = fmt.Sprintf("auth mechanism %d is not SPICE ticketing (SASL?)", m)
			return 0, nil
		}
	}
	if hasCap(ccaps, capMiniHeader) && hasCap(scaps, capMiniHeader) {
		return miniHeader, nil
	}
	return fullHeader, nil
}

// part relays len(buf) bytes. At the end of the stream it sets *eof and
// why and returns errEOF.
func (l *linker) part(r io.Reader, w io.Writer, buf []byte, eof *bool, what string) error {
	err := relay(r, w, buf)
	if errors.Is(err, errEOF) {
		*eof = true
		l.why = what + ": stream ended"
		return err
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// checkHeader reads a relayed SpiceLinkHeader; one that is not SPICE
// sets why.
func (l *linker) checkHeader(b []byte, side string) (uint32, bool) {
	size, err := linkHeader(b)
	if err != nil {
		l.why = side + " link header: " + err.Error()
		return 0, false
	}
	return size, true
}
