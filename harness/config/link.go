package config

import (
	"strings"

	"github.com/shakenfist/kerbside-latency/harness/link"
)

// loadLink reads LATENCY_LINK: the link (harness/link) between the
// client and the console it dials, parsed once. A link needs a real
// SPICE connection to sit in: the fake provider's simulator has none,
// and a ryll that already runs (LATENCY_RYLL_SOCKET) dialled its console
// before the run began.
func loadLink(p *parser, c *Config) {
	c.Link = p.linkProfile("LATENCY_LINK")
	if c.Link != nil {
		p.refuseLink(c, "LATENCY_LINK")
	}
}

// loadBLink reads LATENCY_B_LINK, the B leg's link, once the A/B is on
// (loadAB): without it the B leg crosses LATENCY_LINK's link, as A does.
func loadBLink(p *parser, c *Config, raw string) {
	ab := c.AB
	ab.BLink = c.Link
	if raw == "" {
		return
	}
	ab.BLink = p.linkProfile("LATENCY_B_LINK")
	ab.BLinkSet = true
	p.refuseLink(c, "LATENCY_B_LINK")
}

// linkProfile parses a link variable; nil when unset. A bad value's
// message lists the accepted forms (link.Parse's error).
func (p *parser) linkProfile(name string) *link.Profile {
	v := strings.TrimSpace(p.raw(name))
	if v == "" {
		return nil
	}
	prof, err := link.Parse(v)
	if err != nil {
		p.failName(name, "%s: %v", name, err)
		return nil
	}
	return &prof
}

// refuseLink reports the consoles a link cannot be put in front of.
func (p *parser) refuseLink(c *Config, name string) {
	switch c.Provider {
	case ProviderFake:
		p.failf("%s: the fake provider's simulator (fakeryll) has no SPICE connection for a link to carry; use LATENCY_PROVIDER=qemu (a real guest in a local QEMU) or a real console (direct, file, url, openstack)", name)
	case ProviderAttached:
		p.failf("%s: LATENCY_RYLL_SOCKET attaches to a ryll that already dialled its console; a link can only be put in front of a console this run connects to: unset one of them", name)
	}
}
