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
		return URL{}, fmt.Errorf("parse console URL (value hidden): %w", StripURLError(err))
	}
	if u.Scheme == "" || u.Host == "" {
		return URL{}, fmt.Errorf("parse console URL (value hidden): want an absolute http(s) URL with a host")
	}
	return URL{raw: raw, redacted: redact(u)}, nil
}

// RedactURL is the one rule for showing a URL that may carry a
// credential (a console token, a signed download URL, user info): scheme,
// host and path are kept, anything else is replaced by a marker. A
// file:// URL keeps its path. A URL that does not parse is never echoed.
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
