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
	"fmt"
	"log/slog"
	"net/url"
)

// Redacted is what a hidden value prints as.
const Redacted = "[redacted]"

// URL is a URL that carries a credential (typically ?token=...).
// Its zero value is an empty URL.
type URL struct {
	raw      string
	redacted string
}

// ParseURL parses raw and keeps it hidden. The error never quotes raw,
// because raw may carry the credential.
func ParseURL(raw string) (URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return URL{}, fmt.Errorf("parse console URL (value hidden): %w", stripURLError(err))
	}
	if u.Scheme == "" || u.Host == "" {
		return URL{}, fmt.Errorf("parse console URL (value hidden): want an absolute http(s) URL with a host")
	}
	red := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	s := red.String()
	if u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		s += "?" + Redacted
	}
	return URL{raw: raw, redacted: s}, nil
}

// stripURLError drops the quoted input from a *url.Error so that a
// malformed URL with a token in it is not echoed back.
func stripURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Reveal returns the full URL, credential included. Call it only where
// the URL is handed to the process that needs it (ryll's command line).
func (u URL) Reveal() string { return u.raw }

// IsZero reports whether u holds no URL.
func (u URL) IsZero() bool { return u.raw == "" }

// Redacted returns scheme://host/path, with a marker when a query was
// removed. It is safe to log.
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
