package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/modfile"
)

// repoRoot is the module root, which is also the image's build context.
const repoRoot = ".."

var (
	// wantStages is the stage order: the builders, runtime-base (all but
	// ryll, so --target smoke never needs Rust), smoke, and runtime last so
	// that a plain `docker build .` makes the real image.
	wantStages = []string{"ryll", "go", "runtime-base", "smoke", "runtime"}
	// shippedTargets are the stages people run.
	shippedTargets = []string{"smoke", "runtime"}
	// rustFloor is ryll's declared rust-version.
	rustFloor = []int{1, 88}
	// wantEntrypoint: tini is PID 1 and, with -g, hands the stop signal to
	// the entry point's process group, where latency-run passes it on to
	// the loadtest alone.
	wantEntrypoint = []string{"/usr/bin/tini", "-g", "--", "/usr/local/bin/latency-entrypoint"}
	// imageFiles are what the entry point runs; LATENCY_RYLL names the last.
	imageFiles = []string{"/usr/local/bin/latency-entrypoint", "/usr/local/bin/latency.test",
		"/usr/local/bin/latency-run", "/usr/local/bin/test2json", "/usr/local/bin/gotestsum", "/usr/local/bin/ryll"}
)

// problems collects what a check finds; err joins them, nil if none.
type problems []error

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }
func (p problems) err() error                      { return errors.Join(p...) }

// dockerfile is a Dockerfile as BuildKit's parser and instruction decoder
// read it, with the warnings of BuildKit's linter.
type dockerfile struct {
	stages []*instructions.Stage
	args   []string // KEY=default of each ARG before the first FROM
	lint   []string
}

func parseDockerfile(text string) (*dockerfile, error) {
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parse Dockerfile: %w", err)
	}
	df := &dockerfile{}
	for _, w := range res.Warnings {
		df.lint = append(df.lint, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		df.lint = append(df.lint, fmt.Sprintf("line %d: %s: %s", loc[0].Start.Line, rule, msg))
	}})
	stages, meta, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, fmt.Errorf("parse Dockerfile: %w", err)
	}
	for i := range stages {
		df.stages = append(df.stages, &stages[i])
	}
	for _, a := range meta {
		for _, kv := range a.Args {
			df.args = append(df.args, kv.Key+"="+kv.ValueString())
		}
	}
	return df, nil
}

// chain is the named stage and the earlier stages it is built FROM, the
// first image first: everything the stage's image inherits.
func (df *dockerfile) chain(name string) []*instructions.Stage {
	var out []*instructions.Stage
	for i := len(df.stages) - 1; i >= 0; i-- {
		if strings.EqualFold(df.stages[i].Name, name) {
			out = append(out, df.stages[i])
			name = df.stages[i].BaseName // FROM only sees earlier stages
		}
	}
	slices.Reverse(out)
	return out
}

// image is the image at the bottom of the named stage's chain, with the
// global ARG defaults expanded.
func (df *dockerfile) image(name string) string {
	c := df.chain(name)
	if len(c) == 0 {
		return ""
	}
	img, _, _ := shell.NewLex('\\').ProcessWord(c[0].BaseName, shell.EnvsFromSlice(df.args))
	return img
}

// all returns the T instructions of stages in build order.
func all[T instructions.Command](stages []*instructions.Stage) []T {
	var out []T
	for _, st := range stages {
		for _, c := range st.Commands {
			if t, ok := c.(T); ok {
				out = append(out, t)
			}
		}
	}
	return out
}

// last is the T instruction that applies to the image stages build.
func last[T instructions.Command](stages []*instructions.Stage) (T, bool) {
	ts := all[T](stages)
	if len(ts) == 0 {
		var zero T
		return zero, false
	}
	return ts[len(ts)-1], true
}

func line(c instructions.Command) int { return c.Location()[0].Start.Line }

// buildContext is what the Dockerfile is built from.
type buildContext struct {
	repo      fs.FS
	ignore    *patternmatcher.PatternMatcher // .dockerignore, as BuildKit reads it
	goVersion string                         // go.mod's go line
}

func newBuildContext(repo fs.FS, dockerignore string) (*buildContext, error) {
	patterns, err := ignorefile.ReadAll(strings.NewReader(dockerignore))
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("compile .dockerignore: %w", err)
	}
	b, err := fs.ReadFile(repo, "go.mod")
	if err != nil {
		return nil, err
	}
	mf, err := modfile.ParseLax("go.mod", b, nil)
	if err != nil || mf.Go == nil {
		return nil, fmt.Errorf("go.mod has no go line (%v)", err)
	}
	return &buildContext{repo: repo, ignore: pm, goVersion: mf.Go.Version}, nil
}

// excluded reports whether .dockerignore keeps p out of the build context.
func (bc *buildContext) excluded(p string) bool {
	out, err := bc.ignore.MatchesOrParentMatches(p)
	return out || err != nil
}

// checkDockerfile returns every way df would build a broken image.
func checkDockerfile(df *dockerfile, bc *buildContext) error {
	var p problems
	for _, l := range df.lint {
		p.add("BuildKit lint: %s", l)
	}
	var names []string
	for _, st := range df.stages {
		names = append(names, st.Name)
	}
	if !slices.Equal(names, wantStages) {
		p.add("stages are %v, want %v in that order (the last is the default target)", names, wantStages)
	}
	checkToolchain(&p, df.image("ryll"), "rust", rustFloor, "ryll's rust-version")
	checkToolchain(&p, df.image("go"), "golang", versionNumbers(bc.goVersion), "go.mod's go line")
	checkContext(&p, df, bc)
	for _, target := range shippedTargets {
		checkImage(&p, df, bc, target)
	}
	return p.err()
}

// versionNumbers parses the major and minor of "1.92" or "1.26.0".
func versionNumbers(v string) []int {
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	a, errA := strconv.Atoi(major)
	b, errB := strconv.Atoi(minor)
	if errA != nil || errB != nil {
		return nil
	}
	return []int{a, b}
}

// checkToolchain wants img to be repo:<version>-bookworm..., at least floor:
// the binaries link against bookworm's glibc and run on bookworm-slim.
func checkToolchain(p *problems, img, repo string, floor []int, why string) {
	name, tag, _ := strings.Cut(img, ":")
	version, variant, _ := strings.Cut(tag, "-")
	got := versionNumbers(version)
	if path.Base(name) != repo || got == nil || slices.Compare(got, floor) < 0 || !strings.HasPrefix(variant, "bookworm") {
		p.add("toolchain image %q: want %s:<version>-bookworm with version %d.%d or newer (%s)", img, repo, floor[0], floor[1], why)
	}
}

// checkContext wants every COPY source from the build context, and every
// file the go stage builds from after `COPY . .`, in the context.
func checkContext(p *problems, df *dockerfile, bc *buildContext) {
	for _, c := range all[*instructions.CopyCommand](df.stages) {
		for _, src := range c.SourcePaths {
			if src = path.Clean(strings.TrimPrefix(src, "/")); c.From != "" || src == "." {
				continue
			}
			matches, _ := fs.Glob(bc.repo, src)
			switch kept := slices.DeleteFunc(slices.Clone(matches), bc.excluded); {
			case len(matches) == 0:
				p.add("line %d: COPY %s: not in the repository", line(c), src)
			case len(kept) == 0:
				p.add("line %d: COPY %s: excluded by .dockerignore", line(c), src)
			}
		}
	}
	err := fs.WalkDir(bc.repo, ".", func(name string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() && name == ".git" {
			return fs.SkipDir
		}
		if err == nil && !d.IsDir() && (path.Ext(name) == ".go" || name == "go.mod" || name == "go.sum") && bc.excluded(name) {
			p.add("%s: excluded by .dockerignore, but the go stage builds from it", name)
		}
		return err
	})
	if err != nil {
		p.add("walk the build context: %w", err)
	}
}

// checkImage checks what the target's image holds and how it starts and
// stops.
func checkImage(p *problems, df *dockerfile, bc *buildContext, target string) {
	chain := df.chain(target)
	if len(chain) == 0 {
		p.add("no stage %s", target)
		return
	}
	if img := df.image(target); img != "debian:bookworm-slim" {
		p.add("%s: built on %q, want debian:bookworm-slim: no toolchain, and the glibc the binaries were built against", target, img)
	}
	has := map[string]*instructions.CopyCommand{}
	for _, c := range all[*instructions.CopyCommand](chain) {
		for _, src := range c.SourcePaths {
			dst := c.DestPath
			if strings.HasSuffix(dst, "/") {
				dst = path.Join(dst, path.Base(src))
			}
			has[dst] = c
			if c.From != "" && !writes(df.chain(c.From), src) {
				p.add("line %d: %s copies %s from stage %s, which never writes it", line(c), target, src, c.From)
			}
			if target == "smoke" && c.From == "ryll" {
				p.add("line %d: smoke copies from the ryll stage, so building it needs the Rust toolchain", line(c))
			}
		}
	}
	for _, f := range imageFiles {
		if has[f] == nil {
			p.add("%s: the image lacks %s", target, f)
		}
	}
	env := map[string]string{}
	for _, e := range all[*instructions.EnvCommand](chain) {
		for _, kv := range e.Env {
			env[kv.Key] = strings.Trim(kv.Value, `"'`)
		}
	}
	if env["LATENCY_RYLL"] != "/usr/local/bin/ryll" || env["LATENCY_RESULTS_DIR"] != "/results" {
		p.add("%s: ENV LATENCY_RYLL=%q LATENCY_RESULTS_DIR=%q, want /usr/local/bin/ryll and /results", target, env["LATENCY_RYLL"], env["LATENCY_RESULTS_DIR"])
	}

	if ep, ok := last[*instructions.EntrypointCommand](chain); !ok || ep.PrependShell || !slices.Equal(ep.CmdLine, wantEntrypoint) {
		p.add("%s: ENTRYPOINT is not the exec form %q: a shell, or a tini without -g, keeps the stop signal from the loadtest", target, wantEntrypoint)
	}
	if c := has[wantEntrypoint[3]]; c != nil && c.From == "" && !executable(bc, c) {
		p.add("line %d: %s: %s is not executable (COPY --chmod=0755)", line(c), target, wantEntrypoint[3])
	}
	if !slices.ContainsFunc(all[*instructions.RunCommand](chain), func(r *instructions.RunCommand) bool {
		return strings.Contains(r.String(), "apt-get install") && slices.Contains(strings.Fields(r.String()), "tini")
	}) {
		p.add("%s: no RUN apt-get install tini, but the ENTRYPOINT runs it", target)
	}
	if s, ok := last[*instructions.StopSignalCommand](chain); !ok || s.Signal != "SIGINT" {
		p.add("%s: STOPSIGNAL is not SIGINT, what the loadtest, gotestsum and ryll take as \"stop cleanly\"", target)
	}
	if u, ok := last[*instructions.UserCommand](chain); !ok || slices.Contains([]string{"", "root", "0"}, strings.Split(u.User, ":")[0]) {
		p.add("%s: runs as root; want the non-root latency user", target)
	}
}

// writes reports whether a RUN of the stages names file as a word, or a
// COPY puts it there.
func writes(stages []*instructions.Stage, file string) bool {
	for _, r := range all[*instructions.RunCommand](stages) {
		if slices.Contains(strings.Fields(r.String()), file) {
			return true
		}
	}
	return slices.ContainsFunc(all[*instructions.CopyCommand](stages), func(c *instructions.CopyCommand) bool {
		return c.DestPath == file
	})
}

// executable reports whether a context COPY gives its file an execute bit.
func executable(bc *buildContext, c *instructions.CopyCommand) bool {
	if mode, err := strconv.ParseUint(c.Chmod, 8, 32); err == nil {
		return mode&0o111 != 0
	}
	info, err := fs.Stat(bc.repo, c.SourcePaths[0])
	return err == nil && info.Mode()&0o111 != 0
}

// imageUser is the uid and gid the image runs as: the defaults of the
// runtime stage's ARG LATENCY_UID and LATENCY_GID.
type imageUser struct{ uid, gid int64 }

func (df *dockerfile) user() (imageUser, error) {
	args := map[string]string{}
	for _, a := range all[*instructions.ArgCommand](df.chain("runtime")) {
		for _, kv := range a.Args {
			args[kv.Key] = kv.ValueString()
		}
	}
	uid, errU := strconv.ParseInt(args["LATENCY_UID"], 10, 64)
	gid, errG := strconv.ParseInt(args["LATENCY_GID"], 10, 64)
	if err := errors.Join(errU, errG); err != nil {
		return imageUser{}, fmt.Errorf("the Dockerfile's ARG LATENCY_UID and LATENCY_GID need numeric defaults: %w", err)
	}
	return imageUser{uid, gid}, nil
}

func readRepoFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(path.Join(repoRoot, name))
	require.NoError(t, err)
	return string(b)
}

// checkRepoDockerfile parses and checks a Dockerfile and .dockerignore
// against the repository.
func checkRepoDockerfile(t testing.TB, dockerfileText, dockerignore string) error {
	t.Helper()
	df, err := parseDockerfile(dockerfileText)
	if err != nil {
		return err
	}
	bc, err := newBuildContext(os.DirFS(repoRoot), dockerignore)
	require.NoError(t, err)
	return checkDockerfile(df, bc)
}

func TestDockerfile(t *testing.T) {
	assert.NoError(t, checkRepoDockerfile(t, readRepoFile(t, "Dockerfile"), readRepoFile(t, ".dockerignore")))
}

// TestDockerfileChecksCatchMistakes breaks a copy of the Dockerfile or
// .dockerignore in each way the checks exist for.
func TestDockerfileChecksCatchMistakes(t *testing.T) {
	dockerfileText, dockerignore := readRepoFile(t, "Dockerfile"), readRepoFile(t, ".dockerignore")
	replace := func(old, new string) func(string) string {
		return func(s string) string { return strings.Replace(s, old, new, 1) }
	}
	smoke, real := strings.Index(dockerfileText, "# The smoke test"), strings.Index(dockerfileText, "# The real image")
	require.True(t, 0 < smoke && smoke < real, "the smoke stage's comment comes before the runtime stage's")
	for _, tc := range []struct {
		name   string
		edit   func(string) string // of the Dockerfile
		ignore string              // added to .dockerignore
		want   string
	}{
		{name: "Rust below the floor", edit: replace("RUST_VERSION=1.92", "RUST_VERSION=1.87"), want: `"rust:1.87-bookworm": want rust:<version>-bookworm with version 1.88 or newer`},
		{name: "Rust builder not bookworm", edit: replace("-bookworm AS ryll", "-trixie AS ryll"), want: `"rust:1.92-trixie"`},
		{name: "Go older than go.mod", edit: replace("golang:1.26-bookworm", "golang:1.25-bookworm"), want: `"golang:1.25-bookworm"`},
		{name: "runtime not last", edit: func(s string) string { return s[:smoke] + s[real:] + "\n" + s[smoke:real] }, want: "want [ryll go runtime-base smoke runtime] in that order"},
		{name: "lint: lower-case as", edit: replace("AS runtime-base", "as runtime-base"), want: "FromAsCasing"},
		{name: "runtime on a toolchain image", edit: replace("FROM debian:bookworm-slim AS", "FROM golang:1.26-bookworm AS"), want: `runtime: built on "golang:1.26-bookworm"`},
		{name: "no STOPSIGNAL", edit: replace("STOPSIGNAL SIGINT\n", ""), want: "runtime: STOPSIGNAL is not SIGINT"},
		{name: "tini without -g", edit: replace(`"-g", `, ""), want: "runtime: ENTRYPOINT is not the exec form"},
		{name: "entry point in shell form", edit: replace(`ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/latency-entrypoint"]`, "ENTRYPOINT /usr/bin/tini -g -- /usr/local/bin/latency-entrypoint"), want: "smoke: ENTRYPOINT is not the exec form"},
		{name: "tini not installed", edit: replace("libssl3 tini", "libssl3"), want: "no RUN apt-get install tini"},
		{name: "entry point not executable", edit: replace("COPY --chmod=0755 deploy/", "COPY --chmod=0644 deploy/"), want: "latency-entrypoint is not executable"},
		{name: "COPY of a missing file", edit: replace("deploy/entrypoint.sh /usr", "deploy/entrypoint /usr"), want: "COPY deploy/entrypoint: not in the repository"},
		{name: "image lacks a tool", edit: replace("/out/gotestsum /usr", "/usr"), want: "runtime: the image lacks /usr/local/bin/gotestsum"},
		{name: "image lacks latency-run", edit: replace("/out/latency-run /out/test2json", "/out/test2json"), want: "smoke: the image lacks /usr/local/bin/latency-run"},
		{name: "latency-run never built", edit: replace("&& go build -trimpath -o /out/latency-run ./cmd/latency-run \\\n", ""), want: "copies /out/latency-run from stage go, which never writes it"},
		{name: "fakeryll never built", edit: replace("&& go build -trimpath -o /out/fakeryll ./fakeryll \\\n", ""), want: "smoke copies /out/fakeryll from stage go, which never writes it"},
		{name: "smoke needs Rust", edit: replace("COPY --from=go /out/fakeryll", "COPY --from=ryll /out/ryll"), want: "smoke copies from the ryll stage"},
		{name: "runs as root", edit: replace("USER latency", "USER root"), want: "smoke: runs as root"},
		{name: "LATENCY_RYLL elsewhere", edit: replace("LATENCY_RYLL=/usr/local/bin/ryll", "LATENCY_RYLL=/usr/bin/ryll"), want: `LATENCY_RYLL="/usr/bin/ryll"`},
		{name: ".dockerignore drops the entry point", ignore: "deploy/*.sh", want: "COPY deploy/entrypoint.sh: excluded by .dockerignore"},
		{name: ".dockerignore drops a Go package", ignore: "**/results", want: "harness/results/csv.go: excluded by .dockerignore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := dockerfileText
			if tc.edit != nil {
				broken = tc.edit(dockerfileText)
				require.NotEqual(t, dockerfileText, broken, "the edit must change the Dockerfile")
			}
			err := checkRepoDockerfile(t, broken, dockerignore+"\n"+tc.ignore+"\n")
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// stubTool stands in for latency-run (the first tool the entry point
// runs): it records its arguments and the LATENCY_RESULTS_DIR it was
// given, and exits with STUB_EXIT.
const stubTool = `#!/bin/sh
printf '%s\n' "$@" > "$STUB_DIR/args"
printf '%s\n' "$LATENCY_RESULTS_DIR" > "$STUB_DIR/results_dir"
exit "${STUB_EXIT:-0}"
`

// TestEntrypoint runs deploy/entrypoint.sh with stub tools: it hands its
// arguments to the loadtest under latency-run, gotestsum and test2json, passes the
// result on as its exit status, and refuses, with status 2, to start
// without the test binary or a writable results directory.
func TestEntrypoint(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH; install a POSIX shell (apt-get install -y dash) to run the entry point")
	}
	type result struct {
		code               int
		stderr, resultsDir string
		args               []string // latency-run's; nil if it never ran
		testBinary         string
	}
	run := func(t *testing.T, env ...string) result {
		t.Helper()
		stubs := t.TempDir()
		for _, name := range []string{"latency-run", "gotestsum", "test2json", "latency.test"} {
			require.NoError(t, os.WriteFile(filepath.Join(stubs, name), []byte(stubTool), 0o755))
		}
		res := result{testBinary: filepath.Join(stubs, "latency.test")}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, sh, filepath.Join(repoRoot, "deploy", "entrypoint.sh"), "-test.run", "^TestLatency$/with space")
		cmd.Env = append([]string{"PATH=" + stubs + ":/usr/bin:/bin", "STUB_DIR=" + stubs, "GOVERSION=go0.0",
			"LATENCY_TEST_BINARY=" + res.testBinary}, env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			res.code = exit.ExitCode()
		}
		res.stderr = stderr.String()
		if b, err := os.ReadFile(filepath.Join(stubs, "args")); err == nil {
			res.args = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		}
		b, _ := os.ReadFile(filepath.Join(stubs, "results_dir"))
		res.resultsDir = strings.TrimSpace(string(b))
		return res
	}

	t.Run("runs the loadtest", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nested", "results")
		res := run(t, "LATENCY_RESULTS_DIR="+dir)
		require.Equal(t, 0, res.code, res.stderr)
		assert.Equal(t, []string{"--", "gotestsum", "--junitfile", dir + "/junit.xml", "--format", "standard-verbose", "--raw-command", "--",
			"test2json", "-t", "-p", "latency", res.testBinary, "-test.v=test2json", "-test.timeout=40m",
			"-test.run", "^TestLatency$/with space"}, res.args)
		assert.Equal(t, dir, res.resultsDir, "the loadtest is told where junit.xml goes")
		assert.DirExists(t, dir)
	})
	t.Run("exit status is the result", func(t *testing.T) {
		assert.Equal(t, 3, run(t, "LATENCY_RESULTS_DIR="+t.TempDir(), "STUB_EXIT=3").code)
	})
	t.Run("no test binary", func(t *testing.T) {
		res := run(t, "LATENCY_RESULTS_DIR="+t.TempDir(), "LATENCY_TEST_BINARY=/nonexistent/latency.test")
		assert.Equal(t, 2, res.code)
		assert.Contains(t, res.stderr, "/nonexistent/latency.test is missing")
		assert.Nil(t, res.args, "nothing must run")
	})
	t.Run("results directory is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "results")
		require.NoError(t, os.WriteFile(file, nil, 0o644))
		res := run(t, "LATENCY_RESULTS_DIR="+file)
		assert.Equal(t, 2, res.code)
		assert.Contains(t, res.stderr, "is not a directory writable by uid")
		assert.Nil(t, res.args, "nothing must run")
	})
}
