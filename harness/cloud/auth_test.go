package cloud_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/fixtures/fakecloud"
	"github.com/shakenfist/kerbside-latency/harness/cloud"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func without(m map[string]string, keys ...string) map[string]string {
	out := maps.Clone(m)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func TestConnectAuthenticates(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{})
	tests := []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{name: "clouds.yaml in XDG_CONFIG_HOME", env: func(t *testing.T) map[string]string {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "openstack", "clouds.yaml"), fc.CloudsYAML("fake"))
			return map[string]string{"OS_CLOUD": "fake", "XDG_CONFIG_HOME": dir}
		}},
		{name: "clouds.yaml in HOME/.config", env: func(t *testing.T) map[string]string {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, ".config", "openstack", "clouds.yaml"), fc.CloudsYAML("fake"))
			return map[string]string{"OS_CLOUD": "fake", "HOME": dir}
		}},
		{name: "clouds.yaml named by OS_CLIENT_CONFIG_FILE", env: func(t *testing.T) map[string]string {
			path := filepath.Join(t.TempDir(), "elsewhere.yaml")
			writeFile(t, path, fc.CloudsYAML("other")+strings.Replace(fc.CloudsYAML("fake"), "clouds:\n", "", 1))
			return map[string]string{"OS_CLOUD": "fake", "OS_CLIENT_CONFIG_FILE": path}
		}},
		{name: "password in secure.yaml", env: func(t *testing.T) map[string]string {
			dir := t.TempDir()
			yaml := fc.CloudsYAML("fake")
			pwLine := "      password: \"" + fc.Password() + "\"\n"
			require.Contains(t, yaml, pwLine)
			writeFile(t, filepath.Join(dir, "openstack", "clouds.yaml"), strings.Replace(yaml, pwLine, "", 1))
			writeFile(t, filepath.Join(dir, "openstack", "secure.yaml"), "clouds:\n  fake:\n    auth:\n"+pwLine)
			return map[string]string{"OS_CLOUD": "fake", "XDG_CONFIG_HOME": dir}
		}},
		{name: "OS_* variables as gophercloud reads them", env: func(*testing.T) map[string]string {
			return without(fc.Env(), "OS_USER_DOMAIN_NAME", "OS_PROJECT_DOMAIN_NAME")
		}},
		{name: "OS_* variables as an openrc file sets them", env: func(*testing.T) map[string]string {
			return without(fc.Env(), "OS_DOMAIN_NAME")
		}},
		{name: "OS_* variables without region", env: func(*testing.T) map[string]string {
			return without(fc.Env(), "OS_REGION_NAME", "OS_INTERFACE")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLogger()
			c, err := cloud.Connect(t.Context(), cloud.EnvFromMap(tc.env(t)), fastOptions(log)...)
			require.NoError(t, err)
			t.Cleanup(c.Close)
			// An authenticated compute call proves the token and catalog work.
			ids, err := c.Sweep(t.Context(), cloud.SweepOptions{DryRun: true})
			require.NoError(t, err)
			assert.Empty(t, ids)
			assertNoSecrets(t, fc, map[string]string{"log": logs.String()})
		})
	}
}

func TestConnectIgnoresTheProcessEnvironment(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{})
	t.Setenv("OS_CLOUD", "no-such-cloud")
	t.Setenv("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml")
	t.Setenv("OS_REGION_NAME", "NoSuchRegion")
	c, err := cloud.Connect(t.Context(), cloud.EnvFromMap(fc.Env()), fastOptions(nil)...)
	require.NoError(t, err)
	c.Close()
}

func TestConnectErrors(t *testing.T) {
	fc := fakecloud.New(t, fakecloud.Options{})
	cloudsFile := filepath.Join(t.TempDir(), "clouds.yaml")
	writeFile(t, cloudsFile, fc.CloudsYAML("fake"))
	tests := []struct {
		name string
		env  map[string]string
		want string
		is   error
	}{
		{name: "no credentials", env: map[string]string{"HOME": t.TempDir()}, is: cloud.ErrNoCredentials},
		{name: "wrong password", env: with(fc.Env(), "OS_PASSWORD", "wrong-pw-123"), want: "401"},
		{name: "missing password", env: without(fc.Env(), "OS_PASSWORD"), want: "OS_PASSWORD"},
		{name: "project name without domain", env: without(fc.Env(), "OS_DOMAIN_NAME", "OS_USER_DOMAIN_NAME", "OS_PROJECT_DOMAIN_NAME"), want: "OS_PROJECT_ID"},
		{name: "unknown project", env: with(fc.Env(), "OS_PROJECT_NAME", "nope"), want: "401"},
		{name: "wrong region", env: with(fc.Env(), "OS_REGION_NAME", "Mars"), want: `region "Mars"`},
		{name: "unknown cloud", env: map[string]string{"OS_CLOUD": "nope", "OS_CLIENT_CONFIG_FILE": cloudsFile}, want: `cloud "nope" not found`},
		{name: "no clouds.yaml", env: map[string]string{"OS_CLOUD": "fake", "OS_CLIENT_CONFIG_FILE": cloudsFile + ".missing"}, want: "clouds file not found"},
		{name: "OS_REGION_NAME overrides clouds.yaml", env: map[string]string{"OS_CLOUD": "fake", "OS_CLIENT_CONFIG_FILE": cloudsFile, "OS_REGION_NAME": "Mars"}, want: `region "Mars"`},
		{name: "unreadable CA file", env: with(fc.Env(), "OS_CACERT", "/nonexistent/ca.pem"), want: "OS_CACERT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cloud.Connect(t.Context(), cloud.EnvFromMap(tc.env), fastOptions(nil)...)
			require.Error(t, err)
			if tc.is != nil {
				assert.True(t, errors.Is(err, tc.is), err.Error())
			}
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), fc.Password())
			assert.NotContains(t, err.Error(), "wrong-pw-123")
		})
	}
	_, err := cloud.Connect(t.Context(), nil)
	assert.ErrorContains(t, err, "nil environment lookup")
	_, err = cloud.Connect(t.Context(), cloud.EnvFromMap(fc.Env()), cloud.WithPollInterval(0))
	assert.ErrorContains(t, err, "must be positive")
}

func with(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	out[k] = v
	return out
}
