package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	assert.Equal(t, "https://kerbside.example:13002/nova?"+Redacted, u.Redacted())

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

func TestURLWithoutQueryHasNoMarker(t *testing.T) {
	u, err := ParseURL("http://127.0.0.1:8080/console.vv")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8080/console.vv", u.String())
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
