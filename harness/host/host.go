// Package host measures what the host does to a latency measurement
// while it runs: how late the harness's own timers fire (its scheduling
// lag), the CPU time the harness, ryll and QEMU take, and the host's
// load, runnable tasks and steal from /proc.
//
// A key-to-screen latency is a few tens of milliseconds, and everything
// on its path (the harness that stamps the key, ryll that stamps the
// draw, QEMU that draws) shares the host's cores with whatever else runs
// there. On a host whose load is several times its cores, a sample moves
// by more than the difference an A/B is asked to find, and an interval
// that wide can hide a regression. The figures here let a run say so:
// Judge names the host as the reason a verdict cannot be pass, and
// LateDuring marks the samples taken while the harness itself was late.
//
// A Sampler is started for each stretch of measurement (an A/B block)
// and stopped at its end; Merge pools the stretches of one leg.
package host

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The stated bounds beyond which the host is too busy for a single run's
// verdict to be pass. They are fixed, not configurable, so that every
// run is judged by the same rule and the rule is in docs/guide.md (the A/B).
const (
	// MaxLagP99 is the largest 99th percentile of the harness's timer
	// lag that still leaves a sample trustworthy to a fraction of a
	// 10 ms threshold: beyond it, one sample in a hundred is stamped
	// more than 5 ms late.
	MaxLagP99 = 5 * time.Millisecond
	// MaxRunnablePerCore bounds the mean number of runnable tasks
	// (procs_running in /proc/stat, less the sampler that reads it) per
	// core: one per core is a host fully used; "well above the cores" is
	// taken as twice them, where a task that wakes up finds, on average,
	// another one waiting for its core.
	MaxRunnablePerCore = 2.0
	// MaxSteal is the largest share of the host's CPU time a hypervisor
	// may steal from it.
	MaxSteal = 0.10
	// MaxLateShare is the largest share of samples taken while the
	// harness was late (a tick later than MaxLagP99 within the sample)
	// before the host is named.
	MaxLateShare = 0.10
)

// DefaultTick is how often the lag probe's timer fires.
const DefaultTick = 10 * time.Millisecond

// procEvery is how often /proc is read (runnable tasks, load).
const procEvery = 250 * time.Millisecond

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat
// and /proc/stat. It is 100 on every architecture Linux ships (the
// kernel converts to it whatever its own HZ), and reading it would need
// cgo (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// Process is one process whose CPU time is measured.
type Process struct {
	// Role names it in the figures: "harness", "ryll", "qemu".
	Role string
	// Pid is its process id; 0 leaves it out.
	Pid int
}

// Options configure a Sampler. The zero value samples the real /proc
// every DefaultTick, with no process but the harness itself.
type Options struct {
	// Processes are measured in addition to the harness (this process).
	Processes []Process
	// Proc is the root of the proc filesystem ("" is /proc), for tests.
	Proc string
	// Tick is how often the lag probe fires (0 is DefaultTick).
	Tick time.Duration
}

// Figures are what a Sampler saw. Durations are float seconds in fields
// ending in _s.
type Figures struct {
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	// Cores are the host's CPUs (cpuN lines in /proc/stat).
	Cores int `json:"cores"`
	// Lag is how late the harness's own timer fired.
	Lag Lag `json:"lag"`
	// CPU is the CPU time each measured process took.
	CPU []ProcessCPU `json:"cpu"`
	// Load1Start, Load1End and Load1Max are the one-minute load
	// average at the start, at the end and the most seen.
	Load1Start float64 `json:"load1_start"`
	Load1End   float64 `json:"load1_end"`
	Load1Max   float64 `json:"load1_max"`
	// RunnableMean and RunnableMax are procs_running in /proc/stat
	// (tasks running or waiting for a core) less one: the sampler's own
	// thread, which is running as it reads the file.
	RunnableMean float64 `json:"runnable_mean"`
	RunnableMax  int     `json:"runnable_max"`
	// Busy is the share of the host's CPU time not idle, all processes;
	// Steal the share a hypervisor took.
	Busy  float64 `json:"busy_share"`
	Steal float64 `json:"steal_share"`
	// Reads counts the /proc reads; Errors what could not be read.
	Reads  int      `json:"proc_reads"`
	Errors []string `json:"errors,omitempty"`

	lags     []time.Duration
	late     []span
	runSum   float64
	runN     int
	cpuTotal uint64 // jiffies of the host, all CPUs
	cpuIdle  uint64
	cpuSteal uint64
}

// Lag summarises the harness's timer lag.
type Lag struct {
	// Ticks is how many ticks fell due (a stall counts every tick it
	// held up); TickS their period.
	Ticks int     `json:"ticks"`
	TickS float64 `json:"tick_s"`
	P50S  float64 `json:"p50_s"`
	P99S  float64 `json:"p99_s"`
	MaxS  float64 `json:"max_s"`
	// Late counts the ticks later than MaxLagP99.
	Late int `json:"late"`
}

// ProcessCPU is the CPU time one process took while sampled.
type ProcessCPU struct {
	Role string `json:"role"`
	Pid  int    `json:"pid"`
	// CPUS is user plus system time; CoreShare is CPUS over the time
	// sampled (1 is one core busy all along).
	CPUS      float64 `json:"cpu_s"`
	CoreShare float64 `json:"core_share"`
}

// span is a stretch of time in which the harness did not run: from when
// a tick was due to when it fired.
type span struct{ from, to time.Time }

// Sampler measures the host from Start to Stop.
type Sampler struct {
	opts   Options
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	fig      Figures
	startCPU map[int]uint64
	startSt  procStat
	stopOnce sync.Once
}

// Start begins sampling until Stop or ctx's end. It never fails: what
// cannot be read is listed in Figures.Errors, so a host without /proc
// still measures, only with fewer figures.
func Start(ctx context.Context, opts Options) *Sampler {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	opts.Processes = append([]Process{{Role: "harness", Pid: os.Getpid()}}, opts.Processes...)
	ctx, cancel := context.WithCancel(ctx)
	s := &Sampler{opts: opts, cancel: cancel, done: make(chan struct{}), startCPU: map[int]uint64{}}
	s.fig.StartTime = time.Now()
	s.fig.Lag.TickS = opts.Tick.Seconds()
	st, err := readStat(opts.Proc)
	if err != nil {
		s.fail(err)
	}
	s.startSt = st
	s.fig.Cores = st.cores
	if s.fig.Cores == 0 {
		s.fig.Cores = runtime.NumCPU()
	}
	if l, err := readLoad1(opts.Proc); err == nil {
		s.fig.Load1Start, s.fig.Load1Max = l, l
	} else {
		s.fail(err)
	}
	for _, p := range opts.Processes {
		if p.Pid <= 0 {
			continue
		}
		t, err := readCPU(opts.Proc, p.Pid)
		if err != nil {
			s.fail(err)
			continue
		}
		s.startCPU[p.Pid] = t
	}
	go s.loop(ctx)
	return s
}

func (s *Sampler) fail(err error) {
	msg := err.Error()
	if !slices.Contains(s.fig.Errors, msg) {
		s.fig.Errors = append(s.fig.Errors, msg)
	}
}

// loop fires a timer every tick, on a fixed schedule, and records how
// late each firing was; every procEvery it reads /proc.
func (s *Sampler) loop(ctx context.Context) {
	defer close(s.done)
	tick := s.opts.Tick
	next := time.Now().Add(tick)
	lastProc := time.Time{}
	t := time.NewTimer(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		if lag := now.Sub(next); lag > MaxLagP99 {
			s.fig.late = append(s.fig.late, span{from: next, to: now})
		}
		// Every tick that was due counts, with how late it is now: a
		// stall of several ticks weighs as many ticks in the
		// percentiles, not one.
		for ; !next.After(now); next = next.Add(tick) {
			s.fig.lags = append(s.fig.lags, now.Sub(next))
		}
		s.mu.Unlock()
		if now.Sub(lastProc) >= procEvery {
			lastProc = now
			s.readProc()
		}
		t.Reset(time.Until(next))
	}
}

func (s *Sampler) readProc() {
	st, err := readStat(s.opts.Proc)
	l, lerr := readLoad1(s.opts.Proc)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fig.Reads++
	if err != nil {
		s.fail(err)
	} else {
		others := max(0, st.running-1)
		s.fig.runSum += float64(others)
		s.fig.runN++
		s.fig.RunnableMax = max(s.fig.RunnableMax, others)
	}
	if lerr != nil {
		s.fail(lerr)
	} else {
		s.fig.Load1Max = max(s.fig.Load1Max, l)
	}
}

// Stop ends the sampling and returns the figures, judged. It is safe to
// call more than once; later calls return the same figures.
func (s *Sampler) Stop() Figures {
	s.stopOnce.Do(func() {
		s.cancel()
		<-s.done
		s.readProc()
		s.mu.Lock()
		defer s.mu.Unlock()
		f := &s.fig
		f.EndTime = time.Now()
		if l, err := readLoad1(s.opts.Proc); err == nil {
			f.Load1End = l
			f.Load1Max = max(f.Load1Max, l)
		}
		if st, err := readStat(s.opts.Proc); err == nil && s.startSt.total > 0 {
			f.cpuTotal = st.total - s.startSt.total
			f.cpuIdle = st.idle - s.startSt.idle
			f.cpuSteal = st.steal - s.startSt.steal
		}
		elapsed := f.EndTime.Sub(f.StartTime).Seconds()
		for _, p := range s.opts.Processes {
			start, ok := s.startCPU[p.Pid]
			if !ok {
				continue
			}
			end, err := readCPU(s.opts.Proc, p.Pid)
			if err != nil {
				// Gone already (ryll stopped first): what it took is
				// unknown, not zero.
				s.fail(err)
				continue
			}
			cpu := float64(end-start) / clockTicks
			f.CPU = append(f.CPU, ProcessCPU{Role: p.Role, Pid: p.Pid, CPUS: cpu, CoreShare: share(cpu, elapsed)})
		}
		f.finish()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fig.clone()
}

func share(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return part / whole
}

// finish computes the summaries from the raw figures.
func (f *Figures) finish() {
	f.Lag.Ticks = len(f.lags)
	f.Lag.Late = 0
	if len(f.lags) > 0 {
		sorted := slices.Clone(f.lags)
		slices.Sort(sorted)
		f.Lag.P50S = percentile(sorted, 50).Seconds()
		f.Lag.P99S = percentile(sorted, 99).Seconds()
		f.Lag.MaxS = sorted[len(sorted)-1].Seconds()
		for _, l := range sorted {
			if l > MaxLagP99 {
				f.Lag.Late++
			}
		}
	}
	if f.runN > 0 {
		f.RunnableMean = f.runSum / float64(f.runN)
	}
	if f.cpuTotal > 0 {
		f.Busy = float64(f.cpuTotal-f.cpuIdle) / float64(f.cpuTotal)
		f.Steal = float64(f.cpuSteal) / float64(f.cpuTotal)
	}
}

// percentile of sorted durations, nearest rank at or above.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (f Figures) clone() Figures {
	f.CPU = slices.Clone(f.CPU)
	f.Errors = slices.Clone(f.Errors)
	f.lags = slices.Clone(f.lags)
	f.late = slices.Clone(f.late)
	return f
}

// Merge pools the figures of several stretches of one leg (its blocks):
// the lag over every tick, CPU time summed per role, the load's extremes,
// runnable tasks averaged over every read, steal over all the time.
// Figures read back from a file have only their summaries: those pool
// conservatively (a lag percentile is the largest part's, which the
// pooled one cannot exceed; runnable and steal are weighted by reads and
// time).
func Merge(parts ...Figures) Figures {
	var out Figures
	var elapsed float64
	var summaryOnly []Figures
	for i, p := range parts {
		if len(p.lags) == 0 && p.Lag.Ticks > 0 || p.runN == 0 && p.Reads > 0 || p.cpuTotal == 0 && (p.Busy > 0 || p.Steal > 0) {
			summaryOnly = append(summaryOnly, p)
		}
		if i == 0 || p.StartTime.Before(out.StartTime) {
			out.StartTime = p.StartTime
			out.Load1Start = p.Load1Start
		}
		if p.EndTime.After(out.EndTime) {
			out.EndTime = p.EndTime
			out.Load1End = p.Load1End
		}
		out.Cores = max(out.Cores, p.Cores)
		out.Lag.TickS = max(out.Lag.TickS, p.Lag.TickS)
		out.Load1Max = max(out.Load1Max, p.Load1Max)
		out.RunnableMax = max(out.RunnableMax, p.RunnableMax)
		out.Reads += p.Reads
		out.lags = append(out.lags, p.lags...)
		out.late = append(out.late, p.late...)
		out.runSum += p.runSum
		out.runN += p.runN
		out.cpuTotal += p.cpuTotal
		out.cpuIdle += p.cpuIdle
		out.cpuSteal += p.cpuSteal
		elapsed += p.EndTime.Sub(p.StartTime).Seconds()
		for _, e := range p.Errors {
			if !slices.Contains(out.Errors, e) {
				out.Errors = append(out.Errors, e)
			}
		}
		for _, c := range p.CPU {
			j := slices.IndexFunc(out.CPU, func(o ProcessCPU) bool { return o.Role == c.Role })
			if j < 0 {
				out.CPU = append(out.CPU, ProcessCPU{Role: c.Role})
				j = len(out.CPU) - 1
			}
			// A role's pid may change from block to block (a new ryll
			// each time): the last one is kept.
			out.CPU[j].Pid = c.Pid
			out.CPU[j].CPUS += c.CPUS
		}
	}
	for i := range out.CPU {
		out.CPU[i].CoreShare = share(out.CPU[i].CPUS, elapsed)
	}
	out.finish()
	for _, p := range summaryOnly {
		out.mergeSummary(p)
	}
	return out
}

// mergeSummary folds in a part that has only its summaries.
func (f *Figures) mergeSummary(p Figures) {
	if len(p.lags) == 0 && p.Lag.Ticks > 0 {
		f.Lag.Ticks += p.Lag.Ticks
		f.Lag.Late += p.Lag.Late
		f.Lag.P50S = max(f.Lag.P50S, p.Lag.P50S)
		f.Lag.P99S = max(f.Lag.P99S, p.Lag.P99S)
		f.Lag.MaxS = max(f.Lag.MaxS, p.Lag.MaxS)
	}
	if p.runN == 0 && p.Reads > 0 {
		n := float64(f.runN)
		f.RunnableMean = (f.RunnableMean*n + p.RunnableMean*float64(p.Reads)) / (n + float64(p.Reads))
		f.runN += p.Reads
		f.runSum += p.RunnableMean * float64(p.Reads)
	}
	if p.cpuTotal == 0 && (p.Busy > 0 || p.Steal > 0) {
		// Weighted by time against the rest, whose weight is unknown
		// here: the larger share is kept.
		f.Busy = max(f.Busy, p.Busy)
		f.Steal = max(f.Steal, p.Steal)
	}
}

// Judge names what made the host too busy to measure to a few
// milliseconds, one reason each, or nothing when it was not.
func (f Figures) Judge() []string {
	var why []string
	if f.Lag.Ticks > 0 && f.Lag.P99S > MaxLagP99.Seconds() {
		why = append(why, fmt.Sprintf("the harness's timer lag p99 was %.1f ms (max %.1f ms), above %s", f.Lag.P99S*1000, f.Lag.MaxS*1000, MaxLagP99))
	}
	if f.Cores > 0 && f.RunnableMean > MaxRunnablePerCore*float64(f.Cores) {
		why = append(why, fmt.Sprintf("%.1f runnable tasks on average (max %d) on %d cores, above %.1f per core (load average up to %.1f)",
			f.RunnableMean, f.RunnableMax, f.Cores, MaxRunnablePerCore, f.Load1Max))
	}
	if f.Steal > MaxSteal {
		why = append(why, fmt.Sprintf("the hypervisor stole %.0f%% of the host's CPU time, above %.0f%%", 100*f.Steal, 100*MaxSteal))
	}
	return why
}

// String is the figures on one line, for messages and summaries.
func (f Figures) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lag p50/p99/max %.2f/%.2f/%.1f ms over %d ticks", f.Lag.P50S*1000, f.Lag.P99S*1000, f.Lag.MaxS*1000, f.Lag.Ticks)
	fmt.Fprintf(&b, ", runnable %.1f (max %d) on %d cores, load %.2f..%.2f (max %.2f), busy %.0f%%, steal %.1f%%",
		f.RunnableMean, f.RunnableMax, f.Cores, f.Load1Start, f.Load1End, f.Load1Max, 100*f.Busy, 100*f.Steal)
	for _, c := range f.CPU {
		fmt.Fprintf(&b, ", %s %.2f s CPU (%.0f%% of a core)", c.Role, c.CPUS, 100*c.CoreShare)
	}
	return b.String()
}

// LateDuring reports whether the harness was late (a tick later than
// MaxLagP99) at any time in [from, to]: a sample taken then may carry
// the lag in its figure.
func (f Figures) LateDuring(from, to time.Time) bool {
	for _, s := range f.late {
		if !s.to.Before(from) && !s.from.After(to) {
			return true
		}
	}
	return false
}

// procStat is what is read from /proc/stat.
type procStat struct {
	cores              int
	running            int
	total, idle, steal uint64
}

func readStat(proc string) (procStat, error) {
	path := filepath.Join(proc, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, fmt.Errorf("read host CPU figures: %w", err)
	}
	var st procStat
	seenCPU := false
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch {
		case fields[0] == "cpu":
			// user nice system idle iowait irq softirq steal (guest
			// time is already counted in user and nice).
			if len(fields) < 9 {
				return procStat{}, fmt.Errorf("read host CPU figures: %s: cpu line has %d fields, want at least 9", path, len(fields))
			}
			var v [8]uint64
			for i := range v {
				if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
					return procStat{}, fmt.Errorf("read host CPU figures: %s: cpu field %d: %w", path, i+1, err)
				}
				st.total += v[i]
			}
			st.idle, st.steal = v[3]+v[4], v[7]
			seenCPU = true
		case strings.HasPrefix(fields[0], "cpu"):
			st.cores++
		case fields[0] == "procs_running" && len(fields) == 2:
			if st.running, err = strconv.Atoi(fields[1]); err != nil {
				return procStat{}, fmt.Errorf("read host CPU figures: %s: procs_running: %w", path, err)
			}
		}
	}
	if !seenCPU {
		return procStat{}, fmt.Errorf("read host CPU figures: %s has no cpu line", path)
	}
	return st, nil
}

func readLoad1(proc string) (float64, error) {
	path := filepath.Join(proc, "loadavg")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read the load average: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) < 1 {
		return 0, fmt.Errorf("read the load average: %s is empty", path)
	}
	l, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, fmt.Errorf("read the load average: %s: %w", path, err)
	}
	return l, nil
}

// readCPU is a process's user plus system time in clock ticks, from
// /proc/<pid>/stat (fields 14 and 15, counted after the command name,
// which may hold spaces and parentheses).
func readCPU(proc string, pid int) (uint64, error) {
	path := filepath.Join(proc, strconv.Itoa(pid), "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read the CPU time of pid %d: %w", pid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("read the CPU time of pid %d: %s has no command name", pid, path)
	}
	// After ") ": state(3) ppid(4) ... utime(14) stime(15).
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("read the CPU time of pid %d: %s has %d fields after the name, want at least 13", pid, path, len(fields))
	}
	var t uint64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read the CPU time of pid %d: %s: %w", pid, path, err)
		}
		t += v
	}
	return t, nil
}
