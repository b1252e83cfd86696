package loadrig

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The wire between the loadtest and a child it re-executed: one JSON
// object per '\n'-terminated line, commands on the child's stdin,
// answers on its stdout. The child's own log lines share its stdout and
// never start with '{'; every line that does is an answer.
//
//	command {"id": 7, "op": "route", "args": {"target": "127.0.0.1:5900"}}
//	answer  {"id": 7, "result": {"addr": "127.0.0.1:40123"}}
//	        {"id": 7, "error": "route 127.0.0.1:5900: ..."}
//
// A command the child cannot read is answered with id 0 and an error
// naming the line; the parent treats any answer it did not ask for as a
// broken child.

// maxLine bounds one line either way. Commands are a few hundred bytes,
// the largest answer (a "servers" list) a few KiB.
const maxLine = 1 << 20

// command is one request to a child.
type command struct {
	ID   uint64          `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// answer is a child's reply to one command.
type answer struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// ErrChildGone is wrapped by every call made to a child that has exited
// or broke the protocol: nothing more can be asked of it.
var ErrChildGone = errors.New("loadrig child is gone")

// RemoteError is an error the child answered with: the command was read
// and refused or failed there.
type RemoteError struct {
	Role, Op string
	Message  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s child: %s: %s", e.Role, e.Op, e.Message)
}
