//go:build cloudtest && !loadtest

// End-to-end tests of the openstack provider against a real OpenStack:
// the dev cloud of deploy/devcloud (Debian 13's 2025.1 in a trixie chroot,
// in a network namespace of its own; Nova with its fake virt driver and
// spice-direct at microversion 2.99). `make cloud-test` builds the chroot,
// starts and seeds the cloud and runs these inside the cloud's namespace
// (deploy/devcloud/devcloud.sh exec), where 127.0.0.1 is the cloud's and
// the fake driver's console host, fakespiceconsole.com, is 127.0.0.1. By
// hand:
//
//	deploy/devcloud/devcloud.sh install && deploy/devcloud/devcloud.sh up /tmp/devcloud
//	go test -c -tags cloudtest -o /tmp/cloud.test .
//	DEVCLOUD_DIR=/tmp/devcloud deploy/devcloud/devcloud.sh exec /tmp/cloud.test -test.run '^TestCloud' -test.v
//
// The far end is real where a case says so (farEnd): the boot-sector
// guest in QEMU on the fake driver's console address (plain 6969, TLS
// 6970 with the lane's own CA), and the Kerbside stand-in
// (fixtures/kerbside) on Nova's spice_direct_proxy_base_url. Servers of
// the flavor DEVCLOUD_FLAVOR_GUEST (vdi-guest) get a guest of their own
// instead: the dev cloud's driver (deploy/devcloud, kerbside_devcloud.virt)
// boots the seeded image, our guest's qcow2, in a QEMU per server, its TLS
// port certified by the lane's CA (guestFarEnd). Those cases run one
// after another (the stand-in has one address, and every server of the
// other flavors has the same QEMU, which serves one client at a time),
// before the parallel ones, which measure with fakeryll's simulator.
// After each case no server of its run is left in Nova, and no password,
// console token or .vv password is in any output.
package latency

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/remoteconsoles"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fakeryll/spice"
	"github.com/shakenfist/kerbside-latency/fakeryll/vv"
	"github.com/shakenfist/kerbside-latency/fixtures/kerbside"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// devCloud is what deploy/devcloud/devcloud.sh up wrote.
type devCloud struct {
	dir     string
	admin   map[string]string // OS_* of the admin, in the loadtest's project
	member  map[string]string // OS_* of an ordinary member of that project
	noquota map[string]string // the admin in a project whose instance quota is 0
	info    map[string]string // devcloud.env
}

// secrets are the passwords of the dev cloud's accounts.
func (d devCloud) secrets() []string {
	return []string{d.admin["OS_PASSWORD"], d.member["OS_PASSWORD"]}
}

var (
	devCloudOnce sync.Once
	devCloudVal  devCloud
	devCloudErr  error
)

// theDevCloud reads DEVCLOUD_DIR, or skips saying how to run these tests.
func theDevCloud(t *testing.T) devCloud {
	t.Helper()
	dir := os.Getenv("DEVCLOUD_DIR")
	if dir == "" {
		t.Skip("SKIPPED: the real-cloud tests need a running dev cloud. Run `make cloud-test` (as root on Debian 12: " +
			"it installs Debian's OpenStack libraries, starts the cloud and runs these), or " +
			"deploy/devcloud/devcloud.sh up DIR then DEVCLOUD_DIR=DIR go test -tags cloudtest -run '^TestCloud' .")
	}
	devCloudOnce.Do(func() {
		d := devCloud{dir: dir}
		var err error
		if d.admin, err = readOpenrc(filepath.Join(dir, "admin-openrc")); err != nil {
			devCloudErr = err
			return
		}
		if d.member, err = readOpenrc(filepath.Join(dir, "openrc")); err != nil {
			devCloudErr = err
			return
		}
		if d.info, err = readOpenrc(filepath.Join(dir, "devcloud.env")); err != nil {
			devCloudErr = err
			return
		}
		// The admin works in the loadtest's project (its quota fits the
		// test flavors; the admin project's does not).
		d.admin["OS_PROJECT_NAME"] = d.member["OS_PROJECT_NAME"]
		d.noquota = maps.Clone(d.admin)
		d.noquota["OS_PROJECT_NAME"] = "kerbside-latency-noquota"
		devCloudVal = d
	})
	require.NoError(t, devCloudErr, "DEVCLOUD_DIR=%s: run deploy/devcloud/devcloud.sh up %s", dir, dir)
	return devCloudVal
}

// readOpenrc reads KEY=VALUE lines (an optional "export " first).
func readOpenrc(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok {
			out[k] = v
		}
	}
	return out, sc.Err()
}

// cloudEnv is a short direct-leg run against the dev cloud with creds.
// These cases check what the product does to a real cloud (boot, tags,
// consoles, cleanup), not latency: fakeryll's simulator stands in for
// ryll, and the run is recorded as simulated.
func cloudEnv(t *testing.T, fakeryll string, creds map[string]string) map[string]string {
	t.Helper()
	env := simulated(fastEnv(fakeryll))
	env["LATENCY_PROVIDER"] = "openstack"
	env["LATENCY_OPENSTACK_CONSOLE"] = "direct"
	env["LATENCY_BOOT_TIMEOUT"] = "2m"
	env["LATENCY_IMAGE_URL"] = "none"
	env["LATENCY_SAMPLES"] = "4"
	maps.Copy(env, creds)
	return env
}

// compute is an admin client of the dev cloud's Nova, for checking what a
// run left behind.
func compute(t *testing.T, creds map[string]string) *gophercloud.ServiceClient {
	t.Helper()
	pc, err := openstack.AuthenticatedClient(t.Context(), authOptions(creds))
	require.NoError(t, err)
	sc, err := openstack.NewComputeV2(pc, gophercloud.EndpointOpts{Region: creds["OS_REGION_NAME"]})
	require.NoError(t, err)
	sc.Microversion = "2.52"
	return sc
}

func authOptions(creds map[string]string) gophercloud.AuthOptions {
	return gophercloud.AuthOptions{
		IdentityEndpoint: creds["OS_AUTH_URL"], Username: creds["OS_USERNAME"], Password: creds["OS_PASSWORD"],
		TenantName: creds["OS_PROJECT_NAME"], DomainName: creds["OS_USER_DOMAIN_NAME"],
	}
}

func serviceClient(t *testing.T, creds map[string]string, f func(*gophercloud.ProviderClient, gophercloud.EndpointOpts) (*gophercloud.ServiceClient, error)) *gophercloud.ServiceClient {
	t.Helper()
	pc, err := openstack.AuthenticatedClient(t.Context(), authOptions(creds))
	require.NoError(t, err)
	sc, err := f(pc, gophercloud.EndpointOpts{Region: creds["OS_REGION_NAME"]})
	require.NoError(t, err)
	return sc
}

// serversOfRun lists, in every project, the servers whose name starts
// with the run's server name.
func serversOfRun(t *testing.T, sc *gophercloud.ServiceClient, runID string) []servers.Server {
	t.Helper()
	pages, err := servers.List(sc, servers.ListOpts{AllTenants: true}).AllPages(t.Context())
	require.NoError(t, err)
	all, err := servers.ExtractServers(pages)
	require.NoError(t, err)
	var out []servers.Server
	for _, s := range all {
		if strings.HasPrefix(s.Name, cloud.ServerNamePrefix+runID) {
			out = append(out, s)
		}
	}
	return out
}

// assertNoServerLeft: after a case, Nova holds no server of its run.
func assertNoServerLeft(t *testing.T, d devCloud, runID string) {
	t.Helper()
	left := serversOfRun(t, compute(t, d.admin), runID)
	names := make([]string, len(left))
	for i, s := range left {
		names[i] = s.Name + " " + s.ID + " " + s.Status
	}
	assert.Empty(t, names, "servers of run %s left in Nova", runID)
}

var consoleTokenRE = regexp.MustCompile(`token=[0-9a-f]{8}-`)

// assertNoSecrets searches the run's output and every file it wrote for
// the dev cloud's passwords, for console tokens, and for more (the
// Kerbside stand-in's tokens and .vv passwords).
func assertNoSecrets(t *testing.T, d devCloud, o outcome, more ...string) {
	t.Helper()
	texts := map[string][]byte{"output": []byte(o.output)}
	entries, err := os.ReadDir(o.dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(o.dir, e.Name()))
		require.NoError(t, err)
		texts[e.Name()] = b
	}
	for name, b := range texts {
		for _, s := range d.secrets() {
			require.NotEmpty(t, s)
			assert.False(t, bytes.Contains(b, []byte(s)), "%s contains a dev-cloud password", name)
		}
		for _, s := range more {
			require.NotEmpty(t, s)
			assert.False(t, bytes.Contains(b, []byte(s)), "%s contains a console token or .vv password", name)
		}
		assert.False(t, consoleTokenRE.Match(b), "%s contains a console token", name)
	}
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func imagesNamed(t *testing.T, d devCloud, name string) []images.Image {
	t.Helper()
	return imagesNamedAt(t.Context(), t, serviceClient(t, d.admin, openstack.NewImageV2), name)
}

func imagesNamedAt(ctx context.Context, t *testing.T, ic *gophercloud.ServiceClient, name string) []images.Image {
	t.Helper()
	pages, err := images.List(ic, images.ListOpts{Name: name}).AllPages(ctx)
	require.NoError(t, err)
	all, err := images.ExtractImages(pages)
	require.NoError(t, err)
	return all
}

// TestCloudDirectLegWithOSVariables: OS_* credentials, the seeded image,
// flavor and network, a tagged boot to ACTIVE, the console token resolved
// to the fake virt driver's SPICE address, and the run measured by
// fakeryll over --direct (2025.1 opens spice-direct consoles: their tokens
// carry the TLS port too). The server is kept, checked for its tag and
// metadata, then deleted by the test.
func TestCloudDirectLegWithOSVariables(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	env := cloudEnv(t, fr, d.admin)
	env["LATENCY_KEEP_SERVER"] = "1"
	o := runLoadtest(t, env)
	sc := compute(t, d.admin)
	kept := serversOfRun(t, sc, o.runID)
	t.Cleanup(func() {
		for _, s := range kept {
			_ = servers.Delete(context.WithoutCancel(t.Context()), sc, s.ID).ExtractErr()
		}
	})
	require.Equal(t, 0, o.exitCode)
	assert.Len(t, o.csv(t), 4)
	assert.Contains(t, o.output, "image found")
	assert.Contains(t, o.output, "flavor found")
	assert.Contains(t, o.output, "network found")
	assert.Contains(t, o.output, "console_type=spice-direct")
	assert.Regexp(t, `msg="started ryll".*--direct fakespiceconsole\.com:6969:6970`, o.output)
	assertNoRyllLeft(t, o.output)
	assertNoSecrets(t, d, o)

	require.Len(t, kept, 1, "LATENCY_KEEP_SERVER kept the server")
	s := kept[0]
	assert.Equal(t, "ACTIVE", s.Status)
	require.NotNil(t, s.Tags)
	assert.Contains(t, *s.Tags, cloud.Tag)
	assert.Equal(t, o.runID, s.Metadata[cloud.MetaRunID])
	assert.Equal(t, cloud.MetaLoadtestValue, s.Metadata[cloud.MetaLoadtest])
	require.NoError(t, servers.Delete(t.Context(), sc, s.ID).ExtractErr())
	require.Eventually(t, func() bool { return len(serversOfRun(t, sc, o.runID)) == 0 }, time.Minute, time.Second)
	kept = nil
}

// TestCloudCloudsYAMLUploadsAndCreates: clouds.yaml credentials; an image
// that Glance lacks is uploaded from a file:// URL with its UEFI
// properties, and a flavor that Nova lacks is created with its video
// extra spec. The test removes both afterwards.
func TestCloudCloudsYAMLUploadsAndCreates(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	suffix := randomSuffix(t)
	imageName, flavorName := "latency-cloudtest-image-"+suffix, "latency-cloudtest-flavor-"+suffix
	// The admin, in the loadtest's project, from clouds.yaml only.
	yaml, err := os.ReadFile(filepath.Join(d.dir, "clouds.yaml"))
	require.NoError(t, err)
	cy := filepath.Join(t.TempDir(), "clouds.yaml")
	require.NoError(t, os.WriteFile(cy, bytes.Replace(yaml, []byte("project_name: admin"), []byte("project_name: kerbside-latency"), 1), 0o600))
	env := cloudEnv(t, fr, map[string]string{"OS_CLOUD": "devcloud-admin", "OS_CLIENT_CONFIG_FILE": cy})
	env["LATENCY_IMAGE"] = imageName
	env["LATENCY_IMAGE_URL"] = "file://" + d.info["DEVCLOUD_IMAGE_FILE"]
	env["LATENCY_FLAVOR"] = flavorName

	ic := serviceClient(t, d.admin, openstack.NewImageV2)
	sc := compute(t, d.admin)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
		defer cancel()
		for _, im := range imagesNamedAt(ctx, t, ic, imageName) {
			_ = images.Delete(ctx, ic, im.ID).ExtractErr()
		}
		if id := flavorIDAt(ctx, t, sc, flavorName); id != "" {
			_ = flavors.Delete(ctx, sc, id).ExtractErr()
		}
	})
	o := runLoadtest(t, env)
	require.Equal(t, 0, o.exitCode)
	assert.Contains(t, o.output, `credentials="clouds.yaml cloud \"devcloud-admin\""`)
	assert.Contains(t, o.output, "image missing; uploading it")
	assert.Contains(t, o.output, "flavor missing; creating it")
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o)

	ims := imagesNamed(t, d, imageName)
	require.Len(t, ims, 1)
	assert.Equal(t, images.ImageStatusActive, ims[0].Status)
	st, err := os.Stat(d.info["DEVCLOUD_IMAGE_FILE"])
	require.NoError(t, err)
	assert.Equal(t, st.Size(), ims[0].SizeBytes)
	assert.Equal(t, "uefi", ims[0].Properties["hw_firmware_type"])
	assert.Equal(t, "64", ims[0].Properties["hw_video_ram"])
	id := flavorID(t, sc, flavorName)
	require.NotEmpty(t, id)
	specs, err := flavors.ListExtraSpecs(t.Context(), sc, id).Extract()
	require.NoError(t, err)
	assert.Equal(t, "64", specs["hw_video:ram_max_mb"])
}

func flavorID(t *testing.T, sc *gophercloud.ServiceClient, name string) string {
	t.Helper()
	return flavorIDAt(t.Context(), t, sc, name)
}

func flavorIDAt(ctx context.Context, t *testing.T, sc *gophercloud.ServiceClient, name string) string {
	t.Helper()
	pages, err := flavors.ListDetail(sc, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	require.NoError(t, err)
	all, err := flavors.ExtractFlavors(pages)
	require.NoError(t, err)
	for _, f := range all {
		if f.Name == name {
			return f.ID
		}
	}
	return ""
}

// TestCloudBootErrorFailsFast: a flavor larger than the fake host sends
// the server to ERROR ("No valid host was found."); the run fails at once
// with Nova's fault, not after the boot timeout, and deletes the server.
func TestCloudBootErrorFailsFast(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	env := cloudEnv(t, fr, d.admin)
	env["LATENCY_FLAVOR"] = d.info["DEVCLOUD_FLAVOR_TOO_BIG"]
	env["LATENCY_BOOT_TIMEOUT"] = "5m"
	o := runLoadtest(t, env)
	assert.NotEqual(t, 0, o.exitCode)
	assert.Regexp(t, `went to ERROR: No valid host was found`, o.output)
	assert.NotContains(t, o.output, "not ACTIVE after")
	assert.NotContains(t, o.output, "started ryll")
	assert.Contains(t, o.output, "cleanup done")
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o)
}

// TestCloudSIGTERMMidBoot: SIGTERM while the server boots stops the run
// and deletes the server.
func TestCloudSIGTERMMidBoot(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	cmd, out, o := startLoadtest(t, cloudEnv(t, fr, d.admin))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "server create accepted") },
		2*time.Minute, 20*time.Millisecond, "the server is being created")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	o.exitCode = wait(t, cmd, 2*time.Minute)
	o.output = out.String()
	t.Logf("output:\n%s", o.output)
	assert.NotEqual(t, 0, o.exitCode)
	assert.Contains(t, o.output, `msg="run interrupted" cause="received terminated"`)
	assert.Contains(t, o.output, "cleanup done")
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o)
}

// TestCloudSeveralConsoles: three servers at once, each measured, each
// deleted.
func TestCloudSeveralConsoles(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	env := cloudEnv(t, fr, d.admin)
	env["LATENCY_CONSOLES"] = "3"
	o := runLoadtest(t, env)
	require.Equal(t, 0, o.exitCode)
	require.Len(t, ryllPIDs(o.output), 3)
	assert.Equal(t, 3, strings.Count(o.output, "cleanup done"))
	assert.Equal(t, 3, strings.Count(o.output, "console_type=spice-direct"))
	assertNoRyllLeft(t, o.output)
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o)
}

// TestCloudQuotaRefusal: a project whose instance quota is 0 gets Nova's
// refusal and a hint, and nothing is left.
func TestCloudQuotaRefusal(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	o := runLoadtest(t, cloudEnv(t, fr, d.noquota))
	assert.NotEqual(t, 0, o.exitCode)
	assert.Contains(t, o.output, "Quota exceeded for instances: Requested 1, but already used 0 of 0 instances")
	assert.Contains(t, o.output, "openstack quota set --instances")
	assert.NotContains(t, o.output, "started ryll")
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o)
}

// TestCloudDirectLegNeedsAdmin: a member asking for the direct leg is
// told at once that it needs admin rights, and nothing is created.
func TestCloudDirectLegNeedsAdmin(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	o := runLoadtest(t, cloudEnv(t, fr, d.member))
	assert.NotEqual(t, 0, o.exitCode)
	assert.Contains(t, o.output, "the direct leg needs an admin account")
	assert.Contains(t, o.output, "Policy doesn't allow os_compute_api:os-console-auth-tokens to be performed.")
	assert.NotContains(t, o.output, "server create accepted")
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o)
}

var (
	sweepOnce sync.Once
	sweepBin  string
	sweepErr  error
)

// TestCloudSweepDeletesOnlyOurs plants a server of an "earlier run"
// (tag and metadata) and a server of someone else (neither), runs
// latency-sweep, and checks that only the first is gone. It does not run
// in parallel: a sweep would take the other cases' servers.
func TestCloudSweepDeletesOnlyOurs(t *testing.T) {
	d := theDevCloud(t)
	_, _ = binaries(t)
	sweepOnce.Do(func() {
		sweepBin = filepath.Join(buildDir, "latency-sweep")
		out, err := exec.Command("go", "build", "-o", sweepBin, "./cmd/latency-sweep").CombinedOutput()
		if err != nil {
			sweepErr = fmt.Errorf("go build ./cmd/latency-sweep: %w\n%s", err, out)
		}
	})
	require.NoError(t, sweepErr)

	sc := compute(t, d.admin)
	img := imagesNamed(t, d, d.info["DEVCLOUD_IMAGE"])
	require.NotEmpty(t, img)
	fl := flavorID(t, sc, d.info["DEVCLOUD_FLAVOR"])
	require.NotEmpty(t, fl)
	nc := serviceClient(t, d.admin, openstack.NewNetworkV2)
	pages, err := networks.List(nc, networks.ListOpts{Name: d.info["DEVCLOUD_NETWORK"]}).AllPages(t.Context())
	require.NoError(t, err)
	nets, err := networks.ExtractNetworks(pages)
	require.NoError(t, err)
	require.Len(t, nets, 1)

	suffix := randomSuffix(t)
	boot := func(name string, tags []string, meta map[string]string) string {
		s, err := servers.Create(t.Context(), sc, servers.CreateOpts{
			Name: name, ImageRef: img[0].ID, FlavorRef: fl, Networks: []servers.Network{{UUID: nets[0].ID}},
			Tags: tags, Metadata: meta,
		}, nil).Extract()
		require.NoError(t, err)
		t.Cleanup(func() { _ = servers.Delete(context.WithoutCancel(t.Context()), sc, s.ID).ExtractErr() })
		return s.ID
	}
	staleRun := "cloudtest-stale-" + suffix
	stale := boot(cloud.ServerNamePrefix+staleRun, []string{cloud.Tag},
		map[string]string{cloud.MetaLoadtest: cloud.MetaLoadtestValue, cloud.MetaRunID: staleRun})
	// Someone else's server, even named like ours, is never swept.
	foreign := boot(cloud.ServerNamePrefix+"not-ours-"+suffix, nil, map[string]string{"owner": "someone else"})

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sweepBin, "-older-than", "0")
	cmd.Env = childEnv(d.admin)
	out, err := cmd.CombinedOutput()
	t.Logf("latency-sweep:\n%s", out)
	require.NoError(t, err)
	assert.Contains(t, string(out), "deleted "+stale)
	assert.NotContains(t, string(out), foreign)
	for _, s := range d.secrets() {
		assert.NotContains(t, string(out), s)
	}

	_, err = servers.Get(t.Context(), sc, stale).Extract()
	assert.True(t, gophercloud.ResponseCodeIs(err, 404), "the stale loadtest server is gone (err %v)", err)
	got, err := servers.Get(t.Context(), sc, foreign).Extract()
	require.NoError(t, err, "the foreign server is still there")
	assert.Equal(t, foreign, got.ID)
}

// farEnd is the lane's hypervisor and Kerbside: the boot-sector guest in
// QEMU on the fake virt driver's console address (plain and TLS, its
// certificate from the lane's CA), and the Kerbside stand-in on Nova's
// spice_direct_proxy_base_url, resolving tokens with the admin's
// credentials.
type farEnd struct {
	vm *qemu.VM
	ks *kerbside.Kerbside
}

// startFarEnd starts both for one test and stops them after it.
func startFarEnd(t *testing.T, d devCloud) farEnd {
	t.Helper()
	host := d.info["DEVCLOUD_CONSOLE_HOST"]
	require.NotEmpty(t, host, "devcloud.env names no console host: rerun devcloud.sh up")
	addrs, err := net.DefaultResolver.LookupHost(t.Context(), host)
	if err != nil || !slices.Contains(addrs, "127.0.0.1") {
		t.Fatalf("%s does not resolve to 127.0.0.1 here (%v, %v): run the tests inside the cloud's namespace, "+
			"deploy/devcloud/devcloud.sh exec (make cloud-test does)", host, addrs, err)
	}
	port, err := strconv.Atoi(d.info["DEVCLOUD_CONSOLE_PORT"])
	require.NoError(t, err)
	tlsPort, err := strconv.Atoi(d.info["DEVCLOUD_CONSOLE_TLS_PORT"])
	require.NoError(t, err)

	dir := t.TempDir()
	x509Dir := filepath.Join(dir, "x509")
	ca := laneCA(t, host, x509Dir)

	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	vm, err := qemu.Start(t.Context(), qemu.Spec{Image: guest.Image, Name: "cloud-lane", SpicePort: port, TLSPort: tlsPort,
		X509Dir: x509Dir, LogPath: filepath.Join(dir, "qemu.log"), Logger: logger})
	require.NoError(t, err, "the lane's guest on %s:%d and TLS %d", host, port, tlsPort)
	t.Cleanup(func() { _ = vm.Stop(context.WithoutCancel(t.Context())) })
	return farEnd{vm: vm, ks: startStandIn(t, d, ca, logger)}
}

// laneCA makes the lane's CA and writes QEMU's x509 directory (its CA,
// and a certificate for the console host and 127.0.0.1) into x509Dir.
func laneCA(t *testing.T, host, x509Dir string) *kerbside.CA {
	t.Helper()
	ca, err := kerbside.NewCA("kerbside-latency cloud lane")
	require.NoError(t, err)
	leaf, err := ca.Issue(pkix.Name{Organization: []string{"kerbside-latency"}, CommonName: host},
		[]string{host}, []net.IP{net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(x509Dir, 0o700))
	require.NoError(t, ca.WriteQEMUDir(x509Dir, leaf))
	return ca
}

// startStandIn starts the Kerbside stand-in on Nova's
// spice_direct_proxy_base_url for one test.
func startStandIn(t *testing.T, d devCloud, ca *kerbside.CA, logger *slog.Logger) *kerbside.Kerbside {
	t.Helper()
	ks, err := kerbside.Start(t.Context(), kerbside.Config{Listen: d.info["DEVCLOUD_KERBSIDE_LISTEN"], Credentials: d.admin,
		CA: ca, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ks.Close() })
	return ks
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// keysSeen is the guest's own key counter.
func (f farEnd) keysSeen(t *testing.T) uint64 {
	t.Helper()
	n, err := f.vm.ReadCounter(t.Context(), guest.CounterAddr, 4)
	require.NoError(t, err)
	return n
}

// realEnv is a short run with real SPICE against the dev cloud: no
// LATENCY_RYLL, so the harness picks ryll or, without it, fakeryll's real
// SPICE client; jittered presses, as the real lane's.
func realEnv(creds map[string]string) map[string]string {
	env := map[string]string{
		"LATENCY_PROVIDER":       "openstack",
		"LATENCY_BOOT_TIMEOUT":   "2m",
		"LATENCY_IMAGE_URL":      "none",
		"LATENCY_SAMPLES":        "10",
		"LATENCY_CADENCE":        "300ms",
		"LATENCY_KEY_HOLD":       "30ms",
		"LATENCY_CADENCE_JITTER": "100ms",
		"LATENCY_MAX_DURATION":   "120s",
		"LATENCY_READY_TIMEOUT":  "30s",
	}
	maps.Copy(env, creds)
	return env
}

// TestCloudSpiceDirectRealSession: the default path against Nova 2025.1.
// A member's spice-direct console (2.99) is Kerbside's URL; the stand-in
// resolves its token, answers a .vv, and the session goes through its
// proxy over TLS (the lane's CA, host-subject) to the guest in QEMU. The
// samples come from that real SPICE session: the guest counted the keys.
func TestCloudSpiceDirectRealSession(t *testing.T) {
	d := theDevCloud(t)
	_, _ = binaries(t)
	fe := startFarEnd(t, d)
	before := fe.keysSeen(t)
	o := runLoadtest(t, realEnv(d.member))
	require.Equal(t, 0, o.exitCode)
	samples := o.csv(t)
	assert.Len(t, samples, 10)
	for _, s := range samples {
		assert.Greater(t, s, 0.0)
	}
	assert.Contains(t, o.output, "fakeryll's real SPICE client stands in for ryll")
	assert.Contains(t, o.output, `msg="console ready"`)
	assert.Contains(t, o.output, "console_url=http://127.0.0.1:"+strings.Split(d.info["DEVCLOUD_KERBSIDE_LISTEN"], ":")[1])
	assert.Contains(t, o.output, "cleanup done")
	assert.GreaterOrEqual(t, fe.keysSeen(t)-before, uint64(len(samples)), "every sample is a key the guest counted")
	st, fx := fe.ks.Stats(), fe.ks.Fetches()
	t.Logf("stand-in: %+v, fetches %+v", st, fx)
	assert.Equal(t, 1, fx.VV, "one .vv for the one console")
	assert.GreaterOrEqual(t, st.Linked, 3, "main, display and inputs linked through the stand-in")
	assert.Positive(t, st.NeedSecured, "the plain port sent the client to TLS")
	assert.Zero(t, st.Denied)
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o, fe.ks.Secrets()...)
}

// TestCloudKerbsideTokenAndPasswordAreOneTime: at the stand-in, a console
// token gets one .vv (the second fetch is 403) and the .vv's password
// opens one session (a second is PERMISSION_DENIED); a used token, and a
// token of a deleted server, give the loadtest's clear 4xx messages.
func TestCloudKerbsideTokenAndPasswordAreOneTime(t *testing.T) {
	d := theDevCloud(t)
	_, fr := binaries(t)
	fe := startFarEnd(t, d)
	sc := compute(t, d.admin)
	id := bootServer(t, d, sc, cloud.ServerNamePrefix+"cloudtest-onetime-"+randomSuffix(t))

	first := spiceDirectURL(t, sc, id)
	status, body := fetch(t, first)
	require.Equal(t, http.StatusOK, status, "%s", body)
	cfg, err := vv.Parse(body)
	require.NoError(t, err)
	assert.Equal(t, kerbside.HostSubject, cfg.HostSubject)
	assert.NotEmpty(t, cfg.CA)
	status, body = fetch(t, first)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, string(body), kerbside.MsgUsed)

	// The password: one session, then never again.
	spiceCfg := spice.Config{Host: cfg.Host, Port: int(cfg.Port), TLSPort: int(cfg.TLSPort), Password: cfg.Password,
		CA: []byte(strings.ReplaceAll(cfg.CA, `\n`, "\n")), HostSubject: cfg.HostSubject}
	s1, err := spice.Dial(t.Context(), spiceCfg)
	require.NoError(t, err, "the first session with the .vv's password")
	require.NoError(t, s1.Close())
	_, err = spice.Dial(t.Context(), spiceCfg)
	require.Error(t, err, "a second session with the same password")
	assert.ErrorIs(t, err, spice.ErrPermissionDenied)

	// The loadtest given a used console URL says what is wrong.
	env := fastEnv(fr)
	env["LATENCY_PROVIDER"] = "url"
	env["LATENCY_CONSOLE"] = first
	o := runLoadtest(t, env)
	assert.NotEqual(t, 0, o.exitCode)
	assert.Contains(t, o.output, "HTTP 403: the console token is unknown, used or expired")
	assertNoSecrets(t, d, o, append(fe.ks.Secrets(), tokenOf(t, first))...)

	// A token Nova no longer knows (its server deleted: expired) is 404.
	second := spiceDirectURL(t, sc, id)
	require.NoError(t, servers.Delete(t.Context(), sc, id).ExtractErr())
	require.Eventually(t, func() bool {
		_, err := servers.Get(t.Context(), sc, id).Extract()
		return gophercloud.ResponseCodeIs(err, http.StatusNotFound)
	}, time.Minute, 500*time.Millisecond)
	env["LATENCY_CONSOLE"] = second
	o = runLoadtest(t, env)
	assert.NotEqual(t, 0, o.exitCode)
	assert.Contains(t, o.output, "HTTP 404: the console token is unknown, used or expired")
	assertNoSecrets(t, d, o, append(fe.ks.Secrets(), tokenOf(t, second))...)
	fx := fe.ks.Fetches()
	t.Logf("stand-in fetches: %+v", fx)
	assert.Equal(t, [3]int{1, 2, 1}, [3]int{fx.VV, fx.Used, fx.Unknown}, "the stand-in's answers: .vv, used, unknown")
}

// TestCloudABOneServer: one server measured both ways in one run, both
// legs real SPICE: A its direct leg (the console token resolved by the
// admin, straight to QEMU's plain port), B its spice-direct console
// through the stand-in and our proxy over TLS, a fresh .vv per block.
func TestCloudABOneServer(t *testing.T) {
	d := theDevCloud(t)
	_, _ = binaries(t)
	fe := startFarEnd(t, d)
	env := realEnv(d.admin)
	env["LATENCY_OPENSTACK_CONSOLE"] = "direct"
	env["LATENCY_B_PROVIDER"] = "openstack"
	env["LATENCY_SAMPLES"] = "10"
	env["LATENCY_AB_BLOCK"] = "5"
	// The verdict is not what this case checks (no timed assertion on a
	// shared machine): a generous bound keeps it from failing the run.
	env["LATENCY_AB_MAX_ADDED"] = "1s"
	o := runLoadtest(t, env)
	// A pass, or on a host the run found too busy (the cloud's own
	// daemons share these two cores), inconclusive naming the host.
	ab, err := results.ReadAB(filepath.Join(o.dir, results.ABName(o.runID)))
	require.NoError(t, err)
	assertABPassOrBusyHost(t, o, ab)
	i := strings.Index(o.output, "A/B run")
	require.GreaterOrEqual(t, i, 0, "the A/B table is printed")
	// The table ends with its own verdict line (the header has a verdict
	// column too).
	table := o.output[i:]
	if j := strings.Index(table, "\nverdict"); j >= 0 {
		if k := strings.Index(table[j+1:], "\n"); k >= 0 {
			table = table[:j+1+k]
		}
	}
	t.Logf("the one-server A/B on the real cloud:\n%s", table)
	assert.Regexp(t, `A\s+.*10 samples in 2 blocks`, table)
	assert.Regexp(t, `B\s+.*10 samples in 2 blocks`, table)
	assert.Regexp(t, `(?m)^keypress_to_screen\s`, table)
	assert.Regexp(t, `(?m)^verdict\s`, table)
	fx, st := fe.ks.Fetches(), fe.ks.Stats()
	t.Logf("stand-in: %+v, fetches %+v", st, fx)
	assert.GreaterOrEqual(t, fx.VV, 2, "a fresh .vv for every B block")
	assert.GreaterOrEqual(t, fe.keysSeen(t), uint64(20), "both legs' keys reached the guest")
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o, fe.ks.Secrets()...)
}

// guestFarEnd is the far end of servers with a guest of their own: the
// lane's CA writes the x509 directory that the dev cloud's driver gives
// every guest's TLS port (DEVCLOUD_GUEST_X509, read when a guest starts,
// so before the boot), and the Kerbside stand-in trusts that CA.
func guestFarEnd(t *testing.T, d devCloud) *kerbside.Kerbside {
	t.Helper()
	x509Dir := d.info["DEVCLOUD_GUEST_X509"]
	require.NotEmpty(t, x509Dir, "devcloud.env names no DEVCLOUD_GUEST_X509: rerun devcloud.sh up")
	ca := laneCA(t, d.info["DEVCLOUD_CONSOLE_HOST"], x509Dir)
	t.Cleanup(func() { _ = os.RemoveAll(x509Dir) })
	return startStandIn(t, d, ca, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
}

// guestKeys reads the key counter of a server's own guest, through the
// QMP socket the dev cloud's driver gives its QEMU.
func guestKeys(t *testing.T, d devCloud, id string) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, err := qemu.DialQMP(ctx, filepath.Join(d.info["DEVCLOUD_GUEST_DIR"], id, "qmp.sock"))
	require.NoError(t, err, "server %s has no guest of its own", id)
	defer func() { _ = q.Close() }()
	var out string
	require.NoError(t, q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": guest.CounterCommand()}, &out))
	n, err := guest.ParseCounter(out)
	require.NoError(t, err)
	return n
}

// guestPID is the pid of a server's QEMU, from the driver's pidfile.
func guestPID(t *testing.T, d devCloud, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.info["DEVCLOUD_GUEST_DIR"], id, "qemu.pid"))
	require.NoError(t, err, "server %s has no guest of its own", id)
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	require.NoError(t, err)
	return pid
}

// TestCloudTwoServersOwnGuests: two servers of the guest flavor, booted
// from the seeded image (our guest's qcow2, from Glance), each get a QEMU
// of their own; each console is measured with real SPICE through its
// spice-direct console and the Kerbside stand-in, and each guest counts
// only its own keys: A's presses reach A's counter and not B's, and the
// other way round. Deleting a server stops its QEMU.
func TestCloudTwoServersOwnGuests(t *testing.T) {
	d := theDevCloud(t)
	_, _ = binaries(t)
	ks := guestFarEnd(t, d)
	sc := compute(t, d.admin)
	suffix := randomSuffix(t)
	ids, took := bootServers(t, d, sc, d.info["DEVCLOUD_FLAVOR_GUEST"],
		cloud.ServerNamePrefix+"cloudtest-guest-a-"+suffix, cloud.ServerNamePrefix+"cloudtest-guest-b-"+suffix)
	pids := make([]int, len(ids))
	for i, id := range ids {
		pids[i] = guestPID(t, d, id)
		t.Logf("server %c %s: create to ACTIVE (its guest painted) in %s, QEMU pid %d", 'A'+i, id, took[i].Round(time.Millisecond), pids[i])
		t.Attr(fmt.Sprintf("boot_ms_%c", 'a'+i), strconv.FormatInt(took[i].Milliseconds(), 10))
		assert.Zero(t, guestKeys(t, d, id), "a fresh guest has counted no key")
	}
	require.NotEqual(t, pids[0], pids[1], "each server has a QEMU of its own")

	samples := []int{10, 6}
	keys := make([]uint32, len(ids))
	for i, id := range ids {
		u := spiceDirectURL(t, sc, id)
		env := realEnv(nil)
		delete(env, "LATENCY_BOOT_TIMEOUT")
		delete(env, "LATENCY_IMAGE_URL")
		env["LATENCY_PROVIDER"] = "url"
		env["LATENCY_CONSOLE"] = u
		env["LATENCY_SAMPLES"] = strconv.Itoa(samples[i])
		o := runLoadtest(t, env)
		require.Equal(t, 0, o.exitCode)
		got := o.csv(t)
		assert.Len(t, got, samples[i])
		for _, v := range got {
			assert.Greater(t, v, 0.0)
		}
		assert.Contains(t, o.output, "fakeryll's real SPICE client stands in for ryll")
		assertNoSecrets(t, d, o, append(ks.Secrets(), tokenOf(t, u))...)
		keys[i] = guestKeys(t, d, id)
		assert.GreaterOrEqual(t, keys[i], uint32(samples[i]), "server %c's guest counted every key of its run", 'A'+i)
		for j := range ids {
			switch {
			case j < i:
				assert.Equal(t, keys[j], guestKeys(t, d, ids[j]), "server %c's guest saw none of %c's keys", 'A'+j, 'A'+i)
			case j > i:
				assert.Zero(t, guestKeys(t, d, ids[j]), "server %c's guest saw none of %c's keys", 'A'+j, 'A'+i)
			}
		}
	}
	t.Logf("key counters: A %d, B %d", keys[0], keys[1])
	assert.NotEqual(t, keys[0], keys[1])
	st, fx := ks.Stats(), ks.Fetches()
	t.Logf("stand-in: %+v, fetches %+v", st, fx)
	assert.Equal(t, 2, fx.VV, "one .vv for each console")
	assert.GreaterOrEqual(t, st.Linked, 6, "main, display and inputs of both sessions linked through the stand-in")
	assert.Zero(t, st.Denied)

	for i, id := range ids {
		require.NoError(t, servers.Delete(t.Context(), sc, id).ExtractErr())
		require.Eventually(t, func() bool {
			_, err := os.Stat(filepath.Join(d.info["DEVCLOUD_GUEST_DIR"], id))
			return errors.Is(err, os.ErrNotExist) && !running(pids[i])
		}, time.Minute, 200*time.Millisecond, "server %c deleted: its QEMU (pid %d) stopped and its directory removed", 'A'+i, pids[i])
	}
}

// bootServer boots a server of the seeded image, flavor and network and
// waits for ACTIVE; it is deleted after the test if still there.
func bootServer(t *testing.T, d devCloud, sc *gophercloud.ServiceClient, name string) string {
	t.Helper()
	ids, _ := bootServers(t, d, sc, d.info["DEVCLOUD_FLAVOR"], name)
	return ids[0]
}

// bootServers creates a server of the seeded image and network and of
// flavor for each name, all at once, and waits until every one is
// ACTIVE (failing at once on ERROR with Nova's fault). It returns their
// ids and each one's time from its create to ACTIVE (polled every
// 200 ms). The servers are deleted after the test if still there.
func bootServers(t *testing.T, d devCloud, sc *gophercloud.ServiceClient, flavor string, names ...string) ([]string, []time.Duration) {
	t.Helper()
	img := imagesNamed(t, d, d.info["DEVCLOUD_IMAGE"])
	require.NotEmpty(t, img)
	fl := flavorID(t, sc, flavor)
	require.NotEmpty(t, fl, "flavor %s: rerun devcloud.sh up to seed it", flavor)
	nc := serviceClient(t, d.admin, openstack.NewNetworkV2)
	pages, err := networks.List(nc, networks.ListOpts{Name: d.info["DEVCLOUD_NETWORK"]}).AllPages(t.Context())
	require.NoError(t, err)
	nets, err := networks.ExtractNetworks(pages)
	require.NoError(t, err)
	require.Len(t, nets, 1)
	ids := make([]string, len(names))
	took := make([]time.Duration, len(names))
	created := make([]time.Time, len(names))
	for i, name := range names {
		created[i] = time.Now()
		s, err := servers.Create(t.Context(), sc, servers.CreateOpts{
			Name: name, ImageRef: img[0].ID, FlavorRef: fl, Networks: []servers.Network{{UUID: nets[0].ID}},
		}, nil).Extract()
		require.NoError(t, err)
		ids[i] = s.ID
		t.Cleanup(func() { _ = servers.Delete(context.WithoutCancel(t.Context()), sc, s.ID).ExtractErr() })
	}
	require.Eventually(t, func() bool {
		done := true
		for i, id := range ids {
			if took[i] > 0 {
				continue
			}
			got, err := servers.Get(t.Context(), sc, id).Extract()
			require.NoError(t, err)
			require.NotEqual(t, "ERROR", got.Status, "server %s: %s", got.Name, got.Fault.Message)
			if got.Status == "ACTIVE" {
				took[i] = time.Since(created[i])
			} else {
				done = false
			}
		}
		return done
	}, 3*time.Minute, 200*time.Millisecond)
	return ids, took
}

// spiceDirectURL asks Nova (2.99) for a spice-direct console: Kerbside's
// URL with a fresh token. It is a credential: never logged.
func spiceDirectURL(t *testing.T, sc *gophercloud.ServiceClient, id string) string {
	t.Helper()
	cc := *sc
	cc.Microversion = "2.99"
	rc, err := remoteconsoles.Create(t.Context(), &cc, id, remoteconsoles.CreateOpts{
		Protocol: remoteconsoles.ConsoleProtocolSPICE, Type: remoteconsoles.ConsoleType("spice-direct"),
	}).Extract()
	require.NoError(t, err)
	require.Equal(t, "spice-direct", rc.Type)
	return rc.URL
}

func tokenOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	tok := u.Query().Get("token")
	require.NotEmpty(t, tok)
	return tok
}

// fetch GETs a console URL: status and body.
func fetch(t *testing.T, u string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	require.NoError(t, err)
	return resp.StatusCode, b
}

// uploadGuestImage puts our guest running activity into Glance as name
// (qcow2), in the loadtest's project, and deletes it after the test.
func uploadGuestImage(t *testing.T, d devCloud, name, activity string) {
	t.Helper()
	boot, err := guest.ImageFor(activity)
	require.NoError(t, err)
	disk, err := guest.Disk(boot, guest.FormatQCOW2)
	require.NoError(t, err)
	ic := serviceClient(t, d.admin, openstack.NewImageV2)
	im, err := images.Create(t.Context(), ic, images.CreateOpts{Name: name, DiskFormat: "qcow2", ContainerFormat: "bare"}).Extract()
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
		defer cancel()
		_ = images.Delete(ctx, ic, im.ID).ExtractErr()
	})
	require.NoError(t, imagedata.Upload(t.Context(), ic, im.ID, bytes.NewReader(disk)).ExtractErr())
	require.Eventually(t, func() bool {
		got, err := images.Get(t.Context(), ic, im.ID).Extract()
		return err == nil && got.Status == images.ImageStatusActive
	}, time.Minute, 200*time.Millisecond, "image %s active", name)
}

// TestCloudRampBusyServers: a load ramp on the openstack provider (issue
// 21, "Remote consoles"). The measured console is a vdi-guest server's
// spice-direct console through the Kerbside stand-in, whose guest is our
// idle one; the busy sessions are more vdi-guest servers booted from our
// typing guest (uploaded to Glance by the test), each with a QEMU of its
// own and its own spice-direct console through the same stand-in, viewed
// by the harness's cheap SPICE client. Steps 0 and 2, one round, 20
// samples each (the fewest whose p95 the ramp judges), with
// LATENCY_LINK=lan in front of every console. It checks what the run
// says of itself, not the latency (a shared host): the proxy is Kerbside,
// remote, its CPU not measured (no "proxy" CPU, no zero that passes for
// one), the host figures are the harness's host only, the busy servers'
// bytes come from their viewers (none at the baseline, some at 2), every
// busy console was a .vv of the stand-in's, and no server of the run, busy
// or measured, is left in Nova. About 60 s on the dev cloud.
func TestCloudRampBusyServers(t *testing.T) {
	d := theDevCloud(t)
	_, _ = binaries(t)
	ks := guestFarEnd(t, d)
	busyImage := "latency-cloudtest-typing-" + randomSuffix(t)
	uploadGuestImage(t, d, busyImage, guest.ActivityTyping)

	env := realEnv(d.member)
	env["LATENCY_FLAVOR"] = d.info["DEVCLOUD_FLAVOR_GUEST"]
	env["LATENCY_LOAD"] = "0,2"
	env["LATENCY_LOAD_REPEAT"] = "1"
	env["LATENCY_LOAD_IMAGE"] = busyImage
	env["LATENCY_SAMPLES"] = "20"
	env["LATENCY_LINK"] = "lan"
	t0 := time.Now()
	o := runLoadtest(t, env)
	t.Attr("ramp_s", strconv.FormatFloat(time.Since(t0).Seconds(), 'f', 1, 64))

	l, err := results.ReadLoad(filepath.Join(o.dir, results.LoadName(o.runID)))
	require.NoError(t, err, "the ramp's record")
	assert.Empty(t, l.Errors)
	assert.Equal(t, "openstack", l.Source)
	assert.Contains(t, l.Activity, busyImage, "the busy servers do what their image does, said so")
	assert.Contains(t, l.Proxy, "Kerbside")
	assert.Contains(t, l.Proxy, "not measured")
	assert.Equal(t, []int{0, 2}, l.Order)
	require.Len(t, l.Steps, 2)
	for _, s := range l.Steps {
		assert.Equal(t, 20, s.Repaint.Samples, "%d busy servers: LATENCY_SAMPLES", s.Sessions)
		assert.NotNil(t, s.Host, "host figures per step")
		var roles []string
		for _, c := range s.CPU {
			roles = append(roles, c.Role)
		}
		assert.Contains(t, roles, "harness")
		assert.NotContains(t, roles, "proxy", "Kerbside's CPU is not measured: no figure for it")
	}
	assert.Zero(t, l.Steps[0].BytesPerS, "no busy server at the baseline")
	assert.Positive(t, l.Steps[1].BytesPerS, "the busy servers' viewers read their displays")
	reasons := strings.Join(l.Reasons, "; ")
	assert.Contains(t, reasons, "Kerbside, remote: its CPU is not measured")
	assert.Contains(t, reasons, "this harness's host only")
	switch l.Verdict {
	case "no-knee", "knee", "host-bound":
	default:
		t.Errorf("verdict %s (%v): want no-knee, knee, or host-bound on a busy host", l.Verdict, l.Reasons)
	}
	assert.Equal(t, l.Fails, o.exitCode != 0, "the exit code says the verdict (%s)", l.Verdict)
	assert.Contains(t, o.output, "ramp verdict")
	assert.Contains(t, o.output, "through the proxy Kerbside (remote")

	// Two busy servers, named and viewed as guestload makes them.
	for _, i := range []string{"0", "1"} {
		assert.Regexp(t, `msg="busy server flowing" .*server=`+regexp.QuoteMeta(cloud.ServerNamePrefix+o.runID+"-l"+i)+" ", o.output)
	}
	assert.Contains(t, o.output, `msg="link in front of the console"`, "LATENCY_LINK in front of the measured console")
	assert.Regexp(t, `msg="link in front of the busy consoles" .*profile="lan `, o.output, "and in front of the busy viewers")
	fx, st := ks.Fetches(), ks.Stats()
	t.Logf("stand-in: %+v, fetches %+v", st, fx)
	// The measured console's .vv passwords are one-time: one at boot
	// (console.Open), one when the ramp took the console, one for its
	// second block; then one per busy server.
	assert.Equal(t, 5, fx.VV, "a .vv per block of the measured console and one per busy server")
	assert.Zero(t, st.Denied)
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o, ks.Secrets()...)
}
