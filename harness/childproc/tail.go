package childproc

import "sync"

// DefaultTailLines is how many of a child's last output lines are kept
// when Spec.TailLines is zero: enough for an error and its context,
// short enough for a test message.
const DefaultTailLines = 40

// Tail keeps the last lines added to it. Safe for concurrent use.
type Tail struct {
	mu    sync.Mutex
	lines []string // a ring of cap n once full
	next  int      // where the next line goes once full
	n     int
}

// NewTail keeps the last n lines.
func NewTail(n int) *Tail { return &Tail{n: n} }

// Add keeps line, forgetting the oldest once n are kept.
func (r *Tail) Add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n <= 0 {
		return
	}
	if len(r.lines) < r.n {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % r.n
}

// Snapshot is the kept lines, oldest first.
func (r *Tail) Snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}
