package sim

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// scheduler runs actions at given moments on one goroutine, in due-time
// order (ties in the order they were scheduled). Everything the simulated
// session does over time goes through it, so the session is a single
// sequential timeline and stopping it is one cancellation.
type scheduler struct {
	mu   sync.Mutex
	h    actionHeap
	seq  uint64
	wake chan struct{}
}

type action struct {
	due time.Time
	seq uint64
	fn  func()
}

type actionHeap []action

func (h actionHeap) Len() int { return len(h) }
func (h actionHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h actionHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *actionHeap) Push(x any)   { *h = append(*h, x.(action)) }
func (h *actionHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = action{}
	*h = old[:len(old)-1]
	return a
}

func newScheduler() *scheduler {
	return &scheduler{wake: make(chan struct{}, 1)}
}

// at schedules fn to run at due. fn runs on the scheduler goroutine and
// must not block.
func (s *scheduler) at(due time.Time, fn func()) {
	s.mu.Lock()
	s.seq++
	heap.Push(&s.h, action{due: due, seq: s.seq, fn: fn})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run executes actions as they fall due until ctx is done or stop is
// closed.
func (s *scheduler) run(ctx context.Context, stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var next *action
		if len(s.h) > 0 {
			next = &s.h[0]
		}
		var wait time.Duration = -1
		if next != nil {
			wait = time.Until(next.due)
			if wait <= 0 {
				a := heap.Pop(&s.h).(action)
				s.mu.Unlock()
				a.fn()
				select {
				case <-ctx.Done():
					return
				case <-stop:
					return
				default:
				}
				continue
			}
		}
		s.mu.Unlock()
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-s.wake:
		case <-tc:
		}
		timer.Stop()
	}
}
