package spice

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/spicetls"
)

// dialGuest connects to g and waits until the guest's 80x25 text screen
// (720x400) is up and painted.
func dialGuest(t testing.TB, g *qemuGuest, cfg Config) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	waitEvent(t, s, 15*time.Second, func(e Event) bool {
		sc, ok := e.(SurfaceCreated)
		return ok && sc.Width == 720 && sc.Height == 400
	})
	drawsUntilQuiet(t, s, 2*time.Second, 300*time.Millisecond)
	return s
}

func press(t testing.TB, s *Session, scancode uint16) {
	t.Helper()
	if err := s.KeyDown(t.Context(), scancode); err != nil {
		t.Fatal(err)
	}
	if err := s.KeyUp(t.Context(), scancode); err != nil {
		t.Fatal(err)
	}
}

func TestQEMUSession(t *testing.T) {
	g := bootQEMU(t, qemuOpts{})
	s := dialGuest(t, g, g.config())

	t.Run("surfaces", func(t *testing.T) {
		got := s.Surfaces()
		if len(got) != 1 || got[0].ID != 0 || got[0].Width != 720 || got[0].Height != 400 || !got[0].Primary {
			t.Errorf("Surfaces() = %+v, want the primary 720x400 text screen only", got)
		}
	})

	t.Run("every key repaints the whole screen once", func(t *testing.T) {
		start := g.counter(t)
		for i, sc := range []uint16{0x1E, 0x30, 0x2E} { // a, b, c
			before := ppmPixel(t, g.screendump(t), 700, 390)
			press(t, s, sc)
			draws := drawsUntilQuiet(t, s, 3*time.Second, 300*time.Millisecond)
			if len(draws) == 0 {
				t.Fatalf("key %#x: no draw", sc)
			}
			var union Rect
			var area int64
			for j, d := range draws {
				if d.Surface != 0 || d.Channel != 0 {
					t.Errorf("draw %d on channel %d surface %d, want 0/0", j, d.Channel, d.Surface)
				}
				if j == 0 {
					union = d.Box
				}
				union = Rect{Top: min(union.Top, d.Box.Top), Left: min(union.Left, d.Box.Left),
					Bottom: max(union.Bottom, d.Box.Bottom), Right: max(union.Right, d.Box.Right)}
				area += int64(d.Box.Bottom-d.Box.Top) * int64(d.Box.Right-d.Box.Left)
			}
			if union != (Rect{Top: 0, Left: 0, Bottom: 400, Right: 720}) || area < 720*400 {
				t.Errorf("key %#x: draws cover %+v (%d px), want the whole 720x400 screen", sc, union, area)
			}
			t.Logf("key %#x: %d draws (%s first), %d px damaged", sc, len(draws), draws[0].Type, area)
			after := ppmPixel(t, g.screendump(t), 700, 390)
			if after == before {
				t.Errorf("key %#x: background stayed %v", sc, after)
			}
			if got := g.counter(t); got != start+uint32(i)+1 {
				t.Errorf("after key %d the guest counted %d keys, want %d", i+1, got-start, i+1)
			}
		}
	})

	t.Run("no key no draw", func(t *testing.T) {
		if d := drawsUntilQuiet(t, s, 700*time.Millisecond, 700*time.Millisecond); len(d) != 0 {
			t.Errorf("%d draws with no key pressed: %+v", len(d), d[0])
		}
	})

	t.Run("extended keys reach the guest as 0xE0 keys", func(t *testing.T) {
		for _, tc := range []struct {
			scancode  uint16
			wantASCII byte // what int 16h AH=10h reports
		}{
			{0xE048, 0xE0}, // grey up arrow
			{0x48, 0x00},   // keypad 8 with NumLock off: the same scancode, not extended
		} {
			press(t, s, tc.scancode)
			drawsUntilQuiet(t, s, 3*time.Second, 300*time.Millisecond)
			sc, ascii, err := guest.ParseLastKey(g.hmp(t, guest.LastKeyCommand()))
			if err != nil {
				t.Fatal(err)
			}
			if sc != 0x48 || ascii != tc.wantASCII {
				t.Errorf("%#x reached the guest as scancode %#x ascii %#x, want 0x48 %#x", tc.scancode, sc, ascii, tc.wantASCII)
			}
		}
	})

	t.Run("main channel pings", func(t *testing.T) {
		// The server pinged right after connect (3 PINGs, one of them the
		// 256 kB bandwidth probe); a fresh session sees them again.
		s2, err := Dial(t.Context(), g.config())
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		var sizes []int
		for len(sizes) < 3 {
			p := waitEvent(t, s2, 5*time.Second, func(e Event) bool { _, ok := e.(Ping); return ok }).(Ping)
			sizes = append(sizes, p.Size)
		}
		if !slices.ContainsFunc(sizes, func(n int) bool { return n >= 256000 }) {
			t.Errorf("ping sizes %v: no bandwidth probe", sizes)
		}
		t.Logf("first pings: %v bytes", sizes)
	})
}

func TestQEMUPassword(t *testing.T) {
	const pw = "kerbside-test-pw"
	g := bootQEMU(t, qemuOpts{password: pw})
	t.Run("right password", func(t *testing.T) {
		cfg := g.config()
		cfg.Password = secret.NewString(pw)
		s := dialGuest(t, g, cfg)
		press(t, s, 0x1E)
		if d := drawsUntilQuiet(t, s, 3*time.Second, 300*time.Millisecond); len(d) == 0 {
			t.Error("no draw after a key")
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := g.config()
		cfg.Password = secret.NewString("not-" + pw)
		cfg.LinkTimeout = 10 * time.Second
		start := time.Now()
		_, err := Dial(t.Context(), cfg)
		if !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("Dial error = %v, want ErrPermissionDenied", err)
		}
		t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), err)
	})
	t.Run("no password", func(t *testing.T) {
		if _, err := Dial(t.Context(), g.config()); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("Dial error = %v, want ErrPermissionDenied", err)
		}
	})
}

func TestQEMUTLS(t *testing.T) {
	pki := newTestPKI(t, kerbsideSubject)
	g := bootQEMU(t, qemuOpts{x509Dir: pki.x509Dir(t), tlsChannels: []string{"default"}})
	t.Run("plain port only: NEED_SECURED", func(t *testing.T) {
		cfg := g.config()
		cfg.TLSPort = 0
		if _, err := Dial(t.Context(), cfg); !errors.Is(err, ErrNeedSecured) {
			t.Fatalf("Dial error = %v, want ErrNeedSecured", err)
		}
	})
	t.Run("moves to the TLS port and checks the subject", func(t *testing.T) {
		cfg := g.config()
		cfg.CA, cfg.HostSubject = pki.caPEM, kerbsideHostSubject
		s := dialGuest(t, g, cfg)
		press(t, s, 0x1E)
		if d := drawsUntilQuiet(t, s, 3*time.Second, 300*time.Millisecond); len(d) == 0 {
			t.Error("no draw after a key over TLS")
		}
	})
	t.Run("wrong host-subject", func(t *testing.T) {
		cfg := g.config()
		cfg.CA, cfg.HostSubject = pki.caPEM, "C=US,O=Shaken Fist,CN=Someone Else"
		if _, err := Dial(t.Context(), cfg); !errors.Is(err, spicetls.ErrSubjectMismatch) {
			t.Fatalf("Dial error = %v, want ErrSubjectMismatch", err)
		}
	})
}

func TestQEMUQuitEndsSession(t *testing.T) {
	g := bootQEMU(t, qemuOpts{})
	s := dialGuest(t, g, g.config())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := g.qmp.exec(ctx, "quit", nil); err != nil && !errorsIsAny(err, context.DeadlineExceeded) {
		t.Logf("QMP quit: %v (QEMU may close QMP before answering)", err)
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end within 10s of QEMU quitting")
	}
	if !errors.Is(s.Err(), ErrServerClosed) {
		t.Errorf("Err() = %v, want ErrServerClosed", s.Err())
	}
}

// BenchmarkQEMUKeyToFirstDraw measures key down to the first draw of the
// repaint, as the loadtest does, against a real QEMU: ms is the median
// and p90-ms the 90th percentile, with 0-100 ms of random gap between
// keys so presses do not phase-lock with QEMU's display refresh.
// Run: go test -run '^$' -bench QEMUKeyToFirstDraw -benchtime 40x ./fakeryll/spice/
func BenchmarkQEMUKeyToFirstDraw(b *testing.B) {
	g := bootQEMU(b, qemuOpts{})
	s := dialGuest(b, g, g.config())
	start := g.counter(b)
	var samples []time.Duration
	var draws int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
		b.StartTimer()
		sent := time.Now()
		if err := s.KeyDown(b.Context(), 0x1E); err != nil {
			b.Fatal(err)
		}
		d := waitEvent(b, s, 5*time.Second, isDraw).(Draw)
		samples = append(samples, d.Received.Sub(sent))
		b.StopTimer()
		if err := s.KeyUp(b.Context(), 0x1E); err != nil {
			b.Fatal(err)
		}
		draws += 1 + len(drawsUntilQuiet(b, s, 150*time.Millisecond, 150*time.Millisecond))
		b.StartTimer()
	}
	b.StopTimer()
	if got := g.counter(b) - start; got != uint32(b.N) {
		b.Fatalf("the guest counted %d keys, %d were sent", got, b.N)
	}
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(samples[len(samples)/2]), "ms")
	b.ReportMetric(ms(samples[len(samples)*9/10]), "p90-ms")
	b.ReportMetric(ms(samples[0]), "min-ms")
	b.ReportMetric(ms(samples[len(samples)-1]), "max-ms")
	b.ReportMetric(float64(draws)/float64(b.N), "draws/key")
	b.ReportMetric(0, "ns/op")
}
