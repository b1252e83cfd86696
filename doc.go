// Package latency is the Kerbside console latency loadtest.
//
// The loadtest itself lives in latency_test.go behind the "loadtest" build
// tag: run it with "make loadtest" or "go test -tags loadtest .". Library
// code lives under harness/ (control-socket client, ryll process, cloud
// provisioning, measurement, results), the stand-ins for what cannot run
// on a laptop live under fakeryll/ (ryll) and fixtures/ (OpenStack and
// Kerbside). See README.md.
package latency
