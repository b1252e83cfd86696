package qemu

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/childproc"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Spec says how to boot one guest.
type Spec struct {
	// Binary is the QEMU system emulator: a path, or a name looked up in
	// PATH. Empty means DefaultBinary.
	Binary string

	// Image is the raw guest image (a 512-byte boot sector will do). It
	// is booted as a floppy from a private copy, because QEMU takes a
	// write lock on its image and every guest needs its own.
	Image []byte

	// Password is the SPICE password. When set it reaches QEMU through a
	// 0600 secret file, never the command line; when empty, SPICE runs
	// without a ticket (disable-ticketing=on). NewPassword makes one.
	Password secret.String

	// SpicePort is the plain SPICE port; zero means a free loopback port.
	// A fixed port is for a far end whose address someone else decided
	// (Nova's fake virt driver says 6969): it is tried once, never moved.
	SpicePort int

	// TLSPort, when set, adds a SPICE TLS port whose certificate, key and
	// CA QEMU reads from X509Dir (ca-cert.pem, server-cert.pem,
	// server-key.pem: QEMU's x509-dir). Plain and TLS ports serve every
	// channel.
	TLSPort int
	X509Dir string

	// Name is QEMU's -name, shown in ps and QEMU's messages. Empty means
	// "kerbside-latency". Letters, digits, '.', '_' and '-' only.
	Name string

	// MemoryMiB is the guest's RAM. Zero means DefaultMemoryMiB.
	MemoryMiB int

	// ExtraArgs are appended to QEMU's command line, for what Spec has no
	// field for. They are logged, so they must hold no secret; one that
	// contains the password is refused.
	ExtraArgs []string

	// LogPath receives everything QEMU writes to stdout and stderr. It is
	// required: a QEMU failure without its log cannot be diagnosed.
	LogPath string

	// Logger receives the manager's own progress messages. Nil discards
	// them.
	Logger *slog.Logger

	// ReadyTimeout bounds the wait for QMP to answer and the SPICE port
	// to accept, per attempt. Zero means DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// Grace bounds each rung of the Stop ladder. Zero fields take the
	// defaults (DefaultGrace).
	Grace Grace

	// TailLines is how many of QEMU's last output lines are kept for
	// error messages. Zero means DefaultTailLines.
	TailLines int
}

// Grace is how long Stop waits after each step before escalating, so a
// wedged QEMU can never hang the loadtest.
type Grace struct {
	// Quit is the wait after QMP quit, QEMU's own orderly shutdown.
	Quit time.Duration
	// Terminate is the wait after SIGTERM.
	Terminate time.Duration
	// Kill is the wait after SIGKILL, only for the kernel to reap it.
	Kill time.Duration
}

// DefaultGrace is used for zero fields of Spec.Grace. QMP quit gets the
// longest wait because it is the only step after which QEMU shuts down
// in order.
var DefaultGrace = Grace{Quit: 5 * time.Second, Terminate: 3 * time.Second, Kill: 2 * time.Second}

const (
	// DefaultReadyTimeout is generous: a tiny guest is ready in well
	// under a second under TCG, but N guests booting at once on two
	// shared cores queue behind each other.
	DefaultReadyTimeout = 30 * time.Second
	// DefaultTailLines is enough for QEMU's error and its warnings.
	DefaultTailLines = childproc.DefaultTailLines
	// DefaultMemoryMiB is enough for SeaBIOS and a boot-sector guest;
	// untouched guest RAM costs the host nothing.
	DefaultMemoryMiB = 32
	// DefaultName is QEMU's -name when Spec.Name is empty.
	DefaultName = "kerbside-latency"
	// MaxPasswordLen is spice-server's limit on a ticket
	// (SPICE_MAX_PASSWORD_LENGTH); a longer one fails inside QEMU.
	MaxPasswordLen = 60
	// maxImage bounds Image: a floppy holds 2.88 MB at the most.
	maxImage = 2880 << 10
	// maxSocketPath is the longest Unix socket path accepted, in bytes
	// (sun_path is 104 bytes on the BSDs, 108 on Linux, NUL included).
	maxSocketPath = 103
)

// Names of the files in a VM's private directory.
const (
	imageName  = "guest.img"
	secretName = "spice.pw"
	qmpName    = "qmp.sock"
)

// secretID is the id of the secret object holding the SPICE password.
const secretID = "spicepw"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// withDefaults fills zero fields.
func (s Spec) withDefaults() Spec {
	if s.Binary == "" {
		s.Binary = DefaultBinary
	}
	if s.Name == "" {
		s.Name = DefaultName
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = DefaultMemoryMiB
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = DefaultReadyTimeout
	}
	if s.TailLines == 0 {
		s.TailLines = DefaultTailLines
	}
	if s.Grace.Quit <= 0 {
		s.Grace.Quit = DefaultGrace.Quit
	}
	if s.Grace.Terminate <= 0 {
		s.Grace.Terminate = DefaultGrace.Terminate
	}
	if s.Grace.Kill <= 0 {
		s.Grace.Kill = DefaultGrace.Kill
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// validate reports every problem with s at once (after withDefaults).
// It never quotes the password.
func (s Spec) validate() error {
	var errs []error
	switch {
	case len(s.Image) == 0:
		errs = append(errs, errors.New("no guest image"))
	case len(s.Image) > maxImage:
		errs = append(errs, fmt.Errorf("guest image is %d bytes, over the %d bytes a floppy holds", len(s.Image), maxImage))
	}
	pw := s.Password.Reveal()
	if len(pw) > MaxPasswordLen {
		errs = append(errs, fmt.Errorf("SPICE password is %d bytes, over spice-server's limit of %d", len(pw), MaxPasswordLen))
	}
	if strings.ContainsAny(pw, "\x00\n\r") {
		errs = append(errs, errors.New("SPICE password holds a NUL or line break, which the SPICE ticket cannot carry"))
	}
	if !nameRE.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name %q: use letters, digits, '.', '_' and '-' only", s.Name))
	}
	if s.SpicePort < 0 || s.SpicePort > 65535 || s.TLSPort < 0 || s.TLSPort > 65535 {
		errs = append(errs, fmt.Errorf("SPICE ports %d and %d: want 0 to 65535", s.SpicePort, s.TLSPort))
	}
	if (s.TLSPort > 0) != (s.X509Dir != "") {
		errs = append(errs, errors.New("TLSPort and X509Dir go together: a TLS port needs its certificate directory"))
	}
	if s.MemoryMiB < 1 {
		errs = append(errs, fmt.Errorf("MemoryMiB %d is not positive", s.MemoryMiB))
	}
	if s.LogPath == "" {
		errs = append(errs, errors.New("no LogPath: QEMU's output must be kept for diagnosis"))
	}
	if s.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ReadyTimeout %s is negative", s.ReadyTimeout))
	}
	if s.TailLines < 0 {
		errs = append(errs, fmt.Errorf("TailLines %d is negative", s.TailLines))
	}
	for i, a := range s.ExtraArgs {
		if pw != "" && strings.Contains(a, pw) {
			errs = append(errs, fmt.Errorf("ExtraArgs[%d] holds the SPICE password: it would show in ps and the log", i))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid QEMU spec: %w", errors.Join(errs...))
	}
	return nil
}

// args builds QEMU's command line (without argv[0]) for a guest whose
// private files are in dir and whose SPICE server listens on port. It
// holds no secret, so it is safe to log.
func (s Spec) args(dir string, port int) []string {
	spice := "port=" + strconv.Itoa(port) + ",addr=127.0.0.1"
	a := []string{
		"-nodefaults", "-no-user-config",
		"-name", s.Name,
		"-accel", "tcg",
		"-m", strconv.Itoa(s.MemoryMiB),
		"-drive", "format=raw,file=" + dir + "/" + imageName + ",if=floppy",
		"-boot", "a",
		"-vga", "std",
		"-display", "none",
		"-nic", "none",
	}
	if s.TLSPort > 0 {
		spice += ",tls-port=" + strconv.Itoa(s.TLSPort) + ",x509-dir=" + s.X509Dir
	}
	if s.Password.IsZero() {
		spice += ",disable-ticketing=on"
	} else {
		a = append(a, "-object", "secret,id="+secretID+",file="+dir+"/"+secretName)
		spice += ",password-secret=" + secretID
	}
	a = append(a,
		"-spice", spice,
		"-qmp", "unix:"+dir+"/"+qmpName+",server=on,wait=off",
	)
	return append(a, s.ExtraArgs...)
}

// inheritedEnv names the parent's variables QEMU gets. It is an
// allow-list because the loadtest's environment holds OpenStack
// credentials that QEMU has no business with.
var inheritedEnv = []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"}

// childEnv is QEMU's whole environment.
func childEnv() []string {
	env := []string{}
	for _, name := range inheritedEnv {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// NewPassword returns a random SPICE password: 26 characters of base32
// (128 bits), within spice-server's limit and safe to paste anywhere.
func NewPassword() secret.String {
	return secret.NewString(rand.Text())
}
