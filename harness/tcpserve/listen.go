package tcpserve

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/shakenfist/kerbside-latency/harness/address"
)

// DefaultListen is where a forwarder listens when told nothing: a free
// loopback port (read it back with Server.Addr).
const DefaultListen = "127.0.0.1:0"

// Listen sets up a forwarder that stands in front of one server (a link,
// a proxy): it parses target, the server's host:port, and listens on
// listen (empty means DefaultListen) with lc, whose Control, if any, sets
// the options accepted sockets inherit. what names the forwarder in the
// errors ("a link forwards one port"). It returns the listener and the
// target as host:port to dial; the one place that says what a
// forwarder's target may be.
func Listen(ctx context.Context, lc net.ListenConfig, what, listen, target string) (net.Listener, string, error) {
	if target == "" {
		return nil, "", errors.New("no target: want the server's host:port")
	}
	t, err := address.ParseDirect(target)
	if err != nil {
		return nil, "", fmt.Errorf("target: %w", err)
	}
	if t.TLSPort != 0 {
		return nil, "", fmt.Errorf("target %q names a TLS port too: a %s forwards one port, so start one per port", target, what)
	}
	if listen == "" {
		listen = DefaultListen
	}
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", listen, err)
	}
	return ln, t.HostPort(), nil
}
