//go:build !loadtest

package latency

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProductDependsOnNoFake pins the composition root rule: no non-test
// package under harness/ imports anything under fixtures/ or fakeryll/,
// directly or not. Only latency_test.go and tests decide what is fake.
func TestProductDependsOnNoFake(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command: install Go")
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./harness/...").CombinedOutput()
	require.NoError(t, err, "%s", out)
	const mod = "github.com/shakenfist/kerbside-latency/"
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.NotEmpty(t, lines)
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg := fields[0]
		for _, dep := range fields[1:] {
			for _, fake := range []string{"fixtures", "fakeryll"} {
				assert.False(t, dep == mod+fake || strings.HasPrefix(dep, mod+fake+"/"),
					"%s depends on %s: wire fakes at the composition root (latency_test.go)", pkg, dep)
			}
		}
	}
	assert.Greater(t, len(lines), 10, "every harness package was listed")
}
