// Package controltest lets tests of a control-socket server (fakeryll's
// simulator and its live relay) call the verbs the product's client does
// not export, such as paste and screenshot: control.Client exports only
// what the loadtest uses. It speaks the protocol on a connection of its
// own, one request at a time. Only tests import it.
package controltest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/control"
)

// errHandshake marks a connection that closed during hello: retried,
// like a busy refusal.
var errHandshake = errors.New("connection closed during hello")

// busyRetry is the pause between attempts while the server answers busy
// (a previous client's connection is still being let go).
const busyRetry = 50 * time.Millisecond

// Call connects to the control socket at path, says hello, sends method
// with params (nil: {}) and returns the result. An error answer is a
// *control.ProtocolError. It retries while the server answers busy, until
// ctx ends; events that arrive meanwhile are skipped.
func Call(ctx context.Context, path, method string, params any) (json.RawMessage, error) {
	for {
		res, err := callOnce(ctx, path, method, params)
		if !errors.Is(err, control.ErrBusy) && !errors.Is(err, errHandshake) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w (last attempt: %w)", method, context.Cause(ctx), err)
		case <-time.After(busyRetry):
		}
	}
}

func callOnce(ctx context.Context, path, method string, params any) (json.RawMessage, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	br := bufio.NewReader(nc)
	hello := map[string]string{"client_name": "controltest", "protocol_version": control.ProtocolVersion}
	if _, err := exchange(nc, br, 1, "hello", hello); err != nil {
		var pe *control.ProtocolError
		if !errors.As(err, &pe) && ctx.Err() == nil {
			// Closed before the handshake: a server still letting the
			// previous client go writes busy and closes, and the hello
			// can meet the closed pipe before its answer is read.
			err = fmt.Errorf("%w: %w", errHandshake, err)
		}
		return nil, err
	}
	return exchange(nc, br, 2, method, params)
}

// answer is a response line (or a busy refusal, which has no id).
type answer struct {
	ID     *uint64         `json:"id"`
	Event  string          `json:"event"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// exchange writes one request and reads lines until its answer.
func exchange(nc net.Conn, br *bufio.Reader, id uint64, method string, params any) (json.RawMessage, error) {
	if params == nil {
		params = struct{}{}
	}
	line, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", method, err)
	}
	if _, err := nc.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("%s: write: %w", method, err)
	}
	for {
		raw, err := br.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("%s: read: %w", method, err)
		}
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", method, control.ErrMalformed, err)
		}
		switch {
		case a.Event != "":
			continue
		case a.ID == nil && a.Error != nil:
			return nil, &control.ProtocolError{Code: a.Error.Code, Message: a.Error.Message}
		case a.ID == nil || *a.ID != id:
			continue
		case !a.OK:
			if a.Error == nil {
				return nil, fmt.Errorf("%s: %w: error answer without an error", method, control.ErrMalformed)
			}
			return nil, &control.ProtocolError{Method: method, Code: a.Error.Code, Message: a.Error.Message}
		default:
			return a.Result, nil
		}
	}
}
