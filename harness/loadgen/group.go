package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultParallel is how many sessions Start links at once.
const DefaultParallel = 16

// Group is a set of synthetic sessions started and stopped together.
type Group struct {
	clients []*Client
	stop    func() bool
	once    sync.Once
	final   Stats
}

// Start links n sessions with cfg, parallel at a time (0 means
// DefaultParallel), and returns once all are linked. If any fails, the
// others are closed and the error says how many linked and why the
// first failed. The sessions run until Stop, or until ctx ends (then
// Stop only collects).
func Start(ctx context.Context, cfg ClientConfig, n, parallel int) (*Group, error) {
	if n < 0 {
		return nil, fmt.Errorf("loadgen: %d sessions", n)
	}
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	g := &Group{clients: make([]*Client, n)}
	sem := make(chan struct{}, parallel)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error // the first failure: the cause, before the cancel it makes
	)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-lctx.Done():
				return
			}
			defer func() { <-sem }()
			c, err := Dial(lctx, cfg)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel() // one failure stops the rest
				return
			}
			g.clients[i] = c
		}()
	}
	wg.Wait()
	linked := 0
	for _, c := range g.clients {
		if c != nil {
			linked++
		}
	}
	if first == nil && linked < n {
		first = context.Cause(lctx) // ctx ended before every session linked
	}
	if linked < n {
		for _, c := range g.clients {
			if c != nil {
				c.Close()
			}
		}
		return nil, fmt.Errorf("loadgen: %d of %d sessions linked: %w", linked, n, first)
	}
	g.stop = context.AfterFunc(ctx, func() {
		for _, c := range g.clients {
			c.Close()
		}
	})
	return g, nil
}

// Stats reports every session so far.
func (g *Group) Stats() Stats {
	now := time.Now()
	per := make([]SessionStats, len(g.clients))
	for i, c := range g.clients {
		per[i] = c.c.snapshot(now)
	}
	return total(per, 0)
}

// Failed reports how many sessions have ended by themselves (the server
// or the proxy closed them, or they broke).
func (g *Group) Failed() int {
	n := 0
	for _, c := range g.clients {
		if c.Err() != nil {
			n++
		}
	}
	return n
}

// Stop closes every session, waits for every goroutine and returns the
// final figures. It is safe to call more than once.
func (g *Group) Stop() Stats {
	g.once.Do(func() {
		g.stop()
		var wg sync.WaitGroup
		for _, c := range g.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Close()
			}()
		}
		wg.Wait()
		g.final = g.Stats()
	})
	return g.final
}
