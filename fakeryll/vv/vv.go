// Package vv reads the console description ryll connects from: a
// virt-viewer ".vv" file (an INI file with a [virt-viewer] section), read
// from disk or fetched over HTTP, or a --direct HOST:PORT[:TLS_PORT]
// string.
//
// fakeryll connects to nothing, but it must accept and reject exactly the
// inputs ryll does, with ryll's messages, so that the loadtest's handling
// of a bad console URL is exercised before a real ryll ever runs. A .vv
// carries a SPICE password and a console URL carries a token: neither is
// ever part of an error or a String form here.
package vv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// Section is the INI section a .vv file keeps its keys in.
const Section = "virt-viewer"

// MaxBody bounds how much of a fetched .vv is read; a real one is a few
// kilobytes, so anything larger is not a .vv.
const MaxBody = 1 << 20

// Config is the SPICE connection a console description names.
type Config struct {
	Host string
	// Port is the plain port; 0 when the file names only a TLS port.
	Port uint16
	// TLSPort is the TLS port; 0 when absent.
	TLSPort     uint16
	Password    secret.String
	CA          string
	HostSubject string
	// DeleteThisFile is delete-this-file=1, which ryll reads as a
	// single-use ticket.
	DeleteThisFile bool
	// TicketValidUntil is ticket-valid-until; zero when absent, malformed
	// or already past (ryll ignores those with a warning).
	TicketValidUntil time.Time
	// Warnings lists keys that were ignored, for the caller to log.
	Warnings []string
}

// HasTLS reports whether the console offers a TLS port.
func (c Config) HasTLS() bool { return c.TLSPort != 0 }

// ParseDirect parses --direct HOST:PORT or HOST:PORT:TLS_PORT.
func ParseDirect(s string) (Config, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 && len(parts) != 3 {
		//lint:ignore ST1005 ryll's own message, kept word for word.
		return Config{}, errors.New("Invalid direct connection string. Expected HOST:PORT or HOST:PORT:TLS_PORT")
	}
	c := Config{Host: parts[0]}
	var err error
	if c.Port, err = parsePort(parts[1]); err != nil {
		return Config{}, err
	}
	if len(parts) == 3 {
		if c.TLSPort, err = parsePort(parts[2]); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// parsePort parses a u16 and words failures as Rust's integer parser
// does, which is what ryll prints.
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("cannot parse integer from empty string")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, errors.New("number too large to fit in target type")
		}
		return 0, errors.New("invalid digit found in string")
	}
	return uint16(n), nil
}

// ReadFile reads and parses a local .vv file.
func ReadFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read .vv file: %w", err)
	}
	return Parse(b)
}

// Fetch GETs u and parses the body as a .vv file. Like ryll it does not
// look at the HTTP status: an error page simply fails to parse. Errors
// name the URL only in its redacted form, never with its token.
func Fetch(ctx context.Context, client *http.Client, u secret.URL) (Config, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Reveal(), nil)
	if err != nil {
		return Config{}, fmt.Errorf("fetch .vv from %s: %w", u.Redacted(), secret.StripURLError(err))
	}
	resp, err := client.Do(req)
	if err != nil {
		return Config{}, fmt.Errorf("fetch .vv from %s: %w", u.Redacted(), secret.StripURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return Config{}, fmt.Errorf("fetch .vv from %s: read body: %w", u.Redacted(), secret.StripURLError(err))
	}
	if len(body) > MaxBody {
		return Config{}, fmt.Errorf("fetch .vv from %s: body larger than %d bytes", u.Redacted(), MaxBody)
	}
	c, err := Parse(body)
	if err != nil {
		return Config{}, fmt.Errorf("%w (fetched from %s, HTTP status %d)", err, u.Redacted(), resp.StatusCode)
	}
	return c, nil
}

// Parse parses .vv content. Keys and section names are case-insensitive;
// "key=value" and "key: value" are both accepted; lines starting with '#'
// or ';' are comments; an empty value or "None" counts as absent.
func Parse(content []byte) (Config, error) {
	ini, err := parseINI(content)
	if err != nil {
		//lint:ignore ST1005 ryll's own message, kept word for word.
		return Config{}, fmt.Errorf("Failed to parse .vv file: %w", err)
	}
	sec := ini[Section]
	get := func(key string) (string, bool) {
		v, ok := sec[key]
		t := strings.TrimSpace(v)
		if !ok || t == "" || strings.EqualFold(t, "none") {
			return "", false
		}
		return v, true
	}
	var c Config
	host, ok := get("host")
	if !ok {
		//lint:ignore ST1005 ryll's own message, kept word for word.
		return Config{}, errors.New("Missing 'host' in .vv file")
	}
	c.Host = host
	port := func(key string) (uint16, bool, error) {
		v, ok := get(key)
		if !ok {
			return 0, false, nil
		}
		p, err := parsePort(strings.TrimSpace(v))
		if err != nil {
			//lint:ignore ST1005 ryll's own message, kept word for word.
			return 0, false, fmt.Errorf("Invalid %s '%s': %w", key, v, err)
		}
		return p, true, nil
	}
	p, hasPort, err := port("port")
	if err != nil {
		return Config{}, err
	}
	tp, hasTLS, err := port("tls-port")
	if err != nil {
		return Config{}, err
	}
	if !hasPort && !hasTLS {
		//lint:ignore ST1005 ryll's own message, kept word for word.
		return Config{}, errors.New("Must specify 'port' or 'tls-port' in .vv file")
	}
	c.Port, c.TLSPort = p, tp
	if v, ok := get("password"); ok {
		c.Password = secret.NewString(v)
	}
	c.CA, _ = get("ca")
	c.HostSubject, _ = get("host-subject")
	if v, ok := get("delete-this-file"); ok {
		c.DeleteThisFile = strings.TrimSpace(v) == "1"
	}
	if v, ok := get("ticket-valid-until"); ok {
		secs, err := strconv.ParseUint(strings.TrimSpace(v), 10, 63)
		switch {
		case err != nil || secs > 1<<40:
			c.Warnings = append(c.Warnings, fmt.Sprintf("ticket-valid-until=%q is not a valid unix timestamp; ignoring", v))
		case !time.Unix(int64(secs), 0).After(time.Now()):
			c.Warnings = append(c.Warnings, fmt.Sprintf("ticket-valid-until=%q is already in the past; ignoring", v))
		default:
			c.TicketValidUntil = time.Unix(int64(secs), 0)
		}
	}
	return c, nil
}

// parseINI reads sections of key/value pairs. Keys outside any section go
// to the "default" section. A line that is neither a section header, a
// comment nor a key/value pair is taken as a key with an empty value.
func parseINI(content []byte) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	section := "default"
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 64<<10), MaxBody+1)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: section header without ']'", lineNo)
			}
			section = strings.ToLower(strings.TrimSpace(line[1:end]))
			continue
		}
		cut := strings.IndexAny(line, "=:")
		key, val := line, ""
		if cut >= 0 {
			key, val = line[:cut], line[cut+1:]
		}
		key = strings.ToLower(strings.TrimSpace(key))
		if key == "" {
			return nil, fmt.Errorf("line %d: value without a key", lineNo)
		}
		if out[section] == nil {
			out[section] = map[string]string{}
		}
		out[section][key] = strings.TrimSpace(val)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return out, nil
}
