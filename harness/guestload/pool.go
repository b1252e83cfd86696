package guestload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/loadgen"
	"github.com/shakenfist/kerbside-latency/harness/procstat"
)

// Defaults of the knobs both sources share.
const (
	// DefaultParallel is how many sessions a Set starts at once: a boot
	// is mostly waiting (QEMU under TCG, Nova), but two shared cores
	// should not boot a dozen guests at once.
	DefaultParallel = 4
	// DefaultStopTimeout bounds stopping the sessions of one Set going
	// down, or of Close (QEMU's own stop ladder is about 10 s at worst).
	DefaultStopTimeout = 30 * time.Second
)

// flowPoll is how often a starting session's client is looked at until
// it has read its first draw.
const flowPoll = 10 * time.Millisecond

// ErrClosed: the source was closed.
var ErrClosed = errors.New("guestload: the source is closed")

// session is one busy session: its viewer and what it runs on.
type session struct {
	name   string
	client *loadgen.Client
	// pid is the QEMU the session watches (0: none of ours).
	pid int
	// alive says why what the session runs on is gone (nil while it
	// runs); nil func when there is nothing to watch but the client.
	alive func() error
	// stop releases what the session runs on (a QEMU, a server), after
	// the client is closed; nil when nothing was acquired.
	stop func(ctx context.Context) error
}

// close ends the viewer, then what it runs on, within ctx.
func (s *session) close(ctx context.Context) error {
	if s.client != nil {
		s.client.Close()
	}
	if s.stop == nil {
		return nil
	}
	if err := s.stop(ctx); err != nil {
		return fmt.Errorf("stop busy session %s: %w", s.name, err)
	}
	s.stop = nil
	return nil
}

// starter starts the session numbered i and returns once its client has
// read display traffic. On error it returns whatever it acquired (a
// session whose close releases it), or nil.
type starter func(ctx context.Context, i int) (*session, error)

// pool is the part of a Source that both kinds share: which sessions
// run, starting and stopping them, and their counters.
type pool struct {
	name        string
	start       starter
	parallel    int
	stopTimeout time.Duration
	log         *slog.Logger

	mu        sync.Mutex
	live      []*session
	leftovers []*session // failed teardowns, retried by Close
	next      int        // the number the next session gets
	closed    bool
	// done are the counters of sessions that ended, so that Sample stays
	// cumulative.
	doneBytes, doneMessages int64
}

func newPool(name string, start starter, parallel int, stopTimeout time.Duration, log *slog.Logger) *pool {
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	if stopTimeout <= 0 {
		stopTimeout = DefaultStopTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &pool{name: name, start: start, parallel: parallel, stopTimeout: stopTimeout, log: log.With("load_source", name)}
}

// set makes exactly n sessions run. Going up, the new sessions start in
// parallel (at most p.parallel at once); if one fails, the others are
// cancelled and every session this call started is stopped again, so a
// failed set leaves the count it found. Going down, the newest sessions
// stop first, in parallel, bounded by stopTimeout.
func (p *pool) set(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("guestload %s: %d sessions", p.name, n)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	have := len(p.live)
	first := p.next
	if n > have {
		p.next += n - have
	}
	p.mu.Unlock()
	switch {
	case n > have:
		return p.grow(ctx, first, n-have)
	case n < have:
		p.mu.Lock()
		gone := append([]*session(nil), p.live[n:]...)
		p.live = p.live[:n]
		p.mu.Unlock()
		return p.stopAll(ctx, gone)
	}
	return nil
}

// grow starts k sessions numbered first... in parallel.
func (p *pool) grow(ctx context.Context, first, k int) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, p.parallel)
	started := make([]*session, k)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   []*session // what failed starts acquired
	)
	t0 := time.Now()
	for j := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-sctx.Done():
				return
			}
			defer func() { <-sem }()
			if sctx.Err() != nil {
				return
			}
			s, err := p.start(sctx, first+j)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				if s != nil {
					failed = append(failed, s)
				}
				mu.Unlock()
				cancel(err) // one failure stops the rest
				return
			}
			started[j] = s
		}()
	}
	wg.Wait()
	var ok []*session
	for _, s := range started {
		if s != nil {
			ok = append(ok, s)
		}
	}
	if firstErr == nil && len(ok) < k {
		firstErr = context.Cause(sctx)
	}
	if firstErr == nil {
		p.mu.Lock()
		closed := p.closed
		if !closed {
			p.live = append(p.live, ok...)
		}
		p.mu.Unlock()
		if closed {
			return errors.Join(ErrClosed, p.stopAll(ctx, ok))
		}
		p.log.Info("busy sessions started", "started", k, "sessions", p.count(), "took", time.Since(t0).Round(time.Millisecond))
		return nil
	}
	// Roll back: what started and what failed starts acquired.
	rollback := p.stopAll(ctx, append(ok, failed...))
	err := fmt.Errorf("guestload %s: %d of %d new busy sessions started, all stopped again: %w", p.name, len(ok), k, firstErr)
	if rollback != nil {
		err = errors.Join(err, rollback)
	}
	return err
}

// stopAll stops ss in parallel within stopTimeout (a context that
// survives ctx's cancel: a stop must run on every exit path). What did
// not stop is kept for Close to retry.
func (p *pool) stopAll(ctx context.Context, ss []*session) error {
	if len(ss) == 0 {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.stopTimeout)
	defer cancel()
	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.close(sctx)
		}()
	}
	wg.Wait()
	p.mu.Lock()
	for i, s := range ss {
		if s.client != nil {
			st := s.client.Stats()
			p.doneBytes += int64(st.Bytes)
			p.doneMessages += int64(st.Messages)
			s.client = nil
		}
		if errs[i] != nil {
			p.leftovers = append(p.leftovers, s)
		}
	}
	p.mu.Unlock()
	return errors.Join(errs...)
}

func (p *pool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// sample sums the counters of every session ever started and reads each
// live session's process. A session that ended by itself is an error,
// with the sample of what still runs.
func (p *pool) sample(ctx context.Context) (load.Sample, error) {
	if err := ctx.Err(); err != nil {
		return load.Sample{}, err
	}
	p.mu.Lock()
	live := append([]*session(nil), p.live...)
	s := load.Sample{At: time.Now(), Sessions: len(live), Bytes: p.doneBytes, Messages: p.doneMessages}
	p.mu.Unlock()
	var errs []error
	for _, ss := range live {
		st := ss.client.Stats()
		s.Bytes += int64(st.Bytes)
		s.Messages += int64(st.Messages)
		if err := ss.ended(); err != nil {
			errs = append(errs, err)
			continue
		}
		if ss.pid > 0 {
			u, err := procstat.Read(ss.pid)
			if err != nil {
				errs = append(errs, fmt.Errorf("busy session %s: %w", ss.name, err))
				continue
			}
			s.Processes = append(s.Processes, u.Process(p.name))
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("guestload %s: %w", p.name, errors.Join(errs...))
	}
	return s, nil
}

// ended says why a session stopped by itself, or nil while it runs.
func (s *session) ended() error {
	if s.alive != nil {
		if err := s.alive(); err != nil {
			return fmt.Errorf("busy session %s ended: %w", s.name, err)
		}
	}
	select {
	case <-s.client.Done():
		err := s.client.Err()
		if err == nil {
			err = errors.New("its viewer stopped")
		}
		return fmt.Errorf("busy session %s ended: %w", s.name, err)
	default:
		return nil
	}
}

// close stops every session and retries the leftovers of earlier
// teardowns. Safe to call more than once.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	all := append(append([]*session(nil), p.live...), p.leftovers...)
	p.live, p.leftovers = nil, nil
	p.mu.Unlock()
	if err := p.stopAll(ctx, all); err != nil {
		return fmt.Errorf("guestload %s: close: %w", p.name, err)
	}
	return nil
}

// waitFlowing returns once the client has read a draw, or why not: the
// client ended, what it watches ended, or ctx (bounded by timeout) ran
// out.
func waitFlowing(ctx context.Context, c *loadgen.Client, alive func() error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("no draw within %s", timeout))
	defer cancel()
	tick := time.NewTicker(flowPoll)
	defer tick.Stop()
	for {
		if c.Stats().Draws > 0 {
			return nil
		}
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		select {
		case <-c.Done():
			if err := c.Err(); err != nil {
				return fmt.Errorf("the session ended before its first draw: %w", err)
			}
			return errors.New("the session ended before its first draw")
		case <-ctx.Done():
			st := c.Stats()
			return fmt.Errorf("wait for the first draw (%d messages read, none a draw): %w", st.Messages, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
