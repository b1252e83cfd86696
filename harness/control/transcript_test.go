package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// lockedWriter is a transcript sink the test reads after the client has
// closed; it also counts Writes, to show one entry is one Write.
type lockedWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.b.Write(p)
}

func (w *lockedWriter) entries(t *testing.T) ([]TranscriptEntry, []byte, int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	raw := bytes.Clone(w.b.Bytes())
	var out []TranscriptEntry
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e TranscriptEntry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), "every transcript line is one JSON object: %s", sc.Text())
		out = append(out, e)
	}
	require.NoError(t, sc.Err())
	return out, raw, w.writes
}

// TestTranscript drives a scripted server through a handshake, a status,
// a paste, an event, a malformed line, an over-long line and a line
// holding a secret (plain and JSON-escaped), then closes: the transcript
// holds every line in order, with the secrets and the paste text
// replaced, the long line cut, and the end.
func TestTranscript(t *testing.T) {
	const token = "tok-3f9a-SECRET"
	const password = `pa"ss\wo<rd` // spelled differently inside a JSON string
	const pasteText = "hunter2-typed-into-the-guest"
	var w lockedWriter
	c, p := newRaw(t, Options{Transcript: &w, Secrets: []string{token, password}})
	p.helloAs(c, "1.2")
	roundTripStatus(t, c, p)

	res := goCall(func() (pasteAck, error) { return c.paste(t.Context(), pasteText, defaultCharDelay) })
	req := p.read()
	require.Equal(t, "paste", req.Method)
	p.send(okLine(req.ID, `{}`))
	_, err := res.wait(t)
	require.NoError(t, err)

	q, err := json.Marshal(password)
	require.NoError(t, err)
	p.send(`{"event": "agent_connected", "data": {"note": "url ?token=` + token + `", "password": ` + string(q) + `}}`)
	p.send(`{not json`)
	long := `{"event": "digest_updated", "data": {"blob": "` + strings.Repeat("A", MaxTranscriptLine) + `"}}`
	p.send(long)
	roundTripStatus(t, c, p) // every line above has been read
	require.NoError(t, c.Close())
	entries, raw, writes := w.entries(t)

	// Sends and receives are two streams: the reader may record lines
	// already on their way while a request is being sent, so each stream
	// is checked in its own order.
	var sent, recv []TranscriptEntry
	for _, e := range entries {
		assert.False(t, e.Time.IsZero(), "every entry has a time")
		switch e.Dir {
		case TranscriptSend:
			sent = append(sent, e)
		case TranscriptRecv:
			recv = append(recv, e)
		}
	}
	assert.Equal(t, len(entries), writes, "one Write per entry")
	require.Len(t, sent, 4, "hello, status, paste, status")
	require.Len(t, recv, 7, "four answers, an event, a malformed and a long line")
	require.Equal(t, TranscriptEnd, entries[len(entries)-1].Dir)
	assert.Equal(t, "closed by the client", entries[len(entries)-1].Line)
	for i, method := range []string{"hello", "status", "paste", "status"} {
		assert.Contains(t, sent[i].Line, `"method":"`+method+`"`)
	}
	require.Equal(t, TranscriptRecv, entries[1].Dir, "nothing else is in flight during hello")
	assert.Contains(t, entries[1].Line, `"server_name": "ryll"`)
	assert.False(t, entries[1].Time.Before(entries[0].Time), "an answer is recorded after its request")

	assert.Contains(t, sent[2].Line, `"text":"`+secret.Redacted+`"`, "the paste keeps its shape")
	for _, s := range []string{token, password, string(q[1 : len(q)-1]), pasteText} {
		assert.NotContains(t, string(raw), s, "the transcript file holds a secret")
		for _, e := range entries {
			assert.NotContains(t, e.Line, s, "a transcript line holds a secret")
		}
	}
	assert.Contains(t, recv[3].Line, "?token="+secret.Redacted)
	assert.Contains(t, recv[3].Line, `"password": "`+secret.Redacted+`"`)
	assert.Equal(t, `{not json`, recv[4].Line, "a malformed line is shown as it came")

	cut := recv[5]
	assert.True(t, cut.Truncated)
	assert.Equal(t, len(long), cut.Bytes)
	assert.Len(t, cut.Line, MaxTranscriptLine)
	assert.True(t, strings.HasPrefix(long, cut.Line))
}

// TestTranscriptEndsWithTheServersReason: a server that closes the
// connection leaves its reason as the last entry, and nothing is written
// after Close.
func TestTranscriptEndsWithTheServersReason(t *testing.T) {
	var w lockedWriter
	c, p := newRaw(t, Options{Transcript: &w})
	p.helloAs(c, "1.2")
	require.NoError(t, p.conn.Close())
	<-c.Done()
	require.NoError(t, c.Close())
	_, err := c.Status(t.Context())
	require.Error(t, err)
	entries, _, _ := w.entries(t)
	require.Len(t, entries, 3)
	assert.Equal(t, TranscriptEnd, entries[2].Dir)
	assert.Contains(t, entries[2].Line, "server closed the connection")
}

// failingWriter fails every Write.
type failingWriter struct{ calls int }

func (f *failingWriter) Write([]byte) (int, error) {
	f.calls++
	return 0, errors.New("disk full")
}

// TestTranscriptWriteErrorStopsOnlyTheTranscript: a sink that fails is
// tried once, logged, and the client works on.
func TestTranscriptWriteErrorStopsOnlyTheTranscript(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(b)
	}), nil))
	f := &failingWriter{}
	c, p := newRaw(t, Options{Transcript: f, Logger: logger})
	p.helloAs(c, "1.2")
	roundTripStatus(t, c, p)
	require.NoError(t, c.Close())
	assert.Equal(t, 1, f.calls, "no write after the first failure")
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, logs.String(), "transcript write failed")
	assert.Contains(t, logs.String(), "disk full")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
