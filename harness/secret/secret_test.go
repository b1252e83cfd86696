package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const token = "0b1e8f3a-token-4cc1"

func TestURLNeverPrintsToken(t *testing.T) {
	u, err := ParseURL("https://kerbside.example:13002/nova?token=" + token)
	require.NoError(t, err)
	assert.Equal(t, "https://kerbside.example:13002/nova?token="+token, u.Reveal())
	assert.Equal(t, "https://kerbside.example:13002/"+Redacted, u.Redacted())

	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("console", "url", u)
	js, err := json.Marshal(struct{ U URL }{u})
	require.NoError(t, err)
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", u), "%s": fmt.Sprint(u), "%+v": fmt.Sprintf("%+v", u),
		"%#v": fmt.Sprintf("%#v", u), "slog": logBuf.String(), "json": string(js),
	} {
		assert.NotContains(t, out, token, name)
		assert.Contains(t, out, "kerbside.example", name)
	}
}

func TestParseURLErrorsDoNotEchoInput(t *testing.T) {
	for _, raw := range []string{"%zz?token=" + token, "no-scheme?token=" + token, ""} {
		_, err := ParseURL(raw)
		require.Error(t, err, raw)
		assert.NotContains(t, err.Error(), token)
	}
}

// TestURLOfSchemeAndHostHasNoMarker: nothing was left out, so nothing
// is marked; a path alone is left out (it may be the token).
func TestURLOfSchemeAndHostHasNoMarker(t *testing.T) {
	u, err := ParseURL("http://127.0.0.1:8080")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8080", u.String())
	u, err = ParseURL("http://127.0.0.1:8080/console.vv")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8080/"+Redacted, u.String())
}

func TestString(t *testing.T) {
	s := NewString("hunter2")
	assert.Equal(t, "hunter2", s.Reveal())
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%#v", s)} {
		assert.NotContains(t, out, "hunter2")
	}
	js, err := json.Marshal(s)
	require.NoError(t, err)
	assert.JSONEq(t, `"[redacted]"`, string(js))
	assert.Equal(t, "", NewString("").String())
}

func TestRedactorFindsSecretsSplitAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	r := NewRedactor(&out, token, "")
	line := "GET https://kerbside/nova?token=" + token + " 200\n"
	for i := 0; i < len(line); i += 3 {
		end := min(i+3, len(line))
		n, err := r.Write([]byte(line[i:end]))
		require.NoError(t, err)
		require.Equal(t, end-i, n)
	}
	_, err := r.Write([]byte("tail " + token))
	require.NoError(t, err)
	require.NoError(t, r.Flush())
	assert.NotContains(t, out.String(), token)
	assert.Equal(t, 2, strings.Count(out.String(), Redacted))
	assert.True(t, strings.HasSuffix(out.String(), "tail "+Redacted))
	assert.Equal(t, "x "+Redacted, r.Scrub("x "+token))
}

func TestRedactorBoundsHeldBytes(t *testing.T) {
	var out bytes.Buffer
	r := NewRedactor(&out, token)
	big := bytes.Repeat([]byte("a"), maxHeld+10)
	_, err := r.Write(big)
	require.NoError(t, err)
	assert.Equal(t, len(big), out.Len(), "an over-long line is passed on, not held forever")
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://h/p?token=abc":          "https://h/p?[redacted]",
		"https://user:pw@h/p":            "https://h/p?[redacted]",
		"https://h/p":                    "https://h/p",
		"https://h/p#frag":               "https://h/p?[redacted]",
		"file:///srv/images/guest.qcow2": "file:///srv/images/guest.qcow2",
		"%zz":                            "(unparsable URL)",
		"no-scheme/at/all":               "(unparsable URL)",
	} {
		assert.Equal(t, want, RedactURL(raw), raw)
	}
}

func TestStripURLErrorKeepsTheCauseNotTheURL(t *testing.T) {
	cause := errors.New("connection refused")
	err := fmt.Errorf("fetch: %w", &url.Error{Op: "Get", URL: "https://h/c?token=tok-secret", Err: cause})
	got := StripURLError(err)
	assert.ErrorIs(t, got, cause)
	assert.Equal(t, "Get: connection refused", got.Error())
	assert.NotContains(t, got.Error(), "tok-secret")
	plain := errors.New("plain")
	assert.Equal(t, plain, StripURLError(plain))
}

// TestAConsoleURLShowsOnlySchemeAndHost: a token in the path (it was
// printed: LATENCY_CONSOLE=http://h/p/SECRET showed …/p/SECRET), the
// query, the user info or the fragment never shows.
func TestAConsoleURLShowsOnlySchemeAndHost(t *testing.T) {
	for raw, want := range map[string]string{
		"http://h/p/SECRET-tok":          "http://h/" + Redacted,
		"https://h:13002/nova?token=abc": "https://h:13002/" + Redacted,
		"https://user:pw@h":              "https://h/" + Redacted,
		"https://h#frag":                 "https://h/" + Redacted,
		"https://h?":                     "https://h/" + Redacted,
		"https://h/":                     "https://h",
		"https://h":                      "https://h",
		"http://[::1]:80/x":              "http://[::1]:80/" + Redacted,
		"%zz":                            "(unparsable URL)",
		"/just/a/path":                   "(unparsable URL)",
	} {
		assert.Equal(t, want, RedactConsoleURL(raw), raw)
		if u, err := ParseURL(raw); err == nil {
			assert.Equal(t, want, u.Redacted(), raw)
			var logBuf bytes.Buffer
			slog.New(slog.NewTextHandler(&logBuf, nil)).Info("console", "url", u)
			js, err := json.Marshal(u)
			require.NoError(t, err)
			for name, out := range map[string]string{"%v": fmt.Sprint(u), "%#v": fmt.Sprintf("%#v", u), "slog": logBuf.String(), "json": string(js)} {
				for _, part := range []string{"SECRET-tok", "token=abc", "pw", "frag", "/x"} {
					assert.NotContains(t, out, part, "%s of %s", name, raw)
				}
			}
		}
	}
}

// TestPartsCoverTheTokenWherePrinted: the parts a redactor must hide
// include a path token on its own, and leave short words alone.
func TestPartsCoverTheTokenWherePrinted(t *testing.T) {
	u, err := ParseURL("https://u:s3cr3t-pw@h:1/nova/p/SECRET-tok?token=tok-123456&x=1#frag")
	require.NoError(t, err)
	parts := u.Parts()
	for _, want := range []string{u.Reveal(), "/nova/p/SECRET-tok", "SECRET-tok", "token=tok-123456&x=1", "tok-123456", "s3cr3t-pw"} {
		assert.Contains(t, parts, want)
	}
	for _, short := range []string{"nova", "p", "1", "x", "frag"} {
		assert.NotContains(t, parts, short, "too short to scrub on its own")
	}
	r := NewRedactor(io.Discard, parts...)
	for _, leak := range []string{"GET /nova/p/SECRET-tok HTTP/1.1", "token SECRET-tok", "fetch " + u.Reveal()} {
		assert.NotContains(t, r.Scrub(leak), "SECRET-tok", leak)
	}
	assert.Empty(t, URL{}.Parts())
}
