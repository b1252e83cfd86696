package config

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/measure"
)

// TestMeasureRulesAreJudgedInLoad: a configuration the measurement would
// refuse is refused by Load, before anything is provisioned, naming the
// variables to change. The settle case once passed Load, booted a
// console and was then refused by measure.Run.
func TestMeasureRulesAreJudgedInLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"settle not below the derived quiet gap", map[string]string{"LATENCY_CADENCE": "300ms", "LATENCY_SETTLE": "350ms"},
			[]string{"LATENCY_SETTLE=350ms", "LATENCY_QUIET (unset: its default)", "less than the quiet gap 300ms"}},
		{"settle not below the quiet gap set", map[string]string{"LATENCY_QUIET": "400ms", "LATENCY_SETTLE": "400ms"},
			[]string{"LATENCY_SETTLE=400ms, LATENCY_QUIET=400ms", "settle is 400ms"}},
		{"hold not below the cadence", map[string]string{"LATENCY_CADENCE": "100ms", "LATENCY_KEY_HOLD": "150ms"},
			[]string{"LATENCY_KEY_HOLD=150ms, LATENCY_CADENCE=100ms", "hold is 150ms, want more than 0 and less than the cadence 100ms"}},
		{"hold not below the default cadence", map[string]string{"LATENCY_KEY_HOLD": "2s"},
			[]string{"LATENCY_KEY_HOLD=2s, LATENCY_CADENCE (unset: its default)", "less than the cadence 2s"}},
		{"contamination above 1", map[string]string{"LATENCY_MAX_CONTAMINATION": "1.5"},
			[]string{"LATENCY_MAX_CONTAMINATION=1.5", "max contamination is 1.5, want more than 0 and at most 1"}},
		{"contamination not a number", map[string]string{"LATENCY_MAX_CONTAMINATION": "NaN"},
			[]string{"LATENCY_MAX_CONTAMINATION=\"NaN\""}},
		{"samples zero", map[string]string{"LATENCY_SAMPLES": "0"}, []string{"LATENCY_SAMPLES"}},
		{"max misses negative", map[string]string{"LATENCY_MAX_MISSES": "-1"}, []string{"LATENCY_MAX_MISSES"}},
		{"window zero", map[string]string{"LATENCY_WINDOW": "0"}, []string{"LATENCY_WINDOW=\"0\": must be above zero"}},
		{"jitter negative", map[string]string{"LATENCY_CADENCE_JITTER": "-1ms"}, []string{"LATENCY_CADENCE_JITTER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestAProblemIsNotJudgedOnADefault: a rule about a variable that did
// not parse is left out; the parse error is the one problem.
func TestAProblemIsNotJudgedOnADefault(t *testing.T) {
	_, err := Load(env(map[string]string{"LATENCY_CADENCE": "-2s", "LATENCY_KEY_HOLD": "100ms"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `LATENCY_CADENCE="-2s": must not be negative`)
	assert.NotContains(t, err.Error(), "hold is", "no rule judged on the default that stands in for the bad cadence")
}

// TestEveryMeasureFieldIsSetOrDerived: every setting a measurement rule
// can name is set by a variable in Vars or derived from those.
func TestEveryMeasureFieldIsSetOrDerived(t *testing.T) {
	derived := map[measure.Field]bool{measure.FieldGrace: true, measure.FieldLateWait: true, measure.FieldBaseline: true,
		measure.FieldMaxQuietWait: true, measure.FieldProgressInterval: true}
	known := map[string]bool{}
	for _, n := range KnownNames() {
		known[n] = true
	}
	for _, f := range measure.AllFields() {
		name, ok := measureVars[f]
		assert.True(t, ok != derived[f], "%s must be set by a variable or derived, not both or neither", f)
		if ok {
			assert.True(t, known[name], "%s is set by %s, which Vars does not document", f, name)
		}
	}
}

// The misspelt names are built from Prefix, so that the repository scan
// below does not take them for names the project uses.
func TestUnknownNamesAreErrors(t *testing.T) {
	_, err := Load(env(map[string]string{Prefix + "SAMPLE": "5"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), Prefix+"SAMPLE: unknown; did you mean LATENCY_SAMPLES?")

	_, err = Load(env(map[string]string{Prefix + "CADENCE_JITER": "1ms", "LATENCY_SAMPLES": "many"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), Prefix+"CADENCE_JITER: unknown; did you mean LATENCY_CADENCE_JITTER?")
	assert.Contains(t, err.Error(), `LATENCY_SAMPLES="many"`, "in the same one message as every other problem")

	_, err = Load(env(map[string]string{Prefix + "FROBNICATE_EVERYTHING": "1"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), Prefix+"FROBNICATE_EVERYTHING: unknown (no variable of that name")
	assert.NotContains(t, err.Error(), "did you mean", "no guess when nothing is near")

	_, err = Load(env(map[string]string{"LATENCY_PID_FILE": "/tmp/x", "LATENCY_E2E_REAL": "1", "LATENCY_TEST_TIMEOUT": "40m", "OTHER_SAMPLE": "1"}))
	assert.NoError(t, err, "names the tools around the loadtest set are known; other prefixes are not ours")
}

func TestRulesJoinTheOneMessage(t *testing.T) {
	_, err := Load(env(map[string]string{"LATENCY_SAMPLES": "many", "FAKERYLL_X": "1"}), func(environ []string) []string {
		assert.Contains(t, environ, "FAKERYLL_X=1", "a rule sees the whole environment")
		return []string{"FAKERYLL_X: unknown"}
	})
	require.Error(t, err)
	assert.Equal(t, 1, strings.Count(err.Error(), "invalid loadtest configuration"))
	assert.Contains(t, err.Error(), "\n  - FAKERYLL_X: unknown")
	assert.Contains(t, err.Error(), "LATENCY_SAMPLES")
}

func TestNearest(t *testing.T) {
	known := []string{"LATENCY_SAMPLES", "LATENCY_SETTLE", "LATENCY_CADENCE"}
	assert.Equal(t, "LATENCY_SAMPLES", Nearest(Prefix+"SAMPLE", known))
	assert.Equal(t, "LATENCY_SETTLE", Nearest(Prefix+"SETLE", known))
	assert.Equal(t, "LATENCY_CADENCE", Nearest(Prefix+"CADENCE_", known))
	assert.Empty(t, Nearest(Prefix+"X", known), "too far to be a typo")
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
}

// TestEveryLatencyNameInTheRepositoryIsKnown: every LATENCY_* name the
// repository uses (Go, Makefile, .ci, deploy, docs, scripts) is in Vars,
// so Load never calls a name the project itself sets a typo, and a new
// one cannot be added without being documented.
func TestEveryLatencyNameInTheRepositoryIsKnown(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	// Make macros named like variables, never in the environment.
	notVariables := map[string]string{"LATENCY_RUN": "Makefile: the macro that runs latency-run"}
	known := map[string]bool{}
	for _, n := range KnownNames() {
		known[n] = true
	}
	// A name ending in _ is a prefix in prose (LATENCY_B_*).
	re := regexp.MustCompile(`LATENCY_[A-Z0-9_]*[A-Z0-9]\b`)
	files := 0
	found := map[string]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "results", "bin", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			return err // binary files hold no names we set
		}
		files++
		for _, m := range re.FindAll(b, -1) {
			if _, ok := found[string(m)]; !ok {
				rel, _ := filepath.Rel(root, path)
				found[string(m)] = rel
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, files, 50, "the walk saw the repository")
	require.Contains(t, found, "LATENCY_SAMPLES")
	for name, where := range found {
		if _, ok := notVariables[name]; ok {
			continue
		}
		assert.True(t, known[name], "%s (used in %s) is not in config.Vars: document it there (with By when the loadtest does not read it)", name, where)
	}
}
