package spice

import (
	"crypto/tls"

	"github.com/shakenfist/kerbside-latency/harness/spicetls"
)

// tlsConfig is the TLS client configuration virt-viewer would use for
// host: harness/spicetls's rule, with the .vv's CA and host-subject.
func tlsConfig(host string, caPEM []byte, hostSubject string) (*tls.Config, error) {
	var subject *spicetls.HostSubject
	if hostSubject != "" {
		hs, err := spicetls.ParseHostSubject(hostSubject)
		if err != nil {
			return nil, err
		}
		subject = &hs
	}
	if len(caPEM) == 0 {
		caPEM = nil // the system's roots
	}
	return spicetls.ClientConfig(host, caPEM, subject)
}
