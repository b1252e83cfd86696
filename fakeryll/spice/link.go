package spice

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// LinkErrorCode is a SPICE link result (SPICE_LINK_ERR_* in enums.h).
type LinkErrorCode uint32

// The link results a server can answer with.
const (
	LinkOK                  LinkErrorCode = 0
	LinkErrError            LinkErrorCode = 1
	LinkErrInvalidMagic     LinkErrorCode = 2
	LinkErrInvalidData      LinkErrorCode = 3
	LinkErrVersionMismatch  LinkErrorCode = 4
	LinkErrNeedSecured      LinkErrorCode = 5
	LinkErrNeedUnsecured    LinkErrorCode = 6
	LinkErrPermissionDenied LinkErrorCode = 7
	LinkErrBadConnectionID  LinkErrorCode = 8
	LinkErrChannelNotAvail  LinkErrorCode = 9
)

var linkCodeNames = [...]string{
	"OK", "ERROR", "INVALID_MAGIC", "INVALID_DATA", "VERSION_MISMATCH",
	"NEED_SECURED", "NEED_UNSECURED", "PERMISSION_DENIED",
	"BAD_CONNECTION_ID", "CHANNEL_NOT_AVAILABLE",
}

func (c LinkErrorCode) String() string {
	if int(c) < len(linkCodeNames) {
		return linkCodeNames[c]
	}
	return fmt.Sprintf("link-error-%d", uint32(c))
}

// Sentinels a *LinkError matches with errors.Is, one per cause a user can
// act on.
var (
	// ErrPermissionDenied: the server refused the ticket.
	ErrPermissionDenied = errors.New("wrong password or expired token")
	// ErrNeedSecured: the channel is TLS-only and no TLS port is known.
	ErrNeedSecured = errors.New("the server requires TLS for this channel: use the TLS port")
	// ErrVersionMismatch: the server speaks another SPICE major version.
	ErrVersionMismatch = errors.New("the server speaks another SPICE protocol version")
	// ErrBadConnectionID: a secondary channel named a session the server
	// does not know (the main channel's session ended).
	ErrBadConnectionID = errors.New("the server does not know this session")
	// ErrChannelNotAvailable: the server has no such channel.
	ErrChannelNotAvailable = errors.New("the server has no such channel")
)

// LinkError is a link refused by the server, with the server's code.
type LinkError struct {
	Channel   ChannelType
	ChannelID uint8
	Code      LinkErrorCode
}

func (e *LinkError) Error() string {
	msg := fmt.Sprintf("%s channel %d: server answered %s", e.Channel, e.ChannelID, e.Code)
	if s := e.sentinel(); s != nil {
		msg += " (" + s.Error() + ")"
	}
	return msg
}

func (e *LinkError) sentinel() error {
	switch e.Code {
	case LinkErrPermissionDenied:
		return ErrPermissionDenied
	case LinkErrNeedSecured:
		return ErrNeedSecured
	case LinkErrVersionMismatch:
		return ErrVersionMismatch
	case LinkErrBadConnectionID:
		return ErrBadConnectionID
	case LinkErrChannelNotAvail:
		return ErrChannelNotAvailable
	}
	return nil
}

// Is makes errors.Is(err, ErrPermissionDenied) and friends work.
func (e *LinkError) Is(target error) bool {
	s := e.sentinel()
	return s != nil && target == s
}

// ErrPasswordTooLong: SPICE tickets hold at most 60 bytes.
var ErrPasswordTooLong = fmt.Errorf("password longer than %d bytes (SPICE_MAX_PASSWORD_LENGTH)", maxPasswordLength)

// linkRequest is what one channel link sends.
type linkRequest struct {
	connectionID uint32
	channel      ChannelType
	channelID    uint8
	channelCaps  []uint32
	password     string // the revealed ticket password; never logged
}

// linkReply is what the server agreed to.
type linkReply struct {
	mini        bool
	commonCaps  []uint32
	channelCaps []uint32
}

// clientCommonCaps are the common capabilities this client offers:
// AUTH_SELECTION, AUTH_SPICE and MINI_HEADER.
var clientCommonCaps = []uint32{1<<capAuthSelection | 1<<capAuthSpice | 1<<capMiniHeader}

// maxLinkReply bounds the server's link reply (178 bytes plus caps).
const maxLinkReply = 64 << 10

// maxCapWords bounds each capability array in a link reply.
const maxCapWords = 1024

// link runs the SPICE link handshake on conn: SpiceLinkHeader and
// SpiceLinkMess out, SpiceLinkReply in, auth mechanism and RSA-OAEP
// ticket out, link result in. The caller bounds it with conn deadlines.
func link(conn net.Conn, req linkRequest) (linkReply, error) {
	if len(req.password) > maxPasswordLength {
		return linkReply{}, ErrPasswordTooLong
	}
	ncommon, nchan := len(clientCommonCaps), len(req.channelCaps)
	out := make([]byte, 0, linkHeaderSize+linkMessSize+4*(ncommon+nchan))
	out = binary.LittleEndian.AppendUint32(out, spiceMagic)
	out = binary.LittleEndian.AppendUint32(out, spiceVersionMajor)
	out = binary.LittleEndian.AppendUint32(out, spiceVersionMinor)
	out = binary.LittleEndian.AppendUint32(out, uint32(linkMessSize+4*(ncommon+nchan)))
	out = binary.LittleEndian.AppendUint32(out, req.connectionID)
	out = append(out, byte(req.channel), req.channelID)
	out = binary.LittleEndian.AppendUint32(out, uint32(ncommon))
	out = binary.LittleEndian.AppendUint32(out, uint32(nchan))
	out = binary.LittleEndian.AppendUint32(out, linkMessSize) // caps_offset
	for _, c := range clientCommonCaps {
		out = binary.LittleEndian.AppendUint32(out, c)
	}
	for _, c := range req.channelCaps {
		out = binary.LittleEndian.AppendUint32(out, c)
	}
	if _, err := conn.Write(out); err != nil {
		return linkReply{}, fmt.Errorf("send link message: %w", err)
	}

	var hdr [linkHeaderSize]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return linkReply{}, fmt.Errorf("read link reply header: %w", err)
	}
	if m := binary.LittleEndian.Uint32(hdr[0:]); m != spiceMagic {
		return linkReply{}, fmt.Errorf("%w: link reply magic %#08x is not \"REDQ\": not a SPICE server", ErrProtocol, m)
	}
	major, minor := binary.LittleEndian.Uint32(hdr[4:]), binary.LittleEndian.Uint32(hdr[8:])
	size := binary.LittleEndian.Uint32(hdr[12:])
	if size < 4 || size > maxLinkReply {
		return linkReply{}, fmt.Errorf("%w: link reply claims %d bytes", ErrProtocol, size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(conn, body); err != nil {
		return linkReply{}, fmt.Errorf("read link reply (%d bytes): %w", size, noEOF(err))
	}
	if code := LinkErrorCode(binary.LittleEndian.Uint32(body)); code != LinkOK {
		return linkReply{}, &LinkError{Channel: req.channel, ChannelID: req.channelID, Code: code}
	}
	if major != spiceVersionMajor {
		return linkReply{}, fmt.Errorf("link reply version %d.%d: %w", major, minor, ErrVersionMismatch)
	}
	if size < linkReplySize {
		return linkReply{}, fmt.Errorf("%w: link reply of %d bytes, want at least %d", ErrProtocol, size, linkReplySize)
	}
	reply, err := parseReplyCaps(body)
	if err != nil {
		return linkReply{}, err
	}
	pub, err := x509.ParsePKIXPublicKey(body[4 : 4+pubKeySize])
	if err != nil {
		return linkReply{}, fmt.Errorf("%w: link reply public key: %v", ErrProtocol, err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return linkReply{}, fmt.Errorf("%w: link reply public key is %T, want RSA", ErrProtocol, pub)
	}

	if hasCap(reply.commonCaps, capAuthSelection) {
		if !hasCap(reply.commonCaps, capAuthSpice) {
			return linkReply{}, fmt.Errorf("link %s channel: the server offers no SPICE ticket authentication (SASL only?), which this client does not speak", req.channel)
		}
		if _, err := conn.Write(le32(authMechanismSpice)); err != nil {
			return linkReply{}, fmt.Errorf("send auth mechanism: %w", err)
		}
	}
	ticket, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaPub, append([]byte(req.password), 0), nil)
	if err != nil {
		// The message does not quote the password.
		return linkReply{}, fmt.Errorf("encrypt ticket with the server's %d-bit key: %w", rsaPub.N.BitLen(), err)
	}
	if _, err := conn.Write(ticket); err != nil {
		return linkReply{}, fmt.Errorf("send ticket: %w", err)
	}
	var res [4]byte
	if _, err := io.ReadFull(conn, res[:]); err != nil {
		return linkReply{}, fmt.Errorf("read link result: %w", err)
	}
	if code := LinkErrorCode(binary.LittleEndian.Uint32(res[:])); code != LinkOK {
		return linkReply{}, &LinkError{Channel: req.channel, ChannelID: req.channelID, Code: code}
	}
	reply.mini = hasCap(reply.commonCaps, capMiniHeader)
	return reply, nil
}

// parseReplyCaps reads the capability arrays of a SpiceLinkReply body.
func parseReplyCaps(body []byte) (linkReply, error) {
	ncommon := binary.LittleEndian.Uint32(body[4+pubKeySize:])
	nchan := binary.LittleEndian.Uint32(body[8+pubKeySize:])
	off := binary.LittleEndian.Uint32(body[12+pubKeySize:])
	if ncommon > maxCapWords || nchan > maxCapWords {
		return linkReply{}, fmt.Errorf("%w: link reply claims %d common and %d channel capability words", ErrProtocol, ncommon, nchan)
	}
	end := uint64(off) + 4*uint64(ncommon+nchan)
	if end > uint64(len(body)) {
		return linkReply{}, fmt.Errorf("%w: link reply capabilities end at byte %d of %d", ErrProtocol, end, len(body))
	}
	words := func(at uint32, n uint32) []uint32 {
		w := make([]uint32, n)
		for i := range w {
			w[i] = binary.LittleEndian.Uint32(body[at+4*uint32(i):])
		}
		return w
	}
	return linkReply{
		commonCaps:  words(off, ncommon),
		channelCaps: words(off+4*ncommon, nchan),
	}, nil
}
