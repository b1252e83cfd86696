package control

import (
	"errors"
	"fmt"
)

// Error codes the server may put in a failed response. They are the
// stable, machine-readable part of an error (the message is for humans and
// may change between minor versions). The set is open: a newer server may
// send codes not listed here, which still arrive as a *ProtocolError.
const (
	// CodeNoHelloYet: a request other than hello came before the
	// handshake. The connection stays open; send hello and carry on.
	CodeNoHelloYet = "no_hello_yet"
	// CodeProtocolVersionMismatch: the hello asked for another major
	// version. The server closes the connection after sending it.
	CodeProtocolVersionMismatch = "protocol_version_mismatch"
	// CodeBusy: another client holds the socket. Sent without an id as the
	// only line of a refused connection, which is then closed.
	CodeBusy = "busy"
	// CodeUnknownMethod: the server does not know the verb.
	CodeUnknownMethod = "unknown_method"
	// CodeBadParams: params missing a field, mistyped, or not an object.
	CodeBadParams = "bad_params"
	// CodeBadState: send_key's state was not down, up or press.
	CodeBadState = "bad_state"
	// CodeAgentNotConnected: paste needs the guest's SPICE vdagent.
	CodeAgentNotConnected = "agent_not_connected"
	// CodeNoSuchSurface: screenshot named a surface that does not exist.
	CodeNoSuchSurface = "no_such_surface"
	// CodeUnsupportedFormat: screenshot format was not png or rgba.
	CodeUnsupportedFormat = "unsupported_format"
	// CodeNotImplemented: the verb is known but not built in this server.
	CodeNotImplemented = "not_implemented"
	// CodeInternalError: the server hit an unexpected condition.
	CodeInternalError = "internal_error"
)

// Sentinel errors for failures detected on this side of the socket. Test
// them with errors.Is; they are usually wrapped with what was being done.
var (
	// ErrClosed reports that the connection has ended (closed by Close,
	// by the server, or by a read or write failure). Errors from calls
	// that were pending when it ended wrap both ErrClosed and the cause.
	ErrClosed = errors.New("control connection closed")
	// ErrBusy reports that the server refused the connection because
	// another client holds it. A *ProtocolError with CodeBusy also
	// matches ErrBusy, so one errors.Is check covers both paths.
	ErrBusy = errors.New("control socket busy: another client is connected")
	// ErrLineTooLong reports a line from the server longer than
	// Options.MaxLineBytes. The line is discarded up to its newline; a
	// call whose response it was fails with this error.
	ErrLineTooLong = errors.New("control line exceeds size bound")
	// ErrMalformed reports a line or result from the server that does not
	// have the shape the protocol document gives it.
	ErrMalformed = errors.New("malformed control message")
	// ErrExtendedKeyUnsupported reports an 0xE0-prefixed scancode refused
	// locally because the server speaks a protocol older than 1.2, whose
	// servers sent extended keys to the guest with the bytes swapped.
	ErrExtendedKeyUnsupported = errors.New("extended (0xE0) scancodes need protocol 1.2 or later")
	// ErrInvalidScancode reports a scancode that is not a plausible
	// logical AT set-1 make code, refused before anything is sent.
	ErrInvalidScancode = errors.New("invalid scancode")
	// ErrInvalidArgument reports another argument refused before sending
	// (an unknown key state or image format, an out-of-range delay).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNoHello reports an operation that needs the server's hello
	// answer (its version) before Hello has succeeded.
	ErrNoHello = errors.New("hello handshake not completed")
)

// ProtocolError is a failure the server reported in a response. Method is
// the verb that was called (empty for the id-less busy line).
type ProtocolError struct {
	Method  string
	Code    string
	Message string
}

// Error includes the code (stable) and the server's message (human).
func (e *ProtocolError) Error() string {
	if e.Method == "" {
		return fmt.Sprintf("control server error %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("control %s: server error %s: %s", e.Method, e.Code, e.Message)
}

// Is makes a busy refusal match ErrBusy, so callers need not care whether
// busy arrived as a server line or was concluded locally.
func (e *ProtocolError) Is(target error) bool {
	return target == ErrBusy && e.Code == CodeBusy
}

// VersionMismatchError reports that client and server speak different
// major protocol versions, so nothing else on the connection can be
// trusted. Server is the server's version when it told us, or empty when
// it only answered protocol_version_mismatch (then Cause holds that
// answer).
type VersionMismatchError struct {
	Client string
	Server string
	Cause  error
}

// Error names both versions so the log says which side to upgrade.
func (e *VersionMismatchError) Error() string {
	server := e.Server
	if server == "" {
		server = "another major version"
	}
	msg := fmt.Sprintf("control protocol version mismatch: client speaks %s, server speaks %s", e.Client, server)
	if e.Cause != nil {
		msg += " (" + e.Cause.Error() + ")"
	}
	return msg
}

// Unwrap exposes the server's protocol_version_mismatch answer, if any.
func (e *VersionMismatchError) Unwrap() error { return e.Cause }
