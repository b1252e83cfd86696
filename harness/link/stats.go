package link

// DirStats is what one direction of a link did: ready for the sidecar
// (snake_case, durations as float seconds with an _s suffix).
type DirStats struct {
	// Bytes were delivered to the receiver.
	Bytes int64 `json:"bytes"`
	// Reads are the reads from the sender: the messages that came in, as
	// TCP cut them.
	Reads int64 `json:"reads"`
	// Writes are the writes to the receiver: packets due together go out
	// in one write.
	Writes int64 `json:"writes"`
	// QueueHighWater is the most bytes the bottleneck held (waiting for
	// the rate or being sent) at once; 0 without a rate.
	QueueHighWater int64 `json:"queue_high_water_bytes"`
	// QueuedS is the time during which bytes waited in the queue for
	// the rate (the span of a standing queue, not a sum over bytes).
	QueuedS float64 `json:"queued_s"`
	// QueueWaitMaxS is the longest any byte waited in the queue before
	// the link began to send it.
	QueueWaitMaxS float64 `json:"queue_wait_max_s"`
	// BlockedS is the time the link did not read from the sender because
	// the queue (or, without a rate, the delay line) was full: TCP
	// back-pressure on the sender, as at a real bottleneck. It is an
	// upper bound: the sender may have had nothing more to send for part
	// of it.
	BlockedS float64 `json:"blocked_s"`
}

// add sums o into d; high-water marks and maxima take the larger.
func (d *DirStats) add(o DirStats) {
	d.Bytes += o.Bytes
	d.Reads += o.Reads
	d.Writes += o.Writes
	d.QueueHighWater = max(d.QueueHighWater, o.QueueHighWater)
	d.QueuedS += o.QueuedS
	d.QueueWaitMaxS = max(d.QueueWaitMaxS, o.QueueWaitMaxS)
	d.BlockedS += o.BlockedS
}

// How a connection ended, as ConnStats.End and Stats.Ends name it.
const (
	// EndClosed: both sides ended their streams and the link passed each
	// end on.
	EndClosed = "closed"
	// EndReset: a peer reset the connection or was gone when the link
	// wrote to it (a client that closes with bytes unread resets: a
	// normal end for many clients, not the link's failure).
	EndReset = "reset"
	// EndLinkClosed: the link was closed (Close, or its context ended)
	// while the connection was open; bytes on the link were dropped.
	EndLinkClosed = "link_closed"
	// EndDialFailed: the target could not be reached.
	EndDialFailed = "dial_failed"
	// EndError: any other socket error.
	EndError = "error"
)

// ConnStats is what the link did to one connection (one SPICE channel).
type ConnStats struct {
	ID     uint64 `json:"id"`
	Client string `json:"client"`
	// Open is true while the connection is still forwarding.
	Open bool `json:"open"`
	// End says how it ended (EndClosed, ...); empty while open.
	End string `json:"end,omitempty"`
	// ToServer is the client's direction, ToClient the server's.
	ToServer DirStats `json:"to_server"`
	ToClient DirStats `json:"to_client"`
	// Err says what ended it, when that was not both sides closing.
	Err string `json:"error,omitempty"`
}

// Stats is what a link did to all its connections, per direction: the
// counts summed, the high-water marks and maxima the largest of any
// connection.
type Stats struct {
	Profile Profile `json:"profile"`
	// Connections counts every connection accepted; Ends counts the
	// ended ones by how they ended (EndClosed, EndReset, ...).
	Connections int            `json:"connections"`
	Ends        map[string]int `json:"ends"`
	ToServer    DirStats       `json:"to_server"`
	ToClient    DirStats       `json:"to_client"`
}

func (s *Stats) add(c ConnStats) {
	s.Connections++
	if c.End != "" {
		if s.Ends == nil {
			s.Ends = map[string]int{}
		}
		s.Ends[c.End]++
	}
	s.ToServer.add(c.ToServer)
	s.ToClient.add(c.ToClient)
}

// Plus is s and o summed as one link's figures: counts and times added,
// high-water marks and maxima the larger, ends merged. A console whose
// client dials two ports (SPICE's plain and TLS) has a link on each, and
// a console asked for again (a one-time .vv) gets new links: Plus gives
// what the link did to the console as a whole. The profile is s's, or
// o's when s has none.
func (s Stats) Plus(o Stats) Stats {
	out := s
	if out.Profile == (Profile{}) {
		out.Profile = o.Profile
	}
	out.Connections += o.Connections
	if len(s.Ends)+len(o.Ends) > 0 {
		out.Ends = make(map[string]int, len(s.Ends)+len(o.Ends))
		for k, v := range s.Ends {
			out.Ends[k] += v
		}
		for k, v := range o.Ends {
			out.Ends[k] += v
		}
	}
	out.ToServer.add(o.ToServer)
	out.ToClient.add(o.ToClient)
	return out
}
