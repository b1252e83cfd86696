package cloud_test

import (
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

// BenchmarkProvisionAndCleanup measures one whole run against the fake:
// connect, image lookup (uploaded in the first iteration), flavor,
// network, boot, console and cleanup.
func BenchmarkProvisionAndCleanup(b *testing.B) {
	fc, err := fakecloud.Start(fakecloud.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer fc.Close()
	env := cloud.EnvFromMap(fc.Env())
	for b.Loop() {
		c, err := cloud.Connect(b.Context(), env, cloud.WithPollInterval(time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Provision(b.Context(), cloud.Config{ImageURL: fc.ImageURL(), RunID: cloud.NewRunID(time.Now())}); err != nil {
			b.Fatal(err)
		}
		if err := c.Cleanup(b.Context()); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
