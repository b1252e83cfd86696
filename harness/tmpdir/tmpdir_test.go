package tmpdir

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMakeMarksTheOwner(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := Make("tmpdir-test-")
	require.NoError(t, err)
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	b, err := os.ReadFile(filepath.Join(dir, OwnerFile))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid()), string(b))
	assert.Equal(t, os.TempDir(), filepath.Dir(dir))
}

// TestSweep: only a prefixed directory whose owner is dead goes.
func TestSweep(t *testing.T) {
	tmp := t.TempDir()
	mk := func(name, owner string) string {
		d := filepath.Join(tmp, name)
		require.NoError(t, os.Mkdir(d, 0o700))
		if owner != "" {
			require.NoError(t, os.WriteFile(filepath.Join(d, OwnerFile), []byte(owner), 0o600))
		}
		return d
	}
	// A pid that is surely dead: a child we started and reaped.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	dead := strconv.Itoa(cmd.Process.Pid)

	stale := mk("p-stale", dead)
	live := mk("p-live", strconv.Itoa(os.Getppid()))
	mine := mk("p-mine", strconv.Itoa(os.Getpid()))
	noOwner := mk("p-noowner", "")
	garbage := mk("p-garbage", "not a pid")
	other := mk("other-dir", dead)

	Sweep(tmp, "p-")
	assert.NoDirExists(t, stale, "a dead owner's directory is removed")
	for _, d := range []string{live, mine, noOwner, garbage, other} {
		assert.DirExists(t, d)
	}
}

// TestMakeSweepsFirst: a new directory's maker removes what a killed
// owner left.
func TestMakeSweepsFirst(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	stale := filepath.Join(os.TempDir(), "tmpdir-test-old")
	require.NoError(t, os.Mkdir(stale, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(stale, OwnerFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600))
	_, err := Make("tmpdir-test-")
	require.NoError(t, err)
	assert.NoDirExists(t, stale)
}

// TestSweepAZombiesDirectory: an owner that died and was not reaped yet
// (a zombie: kill -0 still finds it) is dead, and its directory goes.
func TestSweepAZombiesDirectory(t *testing.T) {
	tmp := t.TempDir()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Wait() })
	pid := cmd.Process.Pid
	zombie := func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		return err == nil && strings.Contains(string(b), ") Z")
	}
	require.Eventually(t, zombie, 30*time.Second, 10*time.Millisecond, "true exits, and stays a zombie until waited for")
	d := filepath.Join(tmp, "p-zombie")
	require.NoError(t, os.Mkdir(d, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(d, OwnerFile), []byte(strconv.Itoa(pid)), 0o600))
	Sweep(tmp, "p-")
	assert.NoDirExists(t, d)
}
