package spice

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func miniMsg(typ uint16, body []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func fullMsg(serial uint64, typ uint16, body []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, serial)
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	return append(b, body...)
}

// FuzzReadMessage feeds arbitrary bytes to the message reader and every
// message it yields to the display and main-channel parsers: nothing may
// panic, a body never exceeds MaxMessageSize, errors are the documented
// ones, and whatever is reported as a draw is one.
func FuzzReadMessage(f *testing.F) {
	box := Rect{Top: 0, Left: 0, Bottom: 400, Right: 32}
	seeds := [][]byte{
		miniMsg(uint16(DisplaySurfaceCreate), surfaceCreateBody(0, 720, 400)),
		miniMsg(uint16(DisplayDrawCopy), displayBaseBody(0, box, 180)),
		append(miniMsg(msgSetAck, append(le32(1), le32(20)...)), miniMsg(msgPing, pingBody(1, 2, 0))...),
		miniMsg(msgPing, pingBody(7, 8, 4096)),
		miniMsg(msgMainChannelsList, append(le32(2), 2, 0, 3, 0)),
		miniMsg(uint16(DisplayStreamData), make([]byte, 12)),
		miniMsg(uint16(DisplayGLDraw), make([]byte, 16)),
		fullMsg(1, uint16(DisplayDrawFill), displayBaseBody(3, box, 4)),
		miniMsg(uint16(DisplayDrawCopy), make([]byte, 5)),           // too short for a draw
		miniMsg(uint16(DisplayDrawCopy), nil)[:6],                   // header only
		binary.LittleEndian.AppendUint32([]byte{0x30, 0x01}, 1<<30), // size beyond the bound
		{0x30},
	}
	for _, s := range seeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, mini bool) {
		rd := newMsgReader(bytes.NewReader(data), mini)
		d := newDisplay(0)
		now := time.Unix(1, 0)
		for range 1000 {
			typ, body, err := rd.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("next() error %v is none of EOF, ErrUnexpectedEOF, ErrProtocol", err)
				}
				return
			}
			if len(body) > MaxMessageSize || len(body) > len(data) {
				t.Fatalf("body of %d bytes from %d bytes of input", len(body), len(data))
			}
			ev, err := d.handle(typ, body, now)
			if err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("display.handle error %v does not wrap ErrProtocol", err)
			}
			if dr, ok := ev.(Draw); ok && !IsDraw(dr.Type) {
				t.Fatalf("reported %s as a draw", dr.Type)
			}
			if _, err := parseChannelsList(body); err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("parseChannelsList error %v does not wrap ErrProtocol", err)
			}
		}
	})
}

// scriptConn is a net.Conn that reads a fixed script and swallows writes.
type scriptConn struct {
	net.Conn // nil: only Read and Write are used by link
	r        io.Reader
}

func (c scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c scriptConn) Write(p []byte) (int, error) { return len(p), nil }

// FuzzLinkReply feeds arbitrary bytes to the client side of the link
// handshake as the server's answer: it must fail cleanly or succeed,
// never panic.
func FuzzLinkReply(f *testing.F) {
	pub, err := x509.MarshalPKIXPublicKey(&fakeRSAKey(f).PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	reply := binary.LittleEndian.AppendUint32(nil, spiceMagic)
	reply = binary.LittleEndian.AppendUint32(reply, 2)
	reply = binary.LittleEndian.AppendUint32(reply, 2)
	reply = binary.LittleEndian.AppendUint32(reply, linkReplySize+4)
	reply = binary.LittleEndian.AppendUint32(reply, 0)
	reply = append(reply, pub...)
	reply = binary.LittleEndian.AppendUint32(reply, 1)
	reply = binary.LittleEndian.AppendUint32(reply, 0)
	reply = binary.LittleEndian.AppendUint32(reply, linkReplySize)
	reply = binary.LittleEndian.AppendUint32(reply, 0b1011)
	f.Add(append(reply, le32(0)...))
	f.Add(append(reply, le32(7)...))
	f.Add(reply[:40])
	needSecured := append([]byte(nil), reply...)
	binary.LittleEndian.PutUint32(needSecured[16:], 5)
	f.Add(needSecured)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := link(scriptConn{r: bytes.NewReader(data)}, linkRequest{channel: ChannelMain, password: "pw"})
		var le *LinkError
		if err != nil && errors.As(err, &le) && le.Code == LinkOK {
			t.Fatalf("a LinkError with code OK: %v", err)
		}
	})
}
