package spice

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/spicetls"
)

func dialFake(t *testing.T, f *fakeServer, mutate func(*Config)) (*Session, error) {
	t.Helper()
	cfg := f.config()
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func mustDialFake(t *testing.T, f *fakeServer, mutate func(*Config)) *Session {
	t.Helper()
	s, err := dialFake(t, f, mutate)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return s
}

func isSurfaceCreated(e Event) bool { _, ok := e.(SurfaceCreated); return ok }
func isDraw(e Event) bool           { _, ok := e.(Draw); return ok }

// TestDialLinkVariants links against every header/auth combination and
// checks what the server saw and that a draw and a key go through.
func TestDialLinkVariants(t *testing.T) {
	for _, tc := range []struct {
		name       string
		noMini     bool
		noAuthSel  bool
		password   string
		wantMini   bool
		wantMech   int64
		wantSerial bool
	}{
		{name: "mini header, auth selection, no ticketing", wantMini: true, wantMech: 1},
		{name: "full header", noMini: true, wantMech: 1, wantSerial: true},
		{name: "no auth selection", noAuthSel: true, wantMini: true, wantMech: -1},
		{name: "password", password: "s3cret-pw", wantMini: true, wantMech: 1},
		{name: "full header, no auth selection, password", noMini: true, noAuthSel: true, password: "pw", wantMech: -1, wantSerial: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, fakeOpts{password: tc.password, noMiniHeader: tc.noMini, noAuthSelection: tc.noAuthSel})
			s := mustDialFake(t, f, func(c *Config) { c.Password = secret.NewString(tc.password) })
			if got := s.SessionID(); got != 0x5eed {
				t.Errorf("SessionID() = %#x, want 0x5eed", got)
			}
			sc := waitEvent(t, s, 5*time.Second, isSurfaceCreated).(SurfaceCreated)
			if sc.ID != 0 || sc.Width != 720 || sc.Height != 400 || !sc.Primary || sc.Received.IsZero() {
				t.Errorf("SurfaceCreated = %+v", sc)
			}
			disp := f.conn(ChannelDisplay)
			if disp.mini != tc.wantMini {
				t.Errorf("display channel mini header = %v, want %v", disp.mini, tc.wantMini)
			}
			disp.send(uint16(DisplayDrawCopy), displayBaseBody(0, Rect{Top: 0, Left: 32, Bottom: 400, Right: 64}, 180))
			d := waitEvent(t, s, 5*time.Second, isDraw).(Draw)
			if d.Type != DisplayDrawCopy || d.Surface != 0 || d.Box != (Rect{0, 32, 400, 64}) {
				t.Errorf("Draw = %+v", d)
			}
			in := f.conn(ChannelInputs)
			if err := s.KeyDown(t.Context(), 0x1E); err != nil {
				t.Fatal(err)
			}
			if err := s.KeyUp(t.Context(), 0x1E); err != nil {
				t.Fatal(err)
			}
			for _, want := range []struct {
				typ  uint16
				code uint32
			}{{101, 0x1E}, {102, 0x9E}} {
				m, err := in.next(5 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if m.typ != want.typ || len(m.body) != 4 || binary.LittleEndian.Uint32(m.body) != want.code {
					t.Errorf("inputs got type %d body % x, want type %d code %#x", m.typ, m.body, want.typ, want.code)
				}
				if tc.wantSerial && m.serial == 0 {
					t.Errorf("full header serial is 0")
				}
			}
			links := f.linksSeen()
			if len(links) != 3 {
				t.Fatalf("server saw %d links, want main, display and inputs: %+v", len(links), links)
			}
			for _, l := range links {
				if l.authMech != tc.wantMech {
					t.Errorf("%s link sent auth mechanism %d, want %d", l.channel, l.authMech, tc.wantMech)
				}
				wantConn := uint32(0x5eed)
				if l.channel == ChannelMain {
					wantConn = 0
				}
				if l.connID != wantConn {
					t.Errorf("%s link connection_id = %#x, want %#x", l.channel, l.connID, wantConn)
				}
				if l.clientCaps != 0b1011 {
					t.Errorf("%s link common caps = %#b, want AUTH_SELECTION|AUTH_SPICE|MINI_HEADER", l.channel, l.clientCaps)
				}
			}
		})
	}
}

func TestWrongPasswordIsPermissionDenied(t *testing.T) {
	const pw = "right-horse-battery"
	f := newFakeServer(t, fakeOpts{password: pw})
	var logs bytes.Buffer
	_, err := dialFake(t, f, func(c *Config) {
		c.Password = secret.NewString("wrong-staple-" + pw[:3])
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("Dial error = %v, want ErrPermissionDenied", err)
	}
	var le *LinkError
	if !errors.As(err, &le) || le.Code != LinkErrPermissionDenied || le.Channel != ChannelMain {
		t.Errorf("error %v is not a main-channel *LinkError PERMISSION_DENIED", err)
	}
	if !strings.Contains(err.Error(), "wrong password or expired token") {
		t.Errorf("error %q does not name the cause", err)
	}
	for _, out := range []string{err.Error(), logs.String()} {
		if strings.Contains(out, "wrong-staple") || strings.Contains(out, pw) {
			t.Errorf("a password leaked: %q", out)
		}
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	const pw = "hunter2-do-not-log"
	f := newFakeServer(t, fakeOpts{password: pw})
	var logs bytes.Buffer
	cfg := f.config()
	cfg.Password = secret.NewString(pw)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Logger.Info("config", "cfg", cfg) // what a careless caller might do
	s, err := Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, s, 5*time.Second, isSurfaceCreated)
	s.Close()
	if logs.Len() == 0 {
		t.Fatal("no log lines at debug level: the check below would prove nothing")
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("password in log:\n%s", logs.String())
	}
}

func TestPasswordTooLong(t *testing.T) {
	_, err := Dial(t.Context(), Config{Host: "127.0.0.1", Port: 1, Password: secret.NewString(strings.Repeat("x", 61))})
	if !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("Dial error = %v, want ErrPasswordTooLong", err)
	}
	if strings.Contains(err.Error(), "xxxx") {
		t.Errorf("error quotes the password: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := Dial(t.Context(), Config{Port: -1, TLSPort: 70000})
	if err == nil {
		t.Fatal("Dial accepted an empty config")
	}
	for _, want := range []string{"Host field is empty", "Port field (-1)", "TLSPort field (70000)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestNeedSecured(t *testing.T) {
	pki := newTestPKI(t, kerbsideSubject)
	t.Run("no TLS port", func(t *testing.T) {
		f := newFakeServer(t, fakeOpts{needSecuredPlain: true})
		_, err := dialFake(t, f, nil)
		if !errors.Is(err, ErrNeedSecured) {
			t.Fatalf("Dial error = %v, want ErrNeedSecured", err)
		}
		if !strings.Contains(err.Error(), "use the TLS port") {
			t.Errorf("error %q does not say what to do", err)
		}
	})
	t.Run("moves to the TLS port", func(t *testing.T) {
		f := newFakeServer(t, fakeOpts{needSecuredPlain: true, tlsCert: &pki.cert, password: "pw"})
		s := mustDialFake(t, f, func(c *Config) {
			c.CA, c.HostSubject, c.Password = pki.caPEM, kerbsideHostSubject, secret.NewString("pw")
		})
		waitEvent(t, s, 5*time.Second, isSurfaceCreated)
		var plain, secured int
		for _, l := range f.linksSeen() {
			if l.tls {
				secured++
			} else {
				plain++
			}
		}
		if plain != 3 || secured != 3 {
			t.Errorf("links: %d plain, %d TLS; want every channel tried plain then TLS", plain, secured)
		}
	})
	t.Run("TLS port only", func(t *testing.T) {
		f := newFakeServer(t, fakeOpts{tlsCert: &pki.cert})
		s := mustDialFake(t, f, func(c *Config) { c.Port, c.CA, c.HostSubject = 0, pki.caPEM, kerbsideHostSubject })
		waitEvent(t, s, 5*time.Second, isSurfaceCreated)
		for _, l := range f.linksSeen() {
			if !l.tls {
				t.Errorf("%s linked in plain text", l.channel)
			}
		}
	})
}

func TestTLSVerification(t *testing.T) {
	pki := newTestPKI(t, kerbsideSubject, net.ParseIP("127.0.0.1"))
	other := newTestPKI(t, kerbsideSubject)
	for _, tc := range []struct {
		name    string
		ca      []byte
		subject string
		wantErr error // nil: must connect
		wantMsg string
	}{
		{name: "pinned subject", ca: pki.caPEM, subject: kerbsideHostSubject},
		{name: "pinned subject, other spacing and case", ca: pki.caPEM, subject: "C=us, O=shaken  fist, CN=KERBSIDE PROXY"},
		{name: "host name from IP SAN", ca: pki.caPEM},
		{name: "wrong CN", ca: pki.caPEM, subject: "C=US,O=Shaken Fist,CN=Someone Else", wantErr: spicetls.ErrSubjectMismatch},
		{name: "attributes reordered", ca: pki.caPEM, subject: "CN=Kerbside Proxy,O=Shaken Fist,C=US", wantErr: spicetls.ErrSubjectMismatch},
		{name: "attribute missing", ca: pki.caPEM, subject: "O=Shaken Fist,CN=Kerbside Proxy", wantErr: spicetls.ErrSubjectMismatch},
		{name: "another CA", ca: other.caPEM, subject: kerbsideHostSubject, wantMsg: "against the CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, fakeOpts{tlsCert: &pki.cert})
			s, err := dialFake(t, f, func(c *Config) { c.Port, c.CA, c.HostSubject = 0, tc.ca, tc.subject })
			if tc.wantErr == nil && tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				waitEvent(t, s, 5*time.Second, isSurfaceCreated)
				return
			}
			if err == nil {
				t.Fatal("Dial connected to a server it should have refused")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Dial error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Dial error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
	t.Run("bad CA PEM", func(t *testing.T) {
		_, err := Dial(t.Context(), Config{Host: "127.0.0.1", TLSPort: 1, CA: []byte("not pem")})
		if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
			t.Errorf("Dial error = %v, want a CA PEM error", err)
		}
	})
}

// TestAckFlowWithSlowConsumer: the client ACKs every window messages
// even when nobody reads Events, and reports what it had to drop.
func TestAckFlowWithSlowConsumer(t *testing.T) {
	f := newFakeServer(t, fakeOpts{})
	s := mustDialFake(t, f, func(c *Config) { c.EventBuffer = 2 })
	disp := f.conn(ChannelDisplay)
	disp.send(msgSetAck, append(le32(7), le32(4)...))
	if b, err := disp.expect(msgcAckSync); err != nil || binary.LittleEndian.Uint32(b) != 7 {
		t.Fatalf("ACK_SYNC = % x, %v; want generation 7", b, err)
	}
	for i := range 12 {
		disp.send(uint16(DisplayDrawFill), displayBaseBody(0, Rect{Top: int32(i), Bottom: int32(i) + 1, Right: 8}, 4))
	}
	for i := range 3 {
		if _, err := disp.expect(msgcAck); err != nil {
			t.Fatalf("ACK %d: %v", i+1, err)
		}
	}
	if m, quiet := disp.quiet(100 * time.Millisecond); !quiet {
		t.Errorf("unexpected client message %d after 12 messages with window 4", m.typ)
	}
	// The consumer catches up: buffered events, then the drop count.
	var draws int
	var dropped uint64
	deadline := time.After(5 * time.Second)
	for draws+int(dropped) < 13 { // SURFACE_CREATE + 12 draws
		select {
		case ev := <-s.Events():
			switch e := ev.(type) {
			case Draw, SurfaceCreated:
				draws++
			case Dropped:
				dropped += e.Count
			}
			if draws+int(dropped) < 13 && len(s.Events()) == 0 {
				disp.send(uint16(DisplayDrawFill), displayBaseBody(0, Rect{Right: 1, Bottom: 1}, 0))
				draws-- // this extra draw carries the Dropped event out, and does not count
			}
		case <-deadline:
			t.Fatalf("got %d events and %d dropped, want 13 in all", draws, dropped)
		}
	}
	if dropped == 0 || s.Dropped() != dropped {
		t.Errorf("dropped %d (Dropped() = %d), want a non-zero count that matches", dropped, s.Dropped())
	}
}

func TestPingPong(t *testing.T) {
	f := newFakeServer(t, fakeOpts{})
	s := mustDialFake(t, f, nil)
	waitEvent(t, s, 5*time.Second, isSurfaceCreated)
	main, disp := f.conn(ChannelMain), f.conn(ChannelDisplay)
	main.send(msgPing, pingBody(9, 0x1122334455, 256<<10)) // the bandwidth probe
	main.send(msgPing, pingBody(10, 77, 0))
	disp.send(msgPing, pingBody(3, 5, 0))
	for _, want := range []struct {
		fc *fakeConn
		id uint32
		ts uint64
	}{{main, 9, 0x1122334455}, {main, 10, 77}, {disp, 3, 5}} {
		b, err := want.fc.expect(msgcPong)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 12 || binary.LittleEndian.Uint32(b) != want.id || binary.LittleEndian.Uint64(b[4:]) != want.ts {
			t.Errorf("PONG = % x, want id %d timestamp %d", b, want.id, want.ts)
		}
	}
	p1 := waitEvent(t, s, 5*time.Second, func(e Event) bool { _, ok := e.(Ping); return ok }).(Ping)
	p2 := waitEvent(t, s, 5*time.Second, func(e Event) bool { _, ok := e.(Ping); return ok }).(Ping)
	if p1.ID != 9 || p1.Size != 12+256<<10 || p2.ID != 10 || p2.Size != 12 {
		t.Errorf("Pings = %+v, %+v", p1, p2)
	}
	if p2.Received.Before(p1.Received) {
		t.Errorf("second Ping received before the first")
	}
	// Only main-channel PINGs are reported: the display one was not.
	main.send(msgPing, pingBody(11, 0, 0))
	if p := waitEvent(t, s, 5*time.Second, func(e Event) bool { _, ok := e.(Ping); return ok }).(Ping); p.ID != 11 {
		t.Errorf("next Ping has id %d, want 11 (the display channel's PING must not be reported)", p.ID)
	}
}

// TestEveryDrawRecognised sends each display message with a minimal body
// and checks which ones come out as draws, with which surface and box.
func TestEveryDrawRecognised(t *testing.T) {
	f := newFakeServer(t, fakeOpts{})
	s := mustDialFake(t, f, nil)
	waitEvent(t, s, 5*time.Second, isSurfaceCreated)
	disp := f.conn(ChannelDisplay)
	box := Rect{Top: 1, Left: 2, Bottom: 30, Right: 40}
	var want []MessageType
	for mt := DisplayDrawFill; mt <= DisplayDrawAlphaBlend; mt++ {
		want = append(want, mt)
	}
	want = append(want, DisplayDrawComposite, DisplayCopyBits)
	for _, mt := range want {
		disp.send(uint16(mt), displayBaseBody(0, box, 16))
	}
	// Not draws: they must produce nothing.
	disp.send(uint16(DisplayMonitorsConfig), make([]byte, 4))
	disp.send(uint16(DisplayStreamActivateReport), make([]byte, 16))
	disp.send(102, nil) // MARK
	// A stream on surface 0 at dest box, then its data, sized data, and GL.
	sc := binary.LittleEndian.AppendUint32(nil, 0)     // surface_id
	sc = binary.LittleEndian.AppendUint32(sc, 42)      // stream id
	sc = append(sc, 0, 1)                              // flags, codec MJPEG
	sc = binary.LittleEndian.AppendUint64(sc, 0)       // stamp
	sc = append(sc, make([]byte, 16)...)               // stream and src sizes
	sc = append(sc, displayBaseBody(0, box, 0)[4:]...) // dest Rect and clip NONE
	disp.send(uint16(DisplayStreamCreate), sc)
	disp.send(uint16(DisplayStreamData), append(append(le32(42), le32(0)...), le32(0)...))
	sized := append(le32(42), make([]byte, 12)...)
	sized = append(sized, displayBaseBody(0, Rect{Top: 5, Left: 6, Bottom: 7, Right: 8}, 0)[4:20]...)
	disp.send(uint16(DisplayStreamDataSized), append(sized, le32(0)...))
	disp.send(uint16(DisplayGLDraw), append(append(le32(10), le32(20)...), append(le32(30), le32(40)...)...))
	want = append(want, DisplayStreamData, DisplayStreamDataSized, DisplayGLDraw)

	for i, mt := range want {
		ev := waitEvent(t, s, 5*time.Second, func(Event) bool { return true })
		d, ok := ev.(Draw)
		if !ok {
			t.Fatalf("event %d is %T %+v, want a %s draw", i, ev, ev, mt)
		}
		wantBox := box
		switch mt {
		case DisplayStreamDataSized:
			wantBox = Rect{Top: 5, Left: 6, Bottom: 7, Right: 8}
		case DisplayGLDraw:
			wantBox = Rect{Top: 20, Left: 10, Bottom: 60, Right: 40}
		}
		if d.Type != mt || d.Box != wantBox || d.Surface != 0 {
			t.Errorf("draw %d = %+v, want %s box %+v", i, d, mt, wantBox)
		}
		if !IsDraw(d.Type) {
			t.Errorf("IsDraw(%s) = false", d.Type)
		}
	}
	for _, mt := range []MessageType{DisplayMonitorsConfig, DisplayStreamActivateReport, DisplaySurfaceCreate, DisplayStreamCreate} {
		if IsDraw(mt) {
			t.Errorf("IsDraw(%s) = true", mt)
		}
	}
}

func TestSurfaces(t *testing.T) {
	f := newFakeServer(t, fakeOpts{})
	s := mustDialFake(t, f, nil)
	waitEvent(t, s, 5*time.Second, isSurfaceCreated)
	disp := f.conn(ChannelDisplay)
	disp.send(uint16(DisplaySurfaceCreate), surfaceCreateBody(5, 64, 32))
	waitEvent(t, s, 5*time.Second, isSurfaceCreated)
	got := s.Surfaces()
	if len(got) != 2 || got[0].ID != 0 || got[1].ID != 5 || got[1].Width != 64 || got[1].Height != 32 {
		t.Fatalf("Surfaces() = %+v", got)
	}
	disp.send(uint16(DisplaySurfaceDestroy), le32(0))
	ev := waitEvent(t, s, 5*time.Second, func(e Event) bool { _, ok := e.(SurfaceDestroyed); return ok }).(SurfaceDestroyed)
	if ev.ID != 0 {
		t.Errorf("SurfaceDestroyed = %+v", ev)
	}
	if got := s.Surfaces(); len(got) != 1 || got[0].ID != 5 {
		t.Errorf("Surfaces() after destroy = %+v", got)
	}
}

func TestAgentConnected(t *testing.T) {
	f := newFakeServer(t, fakeOpts{})
	s := mustDialFake(t, f, nil)
	main := f.conn(ChannelMain)
	if s.AgentConnected() {
		t.Fatal("agent connected before the server said so")
	}
	main.send(msgMainAgentConn, nil)
	if ev := waitEvent(t, s, 5*time.Second, func(e Event) bool { _, ok := e.(AgentConnected); return ok }).(AgentConnected); !ev.Connected {
		t.Errorf("AgentConnected = %+v", ev)
	}
	main.send(msgMainAgentDisconn, le32(0))
	if ev := waitEvent(t, s, 5*time.Second, func(e Event) bool { _, ok := e.(AgentConnected); return ok }).(AgentConnected); ev.Connected {
		t.Errorf("AgentConnected = %+v", ev)
	}
	if s.AgentConnected() {
		t.Error("AgentConnected() still true")
	}
}

// TestMalformedServer: bad input ends the session with a clear error; it
// never panics or hangs, and an unknown message is skipped.
func TestMalformedServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		send    func(fc *fakeConn)
		wantErr error
		wantMsg string
	}{
		{
			name:    "truncated message",
			send:    func(fc *fakeConn) { fc.raw(fc.frame(uint16(DisplayDrawCopy), 100, make([]byte, 10))); fc.conn.Close() },
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "truncated header",
			send:    func(fc *fakeConn) { fc.raw([]byte{0x30, 0x01, 0x00}); fc.conn.Close() },
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "size beyond the bound",
			send:    func(fc *fakeConn) { fc.raw(fc.frame(uint16(DisplayDrawCopy), MaxMessageSize+1, nil)) },
			wantErr: ErrProtocol, wantMsg: "limit",
		},
		{
			name:    "draw too short for its type",
			send:    func(fc *fakeConn) { fc.send(uint16(DisplayDrawCopy), make([]byte, 8)) },
			wantErr: ErrProtocol, wantMsg: "DRAW_COPY of 8 bytes",
		},
		{
			name:    "SET_ACK too short",
			send:    func(fc *fakeConn) { fc.send(msgSetAck, make([]byte, 3)) },
			wantErr: ErrProtocol, wantMsg: "SET_ACK",
		},
		{
			name:    "server closes",
			send:    func(fc *fakeConn) { fc.conn.Close() },
			wantErr: ErrServerClosed, wantMsg: "display channel 0",
		},
		{
			name: "server says DISCONNECTING then closes",
			send: func(fc *fakeConn) {
				fc.send(msgDisconnecting, append(make([]byte, 8), le32(uint32(LinkErrError))...))
				fc.conn.Close()
			},
			wantErr: ErrServerClosed, wantMsg: "DISCONNECTING (ERROR)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, fakeOpts{})
			s := mustDialFake(t, f, nil)
			disp := f.conn(ChannelDisplay)
			disp.send(999, []byte("an unknown message is skipped"))
			disp.send(uint16(DisplayDrawFill), displayBaseBody(0, Rect{Right: 1, Bottom: 1}, 0))
			waitEvent(t, s, 5*time.Second, isDraw)
			tc.send(disp)
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session did not end within 5s")
			}
			err := s.Err()
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Err() = %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
			for range s.Events() { // Events is closed after Done
			}
			if err := s.KeyDown(t.Context(), 0x1E); err == nil {
				t.Error("KeyDown after the session ended succeeded")
			}
		})
	}
}

// TestLinkFaults: a server that breaks the link gets a clear error from
// Dial, bounded by LinkTimeout when it stops talking.
func TestLinkFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    fakeOpts
		wantErr error
		wantMsg string
	}{
		{name: "silent after the link message", opts: fakeOpts{linkFault: "silent"}, wantErr: ErrLinkTimeout},
		{name: "silent after the ticket", opts: fakeOpts{linkFault: "silent-result"}, wantErr: ErrLinkTimeout},
		{name: "not a SPICE server", opts: fakeOpts{linkFault: "bad-magic"}, wantErr: ErrProtocol, wantMsg: "not a SPICE server"},
		{name: "huge link reply", opts: fakeOpts{linkFault: "huge-reply"}, wantErr: ErrProtocol, wantMsg: "claims"},
		{name: "short link reply", opts: fakeOpts{linkFault: "short-reply"}, wantErr: ErrProtocol, wantMsg: "want at least 178"},
		{name: "channel list overruns", opts: fakeOpts{mainList: append(le32(1000), 2, 0)}, wantErr: ErrProtocol, wantMsg: "CHANNELS_LIST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, tc.opts)
			_, err := dialFake(t, f, func(c *Config) { c.LinkTimeout = 300 * time.Millisecond })
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Dial error = %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
		})
	}
	t.Run("caller's context ends first", func(t *testing.T) {
		f := newFakeServer(t, fakeOpts{linkFault: "silent"})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := Dial(ctx, f.config())
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLinkTimeout) {
			t.Errorf("Dial error = %v, want the caller's deadline", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		_, err := Dial(t.Context(), Config{Host: "127.0.0.1", Port: freePort(t)})
		if err == nil || !strings.Contains(err.Error(), "link main channel 0 on 127.0.0.1") {
			t.Errorf("Dial error = %v", err)
		}
	})
}

func TestNoInputsChannel(t *testing.T) {
	f := newFakeServer(t, fakeOpts{channels: []channelID{{ChannelDisplay, 0}, {ChannelCursor, 0}}})
	s := mustDialFake(t, f, nil)
	if err := s.KeyDown(t.Context(), 0x1E); !errors.Is(err, ErrNoInputs) {
		t.Errorf("KeyDown error = %v, want ErrNoInputs", err)
	}
}

func TestCloseEndsSession(t *testing.T) {
	f := newFakeServer(t, fakeOpts{})
	s := mustDialFake(t, f, nil)
	if s.Err() != nil {
		t.Fatalf("Err() = %v on a live session", s.Err())
	}
	s.Close()
	s.Close()
	if !errors.Is(s.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", s.Err())
	}
	main := f.conn(ChannelMain)
	if _, err := main.next(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Errorf("server side of the main channel: %v, want EOF", err)
	}
}

func TestWireScancode(t *testing.T) {
	for _, tc := range []struct {
		in       uint16
		up       bool
		want     uint32
		wantFail bool
	}{
		{in: 0x1E, want: 0x1E},
		{in: 0x1E, up: true, want: 0x9E},
		{in: 0x9E, up: true, want: 0x9E},
		{in: 0x1C, want: 0x1C},
		{in: 0xE04B, want: 0x4BE0},           // left arrow, prefix first on the wire
		{in: 0xE04B, up: true, want: 0xCBE0}, // break bit on the scancode byte
		{in: 0xE0CB, up: true, want: 0xCBE0},
		{in: 0xE048, want: 0x48E0},
		{in: 0x4BE0, wantFail: true}, // a pre-swapped wire value
		{in: 0xE100, wantFail: true},
		{in: 0x0000, wantFail: true},
		{in: 0xE000, wantFail: true},
	} {
		got, err := WireScancode(tc.in, tc.up)
		if (err != nil) != tc.wantFail {
			t.Errorf("WireScancode(%#x, %v) error = %v, want failure %v", tc.in, tc.up, err, tc.wantFail)
			continue
		}
		if tc.wantFail && !errors.Is(err, ErrBadScancode) {
			t.Errorf("WireScancode(%#x) error %v is not ErrBadScancode", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("WireScancode(%#x, %v) = %#x, want %#x", tc.in, tc.up, got, tc.want)
		}
	}
}
