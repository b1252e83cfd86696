package spice

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/guest"
)

// This file boots the repaint-on-key guest (harness/guest) under a real
// QEMU for the tests that talk to a real spice-server. It is a test
// helper only: the product's QEMU provider is a separate package.

const qemuSkip = "qemu-system-x86_64 not found: apt-get install -y qemu-system-x86"

type qemuOpts struct {
	password    string // "" means disable-ticketing=on
	x509Dir     string // with TLS: ca-cert.pem, server-cert.pem, server-key.pem
	tlsChannels []string
}

type qemuGuest struct {
	host    string
	port    int
	tlsPort int
	qmp     *qmpClient
	dir     string
	exited  chan struct{}
	stderr  *tailBuffer
}

// bootQEMU starts QEMU with the guest, SPICE on loopback and QMP on a
// socket in a private directory, and stops it at cleanup (QMP quit, then
// kill). It fails, quoting QEMU's stderr, if QEMU exits early.
func bootQEMU(t testing.TB, o qemuOpts) *qemuGuest {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip(qemuSkip)
	}
	dir, err := os.MkdirTemp("", "spiceq") // short: unix socket paths are capped near 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	img := filepath.Join(dir, "guest.img")
	if err := os.WriteFile(img, guest.Image, 0o600); err != nil {
		t.Fatal(err)
	}
	g := &qemuGuest{host: "127.0.0.1", port: freePort(t), dir: dir, exited: make(chan struct{}), stderr: &tailBuffer{max: 8 << 10}}
	spiceOpt := fmt.Sprintf("port=%d,addr=%s", g.port, g.host)
	args := []string{"-accel", "tcg", "-drive", "format=raw,file=" + img + ",if=floppy", "-boot", "a",
		"-vga", "std", "-display", "none", "-nic", "none",
		"-qmp", "unix:" + filepath.Join(dir, "qmp.sock") + ",server=on,wait=off"}
	if o.password != "" {
		pw := filepath.Join(dir, "spice.pw")
		if err := os.WriteFile(pw, []byte(o.password), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-object", "secret,id=s0,file="+pw)
		spiceOpt += ",password-secret=s0"
	} else {
		spiceOpt += ",disable-ticketing=on"
	}
	if o.x509Dir != "" {
		g.tlsPort = freePort(t)
		spiceOpt += fmt.Sprintf(",tls-port=%d,x509-dir=%s", g.tlsPort, o.x509Dir)
		for _, c := range o.tlsChannels {
			spiceOpt += ",tls-channel=" + c
		}
	}
	args = append(args, "-spice", spiceOpt)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = g.stderr
	cmd.Stderr = g.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start QEMU: %v", err)
	}
	go func() { cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		if g.qmp != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			g.qmp.exec(ctx, "quit", nil)
			cancel()
			g.qmp.close()
		}
		select {
		case <-g.exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-g.exited
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	var qc *qmpClient
	for {
		select {
		case <-g.exited:
			t.Fatalf("QEMU exited before QMP answered: %s", g.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU's QMP socket did not answer within 15s: %s", g.stderr)
		}
		qc, err = dialQMP(t.Context(), filepath.Join(dir, "qmp.sock"))
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.qmp = qc
	for _, p := range []int{g.port, g.tlsPort} {
		if p == 0 {
			continue
		}
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(g.host, strconv.Itoa(p)), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("SPICE port %d does not accept: %v; QEMU: %s", p, err, g.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return g
}

// config is a Dial configuration for this guest.
func (g *qemuGuest) config() Config {
	return Config{Host: g.host, Port: g.port, TLSPort: g.tlsPort}
}

// counter reads the guest's key counter through QMP.
func (g *qemuGuest) counter(t testing.TB) uint32 {
	t.Helper()
	out := g.hmp(t, guest.CounterCommand())
	n, err := guest.ParseCounter(out)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (g *qemuGuest) hmp(t testing.TB, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	raw, err := g.qmp.exec(ctx, "human-monitor-command", map[string]any{"command-line": cmd})
	if err != nil {
		t.Fatalf("QMP %q: %v", cmd, err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("QMP %q answered %s: %v", cmd, raw, err)
	}
	return s
}

// screendump returns the screen as a PPM (P6) image.
func (g *qemuGuest) screendump(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(g.dir, "screen.ppm")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := g.qmp.exec(ctx, "screendump", map[string]any{"filename": path}); err != nil {
		t.Fatalf("QMP screendump: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ppmPixel returns the RGB of pixel (x, y) of a P6 PPM.
func ppmPixel(t testing.TB, ppm []byte, x, y int) [3]byte {
	t.Helper()
	var w, h, maxv int
	var magic string
	r := bytes.NewReader(ppm)
	if _, err := fmt.Fscan(r, &magic, &w, &h, &maxv); err != nil || magic != "P6" || maxv != 255 {
		t.Fatalf("not a P6 PPM: %q %v", magic, err)
	}
	r.ReadByte() // the single whitespace after maxval
	off := len(ppm) - r.Len() + 3*(y*w+x)
	if x >= w || y >= h || off+3 > len(ppm) {
		t.Fatalf("pixel (%d,%d) outside %dx%d", x, y, w, h)
	}
	return [3]byte{ppm[off], ppm[off+1], ppm[off+2]}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// qmpClient is the least of a QMP client: one command at a time.
type qmpClient struct {
	mu   sync.Mutex
	conn net.Conn
	rd   *bufio.Reader
}

func dialQMP(ctx context.Context, path string) (*qmpClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	q := &qmpClient{conn: conn, rd: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := q.rd.ReadBytes('\n'); err != nil { // greeting
		conn.Close()
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	conn.SetDeadline(time.Time{})
	if _, err := q.exec(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) exec(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetDeadline(dl)
	} else {
		q.conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", cmd, err)
	}
	for {
		line, err := q.rd.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("QMP %s: %w", cmd, err)
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class, Desc string
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("QMP %s: %q: %w", cmd, line, err)
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
		}
		if resp.Return != nil {
			return resp.Return, nil
		}
		// an event: keep reading
	}
}

func (q *qmpClient) close() { q.conn.Close() }

// tailBuffer keeps the last max bytes written, for failure messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) == 0 {
		return "(no output)"
	}
	return strings.TrimSpace(string(t.b))
}

// errorsIsAny is errors.Is for several targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
