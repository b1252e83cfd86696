// Package spicetls holds the rule a SPICE viewer applies to a console's
// TLS port, as spice-common's ssl_verify.c states it for virt-viewer and
// spice-gtk alike: the server's chain must verify against the console's
// CA (the system's roots without one); then its subject must match the
// pinned host-subject, or, with none pinned, the certificate must name
// the host (its subjectAltName, or the common name of a certificate that
// has none).
//
// Two of the project's SPICE clients connect by it: the busy sessions'
// viewer (harness/guestload) and fakeryll's SPICE client, ryll's stand-in.
// It lives here once so that they cannot disagree about which console a
// .vv lets them reach.
package spicetls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrSubjectMismatch: the server certificate's subject is not the pinned
// host-subject.
var ErrSubjectMismatch = errors.New("the server certificate's subject is not the pinned host-subject")

// HostSubject is a parsed virt-viewer host-subject such as
// "C=US,O=Shaken Fist,CN=Kerbside Proxy": the subject a server
// certificate must carry when the .vv pins one.
//
// It is read as ssl_verify.c reads it: a backslash escapes only '\' and
// ','; spaces before a key are skipped; every entry needs a known key,
// '=' and a value. A certificate matches when its subject has exactly the
// same attributes, of the same types in the same order, with values equal
// after trimming, collapsing inner whitespace and folding ASCII case
// (OpenSSL's X509_NAME_cmp, approximated). Anything else fails closed.
type HostSubject struct {
	text    string
	entries []entry
}

type entry struct {
	key   string
	oid   asn1.ObjectIdentifier
	value string // normalised
}

// subjectOIDs are the keys a host-subject may use.
var subjectOIDs = map[string]asn1.ObjectIdentifier{
	"C":            {2, 5, 4, 6},
	"ST":           {2, 5, 4, 8},
	"L":            {2, 5, 4, 7},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"CN":           {2, 5, 4, 3},
	"DC":           {0, 9, 2342, 19200300, 100, 1, 25},
	"emailAddress": {1, 2, 840, 113549, 1, 9, 1},
}

// ParseHostSubject parses a host-subject. Its errors name the
// host-subject and what is wrong in it.
func ParseHostSubject(s string) (HostSubject, error) {
	hs := HostSubject{text: s}
	var key, val strings.Builder
	inValue := false
	finish := func() error {
		k := key.String()
		if val.Len() == 0 {
			return fmt.Errorf("host-subject %q: key %q has an empty value", s, k)
		}
		oid, ok := subjectOIDs[k]
		if !ok {
			return fmt.Errorf("host-subject %q: unknown key %q (want C, ST, L, O, OU, CN, DC or emailAddress)", s, k)
		}
		hs.entries = append(hs.entries, entry{key: k, oid: oid, value: normalise(val.String())})
		key.Reset()
		val.Reset()
		inValue = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c, escaped := s[i], false
		if c == '\\' {
			if i+1 == len(s) || (s[i+1] != '\\' && s[i+1] != ',') {
				return HostSubject{}, fmt.Errorf("host-subject %q: a backslash may escape only '\\' and ','", s)
			}
			i++
			c, escaped = s[i], true
		}
		switch {
		case !inValue && c == ' ' && key.Len() == 0 && !escaped:
			// spaces before a key are skipped
		case !inValue && c == ',' && !escaped:
			return HostSubject{}, fmt.Errorf("host-subject %q: entry %q has no '='", s, key.String())
		case !inValue && c == '=' && !escaped:
			inValue = true
		case !inValue:
			key.WriteByte(c)
		case c == ',' && !escaped:
			if err := finish(); err != nil {
				return HostSubject{}, err
			}
		default:
			val.WriteByte(c)
		}
	}
	switch {
	case inValue:
		if err := finish(); err != nil {
			return HostSubject{}, err
		}
	case key.Len() > 0:
		return HostSubject{}, fmt.Errorf("host-subject %q: entry %q has no '='", s, key.String())
	}
	if len(hs.entries) == 0 {
		return HostSubject{}, fmt.Errorf("host-subject %q: no entries", s)
	}
	return hs, nil
}

// String returns the text the host-subject was parsed from.
func (h HostSubject) String() string { return h.text }

// Match checks a certificate's subject against h.
func (h HostSubject) Match(cert *x509.Certificate) error {
	names := cert.Subject.Names // every attribute, in certificate order
	if len(names) != len(h.entries) {
		return fmt.Errorf("%w %q: the certificate's subject %q has %d attributes, want %d",
			ErrSubjectMismatch, h.text, cert.Subject, len(names), len(h.entries))
	}
	for i, e := range h.entries {
		got := names[i]
		if !got.Type.Equal(e.oid) {
			return fmt.Errorf("%w %q: attribute %d of %q is %v, want %s", ErrSubjectMismatch, h.text, i+1, cert.Subject, got.Type, e.key)
		}
		if v, ok := got.Value.(string); !ok || normalise(v) != e.value {
			return fmt.Errorf("%w %q: %s of %q differs", ErrSubjectMismatch, h.text, e.key, cert.Subject)
		}
	}
	return nil
}

// normalise trims, collapses inner whitespace runs to one space and folds
// ASCII case.
func normalise(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), " "))
}

// ClientConfig is the TLS client configuration a viewer of host uses:
// the chain must verify against caPEM (nil: the system's roots), then
// the subject must match subject (nil: the certificate must name host).
// A SPICE certificate is pinned by its subject rather than by a name, so
// the check is VerifyConnection's, not Go's default host name check.
func ClientConfig(host string, caPEM []byte, subject *HostSubject) (*tls.Config, error) {
	var roots *x509.CertPool
	if caPEM != nil {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the CA: no PEM certificate found")
		}
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified in VerifyConnection, below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return fmt.Errorf("verify the server certificate %q against the CA: %w", leaf.Subject, err)
			}
			if subject != nil {
				return subject.Match(leaf)
			}
			return namesHost(leaf, host)
		},
	}
	if net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	return cfg, nil
}

// namesHost checks that the certificate names host: its subjectAltName,
// or, for a certificate without one, its common name, as spice-common's
// verify_hostname does (Go's VerifyHostname alone ignores the common
// name).
func namesHost(cert *x509.Certificate, host string) error {
	err := cert.VerifyHostname(host)
	if err == nil {
		return nil
	}
	if len(cert.DNSNames) == 0 && len(cert.IPAddresses) == 0 && strings.EqualFold(cert.Subject.CommonName, host) {
		return nil
	}
	return fmt.Errorf("the server certificate does not name %q (and no host-subject is pinned): %w", host, err)
}
