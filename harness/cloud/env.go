package cloud

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
)

// ErrNoCredentials means neither OS_CLOUD nor OS_AUTH_URL was set.
var ErrNoCredentials = errors.New("no OpenStack credentials: set OS_CLOUD to a cloud in clouds.yaml, " +
	"or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME with OS_USER_DOMAIN_NAME (or OS_PROJECT_ID)")

// EnvFromMap turns a map into the lookup function Connect takes, so tests
// and callers with their own settings need not touch the process
// environment. A nil map looks up nothing.
func EnvFromMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// authSource says where credentials came from, for the log.
type authSource struct {
	kind  string // "clouds.yaml" or "environment"
	cloud string // OS_CLOUD, for clouds.yaml
}

// authFromEnv picks the credential source: OS_CLOUD (clouds.yaml) first,
// then OS_* variables. Both yield options for config.NewProviderClient.
func authFromEnv(env func(string) string) (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tls.Config, authSource, error) {
	if name := env("OS_CLOUD"); name != "" {
		ao, eo, tlsCfg, err := clouds.Parse(
			clouds.WithCloudName(name),
			clouds.WithLocations(cloudsLocations(env, "clouds.yaml")...),
			clouds.WithPublicLocations(cloudsLocations(env, "clouds-public.yaml")...),
			// Always passed, so the process environment that clouds.Parse
			// reads by default never overrides the lookup we were given.
			clouds.WithRegion(env("OS_REGION_NAME")),
			clouds.WithEndpointType(env("OS_INTERFACE")),
		)
		if err != nil {
			return ao, eo, nil, authSource{}, fmt.Errorf("read clouds.yaml for OS_CLOUD=%q: %w", name, err)
		}
		return ao, eo, tlsCfg, authSource{kind: "clouds.yaml", cloud: name}, nil
	}
	if env("OS_AUTH_URL") == "" {
		return gophercloud.AuthOptions{}, gophercloud.EndpointOpts{}, nil, authSource{}, ErrNoCredentials
	}
	ao, err := authOptionsFromLookup(env)
	if err != nil {
		return ao, gophercloud.EndpointOpts{}, nil, authSource{}, fmt.Errorf("read OS_* variables: %w", err)
	}
	eo := gophercloud.EndpointOpts{Region: env("OS_REGION_NAME"), Availability: availability(env("OS_INTERFACE"))}
	tlsCfg, err := tlsFromEnv(env)
	if err != nil {
		return ao, eo, nil, authSource{}, err
	}
	return ao, eo, tlsCfg, authSource{kind: "environment"}, nil
}

// cloudsLocations is the clouds.yaml search path python-openstackclient
// uses (OS_CLIENT_CONFIG_FILE alone if set; else ./, the user config
// directory, /etc/openstack), computed from env rather than the process.
func cloudsLocations(env func(string) string, file string) []string {
	if p := env("OS_CLIENT_CONFIG_FILE"); p != "" && file == "clouds.yaml" {
		return []string{p}
	}
	var locs []string
	if cwd, err := os.Getwd(); err == nil {
		locs = append(locs, filepath.Join(cwd, file))
	}
	if x := env("XDG_CONFIG_HOME"); x != "" {
		locs = append(locs, filepath.Join(x, "openstack", file))
	} else if h := env("HOME"); h != "" {
		locs = append(locs, filepath.Join(h, ".config", "openstack", file))
	}
	return append(locs, filepath.Join("/etc", "openstack", file))
}

// authOptionsFromLookup reads the same variables, with the same checks, as
// gophercloud's openstack.AuthOptionsFromEnv, but through env instead of
// os.Getenv. It also accepts the OS_USER_DOMAIN_* and OS_PROJECT_DOMAIN_*
// pair that openrc files usually carry, which AuthOptionsFromEnv ignores.
func authOptionsFromLookup(env func(string) string) (gophercloud.AuthOptions, error) {
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := env(k); v != "" {
				return v
			}
		}
		return ""
	}
	authURL := env("OS_AUTH_URL")
	username := env("OS_USERNAME")
	userID := env("OS_USERID")
	password := env("OS_PASSWORD")
	passcode := env("OS_PASSCODE")
	tenantID := first("OS_PROJECT_ID", "OS_TENANT_ID")
	tenantName := first("OS_PROJECT_NAME", "OS_TENANT_NAME")
	domainID := first("OS_DOMAIN_ID", "OS_USER_DOMAIN_ID")
	domainName := first("OS_DOMAIN_NAME", "OS_USER_DOMAIN_NAME")
	appID := env("OS_APPLICATION_CREDENTIAL_ID")
	appName := env("OS_APPLICATION_CREDENTIAL_NAME")
	appSecret := env("OS_APPLICATION_CREDENTIAL_SECRET")
	projDomainID := env("OS_PROJECT_DOMAIN_ID")
	projDomainName := env("OS_PROJECT_DOMAIN_NAME")

	switch {
	case authURL == "":
		return gophercloud.AuthOptions{}, gophercloud.ErrMissingEnvironmentVariable{EnvironmentVariable: "OS_AUTH_URL"}
	case userID == "" && username == "" && appID == "" && appSecret == "":
		return gophercloud.AuthOptions{}, gophercloud.ErrMissingAnyoneOfEnvironmentVariables{EnvironmentVariables: []string{"OS_USERID", "OS_USERNAME"}}
	case password == "" && passcode == "" && appID == "" && appName == "":
		return gophercloud.AuthOptions{}, gophercloud.ErrMissingEnvironmentVariable{EnvironmentVariable: "OS_PASSWORD"}
	case (appID != "" || appName != "") && appSecret == "":
		return gophercloud.AuthOptions{}, gophercloud.ErrMissingEnvironmentVariable{EnvironmentVariable: "OS_APPLICATION_CREDENTIAL_SECRET"}
	case domainID == "" && domainName == "" && projDomainID == "" && projDomainName == "" && tenantID == "" && tenantName != "":
		// The user named the project: say what it lacks (a domain), not
		// that some other variable is missing.
		return gophercloud.AuthOptions{}, errors.New("OS_PROJECT_NAME needs the project's domain: set OS_PROJECT_DOMAIN_NAME (or OS_USER_DOMAIN_NAME, OS_DOMAIN_NAME, their _ID forms), or give OS_PROJECT_ID instead")
	case appID == "" && appName != "" && appSecret != "" && userID == "" && username == "":
		return gophercloud.AuthOptions{}, gophercloud.ErrMissingAnyoneOfEnvironmentVariables{EnvironmentVariables: []string{"OS_USERID", "OS_USERNAME"}}
	case appID == "" && appName != "" && appSecret != "" && username != "" && domainID == "" && domainName == "":
		return gophercloud.AuthOptions{}, gophercloud.ErrMissingAnyoneOfEnvironmentVariables{EnvironmentVariables: []string{"OS_DOMAIN_ID", "OS_DOMAIN_NAME"}}
	}

	ao := gophercloud.AuthOptions{
		IdentityEndpoint:            authURL,
		UserID:                      userID,
		Username:                    username,
		Password:                    password,
		Passcode:                    passcode,
		TenantID:                    tenantID,
		TenantName:                  tenantName,
		DomainID:                    domainID,
		DomainName:                  domainName,
		ApplicationCredentialID:     appID,
		ApplicationCredentialName:   appName,
		ApplicationCredentialSecret: appSecret,
	}
	if env("OS_SYSTEM_SCOPE") == "all" {
		ao.Scope = &gophercloud.AuthScope{System: true}
	} else if tenantID == "" && tenantName != "" && (projDomainID != "" || projDomainName != "") {
		// The project lives in its own domain: scope explicitly, since the
		// implicit scope reuses the user's domain.
		ao.Scope = &gophercloud.AuthScope{ProjectName: tenantName, DomainID: projDomainID}
		if projDomainID == "" {
			ao.Scope.DomainName = projDomainName
		}
	}
	return ao, nil
}

// availability maps OS_INTERFACE to a catalog interface (public default).
func availability(iface string) gophercloud.Availability {
	switch iface {
	case "internal", "internalURL":
		return gophercloud.AvailabilityInternal
	case "admin", "adminURL":
		return gophercloud.AvailabilityAdmin
	}
	return gophercloud.AvailabilityPublic
}

// tlsFromEnv honours OS_CACERT and OS_INSECURE, as openstackclient does.
func tlsFromEnv(env func(string) string) (*tls.Config, error) {
	caFile := env("OS_CACERT")
	insecure, _ := strconv.ParseBool(env("OS_INSECURE"))
	if caFile == "" && !insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // operator's explicit OS_INSECURE
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read OS_CACERT: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("OS_CACERT %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
