package loadgen

import (
	"sync"
	"sync/atomic"
	"time"
)

// SessionStats is one synthetic session's display channel as one side
// saw it: the Server's (what it sent, how long the ACK window held it)
// or a Client's (what it read, what it answered). Bytes count whole
// SPICE messages, data headers included, not TCP/IP overhead.
type SessionStats struct {
	// Session is the session id the main channel's MAIN_INIT carried.
	Session uint32 `json:"session"`
	// Messages counts every display-channel message; Draws the DRAW_COPY
	// messages among them.
	Messages uint64 `json:"messages"`
	Draws    uint64 `json:"draws"`
	Bytes    uint64 `json:"bytes"`
	// Acks: the Server's ACKs received and counted (those sent before
	// ACK_SYNC named the generation are not); a Client's ACKs sent.
	Acks uint64 `json:"acks"`
	// Pings: PINGs sent (Server) or answered (Client); Pongs: PONGs the
	// Server received.
	Pings uint64 `json:"pings"`
	Pongs uint64 `json:"pongs,omitempty"`
	// AckWaits counts the times the Server stopped on a full ACK window;
	// AckWaitS is the time it spent stopped. A Client leaves them zero.
	AckWaits uint64  `json:"ack_waits"`
	AckWaitS float64 `json:"ack_wait_s"`
	// DurationS is the time from the display channel's link to its end
	// (or to now, for a session still running).
	DurationS float64 `json:"duration_s"`
	// BitsPerSecond is Bytes*8 over DurationS: the rate the session
	// really had, to compare with the rate asked for.
	BitsPerSecond float64 `json:"bits_per_s"`
	// Error says why the session ended, if not by a stop; empty while it
	// runs or after a clean stop.
	Error string `json:"error,omitempty"`
}

// Stats is one side of a set of synthetic sessions: every session and
// the sums.
type Stats struct {
	Sessions  int     `json:"sessions"`
	Failed    int     `json:"failed"` // sessions that ended with an error
	Messages  uint64  `json:"messages"`
	Draws     uint64  `json:"draws"`
	Bytes     uint64  `json:"bytes"`
	Acks      uint64  `json:"acks"`
	Pings     uint64  `json:"pings"`
	Pongs     uint64  `json:"pongs,omitempty"`
	AckWaits  uint64  `json:"ack_waits"`
	AckWaitS  float64 `json:"ack_wait_s"`
	DurationS float64 `json:"duration_s"` // the longest session
	// LinkFailures counts connections whose link handshake failed
	// (Server: refused tickets, garbage; Client: none, Start fails).
	LinkFailures uint64         `json:"link_failures,omitempty"`
	PerSession   []SessionStats `json:"per_session"`
}

func total(per []SessionStats, linkFailures uint64) Stats {
	st := Stats{Sessions: len(per), LinkFailures: linkFailures, PerSession: per}
	for _, s := range per {
		if s.Error != "" {
			st.Failed++
		}
		st.Messages += s.Messages
		st.Draws += s.Draws
		st.Bytes += s.Bytes
		st.Acks += s.Acks
		st.Pings += s.Pings
		st.Pongs += s.Pongs
		st.AckWaits += s.AckWaits
		st.AckWaitS += s.AckWaitS
		st.DurationS = max(st.DurationS, s.DurationS)
	}
	return st
}

// counters are a session's live figures, updated by its goroutines and
// read at any time by Stats.
type counters struct {
	session   atomic.Uint32
	messages  atomic.Uint64
	draws     atomic.Uint64
	bytes     atomic.Uint64
	acks      atomic.Uint64
	pings     atomic.Uint64
	pongs     atomic.Uint64
	ackWaits  atomic.Uint64
	ackWaitNs atomic.Int64

	mu      sync.Mutex
	started time.Time
	ended   time.Time
	err     error
}

func (c *counters) start(now time.Time) {
	c.mu.Lock()
	c.started = now
	c.mu.Unlock()
}

// end records the end and its cause (nil for a clean stop); the first
// end wins.
func (c *counters) end(now time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended.IsZero() {
		c.ended, c.err = now, err
	}
}

func (c *counters) snapshot(now time.Time) SessionStats {
	c.mu.Lock()
	started, ended, err := c.started, c.ended, c.err
	c.mu.Unlock()
	s := SessionStats{
		Session:  c.session.Load(),
		Messages: c.messages.Load(),
		Draws:    c.draws.Load(),
		Bytes:    c.bytes.Load(),
		Acks:     c.acks.Load(),
		Pings:    c.pings.Load(),
		Pongs:    c.pongs.Load(),
		AckWaits: c.ackWaits.Load(),
		AckWaitS: time.Duration(c.ackWaitNs.Load()).Seconds(),
	}
	if !started.IsZero() {
		if ended.IsZero() {
			ended = now
		}
		s.DurationS = ended.Sub(started).Seconds()
		if s.DurationS > 0 {
			s.BitsPerSecond = float64(s.Bytes) * 8 / s.DurationS
		}
	}
	if err != nil {
		s.Error = err.Error()
	}
	return s
}
