// Package address parses the direct console addresses users give
// (LATENCY_CONSOLE=host:port or host:port:tls_port) once, for every part
// of the loadtest that needs one.
//
// There used to be two parsers, in the configuration and in the ryll
// launcher, and they disagreed ("[::1]:5900" passed the first and failed
// the second). An IPv6 literal must be written in brackets, as in a URL;
// ryll's own --direct splits on every colon and so cannot take one, which
// is why Direct says whether it can be handed to ryll as it is.
package address

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Direct is a SPICE server's address: a host, its plain port and,
// optionally, its TLS port.
type Direct struct {
	Host string
	Port uint16
	// TLSPort is zero when the server has no TLS port.
	TLSPort uint16
}

// ParseDirect parses host:port or host:port:tls_port. The host is a
// name, an IPv4 address or a bracketed IPv6 address ([::1]:5900 or
// [::1]:5900:5901). The error says which part is wrong and never
// guesses: an unbracketed IPv6 address is refused with the fix.
func ParseDirect(s string) (Direct, error) {
	if s == "" {
		return Direct{}, errors.New("the address is empty: want host:port or host:port:tls_port")
	}
	var host, rest string
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return Direct{}, fmt.Errorf("%q: an IPv6 address opened with [ has no closing ]", s)
		}
		host = s[1:end]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return Direct{}, fmt.Errorf("%q: %q in brackets is not an IPv6 address", s, host)
		}
		rest, _ = strings.CutPrefix(s[end+1:], ":")
		if rest == s[end+1:] {
			return Direct{}, fmt.Errorf("%q: want [ipv6]:port after the closing ]", s)
		}
	} else {
		if strings.Count(s, ":") > 2 {
			return Direct{}, fmt.Errorf("%q: too many colons; write an IPv6 address in brackets, e.g. [::1]:5900", s)
		}
		var ok bool
		host, rest, ok = strings.Cut(s, ":")
		if !ok {
			return Direct{}, fmt.Errorf("%q: no port: want host:port or host:port:tls_port", s)
		}
		if host == "" {
			return Direct{}, fmt.Errorf("%q: empty host", s)
		}
	}
	ports := strings.Split(rest, ":")
	if len(ports) > 2 {
		return Direct{}, fmt.Errorf("%q: want host:port or host:port:tls_port", s)
	}
	d := Direct{Host: host}
	var err error
	if d.Port, err = parsePort(ports[0]); err != nil {
		return Direct{}, fmt.Errorf("%q: port: %w", s, err)
	}
	if len(ports) == 2 {
		if d.TLSPort, err = parsePort(ports[1]); err != nil {
			return Direct{}, fmt.Errorf("%q: tls port: %w", s, err)
		}
	}
	return d, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return uint16(n), nil
}

// Validate checks a Direct built from parts (Nova's answer, a listener's
// address) as ParseDirect checks a string, so that every Direct that
// travels through the loadtest is one ParseDirect would give: a host (an
// IPv6 one unbracketed, as ParseDirect stores it) and a plain port.
func (d Direct) Validate() error {
	switch {
	case d.Host == "":
		return errors.New("empty host")
	case strings.ContainsAny(d.Host, "[]/ \t\n"):
		return fmt.Errorf("host %q: not a name or an IP address", d.Host)
	case d.IsIPv6() && net.ParseIP(d.Host) == nil:
		return fmt.Errorf("host %q: has a colon but is not an IPv6 address", d.Host)
	case d.Port == 0:
		return fmt.Errorf("%s: no port", d.Host)
	}
	return nil
}

// FromTCPAddr is the address a listener or a connection reports (a
// *net.TCPAddr), typed without printing and parsing it again.
func FromTCPAddr(a net.Addr) (Direct, error) {
	t, ok := a.(*net.TCPAddr)
	if !ok || t == nil {
		return Direct{}, fmt.Errorf("%v is not a TCP address", a)
	}
	if t.Port <= 0 || t.Port > 65535 {
		return Direct{}, fmt.Errorf("%v: port %d is not a port from 1 to 65535", a, t.Port)
	}
	if t.IP == nil {
		return Direct{}, fmt.Errorf("%v: no IP address", a)
	}
	return Direct{Host: t.IP.String(), Port: uint16(t.Port)}, nil
}

// IsZero reports whether d is no address (the zero Direct).
func (d Direct) IsZero() bool { return d == Direct{} }

// IsIPv6 reports whether the host is an IPv6 literal.
func (d Direct) IsIPv6() bool { return strings.Contains(d.Host, ":") }

// HostPort is host:port for net.Dial (brackets added for IPv6).
func (d Direct) HostPort() string {
	return net.JoinHostPort(d.Host, strconv.Itoa(int(d.Port)))
}

// TLSHostPort is host:tls_port for net.Dial; empty without a TLS port.
func (d Direct) TLSHostPort() string {
	if d.TLSPort == 0 {
		return ""
	}
	return net.JoinHostPort(d.Host, strconv.Itoa(int(d.TLSPort)))
}

// String is the address as ParseDirect reads it back ("" for the zero
// Direct).
func (d Direct) String() string {
	if d.IsZero() {
		return ""
	}
	s := d.HostPort()
	if d.TLSPort != 0 {
		s += ":" + strconv.Itoa(int(d.TLSPort))
	}
	return s
}

// RyllArg is the address in ryll's --direct form, and false when ryll
// cannot take it that way (an IPv6 host: ryll splits on every colon).
// The caller then hands ryll a .vv file instead.
func (d Direct) RyllArg() (string, bool) {
	if d.IsIPv6() {
		return "", false
	}
	return d.String(), true
}
