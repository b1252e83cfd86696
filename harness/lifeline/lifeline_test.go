package lifeline

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bound stops a broken test from hanging; it is never what is asserted.
const bound = 30 * time.Second

// asLauncher makes the test binary a launcher that holds a lifeline in
// the directory it is given, prints its environment and waits to be
// killed.
const asLauncher = "LIFELINE_TEST_AS_LAUNCHER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(asLauncher); dir != "" {
		l, err := Make(dir)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(2)
		}
		os.Stdout.WriteString(strings.Join(l.Env(), " ") + "\n")
		select {}
	}
	os.Exit(m.Run())
}

func envOf(kv []string) func(string) string {
	return func(k string) string {
		for _, e := range kv {
			if name, v, ok := strings.Cut(e, "="); ok && name == k {
				return v
			}
		}
		return ""
	}
}

func cutSignal() (chan struct{}, func()) {
	ch := make(chan struct{})
	return ch, func() { close(ch) }
}

func waitCut(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(bound):
		t.Fatalf("the lifeline was not cut: %s", what)
	}
}

// TestALauncherKilledOutrightCutsTheLine: the launcher is SIGKILLed (it
// can pass nothing on); the loadtest's end hears it.
func TestALauncherKilledOutrightCutsTheLine(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), asLauncher+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.NotContains(t, line, "error")
	env := strings.Fields(line)

	ch, cut := cutSignal()
	Attach(nil, envOf(env), cut)
	pid, ok := ReadPID(envOf(env)(PIDFileVar))
	require.True(t, ok, "the pid file was written")
	assert.Equal(t, os.Getpid(), pid)
	select {
	case <-ch:
		t.Fatal("the line was cut while the launcher lives")
	default:
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	waitCut(t, ch, "after the launcher's SIGKILL")
}

// TestCloseCutsTheLine: a launcher that closes its end (its command has
// exited) cuts it too, and only then.
func TestCloseCutsTheLine(t *testing.T) {
	l, err := Make(t.TempDir())
	require.NoError(t, err)
	ch, cut := cutSignal()
	Attach(nil, envOf(l.Env()), cut)
	select {
	case <-ch:
		t.Fatal("the line was cut while the launcher holds it")
	default:
	}
	require.NoError(t, l.Close())
	waitCut(t, ch, "after Close")
}

// TestALauncherGoneBeforeAttachIsFoundAtOnce: the pipe exists, nobody
// holds it (the launcher died while the loadtest was starting).
func TestALauncherGoneBeforeAttachIsFoundAtOnce(t *testing.T) {
	l, err := Make(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, l.Close())
	ch, cut := cutSignal()
	Attach(nil, envOf(l.Env()), cut)
	waitCut(t, ch, "with the launcher gone before Attach")

	// And with its directory gone too.
	ch, cut = cutSignal()
	Attach(nil, envOf([]string{Var + "=" + filepath.Join(t.TempDir(), "gone", "lifeline")}), cut)
	waitCut(t, ch, "with no pipe at all")
}

// TestNoLauncherNoWatch: without the variables nothing is written or
// watched.
func TestNoLauncherNoWatch(t *testing.T) {
	called := make(chan struct{}, 1)
	Attach(nil, func(string) string { return "" }, func() { called <- struct{}{} })
	select {
	case <-called:
		t.Fatal("cut without a lifeline")
	default:
	}
}

func TestReadPID(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]bool{"123\n": true, "1": false, "x": false, "": false} {
		p := filepath.Join(dir, "pid")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		_, ok := ReadPID(p)
		assert.Equal(t, want, ok, "%q", content)
	}
	_, ok := ReadPID(filepath.Join(dir, "none"))
	assert.False(t, ok)
}
