//go:build !loadtest

package latency

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shakenfist/kerbside-latency/harness/config"
)

// TestREADMEDocumentsEveryVariable keeps the reference's configuration
// table (docs/reference.md) in step with config.Vars: every variable the
// loadtest reads has a row with its default, and every row names a
// variable that exists. The README names the two commands.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join("docs", "reference.md"))
	require.NoError(t, err)
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(LATENCY_[A-Z0-9_]+)` \\| ([^|]*) \\|").FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = strings.ReplaceAll(strings.TrimSpace(m[2]), "`", "")
	}
	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
		def, ok := rows[v.Name]
		if !assert.True(t, ok, "docs/reference.md has no row for %s", v.Name) {
			continue
		}
		want := v.Default
		if want == "" {
			want = "(none)"
		}
		assert.Equal(t, want, def, "docs/reference.md's default of %s", v.Name)
	}
	for name := range rows {
		assert.True(t, known[name], "docs/reference.md documents %s, which the loadtest does not read", name)
	}
	for _, cmd := range []string{"make loadtest", "make test"} {
		assert.Contains(t, string(readme), cmd)
	}
}

// TestREADMEMapsEveryPackage keeps the package map in step with the
// module: every package `go list ./...` finds has a row, and every row
// that names a directory names one that exists.
func TestREADMEMapsEveryPackage(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command: install Go")
	}
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		rows[strings.TrimSuffix(m[1], "/")] = true
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-f", "{{.Dir}}", "./...").Output()
	require.NoError(t, err)
	wd, err := os.Getwd()
	require.NoError(t, err)
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(wd, dir)
		require.NoError(t, err)
		if rel == "." {
			continue // the root package is the loadtest's door, mapped by file
		}
		assert.True(t, rows[rel], "README.md's package map has no row for %s", rel)
	}
	for row := range rows {
		if strings.HasSuffix(row, ".go") {
			assert.FileExists(t, row, "README.md's package map names a file that does not exist")
		}
	}
}
