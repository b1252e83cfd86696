package guestload

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/guest"
	"github.com/shakenfist/kerbside-latency/harness/load"
	"github.com/shakenfist/kerbside-latency/harness/loadgen"
	"github.com/shakenfist/kerbside-latency/harness/qemu"
	"github.com/shakenfist/kerbside-latency/harness/tmpdir"
)

// DefaultQemuFlowTimeout bounds one busy guest's start: its boot and its
// first draw at the client. A guest paints within a second under TCG;
// a dozen booting at once on two busy cores queue behind each other.
const DefaultQemuFlowTimeout = 60 * time.Second

// QemuConfig says what busy QEMU guests run and how their viewers reach
// them.
type QemuConfig struct {
	// Binary is the QEMU system emulator (LATENCY_QEMU); empty means
	// qemu.DefaultBinary.
	Binary string
	// Activity is what each guest does by itself (the ramp's activity):
	// one of guest.Activities; empty is idle.
	Activity string
	// Router gives each viewer its way to its guest through the proxy
	// under test; nil dials the guest itself.
	Router load.Router
	// Parallel bounds the guests booting at once (DefaultParallel).
	Parallel int
	// FlowTimeout bounds one guest's boot and first draw
	// (DefaultQemuFlowTimeout).
	FlowTimeout time.Duration
	// StopTimeout bounds stopping the guests of one Set, or of Close
	// (DefaultStopTimeout).
	StopTimeout time.Duration
	// LogDir receives each guest's QEMU output as
	// qemu-<RunID>-load-<i>.log (qemu-load-<i>.log without a RunID);
	// empty means a private directory removed by Close (failure messages
	// still quote QEMU's last lines).
	LogDir string
	RunID  string
	// Logger receives the source's progress; nil discards it.
	Logger *slog.Logger
}

// Qemu is the "qemu" load.Source: local guests running an activity, each
// with a loadgen Client that dials it through the Router.
type Qemu struct {
	cfg    QemuConfig
	image  []byte
	logDir string
	ownDir bool
	pool   *pool
	log    *slog.Logger
}

var _ load.Source = (*Qemu)(nil)

// NewQemu checks the configuration (the QEMU binary is there, the
// activity has an image) and returns a source with no guest running.
func NewQemu(cfg QemuConfig) (*Qemu, error) {
	if _, err := qemu.LookBinary(cfg.Binary); err != nil {
		return nil, fmt.Errorf("guestload qemu: %w", err)
	}
	img, err := imageFor(cfg.Activity)
	if err != nil {
		return nil, fmt.Errorf("guestload qemu: %w", err)
	}
	if cfg.FlowTimeout <= 0 {
		cfg.FlowTimeout = DefaultQemuFlowTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Qemu{cfg: cfg, image: img, logDir: cfg.LogDir, log: cfg.Logger}
	if q.logDir == "" {
		if q.logDir, err = tmpdir.Make("latency-load-qemu-"); err != nil {
			return nil, fmt.Errorf("guestload qemu: a directory for the guests' logs: %w", err)
		}
		q.ownDir = true
	}
	q.pool = newPool("qemu", q.start, cfg.Parallel, cfg.StopTimeout, cfg.Logger)
	return q, nil
}

// imageFor is the boot image of a guest running activity (empty: idle).
func imageFor(activity string) ([]byte, error) {
	if activity == "" {
		activity = guest.ActivityIdle
	}
	return guest.ImageFor(activity)
}

// Name is "qemu".
func (q *Qemu) Name() string { return "qemu" }

// Set makes exactly n guests run, each with its viewer flowing; see
// load.Source.
func (q *Qemu) Set(ctx context.Context, n int) error { return q.pool.set(ctx, n) }

// Sample reports what the viewers read and each QEMU's CPU and memory
// (role "qemu"); a guest or viewer that ended by itself is an error.
func (q *Qemu) Sample(ctx context.Context) (load.Sample, error) { return q.pool.sample(ctx) }

// Close stops every guest and removes a private log directory. Safe to
// call more than once.
func (q *Qemu) Close(ctx context.Context) error {
	err := q.pool.close(ctx)
	if q.ownDir && err == nil {
		if rerr := os.RemoveAll(q.logDir); rerr != nil {
			err = fmt.Errorf("guestload qemu: remove the guests' log directory: %w", rerr)
		}
	}
	return err
}

// start boots guest i, links its viewer through the Router and waits
// for the first draw.
func (q *Qemu) start(ctx context.Context, i int) (_ *session, err error) {
	name := "load-" + strconv.Itoa(i)
	t0 := time.Now()
	fctx, cancel := context.WithTimeoutCause(ctx, q.cfg.FlowTimeout, fmt.Errorf("busy guest %s not flowing within %s", name, q.cfg.FlowTimeout))
	defer cancel()
	pw := qemu.NewPassword()
	vm, err := qemu.Start(fctx, qemu.Spec{
		Binary: q.cfg.Binary, Image: q.image, Password: pw, Name: "kerbside-latency-" + name,
		LogPath: filepath.Join(q.logDir, q.logName(name)), Logger: q.log,
	})
	if err != nil {
		return nil, fmt.Errorf("boot busy guest %s: %w", name, err)
	}
	s := &session{name: name, pid: vm.Pid(), stop: vm.Stop, alive: vm.ExitErr}
	booted := time.Since(t0)
	host, port := vm.SpiceAddr()
	target, err := netip.ParseAddrPort(host + ":" + strconv.Itoa(port))
	if err != nil {
		return s, fmt.Errorf("busy guest %s: its SPICE address %s:%d: %w", name, host, port, err)
	}
	dial := target
	if q.cfg.Router != nil {
		if dial, err = q.cfg.Router(fctx, target); err != nil {
			return s, fmt.Errorf("busy guest %s: a route to %s through the proxy: %w", name, target, err)
		}
	}
	c, err := loadgen.Dial(fctx, loadgen.ClientConfig{Addr: dial.String(), Password: pw})
	if err != nil {
		return s, fmt.Errorf("busy guest %s: link its viewer (via %s): %w", name, dial, err)
	}
	s.client = c
	if err := waitFlowing(fctx, c, vm.ExitErr, q.cfg.FlowTimeout); err != nil {
		return s, fmt.Errorf("busy guest %s: %w", name, err)
	}
	q.log.Info("busy guest flowing", "guest", name, "pid", vm.Pid(), "activity", q.activity(), "spice", target.String(), "via", dial.String(),
		"boot", booted.Round(time.Millisecond), "first_draw", time.Since(t0).Round(time.Millisecond))
	return s, nil
}

// logName is the log file of guest name, beside the run's own
// qemu-<run>.log (console.QemuLogName).
func (q *Qemu) logName(name string) string {
	if q.cfg.RunID == "" {
		return "qemu-" + name + ".log"
	}
	return "qemu-" + q.cfg.RunID + "-" + name + ".log"
}

func (q *Qemu) activity() string {
	if q.cfg.Activity == "" {
		return guest.ActivityIdle
	}
	return q.cfg.Activity
}
