package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/remoteconsoles"

	"github.com/shakenfist/kerbside-latency/harness/address"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// ConsoleMode says which console Provision hands back.
type ConsoleMode string

// The console modes.
const (
	// ConsoleSpiceDirect is a spice-direct console: Kerbside's URL, which
	// serves a .vv file. It needs compute microversion 2.99 (Nova 2025.1)
	// and any project member may ask for one. The default.
	ConsoleSpiceDirect ConsoleMode = "spice-direct"
	// ConsoleDirect is the hypervisor's own SPICE address, found by
	// resolving a console token (GET /os-console-auth-tokens/{token},
	// microversion 2.31 or later), which only an admin may do. It measures
	// the same server without Kerbside in the path, and works on clouds
	// older than 2025.1 (the token comes from a spice-html5 console there).
	ConsoleDirect ConsoleMode = "direct"
)

// Errors callers may want to tell apart with errors.Is.
var (
	// ErrNotAdmin: the direct leg needs the admin-only console token API.
	ErrNotAdmin = errors.New("console token lookup forbidden: the direct leg needs an admin account")
	// ErrQuota: Nova refused the server for the project's quota.
	ErrQuota = errors.New("compute quota exceeded")
)

// preflight checks, before anything is created, that the cloud can give
// the console cfg asks for: a spice-direct console needs 2.99 (asked of
// Nova with a read-only call, so its own refusal is what the user sees),
// the direct leg needs 2.31 and the right to resolve console tokens.
func (c *Cloud) preflight(ctx context.Context, mode ConsoleMode, log *slog.Logger) error {
	switch mode {
	case ConsoleSpiceDirect:
		if c.maxMicroversion.atLeast(minConsoleMV) {
			return nil
		}
		cc := *c.compute
		cc.Microversion = minConsoleMV.String()
		_, err := cc.Get(ctx, cc.ServiceURL("flavors")+"?limit=1", nil, &gophercloud.RequestOpts{OkCodes: []int{http.StatusOK}})
		if err == nil {
			log.Info("the compute API accepted microversion 2.99 although it did not advertise it", "compute_max_microversion", c.maxMicroversion.String())
			return nil
		}
		err = computeErr(&cc, "ask for compute microversion "+ConsoleMicroversion, err)
		if errors.Is(err, ErrMicroversion) {
			return fmt.Errorf("spice-direct consoles need compute microversion %s (Nova 2025.1 or later), this cloud's maximum is %s: %w; "+
				"on this cloud an admin can measure the server's direct leg instead (LATENCY_OPENSTACK_CONSOLE=direct)",
				ConsoleMicroversion, c.maxMicroversion, err)
		}
		return err
	case ConsoleDirect:
		if c.maxMicroversion.known() && !c.maxMicroversion.atLeast(minTokenMV) {
			return fmt.Errorf("%w: the direct leg resolves console tokens, which needs compute microversion %s; this cloud's maximum is %s",
				ErrMicroversion, minTokenMV, c.maxMicroversion)
		}
		// A token no console has: an admin gets 404, anyone else 403.
		_, err := c.consoleToken(ctx, "00000000-0000-0000-0000-000000000000", false)
		switch {
		case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
			return nil
		case err == nil:
			return errors.New("resolve console tokens: the cloud resolved a made-up token; refusing to trust its answers")
		}
		return err
	}
	return fmt.Errorf("unknown console mode %q (want %q or %q)", mode, ConsoleSpiceDirect, ConsoleDirect)
}

// tokenClient is the compute client for os-console-auth-tokens: 2.99
// where the cloud has it (the answer then carries the TLS port), else 2.31.
func (c *Cloud) tokenClient(has299 bool) *gophercloud.ServiceClient {
	cc := *c.compute
	cc.Microversion = minTokenMV.String()
	if has299 {
		cc.Microversion = minConsoleMV.String()
	}
	return &cc
}

// consoleConnection is the answer of GET /os-console-auth-tokens/{token}.
type consoleConnection struct {
	InstanceUUID string `json:"instance_uuid"`
	Host         string `json:"host"`
	Port         *int   `json:"port"`
	TLSPort      *int   `json:"tls_port"`
}

// consoleToken resolves a console token (a credential: it is never logged
// and is left out of every error) to the hypervisor's address.
func (c *Cloud) consoleToken(ctx context.Context, token string, has299 bool) (*consoleConnection, error) {
	cc := c.tokenClient(has299)
	var body struct {
		Console *consoleConnection `json:"console"`
	}
	_, err := cc.Get(ctx, cc.ServiceURL("os-console-auth-tokens", url.PathEscape(token)), &body, nil)
	if err != nil {
		var code gophercloud.ErrUnexpectedResponseCode
		if errors.As(err, &code) {
			msg := strings.TrimSpace(string(code.Body))
			msg = strings.ReplaceAll(msg, token, secret.Redacted)
			switch code.Actual {
			case http.StatusForbidden:
				return nil, fmt.Errorf("%w (Nova's policy refused GET /os-console-auth-tokens: HTTP 403: %s); "+
					"use an account with the admin role, or measure through Kerbside (LATENCY_OPENSTACK_CONSOLE=spice-direct)", ErrNotAdmin, msg)
			case http.StatusNotFound:
				return nil, gophercloud.ErrUnexpectedResponseCode{Actual: code.Actual, Expected: code.Expected, Method: code.Method,
					URL: secret.Redacted, Body: []byte(msg)}
			}
			return nil, fmt.Errorf("resolve a console token at compute microversion %s: HTTP %d: %s", cc.Microversion, code.Actual, msg)
		}
		return nil, fmt.Errorf("resolve a console token: %w", secret.StripURLError(err))
	}
	if body.Console == nil {
		return nil, errors.New("resolve a console token: the answer has no console object")
	}
	return body.Console, nil
}

// directConsole opens a console on the server (spice-direct where the
// cloud has it, spice-html5 otherwise), resolves its token and returns
// the hypervisor's SPICE address (typed, checked once), and the console
// type it opened. When the compute range is unknown, spice-direct is tried
// first and a microversion refusal falls back to spice-html5.
func (c *Cloud) directConsole(ctx context.Context, id string, log *slog.Logger) (address.Direct, string, error) {
	type try struct {
		typ string
		mv  microversion
	}
	var tries []try
	switch {
	case c.maxMicroversion.atLeast(minConsoleMV):
		tries = []try{{"spice-direct", minConsoleMV}}
	case c.maxMicroversion.known():
		tries = []try{{"spice-html5", c.effective(minRemoteMV)}}
	default:
		tries = []try{{"spice-direct", minConsoleMV}, {"spice-html5", minRemoteMV}}
	}
	var rc *remoteconsoles.RemoteConsole
	var typ string
	var err error
	for _, tr := range tries {
		typ = tr.typ
		cc := *c.compute
		cc.Microversion = tr.mv.String()
		rc, err = remoteconsoles.Create(ctx, &cc, id, remoteconsoles.CreateOpts{
			Protocol: remoteconsoles.ConsoleProtocolSPICE, Type: remoteconsoles.ConsoleType(typ),
		}).Extract()
		if err == nil {
			break
		}
		err = computeErr(&cc, fmt.Sprintf("open a %s console on server %s", typ, id), err)
		if !errors.Is(err, ErrMicroversion) {
			return address.Direct{}, "", err
		}
		log.Info("console type refused for its microversion; trying the next", "console_type", typ, "error", summarize(err))
	}
	if err != nil {
		return address.Direct{}, "", err
	}
	if rc == nil || rc.Protocol != "spice" || rc.Type != typ {
		return address.Direct{}, "", fmt.Errorf("open a %s console on server %s: unexpected answer (protocol %q, type %q)", typ, id,
			safeField(rc, func(r *remoteconsoles.RemoteConsole) string { return r.Protocol }),
			safeField(rc, func(r *remoteconsoles.RemoteConsole) string { return r.Type }))
	}
	token, err := consoleURLToken(rc.URL)
	if err != nil {
		return address.Direct{}, "", fmt.Errorf("open a %s console on server %s: %w", typ, id, err)
	}
	conn, err := c.consoleToken(ctx, token, typ == "spice-direct")
	if err != nil {
		return address.Direct{}, "", fmt.Errorf("server %s: %w", id, err)
	}
	if conn.InstanceUUID != "" && conn.InstanceUUID != id {
		return address.Direct{}, "", fmt.Errorf("server %s: its console token resolves to another server (%s)", id, conn.InstanceUUID)
	}
	d := address.Direct{Host: conn.Host}
	if conn.Port != nil && *conn.Port > 0 && *conn.Port < 65536 {
		d.Port = uint16(*conn.Port)
	}
	if conn.TLSPort != nil && *conn.TLSPort > 0 && *conn.TLSPort < 65536 {
		d.TLSPort = uint16(*conn.TLSPort)
	}
	if d.Host == "" || d.Port == 0 {
		return address.Direct{}, "", fmt.Errorf("server %s: the console token resolves to no usable address (host %q, port %v)", id, conn.Host, derefInt(conn.Port))
	}
	// The address's one validator checks what Nova gave before ryll
	// sees it.
	if err := d.Validate(); err != nil {
		return address.Direct{}, "", fmt.Errorf("server %s: the console token resolves to %s: %w", id, d, err)
	}
	log.Info("console ready", "server_id", id, "console_type", typ, "direct", d.String())
	return d, typ, nil
}

func derefInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// consoleURLToken finds the token in a console URL: ?token=... (SPICE,
// spice-direct) or inside noVNC's ?path=%3Ftoken%3D....
func consoleURLToken(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("console URL: %w", secret.StripURLError(err))
	}
	q := u.Query()
	if t := q.Get("token"); t != "" {
		return t, nil
	}
	if p := q.Get("path"); p != "" {
		if pu, err := url.Parse(p); err == nil {
			if t := pu.Query().Get("token"); t != "" {
				return t, nil
			}
		}
	}
	return "", fmt.Errorf("console URL %s carries no token", secret.RedactConsoleURL(raw))
}

// createErr is computeErr for a server create, naming a quota refusal
// (403 "Quota exceeded ...") as ErrQuota with what to do about it.
func createErr(sc *gophercloud.ServiceClient, what string, err error) error {
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) && code.Actual == http.StatusForbidden && strings.Contains(strings.ToLower(string(code.Body)), "quota exceeded") {
		return fmt.Errorf("%s: %w: Nova said: %s; delete this project's unused servers (make sweep removes those of earlier loadtest runs), "+
			"or ask an admin to raise the quota, e.g. openstack quota set --instances N PROJECT",
			what, ErrQuota, novaMessage(code.Body))
	}
	return computeErr(sc, what, err)
}

// novaMessage is the message of a Nova fault body ({"forbidden": {"code":
// 403, "message": "..."}}), or the body itself when it is not one.
func novaMessage(body []byte) string {
	var fault map[string]struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &fault) == nil && len(fault) == 1 {
		for _, f := range fault {
			if f.Message != "" {
				return f.Message
			}
		}
	}
	return strings.TrimSpace(string(body))
}
