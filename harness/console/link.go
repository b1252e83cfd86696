package console

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/link"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// A console's link (LATENCY_LINK, LATENCY_B_LINK) sits between the
// client and whatever the client dials: the qemu guest, the SPICE proxy
// in front of it, a direct address, or the host of a .vv file (fetched
// or given). Each port the client may dial (SPICE's plain port and its
// TLS port) gets a link of its own, and every SPICE channel is a
// connection of its own across it, both ways. TLS crosses it untouched:
// the link forwards bytes and never looks at them.
//
// The console keeps what the client is handed pointing at the link: a
// direct address becomes the links' loopback ports; a .vv file is
// copied, 0600 into the console's private directory, with host, port
// and tls-port rewritten and every other line (the password, the CA,
// host-subject, ...) as it was. The user's own .vv file is never
// changed.

// linked is the console's link state.
type linked struct {
	profile link.Profile
	links   []*link.Link
	// ended sums the links already closed (a Refresh replaces them).
	ended link.Stats
	// listen is what the client dials now, for Describe.
	listen string
}

// linkVV is the name of the rewritten .vv file in the private directory.
const linkVV = "console-link.vv"

// PutLink puts a link with profile p in front of what the console hands
// the client (RyllSource), on every port. Close stops it. ctx bounds the
// link's life as it bounds a proxy's (spiceproxy.Start): when it ends,
// every connection is closed. A console takes one link.
func (c *Console) PutLink(ctx context.Context, p link.Profile) error {
	if c.link != nil {
		return errors.New("put a link in front of the console: it already has one")
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("put a link in front of the console: %w", err)
	}
	c.link = &linked{profile: p, ended: link.Stats{Profile: p}}
	if err := c.startLink(ctx); err != nil {
		c.stopLink()
		c.link = nil
		return err
	}
	return nil
}

// startLink starts the links for what the console hands the client now.
func (c *Console) startLink(ctx context.Context) error {
	switch {
	case c.File != "":
		b, err := os.ReadFile(c.File)
		if err != nil {
			return fmt.Errorf("read the console's .vv to put a link in front of it: %w", err)
		}
		ep, err := vvEndpoint(b)
		if err != nil {
			return fmt.Errorf("the console's .vv: %w", err)
		}
		at, err := c.linkPorts(ctx, ep)
		if err != nil {
			return err
		}
		if c.privateDir == "" {
			if c.privateDir, err = tmpdir.Make("latency-console-"); err != nil {
				return fmt.Errorf("private directory for the linked .vv: %w", err)
			}
		}
		path := filepath.Join(c.privateDir, linkVV)
		if err := os.WriteFile(path, rewriteVV(b, at), 0o600); err != nil {
			return fmt.Errorf("write the linked .vv: %w", err)
		}
		c.File = path
	case !c.Direct.IsZero():
		at, err := c.linkPorts(ctx, vvAddr{host: c.Direct.Host, port: int(c.Direct.Port), tlsPort: int(c.Direct.TLSPort)})
		if err != nil {
			return err
		}
		c.Direct = address.Direct{Host: at.host, Port: uint16(at.port), TLSPort: uint16(at.tlsPort)}
	default:
		return fmt.Errorf("put a link in front of the %s console: it hands the client neither a .vv file nor an address", c.Provider)
	}
	return nil
}

// linkPorts starts a link to each port of ep and says where they listen.
func (c *Console) linkPorts(ctx context.Context, ep vvAddr) (vvAddr, error) {
	var at vvAddr
	for _, port := range []struct {
		name     string
		from, to *int
	}{{"port", &ep.port, &at.port}, {"tls-port", &ep.tlsPort, &at.tlsPort}} {
		if *port.from == 0 {
			continue
		}
		target := net.JoinHostPort(ep.host, strconv.Itoa(*port.from))
		l, err := link.Start(ctx, link.Config{Target: target, Profile: c.link.profile, Logger: c.logger.With("spice_port", port.name)})
		if err != nil {
			return vvAddr{}, fmt.Errorf("start the link (%s) in front of the console's %s %s: %w", c.link.profile, port.name, target, err)
		}
		c.link.links = append(c.link.links, l)
		listen, err := address.FromTCPAddr(l.Addr())
		if err != nil {
			return vvAddr{}, fmt.Errorf("the link's address: %w", err)
		}
		at.host, *port.to = listen.Host, int(listen.Port)
		c.logger.Info("link in front of the console", "profile", c.link.profile.String(), "spice_port", port.name,
			"listen", listen.String(), "target", target)
	}
	c.link.listen = at.String()
	return at, nil
}

// stopLink closes the console's links and keeps what they did.
func (c *Console) stopLink() error {
	if c.link == nil {
		return nil
	}
	var errs []error
	for _, l := range c.link.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop the link: %w", err))
		}
		c.link.ended = c.link.ended.Plus(l.Stats())
	}
	c.link.links = nil
	return errors.Join(errs...)
}

// relink puts the console's link in front of a new .vv (Refresh), the
// old links' figures kept.
func (c *Console) relink(ctx context.Context) error {
	if c.link == nil {
		return nil
	}
	if err := c.stopLink(); err != nil {
		return err
	}
	return c.startLink(ctx)
}

// LinkStats is what the console's link did so far, every port and every
// connection summed per direction (link.Stats); nil without a link. It
// holds after Close.
func (c *Console) LinkStats() *link.Stats {
	if c.link == nil {
		return nil
	}
	st := c.link.ended
	for _, l := range c.link.links {
		st = st.Plus(l.Stats())
	}
	return &st
}

// LinkProfile is the console's link profile; nil without a link.
func (c *Console) LinkProfile() *link.Profile {
	if c.link == nil {
		return nil
	}
	p := c.link.profile
	return &p
}

// describeLink is Describe's words for the link ("" without one).
func (c *Console) describeLink() string {
	if c.link == nil {
		return ""
	}
	return " through the link " + c.link.profile.String() + " at " + c.link.listen
}

// vvAddr is where a .vv points: a host and its plain and TLS ports
// (either may be 0, not both).
type vvAddr struct {
	host          string
	port, tlsPort int
}

func (a vvAddr) String() string {
	s := net.JoinHostPort(a.host, strconv.Itoa(a.port))
	if a.tlsPort != 0 {
		s += ":" + strconv.Itoa(a.tlsPort)
	}
	return s
}

// vvKey is a line's key in a .vv's [virt-viewer] section, lowercased,
// and its value; ok is false for any other line.
func vvKey(line string, inSection bool) (key, val string, ok bool) {
	if !inSection {
		return "", "", false
	}
	k, v, found := strings.Cut(strings.TrimSpace(line), "=")
	if !found {
		return "", "", false
	}
	return strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v), true
}

// vvLines walks a .vv's lines, saying for each whether it is in the
// [virt-viewer] section.
func vvLines(b []byte, f func(i int, line string, inSection bool)) {
	in := false
	for i, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "[") {
			in = strings.EqualFold(strings.TrimSpace(strings.Trim(t, "[]\r")), "virt-viewer")
		}
		f(i, line, in)
	}
}

// vvEndpoint reads the host, port and tls-port of a .vv's [virt-viewer]
// section. The error never quotes the file (it holds a password).
func vvEndpoint(b []byte) (vvAddr, error) {
	var a vvAddr
	var errs []error
	vvLines(b, func(_ int, line string, in bool) {
		k, v, ok := vvKey(line, in)
		if !ok {
			return
		}
		switch k {
		case "host":
			a.host = strings.Trim(v, "[]")
		case "port", "tls-port":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65535 {
				errs = append(errs, fmt.Errorf("%s %q is not a port", k, v))
				return
			}
			if k == "port" {
				a.port = n
			} else {
				a.tlsPort = n
			}
		}
	})
	switch {
	case a.host == "":
		errs = append(errs, errors.New("no host in its [virt-viewer] section"))
	case a.port == 0 && a.tlsPort == 0:
		errs = append(errs, errors.New("neither port nor tls-port in its [virt-viewer] section"))
	}
	return a, errors.Join(errs...)
}

// rewriteVV is b with the [virt-viewer] section's host, port and
// tls-port set to at's; every other line, its order and its line ending
// are kept.
func rewriteVV(b []byte, at vvAddr) []byte {
	lines := strings.Split(string(b), "\n")
	vvLines(b, func(i int, line string, in bool) {
		k, _, ok := vvKey(line, in)
		if !ok {
			return
		}
		cr := ""
		if strings.HasSuffix(line, "\r") {
			cr = "\r"
		}
		switch {
		case k == "host":
			lines[i] = "host=" + at.host + cr
		case k == "port" && at.port != 0:
			lines[i] = "port=" + strconv.Itoa(at.port) + cr
		case k == "tls-port" && at.tlsPort != 0:
			lines[i] = "tls-port=" + strconv.Itoa(at.tlsPort) + cr
		}
	})
	return []byte(strings.Join(lines, "\n"))
}
