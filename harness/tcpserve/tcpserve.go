// Package tcpserve owns a TCP listener's connections: it accepts clients
// (with a bounded backoff on accept errors), runs one connection per
// client on a goroutine of its own, keeps the set of open ones, aborts
// them all when its context ends or Close is called, and waits for them,
// bounded, on Close.
//
// It is the part that harness/link and harness/spiceproxy have in common,
// kept in one place so that the rules (what shutting down does, how long
// Close waits, what it says when a connection will not end) cannot drift
// apart between them. What a connection does with its bytes is the
// owner's: a Server only calls Conn's Run and Abort.
package tcpserve

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// Defaults for Config's zero values.
const (
	// DefaultCloseTimeout bounds Close's wait for the connections'
	// goroutines.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultKeep is how many ended connections Conns still reports.
	DefaultKeep = 256
)

// Accept's backoff after an error, doubled up to the maximum: an error
// such as EMFILE must not spin the accept loop.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Conn is one accepted client, as its owner runs it.
type Conn interface {
	// Run serves the client until the connection ends, by either side
	// or by Abort. The Server calls it once, on a goroutine of its own.
	Run()
	// Abort ends the connection at once (sockets closed, Run unblocked)
	// with err as the reason. It may be called while Run runs, after it
	// returned, and more than once.
	Abort(err error)
}

// Config says how a Server names itself, makes its connections and
// reports them. S is what the owner reports of one connection (its
// stats).
type Config[C Conn, S any] struct {
	// Name names the owner in logs and errors: "<Name> listening",
	// connections aborted with "<Name> shutting down: <cause>", "close
	// <Name>: 2 connections did not end within 5s".
	Name string
	// Closed is the cause Close gives the Server's context and the
	// connections it aborts (the owner's ErrClosed). Nil means
	// net.ErrClosed.
	Closed error
	// New makes the connection for an accepted client. ctx is the
	// Server's context, ended (with its cause) at shutdown; id counts
	// the accepted clients from 1. New runs on the accept goroutine with
	// Mu held, so it must not block or take Mu.
	New func(ctx context.Context, id uint64, nc *net.TCPConn) C
	// Stats is what Conns reports of a connection, open or ended. It is
	// called without Mu held.
	Stats func(c C) S
	// Ended, if set, is called once a connection's Run has returned,
	// with its final Stats, as it leaves the open set and with Mu held:
	// what the owner sums over ended connections changes atomically with
	// the open set. It must not call the Server's locking methods.
	Ended func(s S)
	// Keep is how many ended connections Conns still reports, the
	// latest; zero means DefaultKeep.
	Keep int
	// Mu guards the open set and the ended records. An owner that keeps
	// sums of ended connections passes its own mutex so that it can read
	// them and the open set in one critical section (see OpenLocked);
	// nil means a mutex of the Server's own.
	Mu *sync.Mutex
	// Logger receives the listening line and accept errors; nil
	// discards them.
	Logger *slog.Logger
	// CloseTimeout bounds Close's wait; zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
}

// Server accepts clients on one listener and owns their connections.
// Make it with New, start it with Serve; Close must be called.
type Server[C Conn, S any] struct {
	cfg    Config[C, S]
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu     *sync.Mutex
	ln     net.Listener
	stop   func() bool // stops the AfterFunc on Serve's context
	closed bool
	nextID uint64
	open   map[uint64]C
	ended  []record[S] // the last Keep, in the order they ended

	closeOnce sync.Once
	closeErr  error
}

// New makes a Server that has not started: its context exists (so that
// connections and the owner can watch it) but nothing is accepted until
// Serve. It panics if cfg.New or cfg.Stats is nil, a programming error.
func New[C Conn, S any](cfg Config[C, S]) *Server[C, S] {
	if cfg.New == nil || cfg.Stats == nil {
		panic("tcpserve: Config.New or Config.Stats is nil")
	}
	if cfg.Keep == 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Closed == nil {
		cfg.Closed = net.ErrClosed
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	s := &Server[C, S]{cfg: cfg, mu: cfg.Mu, open: make(map[uint64]C)}
	if s.mu == nil {
		s.mu = new(sync.Mutex)
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	return s
}

// Serve starts accepting clients on ln, which the Server now owns (Close
// closes it), and logs "<Name> listening" with ln's address and attrs.
// A ctx that ends shuts the Server down as Close does, with ctx's cause;
// Close must still be called to wait for the goroutines. Serve returns
// at once; calling it twice is a programming error.
func (s *Server[C, S]) Serve(ctx context.Context, ln net.Listener, attrs ...any) {
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		panic("tcpserve: Serve called twice")
	}
	s.ln = ln
	closed := s.closed
	if !closed {
		// The AfterFunc runs on a goroutine of its own: holding mu here
		// cannot deadlock it, and Close reads stop under mu.
		s.stop = context.AfterFunc(ctx, func() { s.shutdown(context.Cause(ctx)) })
	}
	s.mu.Unlock()
	if closed { // closed before it served: nothing to accept
		_ = ln.Close()
		return
	}
	s.cfg.Logger.Info(s.cfg.Name+" listening", append([]any{"listen", ln.Addr().String()}, attrs...)...)
	s.wg.Add(1)
	go s.accept(ln)
}

// Context is the Server's context: it ends at shutdown, its cause the
// Serve context's cause or Config.Closed.
func (s *Server[C, S]) Context() context.Context { return s.ctx }

// Addr is the address clients connect to; nil before Serve.
func (s *Server[C, S]) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting, aborts every open connection and waits, at most
// Config.CloseTimeout, for their goroutines. It is safe to call more than
// once and returns the same error each time: nil, or how many
// connections did not end in time (their goroutines are left running).
func (s *Server[C, S]) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		stop := s.stop
		s.mu.Unlock()
		if stop != nil {
			stop()
		}
		s.shutdown(s.cfg.Closed)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		t := time.NewTimer(s.cfg.CloseTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			s.mu.Lock()
			n := len(s.open)
			s.mu.Unlock()
			s.closeErr = fmt.Errorf("close %s: %d connections did not end within %s", s.cfg.Name, n, s.cfg.CloseTimeout)
		}
	})
	return s.closeErr
}

// Open is a snapshot of the open connections, in the order they were
// accepted. The caller must not hold Config.Mu.
func (s *Server[C, S]) Open() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.OpenLocked()
}

// OpenLocked is Open for a caller that holds Config.Mu: read with the
// owner's records of ended connections, it counts each connection once.
func (s *Server[C, S]) OpenLocked() []C {
	ids := s.openIDsLocked()
	out := make([]C, len(ids))
	for i, id := range ids {
		out[i] = s.open[id]
	}
	return out
}

// openIDsLocked is the ids of the open connections, in accept order; the
// caller holds Mu.
func (s *Server[C, S]) openIDsLocked() []uint64 {
	ids := make([]uint64, 0, len(s.open))
	for id := range s.open {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// shutdown closes the listener and aborts every open connection without
// waiting. Only the first call does anything.
func (s *Server[C, S]) shutdown(cause error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ln := s.ln
	open := s.OpenLocked()
	s.mu.Unlock()
	s.cancel(cause)
	if ln != nil {
		_ = ln.Close()
	}
	err := fmt.Errorf("%s shutting down: %w", s.cfg.Name, cause)
	for _, c := range open {
		c.Abort(err)
	}
}

// accept runs one connection per client until the listener closes.
func (s *Server[C, S]) accept(ln net.Listener) {
	defer s.wg.Done()
	backoff := minBackoff
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.cfg.Logger.Error("accept", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			s.cfg.Logger.Error("accept: not a TCP connection; closed", "type", fmt.Sprintf("%T", nc))
			_ = nc.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.nextID++
		id := s.nextID
		c := s.cfg.New(s.ctx, id, tc)
		s.open[id] = c
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.Run()
			s.retire(id, c)
		}()
	}
}

// record is an ended connection's final stats.
type record[S any] struct {
	id    uint64
	stats S
}

// retire moves an ended connection from the open set to the ended
// records and tells the owner, in one critical section.
func (s *Server[C, S]) retire(id uint64, c C) {
	st := s.cfg.Stats(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, id)
	if len(s.ended) == s.cfg.Keep {
		s.ended = append(s.ended[:0], s.ended[1:]...)
	}
	s.ended = append(s.ended, record[S]{id, st})
	if s.cfg.Ended != nil {
		s.cfg.Ended(st)
	}
}

// Conns reports the open connections and the last Keep ended ones, in
// the order they were accepted. The caller must not hold Config.Mu.
func (s *Server[C, S]) Conns() []S {
	s.mu.Lock()
	recs := append([]record[S](nil), s.ended...)
	ids := s.openIDsLocked()
	open := s.OpenLocked()
	s.mu.Unlock()
	for i, c := range open {
		recs = append(recs, record[S]{ids[i], s.cfg.Stats(c)})
	}
	// ended are in the order they ended; sort everything by id.
	slices.SortFunc(recs, func(a, b record[S]) int { return cmp.Compare(a.id, b.id) })
	out := make([]S, len(recs))
	for i, r := range recs {
		out[i] = r.stats
	}
	return out
}
