//go:build cloudtest && !loadtest

// End-to-end tests of the openstack provider against a real OpenStack:
// the dev cloud of deploy/devcloud (Debian's Zed on 127.0.0.1, Nova with
// its fake virt driver). `make cloud-test` installs, starts and seeds it
// and runs these; by hand:
//
//	deploy/devcloud/devcloud.sh install && deploy/devcloud/devcloud.sh up /tmp/devcloud
//	DEVCLOUD_DIR=/tmp/devcloud go test -tags cloudtest -run '^TestCloud' -v .
//
// Each case runs the compiled loadtest (as the fake e2e tests do) with
// fakeryll as ryll: the fake virt driver's SPICE address is made up, so no
// real SPICE session can follow it. After each case no server of its run
// is left in Nova, and no password or console token is in any output.
package latency

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/cloud"
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
func cloudEnv(t *testing.T, fakeryll string, creds map[string]string) map[string]string {
	t.Helper()
	env := fastEnv(fakeryll)
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
// the dev cloud's passwords and for console tokens.
func assertNoSecrets(t *testing.T, d devCloud, o outcome) {
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

// TestCloudSpiceDirectOnZedStopsAfterAuth: Zed has no spice-direct; the
// default console stops right after authenticating, quoting Nova's 406,
// having created nothing.
func TestCloudSpiceDirectOnZedStopsAfterAuth(t *testing.T) {
	t.Parallel()
	d := theDevCloud(t)
	_, fr := binaries(t)
	env := cloudEnv(t, fr, d.member)
	delete(env, "LATENCY_OPENSTACK_CONSOLE")
	env["LATENCY_IMAGE"] = "latency-never-uploaded-" + randomSuffix(t)
	env["LATENCY_IMAGE_URL"] = "file://" + d.info["DEVCLOUD_IMAGE_FILE"]
	o := runLoadtest(t, env)
	assert.NotEqual(t, 0, o.exitCode)
	assert.Contains(t, o.output, "HTTP 406")
	assert.Contains(t, o.output, "Version 2.99 is not supported by the API. Minimum is 2.1 and maximum is 2.93.")
	assert.Contains(t, o.output, "LATENCY_OPENSTACK_CONSOLE=direct")
	assert.NotContains(t, o.output, "started ryll")
	assert.NotContains(t, o.output, "image missing; uploading it", "nothing is uploaded")
	ims := imagesNamed(t, d, env["LATENCY_IMAGE"])
	assert.Empty(t, ims, "no image created")
	assertNoServerLeft(t, d, o.runID)
	assertNoSecrets(t, d, o)
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
// fakeryll over --direct. The server is kept, checked for its tag and
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
	assert.Contains(t, o.output, "console_type=spice-html5")
	assert.Regexp(t, `msg="started ryll".*--direct fakespiceconsole\.com:6969`, o.output)
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
	assert.Contains(t, o.output, `msg="run interrupted" signal=terminated`)
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
	assert.Equal(t, 3, strings.Count(o.output, "console_type=spice-html5"))
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
