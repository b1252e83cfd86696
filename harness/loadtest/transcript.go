package loadtest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/shakenfist/kerbside-latency/harness/config"
	"github.com/shakenfist/kerbside-latency/harness/results"
)

// transcriptFile is a console's control-socket transcript
// (LATENCY_TRANSCRIPT), written by harness/control with the console's
// secrets redacted. A nil *transcriptFile is no transcript.
type transcriptFile struct {
	f    *os.File
	path string
}

// openTranscript creates the run's transcript file when cfg asks for one
// (nil otherwise). It is 0600: it shows everything said on the socket
// that drives the console.
func openTranscript(cfg *config.Config, appendTo bool) (*transcriptFile, error) {
	if !cfg.Transcript {
		return nil, nil
	}
	path := filepath.Join(cfg.ResultsDir, results.TranscriptName(cfg.RunID))
	mode := os.O_TRUNC
	if appendTo { // an A/B leg's later blocks
		mode = os.O_APPEND
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|mode, 0o600)
	if err != nil {
		return nil, fmt.Errorf("LATENCY_TRANSCRIPT=1: create the transcript: %w", err)
	}
	return &transcriptFile{f: f, path: path}, nil
}

// writer is what control.Options.Transcript gets: nil (no transcript)
// for a nil t, never a typed nil inside an interface.
func (t *transcriptFile) writer() io.Writer {
	if t == nil {
		return nil
	}
	return t.f
}

// close closes the file once the control client is closed (it writes
// nothing after its Close returns). Safe on nil and twice.
func (t *transcriptFile) close() error {
	if t == nil || t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	if err != nil {
		return fmt.Errorf("close the transcript %s: %w", t.path, err)
	}
	return nil
}
