package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Error codes of the control-socket protocol (v1.x), as the error.code
// of a failed response. Exported so tests and tools can match them.
const (
	CodeNoHelloYet        = "no_hello_yet"
	CodeVersionMismatch   = "protocol_version_mismatch"
	CodeBusy              = "busy"
	CodeUnknownMethod     = "unknown_method"
	CodeBadParams         = "bad_params"
	CodeBadState          = "bad_state"
	CodeAgentNotConnected = "agent_not_connected"
	CodeNoSuchSurface     = "no_such_surface"
	CodeUnsupportedFormat = "unsupported_format"
	CodeNotImplemented    = "not_implemented"
	CodeInternalError     = "internal_error"
)

const (
	serverName = "ryll"

	EventLatency        = "latency"
	EventAgentConnected = "agent_connected"
	EventPasteCompleted = "paste_completed"
	EventPasteFailed    = "paste_failed"
	EventDropped        = "dropped"
	EventSurfaceDrawn   = "surface_drawn"

	methodHello       = "hello"
	methodStatus      = "status"
	methodSendKey     = "send_key"
	methodPaste       = "paste"
	methodScreenshot  = "screenshot"
	methodSubscribe   = "subscribe"
	methodUnsubscribe = "unsubscribe"

	defaultPasteCharDelay  = 10 // ms, the control-socket default
	maxRequestLine         = 1 << 20
	maxU32                 = 1<<32 - 1
	maxU16                 = 1<<16 - 1
	extendedScancodePrefix = 0xE0
)

// supportedMethods is the verb catalogue hello advertises.
var supportedMethods = []string{
	methodHello, methodStatus, methodSendKey, methodPaste,
	methodScreenshot, methodSubscribe, methodUnsubscribe,
}

// supportedEvents is the event catalogue a server speaking v advertises
// (and accepts in subscribe). digest_updated is feature-gated in ryll and
// off in default builds, so it is never offered.
func supportedEvents(v Version) []string {
	ev := []string{EventLatency, EventAgentConnected, EventPasteCompleted, EventPasteFailed, EventDropped}
	if v.AtLeast(1, 1) {
		ev = append(ev, EventSurfaceDrawn)
	}
	return ev
}

// wireError is the error object of a failed response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

type okResponse struct {
	ID     json.RawMessage `json:"id"`
	OK     bool            `json:"ok"`
	Result any             `json:"result"`
}

type errResponse struct {
	ID    json.RawMessage `json:"id"`
	OK    bool            `json:"ok"`
	Error *Error          `json:"error"`
}

// idlessResponse has no id at all: the busy line (no request was
// received) and, as in ryll's code, the answer to a request whose
// envelope did not parse.
type idlessResponse struct {
	OK    bool   `json:"ok"`
	Error *Error `json:"error"`
}

type eventMsg struct {
	Event string `json:"event"`
	Data  any    `json:"data"`
}

type helloResult struct {
	ServerName       string   `json:"server_name"`
	ProtocolVersion  string   `json:"protocol_version"`
	SupportedMethods []string `json:"supported_methods"`
	SupportedEvents  []string `json:"supported_events"`
}

type SurfaceInfo struct {
	ChannelID uint8  `json:"channel_id"`
	SurfaceID uint32 `json:"surface_id"`
	Width     uint32 `json:"width"`
	Height    uint32 `json:"height"`
}

type Status struct {
	SpiceConnected bool          `json:"spice_connected"`
	AgentConnected bool          `json:"agent_connected"`
	Surfaces       []SurfaceInfo `json:"surfaces"`
}

type screenshotResult struct {
	Width      uint32 `json:"width"`
	Height     uint32 `json:"height"`
	Format     string `json:"format"`
	DataBase64 string `json:"data_base64"`
}

type subscribeResult struct {
	Subscribed []string `json:"subscribed"`
}

type unsubscribeResult struct {
	Unsubscribed []string `json:"unsubscribed"`
}

type Latency struct {
	SampleMS    float64 `json:"sample_ms"`
	WallclockUS int64   `json:"wallclock_us"`
}

type SurfaceDrawn struct {
	DisplayChannelID uint8   `json:"display_channel_id"`
	SurfaceID        uint32  `json:"surface_id"`
	ProducedAtSecs   float64 `json:"produced_at_secs"`
	WallclockUS      int64   `json:"wallclock_us"`
}

type AgentConnected struct {
	Connected bool `json:"connected"`
}

type pasteCompletedData struct {
	RequestID json.RawMessage `json:"request_id"`
	CharsSent uint32          `json:"chars_sent"`
}

type pasteFailedData struct {
	RequestID json.RawMessage `json:"request_id"`
	Reason    string          `json:"reason"`
}

type droppedData struct {
	Count uint64 `json:"count"`
}

// encodeLine encodes v as one compact JSON line ending in "\n".
func encodeLine(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Every value encoded here is built from plain Go types, so this
		// cannot happen; answer with a well-formed internal error anyway.
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(eventMsg{Event: "internal_error", Data: map[string]string{"message": "encode: " + err.Error()}})
	}
	return buf.Bytes()
}

// request is one parsed request line.
type request struct {
	id     json.RawMessage
	method string
	params map[string]json.RawMessage // nil unless params is an object
	// paramsNotObject: params is present but not an object (null, say).
	// The envelope accepts any value, as ryll's does; each verb that
	// takes parameters then refuses it.
	paramsNotObject bool
}

// parseRequest validates the request envelope: an object with an id
// (integer or string), a method (string) and params (any JSON value).
// On failure it returns the error to answer with, and the answer carries
// no id, as in ryll's code, even when the id itself was readable.
func parseRequest(line []byte) (request, *Error) {
	var req request
	var fields map[string]json.RawMessage
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return req, Errorf(CodeBadParams, "request is not valid JSON")
		}
		return req, Errorf(CodeBadParams, "request must be a JSON object")
	}
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return req, Errorf(CodeBadParams, "request is not valid JSON: %s", jsonErrText(err))
	}
	rawID, ok := fields["id"]
	if !ok {
		return req, Errorf(CodeBadParams, "request has no id")
	}
	if !validID(rawID) {
		return req, Errorf(CodeBadParams, "id must be an integer or a string")
	}
	req.id = rawID
	rawMethod, ok := fields["method"]
	if !ok {
		return req, Errorf(CodeBadParams, "request has no method")
	}
	if err := json.Unmarshal(rawMethod, &req.method); err != nil || isNull(rawMethod) {
		return req, Errorf(CodeBadParams, "method must be a string")
	}
	rawParams, ok := fields["params"]
	if !ok {
		return req, Errorf(CodeBadParams, "params is missing (send {} for none)")
	}
	if p := bytes.TrimSpace(rawParams); len(p) == 0 || p[0] != '{' {
		req.paramsNotObject = true
		return req, nil
	}
	if err := json.Unmarshal(rawParams, &req.params); err != nil {
		return req, Errorf(CodeBadParams, "params must be a JSON object")
	}
	return req, nil
}

// jsonErrText keeps the syntax error's own words but never echoes input.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "malformed"
}

// validID reports whether raw is a JSON string or a JSON integer.
func validID(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	if raw[0] == '"' {
		var s string
		return json.Unmarshal(raw, &s) == nil
	}
	return isIntegerToken(raw)
}

// isIntegerToken reports whether raw is a JSON number without a fraction
// or exponent.
func isIntegerToken(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '-' {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// paramString reads an optional string field; null counts as absent.
func paramString(p map[string]json.RawMessage, key string) (string, bool, *Error) {
	raw, ok := p[key]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, Errorf(CodeBadParams, "%s must be a string", key)
	}
	return s, true, nil
}

// paramUint reads an optional unsigned integer field no larger than max;
// null counts as absent. Fractions, exponents and negatives are refused,
// as a strict u16/u32 decoder would.
func paramUint(p map[string]json.RawMessage, key string, max uint64, typ string) (uint64, bool, *Error) {
	raw, ok := p[key]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	t := bytes.TrimSpace(raw)
	if !isIntegerToken(t) {
		return 0, false, Errorf(CodeBadParams, "%s must be a %s", key, typ)
	}
	if t[0] == '-' {
		return 0, false, Errorf(CodeBadParams, "%s must be a %s, got a negative number", key, typ)
	}
	n, err := strconv.ParseUint(string(t), 10, 64)
	if err != nil || n > max {
		return 0, false, Errorf(CodeBadParams, "%s %s is out of range for a %s", key, t, typ)
	}
	return n, true, nil
}

// paramStrings reads a required array of strings.
func paramStrings(p map[string]json.RawMessage, key string) ([]string, *Error) {
	raw, ok := p[key]
	if !ok || isNull(raw) {
		return nil, Errorf(CodeBadParams, "%s is missing (want an array of strings)", key)
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, Errorf(CodeBadParams, "%s must be an array of strings", key)
	}
	return out, nil
}
