package guestload

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/spicetls"
)

// maxVV bounds a .vv: a few hundred bytes and a CA certificate.
const maxVV = 1 << 20

// maxPassword is SPICE_MAX_PASSWORD_LENGTH: spice-server refuses longer
// tickets.
const maxPassword = 60

// vvConsole is what a busy session's viewer needs from a .vv file.
type vvConsole struct {
	Host    string
	Port    int // plain port; 0 when absent
	TLSPort int // 0 when absent
	// Password is the one-time ticket; never in an error or a log.
	Password secret.String
	// CA is the PEM the server certificate must chain to (nil: the
	// system's roots).
	CA []byte
	// HostSubject pins the server certificate's subject (nil: the
	// certificate must name Host).
	HostSubject *spicetls.HostSubject
}

// parseVV reads a virt-viewer .vv file as ryll does ([virt-viewer]
// section, case-insensitive keys, "key=value" or "key: value", '#' and
// ';' comments, empty or "None" values absent) and checks what a busy
// session needs, with errors that name the key and never the password.
func parseVV(b []byte) (vvConsole, error) {
	if len(b) > maxVV {
		return vvConsole{}, fmt.Errorf(".vv of %d bytes, more than %d: not a .vv file", len(b), maxVV)
	}
	sec, err := vvSection(string(b))
	if err != nil {
		return vvConsole{}, err
	}
	var v vvConsole
	if t, ok := sec["type"]; ok && !strings.EqualFold(t, "spice") {
		return vvConsole{}, fmt.Errorf(".vv type=%q: only spice consoles can be busy sessions", t)
	}
	if v.Host = sec["host"]; v.Host == "" {
		return vvConsole{}, errors.New(".vv has no host")
	}
	if strings.ContainsAny(v.Host, " \t/\\@?#") {
		return vvConsole{}, fmt.Errorf(".vv host=%q is not a host name or address", v.Host)
	}
	for key, dst := range map[string]*int{"port": &v.Port, "tls-port": &v.TLSPort} {
		s, ok := sec[key]
		if !ok {
			continue
		}
		p, err := strconv.Atoi(s)
		if err != nil || p < 0 || p > 65535 {
			return vvConsole{}, fmt.Errorf(".vv %s=%q: want a port, 1-65535 (0: none)", key, s)
		}
		*dst = p // 0 is no port, as a writer that has none may put it
	}
	if v.Port == 0 && v.TLSPort == 0 {
		return vvConsole{}, errors.New(".vv names neither port nor tls-port")
	}
	if pw := sec["password"]; pw != "" {
		if len(pw) > maxPassword {
			return vvConsole{}, fmt.Errorf(".vv password of %d bytes, more than SPICE's %d", len(pw), maxPassword)
		}
		v.Password = secret.NewString(pw)
	}
	if ca, ok := sec["ca"]; ok {
		pemCA := []byte(unescapeKeyFile(ca))
		if err := checkPEM(pemCA); err != nil {
			return vvConsole{}, fmt.Errorf(".vv ca: %w", err)
		}
		v.CA = pemCA
	}
	if hs, ok := sec["host-subject"]; ok {
		h, err := spicetls.ParseHostSubject(hs)
		if err != nil {
			return vvConsole{}, fmt.Errorf(".vv: %w", err)
		}
		v.HostSubject = &h
	}
	return v, nil
}

// vvSection returns the [virt-viewer] section's keys (lower case) with
// the values that are present.
func vvSection(s string) (map[string]string, error) {
	out := map[string]string{}
	in, seen := false, false
	for n, line := range strings.Split(strings.TrimPrefix(s, "\ufeff"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf(".vv line %d: a section header without ']'", n+1)
			}
			in = strings.EqualFold(strings.TrimSpace(line[1:end]), "virt-viewer")
			seen = seen || in
			continue
		}
		if !in {
			continue
		}
		cut := strings.IndexAny(line, "=:")
		if cut <= 0 {
			return nil, fmt.Errorf(".vv line %d: not a key=value line", n+1)
		}
		key, val := strings.ToLower(strings.TrimSpace(line[:cut])), strings.TrimSpace(line[cut+1:])
		if val == "" || strings.EqualFold(val, "none") {
			continue
		}
		out[key] = val
	}
	if !seen {
		return nil, errors.New("no [virt-viewer] section: not a .vv file")
	}
	return out, nil
}

// unescapeKeyFile undoes GKeyFile's escapes (\n, \t, \r, \s, \\), which
// is how a .vv carries a multi-line PEM on one line.
func unescapeKeyFile(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 's':
			b.WriteByte(' ')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// checkPEM accepts PEM holding at least one certificate and nothing that
// fails to parse as one.
func checkPEM(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("a PEM block of type %q, want CERTIFICATE", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate in it")
	}
	return nil
}

// addr is where the viewer links: the TLS port when there is one.
func (v vvConsole) addr() string {
	p := v.Port
	if v.TLSPort != 0 {
		p = v.TLSPort
	}
	return net.JoinHostPort(v.Host, strconv.Itoa(p))
}

// tlsConfig is the TLS a viewer of this console uses (nil without a TLS
// port): harness/spicetls's rule, with the .vv's CA and host-subject.
func (v vvConsole) tlsConfig() (*tls.Config, error) {
	if v.TLSPort == 0 {
		return nil, nil
	}
	return spicetls.ClientConfig(v.Host, v.CA, v.HostSubject)
}
