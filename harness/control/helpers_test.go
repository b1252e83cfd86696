package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The client is tested two ways, and every test picks the one that can
// produce what it checks:
//
//   - against fakeryll's simulator (sim_test.go), started in this process
//     on a real Unix socket: everything ryll itself can do, driven by the
//     simulator's knobs (old protocol versions, a second client, floods,
//     hangs, the session ending);
//   - against a scripted peer (raw_test.go) that writes literal lines:
//     only what no ryll sends (broken JSON, over-long lines, unknown ids,
//     codes and fields, answers out of order, a stream cut mid-line).

// hangGuard bounds every wait in these tests so a broken test fails
// instead of hanging; it is never what a test asserts on.
const hangGuard = 30 * time.Second

// hasMonotonic reports whether t carries a monotonic clock reading, which
// keeps elapsed-time arithmetic immune to wall-clock steps.
func hasMonotonic(t time.Time) bool { return strings.Contains(t.String(), " m=") }

// eventually polls cond until it holds, failing the test after hangGuard.
// It waits for a state to be reached, never stands in for a measurement.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting: "+what)
		}
		time.Sleep(time.Millisecond)
	}
}

// nextEvent returns the next event, or false once Events is closed.
func nextEvent(t testing.TB, c *Client) (Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		return ev, ok
	case <-time.After(hangGuard):
		require.FailNow(t, "no event (hang guard)")
		return Event{}, false
	}
}

// eventNamed returns the next event called name, skipping others.
func eventNamed(t testing.TB, c *Client, name string) Event {
	t.Helper()
	for {
		ev, ok := nextEvent(t, c)
		require.True(t, ok, "events closed before a %s event: %v", name, c.Err())
		if ev.Name == name {
			return ev
		}
	}
}

// drainEvents reads Events until it is closed and returns what it held.
func drainEvents(t testing.TB, c *Client) []Event {
	t.Helper()
	var out []Event
	for {
		ev, ok := nextEvent(t, c)
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// pendingCalls is how many calls are registered and waiting for an
// answer: the state in which a test may cut the connection or cancel.
func pendingCalls(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// waitDone waits for the connection to end.
func waitDone(t testing.TB, c *Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(hangGuard):
		require.FailNow(t, "connection did not end (hang guard)")
	}
}

// wireRequest is a request as the protocol document defines it.
type wireRequest struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// checkRequestShape applies the document's request rules: id an integer
// or a string, method a string, params an object that is never omitted.
func checkRequestShape(line []byte) (wireRequest, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(line, &all); err != nil {
		return wireRequest{}, fmt.Errorf("request is not a JSON object: %w", err)
	}
	for _, k := range []string{"id", "method", "params"} {
		if _, ok := all[k]; !ok {
			return wireRequest{}, fmt.Errorf("request lacks %q: %s", k, line)
		}
	}
	var req wireRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return wireRequest{}, fmt.Errorf("request fields: %w", err)
	}
	var id any
	if err := json.Unmarshal(req.ID, &id); err != nil {
		return wireRequest{}, fmt.Errorf("request id: %w", err)
	}
	switch id.(type) {
	case float64, string:
	default:
		return wireRequest{}, fmt.Errorf("request id %s is neither integer nor string", req.ID)
	}
	if len(req.Params) == 0 || req.Params[0] != '{' {
		return wireRequest{}, fmt.Errorf("request params %s is not an object", req.Params)
	}
	if bytes.Contains(line, []byte("\n")) {
		return wireRequest{}, errors.New("request spans lines")
	}
	return req, nil
}

// async is a call running in its own goroutine.
type async[T any] struct {
	ch chan asyncResult[T]
}

type asyncResult[T any] struct {
	v   T
	err error
}

func goCall[T any](fn func() (T, error)) async[T] {
	a := async[T]{ch: make(chan asyncResult[T], 1)}
	go func() {
		v, err := fn()
		a.ch <- asyncResult[T]{v, err}
	}()
	return a
}

// wait returns the call's result; the hang guard only stops a broken test.
func (a async[T]) wait(t testing.TB) (T, error) {
	t.Helper()
	select {
	case r := <-a.ch:
		return r.v, r.err
	case <-time.After(hangGuard):
		require.FailNow(t, "call did not return (hang guard)")
		var zero T
		return zero, nil
	}
}
