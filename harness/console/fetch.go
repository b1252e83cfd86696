package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// fetchTimeout bounds the GET of a console URL.
const fetchTimeout = 30 * time.Second

// maxVV bounds a .vv file: a few hundred bytes and a CA certificate.
const maxVV = 1 << 20

// fetchVV GETs the console URL the way ryll's --url would, but checks
// the HTTP status (ryll parses whatever body comes back), and writes the
// .vv file 0600 into a private directory, so that ryll gets --file and
// the URL's token never appears on a command line, where any local user
// could read it in ps. The .vv's password joins the run's secrets.
func (c *Console) fetchVV(ctx context.Context, hc *http.Client) error {
	if hc == nil {
		hc = &http.Client{Timeout: fetchTimeout}
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL.Reveal(), nil)
	if err != nil {
		return fmt.Errorf("fetch the console's .vv from %s: %w", c.URL.Redacted(), secret.StripURLError(err))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetch the console's .vv from %s: %w", c.URL.Redacted(), secret.StripURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxVV+1))
	if err != nil {
		return fmt.Errorf("fetch the console's .vv from %s: read: %w", c.URL.Redacted(), secret.StripURLError(err))
	}
	if resp.StatusCode/100 != 2 {
		hint := ""
		switch resp.StatusCode {
		case http.StatusForbidden, http.StatusNotFound:
			hint = ": the console token is unknown, used or expired (Kerbside's tokens are one-time; ask Nova for a new console URL)"
		}
		return fmt.Errorf("fetch the console's .vv from %s: HTTP %d%s", c.URL.Redacted(), resp.StatusCode, hint)
	}
	if len(body) > maxVV {
		return fmt.Errorf("fetch the console's .vv from %s: larger than %d bytes: not a .vv file", c.URL.Redacted(), maxVV)
	}
	if !strings.Contains(strings.ToLower(string(body)), "[virt-viewer]") {
		return fmt.Errorf("fetch the console's .vv from %s: the answer (HTTP %d, %d bytes) has no [virt-viewer] section: not a .vv file", c.URL.Redacted(), resp.StatusCode, len(body))
	}
	if pw := vvPasswordOf(body); pw != "" {
		c.Secrets = append(c.Secrets, pw)
	}
	if c.privateDir == "" {
		if c.privateDir, err = tmpdir.Make("latency-console-"); err != nil {
			return fmt.Errorf("private directory for the console's .vv: %w", err)
		}
	}
	c.File = filepath.Join(c.privateDir, "console.vv")
	if err := os.WriteFile(c.File, body, 0o600); err != nil {
		c.File = ""
		return errors.Join(fmt.Errorf("write the console's .vv: %w", err))
	}
	return nil
}

// vvPasswordOf reads the password of .vv content.
func vvPasswordOf(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "password") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
