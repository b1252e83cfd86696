// Package secret keeps credentials out of logs, result files and JUnit
// reports.
//
// A Kerbside console URL carries a one-time token in its query string, a
// .vv file carries a SPICE password, and OpenStack runs carry OS_PASSWORD.
// Any of them reaching a CI artefact is a leak. The types here make the
// safe thing the default: formatting, JSON encoding and slog all see a
// redacted form, and only an explicit Reveal call yields the real value,
// so every place that handles the raw secret is easy to find with grep.
package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
)

// Redacted is what a hidden value prints as.
const Redacted = "[redacted]"

// URL is a console URL: a URL that carries a credential, in its query
// (Kerbside's ?token=...), its path (…/console/<token>), or its user
// info. It shows only its scheme and host. Its zero value is an empty
// URL.
type URL struct {
	raw      string
	redacted string
}

// ParseURL parses raw and keeps it hidden. The error never quotes raw,
// because raw may carry the credential.
func ParseURL(raw string) (URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return URL{}, fmt.Errorf("parse console URL (value hidden): %w", StripURLError(err))
	}
	if u.Scheme == "" || u.Host == "" {
		return URL{}, fmt.Errorf("parse console URL (value hidden): want an absolute http(s) URL with a host")
	}
	return URL{raw: raw, redacted: redactConsole(u)}, nil
}

// RedactConsoleURL is the rule for showing a console URL, or any URL
// whose path may be a credential: the scheme and host, and a marker when
// anything else (path, query, user info, fragment) was left out. A URL
// that does not parse is never echoed. URL.Redacted follows the same
// rule.
func RedactConsoleURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(unparsable URL)"
	}
	return redactConsole(u)
}

func redactConsole(u *url.URL) string {
	s := (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	if (u.Path != "" && u.Path != "/") || u.RawPath != "" || u.Opaque != "" || u.RawQuery != "" || u.ForceQuery ||
		u.User != nil || u.Fragment != "" {
		s += "/" + Redacted
	}
	return s
}

// minPart is the shortest part of a URL (a query value, a path segment)
// scrubbed on its own: shorter ones ("1", "nova") would blank unrelated
// text, and a real token is far longer.
const minPart = 6

// Parts lists every string of the URL to scrub from output the harness
// does not write itself (ryll's log, an error from a library): the URL
// whole; and its path, query, user info, fragment, query values, path
// segments and password, each of at least minPart bytes, in case the
// token is printed without the rest.
func (u URL) Parts() []string {
	if u.raw == "" {
		return nil
	}
	out := []string{u.raw}
	p, err := url.Parse(u.raw)
	if err != nil {
		return out // ParseURL accepted it, so this does not happen
	}
	add := func(v string) {
		if len(v) >= minPart && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	add(p.EscapedPath())
	add(p.Path)
	add(p.RawQuery)
	add(p.Fragment)
	for _, seg := range strings.Split(p.Path, "/") {
		add(seg)
	}
	for _, vs := range p.Query() {
		for _, v := range vs {
			add(v)
		}
	}
	if p.User != nil {
		add(p.User.String())
		if pw, ok := p.User.Password(); ok {
			add(pw)
		}
	}
	return out
}

// RedactURL is the rule for showing an API endpoint or a download URL,
// whose path names a resource (/identity/v3, /servers/<id>): scheme,
// host and path are kept, a query, user info or fragment is replaced by
// a marker. A file:// URL keeps its path. A URL that does not parse is
// never echoed. A console URL's path may be its token: show console
// URLs with RedactConsoleURL (or as a URL).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Path == "") {
		return "(unparsable URL)"
	}
	return redact(u)
}

func redact(u *url.URL) string {
	s := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	if u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		s += "?" + Redacted
	}
	return s
}

// StripURLError drops the URL that a *url.Error quotes (it may carry a
// credential) and keeps the operation and the cause, so "Get: dial tcp
// ...: connection refused" survives and the token does not.
func StripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		if ue.Op == "" || ue.Op == "parse" {
			return ue.Err
		}
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Reveal returns the full URL, credential included. Call it only where
// the URL is handed to the process that needs it (ryll's command line).
func (u URL) Reveal() string { return u.raw }

// IsZero reports whether u holds no URL.
func (u URL) IsZero() bool { return u.raw == "" }

// Redacted returns scheme://host, with a marker when anything more was
// left out (RedactConsoleURL). It is safe to log.
func (u URL) Redacted() string { return u.redacted }

// String returns the redacted form.
func (u URL) String() string { return u.redacted }

// GoString returns the redacted form, so %#v is safe too.
func (u URL) GoString() string { return "secret.URL(" + u.redacted + ")" }

// LogValue makes slog print the redacted form.
func (u URL) LogValue() slog.Value { return slog.StringValue(u.redacted) }

// MarshalJSON encodes the redacted form.
func (u URL) MarshalJSON() ([]byte, error) { return json.Marshal(u.redacted) }

// String is a hidden string such as a password.
type String struct{ v string }

// NewString wraps v.
func NewString(v string) String { return String{v: v} }

// Reveal returns the hidden value.
func (s String) Reveal() string { return s.v }

// IsZero reports whether s is empty.
func (s String) IsZero() bool { return s.v == "" }

// String returns a fixed marker, never the value.
func (s String) String() string {
	if s.v == "" {
		return ""
	}
	return Redacted
}

// GoString returns a fixed marker.
func (s String) GoString() string { return "secret.String(" + s.String() + ")" }

// LogValue makes slog print the marker.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes the marker.
func (s String) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
