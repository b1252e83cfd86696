package loadrig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// TestMain makes this test binary the children the tests start, as the
// loadtest's binary is (Child first), with two roles of the tests' own:
//
//	hostile  answers config, then on "garble" writes a line that is not
//	         an answer, on "stranger" an answer to a command never sent,
//	         on "exit" exits 3 unasked
//	parent   starts a proxy child of its own and answers config with
//	         both pids, then waits (a parent the tests kill)
func TestMain(m *testing.M) {
	roles["hostile"] = func(*slog.Logger) role { return hostileRole{} }
	roles["parent"] = func(*slog.Logger) role { return &parentRole{} }
	Child()
	goleak.VerifyTestMain(m)
}

type hostileRole struct{}

func (hostileRole) handle(_ context.Context, op string, _ json.RawMessage) (any, error) {
	switch op {
	case "config":
		return childInfo{Pid: os.Getpid()}, nil
	case "garble":
		fmt.Println(`{"id": 2, "result": {"addr": `)
		return "after the garble", nil
	case "stranger":
		fmt.Println(`{"id":999,"error":"an answer nobody asked for"}`)
		return "after the stranger", nil
	case "exit":
		fmt.Println("exiting unasked")
		os.Exit(3)
	}
	return nil, errors.New("hostile: unknown op")
}

func (hostileRole) close() error { return nil }

type parentResult struct {
	Pid, ProxyPid int
}

type parentRole struct{ proxy *Proxy }

func (r *parentRole) handle(ctx context.Context, op string, _ json.RawMessage) (any, error) {
	if op != "config" {
		return nil, errors.New("parent: unknown op")
	}
	p, err := StartProxy(ctx, ProxyConfig{Mode: spiceproxy.Mode{Kind: spiceproxy.NoDelay}})
	if err != nil {
		return nil, err
	}
	r.proxy = p
	return parentResult{Pid: os.Getpid(), ProxyPid: p.Pid()}, nil
}

func (r *parentRole) close() error {
	if r.proxy != nil {
		return r.proxy.Close(context.Background())
	}
	return nil
}
