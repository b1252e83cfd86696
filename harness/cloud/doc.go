// Package cloud provisions the loadtest's guest on OpenStack through
// gophercloud v2: it authenticates (clouds.yaml or OS_* variables), makes
// sure the UEFI latency guest image, the flavor and the network exist,
// boots a tagged server, waits for it to be ACTIVE and opens a spice-direct
// console (compute microversion 2.99) whose URL Kerbside answers with a
// .vv file.
//
// The console URL carries a one-time token: it is returned as a
// secret.URL and only its redacted form is ever logged.
//
// Every server it makes carries the Tag and the MetaLoadtest/MetaRunID
// metadata. Cleanup removes the run's server (even one whose create answer
// was lost) and must run on every exit path with a context of its own; see
// Provision and CleanupContext. Sweep removes servers earlier runs left,
// chosen by tag and metadata only.
//
// Calls that are safe to repeat (GET, DELETE, lists) are retried on 5xx
// and connection failures with bounded backoff; a create never is.
package cloud
