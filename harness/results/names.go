package results

import "strings"

// The names of every file a run leaves in LATENCY_RESULTS_DIR, in one
// place: the loadtest writes them, latency-compare and latency-merge find
// them, and docs/reference.md's Outputs table describes them.
const (
	// FilePrefix starts the name of every result file but ryll's log.
	FilePrefix = "latency-"

	CSVSuffix        = ".csv"
	SidecarSuffix    = ".json"
	PlotSuffix       = ".png"
	BenchSuffix      = ".bench.txt"
	RunSummarySuffix = "-summary.json"
	TranscriptSuffix = "-transcript.ndjson"
)

// CSVName is the samples file of a run: latency-<run>.csv.
func CSVName(run string) string { return FilePrefix + run + CSVSuffix }

// SidecarName is the sidecar of a run: latency-<run>.json.
func SidecarName(run string) string { return FilePrefix + run + SidecarSuffix }

// PlotName is the plot of a run: latency-<run>.png.
func PlotName(run string) string { return FilePrefix + run + PlotSuffix }

// BenchFileName is the benchmark-format file of a run, next to its CSV:
// latency-<run>.bench.txt.
func BenchFileName(run string) string { return FilePrefix + run + BenchSuffix }

// RunSummaryName is the summary of a run of several consoles:
// latency-<run>-summary.json.
func RunSummaryName(run string) string { return FilePrefix + run + RunSummarySuffix }

// TranscriptName is the control-socket transcript of a run
// (LATENCY_TRANSCRIPT): latency-<run>-transcript.ndjson.
func TranscriptName(run string) string { return FilePrefix + run + TranscriptSuffix }

// RyllLogName is ryll's whole output for a run: ryll-<run>.log.
func RyllLogName(run string) string { return "ryll-" + run + ".log" }

// IsRunSummaryName reports whether a file name is a run summary's.
func IsRunSummaryName(name string) bool {
	run, ok := strings.CutPrefix(name, FilePrefix)
	if !ok {
		return false
	}
	run, ok = strings.CutSuffix(run, RunSummarySuffix)
	return ok && run != ""
}

// IsSidecarName reports whether a file name is a sidecar's (and not a
// run summary's, which ends in .json too).
func IsSidecarName(name string) bool {
	run, ok := strings.CutPrefix(name, FilePrefix)
	if !ok {
		return false
	}
	run, ok = strings.CutSuffix(run, SidecarSuffix)
	return ok && run != "" && !IsRunSummaryName(name)
}
