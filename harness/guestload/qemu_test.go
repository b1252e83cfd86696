package guestload

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/spiceproxy"
)

// needQemu skips a test on a machine without QEMU, saying how to get it.
func needQemu(t testing.TB) {
	t.Helper()
	if _, err := qemu.LookBinary(""); err != nil {
		if errors.Is(err, qemu.ErrNotFound) {
			t.Skipf("busy QEMU guests need QEMU (apt-get install -y qemu-system-x86): %v", err)
		}
		t.Fatal(err)
	}
}

// proxyRouter is a load.Router that puts a nodelay spiceproxy in front
// of every target, as the ramp's proxy under test does, and remembers
// them.
type proxyRouter struct {
	t       *testing.T
	mu      sync.Mutex
	proxies []*spiceproxy.Proxy
	failOn  int // the call (1-based) that fails; 0 never
	calls   int
}

func (r *proxyRouter) route(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error) {
	r.mu.Lock()
	r.calls++
	fail := r.calls == r.failOn
	r.mu.Unlock()
	if fail {
		return netip.AddrPort{}, errors.New("the proxy under test refused a route")
	}
	mode, err := spiceproxy.Parse("nodelay")
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := spiceproxy.Start(context.WithoutCancel(ctx), spiceproxy.Config{Target: target.String(), Mode: mode})
	if err != nil {
		return netip.AddrPort{}, err
	}
	r.mu.Lock()
	r.proxies = append(r.proxies, p)
	r.mu.Unlock()
	r.t.Cleanup(func() { _ = p.Close() })
	return netip.MustParseAddrPort(p.Addr().String()), nil
}

// bytesThrough sums what every proxy forwarded to its clients.
func (r *proxyRouter) bytesThrough() (conns int, toClient int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.proxies {
		for _, c := range p.Conns() {
			conns++
			toClient += c.ToClient
		}
	}
	return conns, toClient
}

// gone reports whether no process pid exists any more (reaped).
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// recordPids wraps the pool's starter to note every QEMU a start made,
// even one whose start failed and was rolled back; it returns them in
// the order of the sessions' numbers.
func recordPids(p *pool) func() []int {
	var mu sync.Mutex
	byNumber := map[int]int{}
	orig := p.start
	p.start = func(ctx context.Context, i int) (*session, error) {
		s, err := orig(ctx, i)
		if s != nil && s.pid > 0 {
			mu.Lock()
			byNumber[i] = s.pid
			mu.Unlock()
		}
		return s, err
	}
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		var out []int
		for _, i := range slices.Sorted(maps.Keys(byNumber)) {
			out = append(out, byNumber[i])
		}
		return out
	}
}

func pidsOf(s load.Sample) []int {
	var out []int
	for _, p := range s.Processes {
		out = append(out, p.Pid)
	}
	return out
}

// TestQemuSourceUpDownClose: two guests boot in parallel, each viewed
// through the proxy the Router gave; down to one stops the newest; the
// sample is cumulative and lists each QEMU's CPU and memory; a guest
// killed from outside makes Sample fail; Close leaves no QEMU.
func TestQemuSourceUpDownClose(t *testing.T) {
	needQemu(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	r := &proxyRouter{t: t}
	logs := t.TempDir()
	q, err := NewQemu(QemuConfig{Router: r.route, LogDir: logs, RunID: "r-7", Parallel: 2})
	require.NoError(t, err)
	started := recordPids(q.pool)
	closed := false
	defer func() {
		if !closed {
			assert.NoError(t, q.Close(context.Background()))
		}
	}()
	assert.Equal(t, "qemu", q.Name())

	require.NoError(t, q.Set(ctx, 2), "two busy guests")
	s2, err := q.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, s2.Sessions)
	require.Len(t, s2.Processes, 2, "one QEMU per guest")
	for _, p := range s2.Processes {
		assert.Equal(t, "qemu", p.Role)
		assert.False(t, gone(p.Pid), "QEMU %d runs", p.Pid)
		assert.Greater(t, p.RSS, int64(1<<20), "a QEMU's resident memory is megabytes")
	}
	assert.Positive(t, s2.Messages, "the viewers read display messages")
	assert.Positive(t, s2.Bytes)
	conns, through := r.bytesThrough()
	assert.GreaterOrEqual(t, conns, 4, "each viewer's main and display channels crossed the proxy")
	assert.GreaterOrEqual(t, through, s2.Bytes, "what the viewers read came through the proxy (SPICE bytes and link)")
	assert.ElementsMatch(t, started(), pidsOf(s2))
	for _, name := range []string{"qemu-r-7-load-0.log", "qemu-r-7-load-1.log"} {
		assert.FileExists(t, filepath.Join(logs, name), "each guest's QEMU log, named after the run")
	}

	require.NoError(t, q.Set(ctx, 2), "no change")
	require.NoError(t, q.Set(ctx, 1), "down to one")
	s1, err := q.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s1.Sessions)
	require.Len(t, s1.Processes, 1)
	assert.Equal(t, started()[0], s1.Processes[0].Pid, "the newest guest stopped first")
	assert.GreaterOrEqual(t, s1.Bytes, s2.Bytes, "cumulative over every session ever started")
	assert.GreaterOrEqual(t, s1.Messages, s2.Messages)
	stopped := 0
	for _, pid := range started() {
		if gone(pid) {
			stopped++
		}
	}
	assert.Equal(t, 1, stopped, "one QEMU stopped")

	// A guest that dies by itself is loud.
	require.NoError(t, syscall.Kill(s1.Processes[0].Pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		_, err := q.Sample(ctx)
		return err != nil
	}, 30*time.Second, 20*time.Millisecond, "Sample fails once a busy guest died")
	_, err = q.Sample(ctx)
	assert.ErrorContains(t, err, "busy session load-")

	require.NoError(t, q.Close(ctx), "Close after a guest died")
	closed = true
	require.NoError(t, q.Close(ctx), "Close twice")
	for _, pid := range started() {
		assert.True(t, gone(pid), "QEMU %d is gone after Close", pid)
	}
	assert.ErrorIs(t, q.Set(ctx, 1), ErrClosed)
}

// TestQemuSourceFailedSetRollsBack: when one new guest cannot be
// reached through the proxy, Set fails with the reason and stops every
// guest it started; the source is back at the count it had.
func TestQemuSourceFailedSetRollsBack(t *testing.T) {
	needQemu(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	r := &proxyRouter{t: t, failOn: 2}
	q, err := NewQemu(QemuConfig{Router: r.route, LogDir: t.TempDir(), Parallel: 2})
	require.NoError(t, err)
	started := recordPids(q.pool)
	defer func() { assert.NoError(t, q.Close(context.Background())) }()

	err = q.Set(ctx, 2)
	require.Error(t, err)
	assert.ErrorContains(t, err, "the proxy under test refused a route")
	assert.ErrorContains(t, err, "new busy sessions started, all stopped again")
	require.NotEmpty(t, started(), "at least the guest whose route failed had booted")
	for _, pid := range started() {
		assert.True(t, gone(pid), "QEMU %d was stopped by the rollback", pid)
	}
	s, err := q.Sample(ctx)
	require.NoError(t, err)
	assert.Zero(t, s.Sessions)
	assert.Empty(t, s.Processes)

	require.NoError(t, q.Set(ctx, 1), "a later Set works")
	s, err = q.Sample(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Sessions)
}

// TestNewQemuRefusesWhatItCannotRun: an unknown activity or a missing
// binary fails at once, naming what to change.
func TestNewQemuRefusesWhatItCannotRun(t *testing.T) {
	_, err := NewQemu(QemuConfig{Binary: "/nonexistent/qemu-system-x86_64"})
	require.ErrorIs(t, err, qemu.ErrNotFound)
	needQemu(t)
	_, err = NewQemu(QemuConfig{Activity: "juggling"})
	assert.ErrorContains(t, err, `activity "juggling"`)
}

// TestQemuSourceCancelledSet: a Set whose context ends mid-start (here
// while the route is being made) returns, and leaves no QEMU.
func TestQemuSourceCancelledSet(t *testing.T) {
	needQemu(t)
	q, err := NewQemu(QemuConfig{LogDir: t.TempDir(), Parallel: 2,
		Router: func(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error) {
			<-ctx.Done() // a proxy that never answers
			return netip.AddrPort{}, context.Cause(ctx)
		}})
	require.NoError(t, err)
	started := recordPids(q.pool)
	defer func() { assert.NoError(t, q.Close(context.Background())) }()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	err = q.Set(ctx, 2)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, pid := range started() {
		assert.True(t, gone(pid), "QEMU %d was stopped although the Set's context had ended", pid)
	}
}

// TestQemuSourceActivities: a busy guest streams draws by itself, an
// idle one paints once and then is quiet; Set returns once each has
// drawn.
func TestQemuSourceActivities(t *testing.T) {
	needQemu(t)
	for _, activity := range guest.Activities {
		t.Run(activity, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			q, err := NewQemu(QemuConfig{Activity: activity, LogDir: t.TempDir()})
			require.NoError(t, err)
			defer func() { assert.NoError(t, q.Close(context.Background())) }()
			require.NoError(t, q.Set(ctx, 1))
			first, err := q.Sample(ctx)
			require.NoError(t, err)
			require.Positive(t, first.Messages, "flowing: the first paint was read")
			if activity == guest.ActivityIdle {
				return // nothing more comes without a key
			}
			require.Eventually(t, func() bool {
				s, err := q.Sample(ctx)
				return err == nil && s.Messages >= first.Messages+40
			}, 30*time.Second, 20*time.Millisecond, "a %s guest draws by itself", activity)
		})
	}
}
