// Package report turns latency samples into things people can read and
// compare: a PNG (or SVG) per run with the samples over time and their
// distribution, a Go benchmark-format file that benchstat understands, and
// a two-run comparison built on golang.org/x/perf's statistics.
//
// The package takes plain data (seconds, durations, labels) and knows
// nothing about how the samples were measured, so a plot or a comparison
// can be made again later from the files a run left behind. All latencies
// passed in are in seconds, the unit of the loadtest's CSV; plots and
// summary lines show milliseconds because that is the scale people think
// of keypress latency in.
package report
