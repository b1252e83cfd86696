package spice

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"strings"
)

// HostSubject is a parsed virt-viewer host-subject such as
// "C=US,O=Shaken Fist,CN=Kerbside Proxy": the subject a server
// certificate must carry when the .vv file pins one.
//
// Parsing and matching follow spice-common's ssl_verify.c, which
// virt-viewer and spice-gtk share: a backslash escapes only '\' and ',';
// spaces before a key are skipped; every entry needs a key, '=' and a
// non-empty value. A certificate matches when its subject has exactly the
// same attributes, of the same types in the same order, with values equal
// after trimming, collapsing inner whitespace and folding ASCII case.
// Anything else fails closed.
type HostSubject struct {
	text    string
	entries []subjectEntry
}

type subjectEntry struct {
	key   string
	oid   asn1.ObjectIdentifier
	value string // normalised
}

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

// ErrSubjectMismatch: the server certificate's subject is not the pinned
// host-subject.
var ErrSubjectMismatch = errors.New("server certificate subject does not match host-subject")

// ParseHostSubject parses a host-subject string.
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
		hs.entries = append(hs.entries, subjectEntry{key: k, oid: oid, value: normaliseSubjectValue(val.String())})
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

// String returns the text the subject was parsed from.
func (h HostSubject) String() string { return h.text }

// Match checks a certificate's subject against h.
func (h HostSubject) Match(cert *x509.Certificate) error {
	names := cert.Subject.Names // every attribute, in certificate order
	if len(names) != len(h.entries) {
		return fmt.Errorf("%w %q: the certificate subject %q has %d attributes, want %d", ErrSubjectMismatch, h.text, cert.Subject, len(names), len(h.entries))
	}
	for i, e := range h.entries {
		got := names[i]
		if !got.Type.Equal(e.oid) {
			return fmt.Errorf("%w %q: attribute %d of %q is %v, want %s", ErrSubjectMismatch, h.text, i, cert.Subject, got.Type, e.key)
		}
		v, ok := got.Value.(string)
		if !ok || normaliseSubjectValue(v) != e.value {
			return fmt.Errorf("%w %q: %s of %q differs", ErrSubjectMismatch, h.text, e.key, cert.Subject)
		}
	}
	return nil
}

// normaliseSubjectValue trims, collapses inner whitespace runs to one
// space and folds ASCII case, approximating OpenSSL's X509_NAME_cmp.
func normaliseSubjectValue(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), " "))
}

// tlsConfig builds the TLS client configuration virt-viewer would use:
// the server chain must verify against the CA (the system pool when none
// is given); then the subject must match host-subject when one is set,
// otherwise the certificate must name the host.
func tlsConfig(host string, caPEM []byte, hostSubject string) (*tls.Config, error) {
	var roots *x509.CertPool
	if len(caPEM) > 0 {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("TLS CA: no PEM certificate found")
		}
	}
	var subject *HostSubject
	if hostSubject != "" {
		hs, err := ParseHostSubject(hostSubject)
		if err != nil {
			return nil, err
		}
		subject = &hs
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done in VerifyConnection, because a SPICE
		// certificate is pinned by subject rather than by host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return fmt.Errorf("verify server certificate %q against the CA: %w", leaf.Subject, err)
			}
			if subject != nil {
				return subject.Match(leaf)
			}
			return verifyHost(leaf, host)
		},
	}
	if net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	return cfg, nil
}

// verifyHost checks the certificate names host: subjectAltName first,
// then the common name when there is no subjectAltName, as spice-common's
// verify_hostname does.
func verifyHost(cert *x509.Certificate, host string) error {
	err := cert.VerifyHostname(host)
	if err == nil {
		return nil
	}
	if len(cert.DNSNames) == 0 && len(cert.IPAddresses) == 0 && strings.EqualFold(cert.Subject.CommonName, host) {
		return nil
	}
	return fmt.Errorf("server certificate does not name %q (and no host-subject is pinned): %w", host, err)
}
