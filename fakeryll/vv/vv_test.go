package vv_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/fakeryll/vv"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const password = "s3cr3t-Pa55"

func TestParse(t *testing.T) {
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	c, err := vv.Parse([]byte("# console\n[virt-viewer]\ntype=spice\nhost = 10.0.0.5\nport=5900\ntls-port=5901\npassword=" + password +
		"\nca=-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\nhost-subject=C=AU, O=Example, CN=kerbside\n" +
		"delete-this-file=1\nticket-valid-until=" + future + "\n[ovirt]\nhost=other\n"))
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.5", c.Host)
	assert.Equal(t, uint16(5900), c.Port)
	assert.Equal(t, uint16(5901), c.TLSPort)
	assert.True(t, c.HasTLS())
	assert.Equal(t, password, c.Password.Reveal())
	assert.Contains(t, c.CA, "BEGIN CERTIFICATE")
	assert.Equal(t, "C=AU, O=Example, CN=kerbside", c.HostSubject)
	assert.True(t, c.DeleteThisFile)
	assert.Equal(t, future, strconv.FormatInt(c.TicketValidUntil.Unix(), 10))
	assert.Empty(t, c.Warnings)
}

func TestParseVariants(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		check      func(t *testing.T, c vv.Config)
	}{
		{"tls port only", "[virt-viewer]\nhost=h\ntls-port=5901\n", func(t *testing.T, c vv.Config) {
			assert.Zero(t, c.Port)
			assert.Equal(t, uint16(5901), c.TLSPort)
		}},
		{"case and colon", "[Virt-Viewer]\nHOST: h\nPort: 1\n", func(t *testing.T, c vv.Config) {
			assert.Equal(t, "h", c.Host)
			assert.Equal(t, uint16(1), c.Port)
		}},
		{"None is absent", "[virt-viewer]\nhost=h\nport=1\ntls-port=None\npassword=none\n", func(t *testing.T, c vv.Config) {
			assert.False(t, c.HasTLS())
			assert.True(t, c.Password.IsZero())
		}},
		{"delete-this-file 0", "[virt-viewer]\nhost=h\nport=1\ndelete-this-file=0\n", func(t *testing.T, c vv.Config) {
			assert.False(t, c.DeleteThisFile)
		}},
		{"past ticket ignored", "[virt-viewer]\nhost=h\nport=1\nticket-valid-until=1\n", func(t *testing.T, c vv.Config) {
			assert.True(t, c.TicketValidUntil.IsZero())
			assert.Len(t, c.Warnings, 1)
		}},
		{"malformed ticket ignored", "[virt-viewer]\nhost=h\nport=1\nticket-valid-until=soon\n", func(t *testing.T, c vv.Config) {
			assert.True(t, c.TicketValidUntil.IsZero())
			assert.Len(t, c.Warnings, 1)
		}},
		{"CRLF and BOM", "\ufeff[virt-viewer]\r\nhost=h\r\nport=1\r\n", func(t *testing.T, c vv.Config) {
			assert.Equal(t, "h", c.Host)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := vv.Parse([]byte(tc.body))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"empty", "", "Missing 'host' in .vv file"},
		{"html error page", "<html><body>403 Forbidden</body></html>\n", "Missing 'host' in .vv file"},
		{"wrong section", "[other]\nhost=h\nport=1\n", "Missing 'host' in .vv file"},
		{"no ports", "[virt-viewer]\nhost=h\npassword=" + password + "\n", "Must specify 'port' or 'tls-port' in .vv file"},
		{"bad port", "[virt-viewer]\nhost=h\nport=59x\npassword=" + password + "\n", "Invalid port '59x': invalid digit found in string"},
		{"port too big", "[virt-viewer]\nhost=h\nport=70000\n", "Invalid port '70000': number too large"},
		{"bad section", "[virt-viewer\nhost=h\n", "Failed to parse .vv file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vv.Parse([]byte(tc.body))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), password)
		})
	}
}

func TestParseDirect(t *testing.T) {
	c, err := vv.ParseDirect("spice.example:5900")
	require.NoError(t, err)
	assert.Equal(t, "spice.example", c.Host)
	assert.Equal(t, uint16(5900), c.Port)
	assert.False(t, c.HasTLS())
	c, err = vv.ParseDirect("h:5900:5901")
	require.NoError(t, err)
	assert.Equal(t, uint16(5901), c.TLSPort)
	for _, bad := range []string{"h", "h:1:2:3", "h:", "h:port", "h:1:99999"} {
		_, err := vv.ParseDirect(bad)
		assert.Error(t, err, bad)
	}
}

func TestReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.vv")
	require.NoError(t, os.WriteFile(p, []byte("[virt-viewer]\nhost=h\nport=1\n"), 0o600))
	c, err := vv.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "h", c.Host)
	_, err = vv.ReadFile(filepath.Join(t.TempDir(), "missing.vv"))
	assert.Error(t, err)
}

func TestFetch(t *testing.T) {
	const token = "tok-0123456789abcdef"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != token {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("[virt-viewer]\nhost=10.1.1.1\ntls-port=443\npassword=" + password + "\n"))
	})
	mux.HandleFunc("GET /console/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, vv.MaxBody+10))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	fetch := func(path string) (vv.Config, error) {
		u, err := secret.ParseURL(srv.URL + path + "?token=" + token)
		require.NoError(t, err)
		return vv.Fetch(t.Context(), srv.Client(), u)
	}
	c, err := fetch("/console/ok")
	require.NoError(t, err)
	assert.Equal(t, "10.1.1.1", c.Host)
	assert.Equal(t, uint16(443), c.TLSPort)

	for _, path := range []string{"/console/missing", "/console/big"} {
		t.Run(path, func(t *testing.T) {
			_, err := fetch(path)
			require.Error(t, err, "the status is not checked, but the body must be a .vv")
			assert.NotContains(t, err.Error(), token)
			assert.Contains(t, err.Error(), "[redacted]")
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		u, err := secret.ParseURL("http://" + addr + "/c?token=" + token)
		require.NoError(t, err)
		_, err = vv.Fetch(t.Context(), &http.Client{Timeout: 5 * time.Second}, u)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), token, "a failed fetch must not quote the URL's token")
	})
}
