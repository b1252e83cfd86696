package childproc

import (
	"context"
	"fmt"
	"sync"
)

// Once makes a Stop safe to call more than once and concurrently: the
// first call does the work, the others wait for it (or for their own
// context) and return its result. The zero value is ready to use.
type Once struct {
	mu     sync.Mutex
	called bool
	done   chan struct{}
	err    error
}

// Do runs f on the first call. what names the work for the error of a
// caller whose ctx ends while it waits ("stop ryll").
func (o *Once) Do(ctx context.Context, what string, f func() error) error {
	o.mu.Lock()
	if o.done == nil {
		o.done = make(chan struct{})
	}
	done := o.done
	if o.called {
		o.mu.Unlock()
		select {
		case <-done:
			return o.err
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for another call: %w", what, ctx.Err())
		}
	}
	o.called = true
	o.mu.Unlock()
	o.err = f()
	close(done)
	return o.err
}
