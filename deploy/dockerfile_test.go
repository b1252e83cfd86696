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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is the module root (the image's build context), one directory
// up from this package.
const repoRoot = ".."

// wantStages is the stage order the Dockerfile must keep: the builders
// first, then runtime-base (everything but ryll, so the smoke target never
// needs the Rust stage), smoke, and runtime last so that a plain `docker
// build .` produces the real image.
var wantStages = []string{"ryll", "go", "runtime-base", "smoke", "runtime"}

// shippedTargets are the stages people run; they and their FROM ancestors
// end up in an image and must carry no toolchain.
var shippedTargets = []string{"runtime", "smoke"}

// minRust is ryll's declared rust-version.
var minRust = [2]int{1, 88}

// ---------------------------------------------------------------------------
// A Dockerfile, parsed into stages.

// instruction is one Dockerfile instruction as BuildKit's parser sees it.
type instruction struct {
	cmd      string   // lower case: "from", "run", "copy", ...
	flags    []string // "--from=go", "--mount=type=cache,...", ...
	args     []string // the parser's Next chain
	json     bool     // exec (JSON array) form
	heredocs []string // heredoc bodies
	line     int
}

// text is the instruction's arguments joined, with heredoc bodies: what a
// RUN line would hand to the shell.
func (in instruction) text() string {
	return strings.Join(append(slices.Clone(in.args), in.heredocs...), " ")
}

// flag returns the value of --name=value, if present.
func (in instruction) flag(name string) (string, bool) {
	for _, f := range in.flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// env returns the KEY=value pairs of an ENV instruction. The parser gives
// (key, value, separator) triples; values keep their quotes.
func (in instruction) env() map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(in.args); i += 3 {
		out[in.args[i]] = unquote(in.args[i+1])
	}
	return out
}

// stage is one FROM and the instructions up to the next FROM.
type stage struct {
	index  int
	name   string // lower case; "" for an unnamed stage
	base   string // FROM's argument, global build arguments expanded
	line   int
	instrs []instruction
}

func (s *stage) String() string {
	if s.name != "" {
		return s.name
	}
	return strconv.Itoa(s.index)
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	globalArgs map[string]string // ARGs before the first FROM, with defaults
	stages     []*stage
	warnings   []string
}

// parseDockerfile parses text with BuildKit's parser and splits it into
// stages. It fails on what BuildKit itself would refuse: no FROM, an
// instruction other than ARG before the first FROM, a FROM that uses an
// undefined build argument.
func parseDockerfile(text string) (*dockerfile, error) {
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parse Dockerfile: %w", err)
	}
	df := &dockerfile{globalArgs: map[string]string{}}
	for _, w := range res.Warnings {
		df.warnings = append(df.warnings, w.Short)
	}
	var cur *stage
	for _, n := range res.AST.Children {
		in := instruction{
			cmd:   strings.ToLower(n.Value),
			flags: n.Flags,
			json:  n.Attributes["json"],
			line:  n.StartLine,
		}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		for _, h := range n.Heredocs {
			in.heredocs = append(in.heredocs, h.Content)
		}
		switch {
		case in.cmd == "from":
			st, err := df.newStage(in)
			if err != nil {
				return nil, err
			}
			cur = st
		case cur == nil && in.cmd == "arg":
			for _, a := range in.args {
				k, v, _ := strings.Cut(a, "=")
				df.globalArgs[k] = unquote(v)
			}
		case cur == nil:
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, strings.ToUpper(in.cmd))
		default:
			cur.instrs = append(cur.instrs, in)
		}
	}
	if len(df.stages) == 0 {
		return nil, errors.New("parse Dockerfile: no FROM instruction")
	}
	return df, nil
}

func (df *dockerfile) newStage(in instruction) (*stage, error) {
	st := &stage{index: len(df.stages), line: in.line}
	switch {
	case len(in.args) == 1:
	case len(in.args) == 3 && strings.EqualFold(in.args[1], "as"):
		st.name = strings.ToLower(in.args[2])
	default:
		return nil, fmt.Errorf("line %d: malformed FROM %q", in.line, strings.Join(in.args, " "))
	}
	base, err := expandArgs(in.args[0], df.globalArgs)
	if err != nil {
		return nil, fmt.Errorf("line %d: FROM %s: %w", in.line, in.args[0], err)
	}
	st.base = base
	df.stages = append(df.stages, st)
	return st, nil
}

var argRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandArgs substitutes ${NAME} and $NAME from the global build
// arguments' defaults, which is all a FROM line can see.
func expandArgs(s string, args map[string]string) (string, error) {
	var missing []string
	out := argRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := argRef.FindStringSubmatch(ref)
		name := m[1] + m[2]
		v, ok := args[name]
		if !ok || v == "" {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("build argument %s has no default before the first FROM", strings.Join(missing, ", "))
	}
	return out, nil
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// stage returns the stage a --from=, FROM or mount reference names, if it
// is a stage: by name, or by index.
func (df *dockerfile) stage(ref string) *stage {
	ref = strings.ToLower(ref)
	for _, st := range df.stages {
		if st.name != "" && st.name == ref {
			return st
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < len(df.stages) {
		return df.stages[i]
	}
	return nil
}

// parent is the earlier stage st is built FROM, or nil for an image.
func (df *dockerfile) parent(st *stage) *stage {
	p := df.stage(st.base)
	if p == nil || p.index >= st.index {
		return nil // BuildKit reads a later stage's name as an image
	}
	return p
}

// chain is st followed by the stages it is built FROM, nearest first:
// everything whose files and settings st's image inherits.
func (df *dockerfile) chain(st *stage) []*stage {
	out := []*stage{st}
	for p := df.parent(st); p != nil; p = df.parent(p) {
		out = append(out, p)
	}
	return out
}

// rootImage is the image at the bottom of st's FROM chain.
func (df *dockerfile) rootImage(st *stage) string {
	c := df.chain(st)
	return c[len(c)-1].base
}

// effective returns the last instruction cmd that applies to st's image
// (in st, or inherited from the stages it is built FROM).
func (df *dockerfile) effective(st *stage, cmd string) (instruction, bool) {
	for _, s := range df.chain(st) {
		for i := len(s.instrs) - 1; i >= 0; i-- {
			if s.instrs[i].cmd == cmd {
				return s.instrs[i], true
			}
		}
	}
	return instruction{}, false
}

// effectiveEnv is the ENV st's image ends up with.
func (df *dockerfile) effectiveEnv(st *stage) map[string]string {
	env := map[string]string{}
	c := df.chain(st)
	for i := len(c) - 1; i >= 0; i-- {
		for _, in := range c[i].instrs {
			if in.cmd == "env" {
				for k, v := range in.env() {
					env[k] = v
				}
			}
		}
	}
	return env
}

// stageRefs are the stages st reads from other than its parent: COPY
// --from and RUN --mount from=.
func stageRefs(in instruction) []string {
	var refs []string
	if v, ok := in.flag("from"); ok && (in.cmd == "copy" || in.cmd == "add") {
		refs = append(refs, v)
	}
	if in.cmd == "run" {
		for _, f := range in.flags {
			m, ok := strings.CutPrefix(f, "--mount=")
			if !ok {
				continue
			}
			for _, kv := range strings.Split(m, ",") {
				if v, ok := strings.CutPrefix(kv, "from="); ok {
					refs = append(refs, v)
				}
			}
		}
	}
	return refs
}

// needs is every stage building st requires: its FROM chain and,
// recursively, every stage it copies or mounts from. It is the set
// BuildKit builds for `--target st`.
func (df *dockerfile) needs(st *stage) map[string]bool {
	seen := map[string]bool{}
	var walk func(*stage)
	walk = func(s *stage) {
		if seen[s.String()] {
			return
		}
		seen[s.String()] = true
		if p := df.parent(s); p != nil {
			walk(p)
		}
		for _, in := range s.instrs {
			for _, ref := range stageRefs(in) {
				if dep := df.stage(ref); dep != nil {
					walk(dep)
				}
			}
		}
	}
	walk(st)
	return seen
}

// imageRef splits an image reference into its repository's last path
// component ("rust" for docker.io/library/rust) and its tag.
func imageRef(ref string) (name, tag string) {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref, tag = ref[:i], ref[i+1:]
	}
	return path.Base(ref), tag
}

// ---------------------------------------------------------------------------
// .dockerignore

// ignoreRule is one .dockerignore line.
type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

// parseDockerignore reads .dockerignore rules: one pattern a line, "#"
// comments, "!" exceptions, a leading "/" meaning the context root (which
// every pattern is relative to anyway), "**" matching any number of
// directories.
func parseDockerignore(text string) ([]ignoreRule, error) {
	var rules []ignoreRule
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(path.Clean(filepath.ToSlash(line)), "/")
		re, err := globRegexp(line)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore line %d %q: %w", i+1, line, err)
		}
		r.re = re
		rules = append(rules, r)
	}
	return rules, nil
}

// globRegexp turns a .dockerignore pattern into an anchored regexp: "*"
// and "?" stay within one path element, "**" crosses them.
func globRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++
					b.WriteString("(?:.*/)?")
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, errors.New("unterminated [")
			}
			class := p[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += j
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(string(p[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// ignored reports whether the context path p (slash-separated, relative)
// is left out of the build context: the last rule that matches p or one of
// its parent directories decides.
func ignored(rules []ignoreRule, p string) bool {
	p = strings.TrimPrefix(path.Clean(p), "/")
	if p == "." {
		return false
	}
	var prefixes []string
	for dir := p; dir != "." && dir != "/"; dir = path.Dir(dir) {
		prefixes = append(prefixes, dir)
	}
	out := false
	for _, r := range rules {
		for _, q := range prefixes {
			if r.re.MatchString(q) {
				out = !r.negate
				break
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The checks.

// buildContext is what the checks compare the Dockerfile with.
type buildContext struct {
	fsys      fs.FS        // the build context: the repository root
	ignore    []ignoreRule // its .dockerignore
	goVersion string       // go.mod's go line, e.g. "1.26.0"
}

// check is one property of the Dockerfile; it returns what is wrong, one
// problem a string, nothing when the property holds.
type check struct {
	name string
	fn   func(df *dockerfile, bc *buildContext) []string
}

var checks = []check{
	{"parser warnings", checkWarnings},
	{"stages", checkStages},
	{"rust image", checkRustImage},
	{"ryll build", checkRyllBuild},
	{"golang image", checkGolangImage},
	{"go build", checkGoBuild},
	{"stage references", checkStageRefs},
	{"copy sources", checkCopySources},
	{"smoke needs no ryll", checkSmokeNeedsNoRyll},
	{"no compiler at run time", checkNoCompiler},
	{"non-root user", checkNonRoot},
	{"entrypoint", checkEntrypoint},
	{"results", checkResults},
}

// runChecks runs every check and returns the problems by check name.
func runChecks(df *dockerfile, bc *buildContext) map[string][]string {
	out := map[string][]string{}
	for _, c := range checks {
		if p := c.fn(df, bc); len(p) > 0 {
			out[c.name] = p
		}
	}
	return out
}

func checkWarnings(df *dockerfile, _ *buildContext) []string {
	return df.warnings
}

func checkStages(df *dockerfile, _ *buildContext) []string {
	var got []string
	for _, st := range df.stages {
		got = append(got, st.String())
	}
	if !slices.Equal(got, wantStages) {
		return []string{fmt.Sprintf("stages are %v, want %v in that order (the last one is the default target)", got, wantStages)}
	}
	return nil
}

// need returns the named stage, or a problem saying it is missing.
func need(df *dockerfile, name string) (*stage, []string) {
	st := df.stage(name)
	if st == nil || st.name != name {
		return nil, []string{fmt.Sprintf("no stage named %q", name)}
	}
	return st, nil
}

var versionTag = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.\d+)?(?:rc\d+)?(?:-(.+))?$`)

// tagVersion parses "1.92-bookworm" into 1, 92 and "bookworm".
func tagVersion(tag string) (major, minor int, variant string, ok bool) {
	m := versionTag.FindStringSubmatch(tag)
	if m == nil {
		return 0, 0, "", false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, m[3], true
}

func checkRustImage(df *dockerfile, _ *buildContext) []string {
	st, p := need(df, "ryll")
	if st == nil {
		return p
	}
	img := df.rootImage(st)
	name, tag := imageRef(img)
	if name != "rust" {
		return []string{fmt.Sprintf("line %d: the ryll stage builds FROM %s, want a rust image", st.line, img)}
	}
	major, minor, variant, ok := tagVersion(tag)
	if !ok {
		return []string{fmt.Sprintf("line %d: rust image tag %q is not a pinned version (want e.g. 1.92-bookworm)", st.line, tag)}
	}
	var out []string
	if major < minRust[0] || (major == minRust[0] && minor < minRust[1]) {
		out = append(out, fmt.Sprintf("line %d: rust %d.%d is older than ryll's rust-version %d.%d", st.line, major, minor, minRust[0], minRust[1]))
	}
	if !strings.Contains(variant, "bookworm") {
		out = append(out, fmt.Sprintf("line %d: rust image %s is not a bookworm image; ryll would link a glibc newer than the runtime's", st.line, img))
	}
	return out
}

var (
	checkoutRef = regexp.MustCompile(`\bcheckout\b[^&;|]*"?\$\{?RYLL_REF\}?"?`)
	cargoBuild  = regexp.MustCompile(`\bcargo\s+build\b[^&;|]*`)
)

func checkRyllBuild(df *dockerfile, _ *buildContext) []string {
	st, p := need(df, "ryll")
	if st == nil {
		return p
	}
	var out []string
	declared := false
	for _, in := range st.instrs {
		if in.cmd != "arg" {
			continue
		}
		for _, a := range in.args {
			k, v, hasDefault := strings.Cut(a, "=")
			if k != "RYLL_REF" {
				continue
			}
			declared = true
			if !hasDefault {
				v = df.globalArgs["RYLL_REF"]
			}
			if unquote(v) != "main" {
				out = append(out, fmt.Sprintf("line %d: RYLL_REF defaults to %q, want main", in.line, unquote(v)))
			}
		}
	}
	if !declared {
		out = append(out, "the ryll stage does not declare ARG RYLL_REF")
	}
	var runs strings.Builder
	for _, in := range st.instrs {
		if in.cmd == "run" {
			runs.WriteString(in.text() + "\n")
		}
	}
	text := runs.String()
	if !strings.Contains(text, "git clone") || !checkoutRef.MatchString(text) {
		out = append(out, `the ryll stage must clone ryll and then git checkout "$RYLL_REF" (so a commit works)`)
	}
	build := cargoBuild.FindString(text)
	for _, want := range []string{"--release", "--no-default-features", "-p ryll"} {
		if !strings.Contains(build, want) {
			out = append(out, fmt.Sprintf("the ryll stage's cargo build lacks %s (got %q)", want, build))
		}
	}
	return out
}

var goLine = regexp.MustCompile(`(?m)^go\s+(\d+)\.(\d+)`)

func checkGolangImage(df *dockerfile, bc *buildContext) []string {
	st, p := need(df, "go")
	if st == nil {
		return p
	}
	m := goLine.FindStringSubmatch("go " + bc.goVersion)
	if m == nil {
		return []string{fmt.Sprintf("go.mod's go line %q is not a version", bc.goVersion)}
	}
	img := df.rootImage(st)
	name, tag := imageRef(img)
	if name != "golang" {
		return []string{fmt.Sprintf("line %d: the go stage builds FROM %s, want a golang image", st.line, img)}
	}
	major, minor, _, ok := tagVersion(tag)
	if !ok {
		return []string{fmt.Sprintf("line %d: golang image tag %q is not a pinned version", st.line, tag)}
	}
	if fmt.Sprintf("%d.%d", major, minor) != m[1]+"."+m[2] {
		return []string{fmt.Sprintf("line %d: golang image is Go %d.%d, go.mod says go %s", st.line, major, minor, bc.goVersion)}
	}
	return nil
}

func checkGoBuild(df *dockerfile, _ *buildContext) []string {
	st, p := need(df, "go")
	if st == nil {
		return p
	}
	var out []string
	if df.effectiveEnv(st)["CGO_ENABLED"] != "0" {
		out = append(out, "the go stage does not set ENV CGO_ENABLED=0 (the runtime image needs static binaries)")
	}
	// go.mod and go.sum are copied, and modules downloaded, before the
	// sources arrive, so a code change does not download them again.
	modCopy, download, srcCopy := -1, -1, -1
	var runs strings.Builder
	for i, in := range st.instrs {
		switch {
		case in.cmd == "copy" && len(in.args) >= 3 && slices.Contains(in.args[:len(in.args)-1], "go.mod") &&
			slices.Contains(in.args[:len(in.args)-1], "go.sum"):
			modCopy = i
		case in.cmd == "copy" && len(in.args) == 2 && in.args[0] == ".":
			srcCopy = i
		case in.cmd == "run" && strings.Contains(in.text(), "go mod download"):
			download = i
		}
		if in.cmd == "run" {
			runs.WriteString(in.text() + "\n")
		}
	}
	if modCopy < 0 || download < 0 || srcCopy < 0 || modCopy > download || download > srcCopy {
		out = append(out, "the go stage must COPY go.mod go.sum, RUN go mod download, then COPY the sources, in that order")
	}
	text := runs.String()
	for _, want := range []string{"go test -c", "-tags loadtest", "cmd/test2json", "gotest.tools/gotestsum", "./fakeryll"} {
		if !strings.Contains(text, want) {
			out = append(out, fmt.Sprintf("the go stage never builds with %q", want))
		}
	}
	return out
}

func checkStageRefs(df *dockerfile, _ *buildContext) []string {
	var out []string
	for _, st := range df.stages {
		if ref := df.stage(st.base); ref != nil && ref.index >= st.index {
			out = append(out, fmt.Sprintf("line %d: FROM %s names a stage that is not defined before it", st.line, st.base))
		}
		for _, in := range st.instrs {
			for _, ref := range stageRefs(in) {
				dep := df.stage(ref)
				if dep == nil || dep.index >= st.index {
					out = append(out, fmt.Sprintf("line %d: %s refers to %q, which is not an earlier stage", in.line, strings.ToUpper(in.cmd), ref))
				}
			}
		}
	}
	return out
}

func checkCopySources(df *dockerfile, bc *buildContext) []string {
	var out []string
	for _, st := range df.stages {
		for _, in := range st.instrs {
			if in.cmd != "copy" && in.cmd != "add" {
				continue
			}
			if _, ok := in.flag("from"); ok || len(in.args) < 2 {
				continue
			}
			for _, src := range in.args[:len(in.args)-1] {
				if strings.HasPrefix(src, "<<") || strings.Contains(src, "://") {
					continue // a heredoc or a URL, not the context
				}
				if msg := contextSource(bc, src); msg != "" {
					out = append(out, fmt.Sprintf("line %d: %s %s: %s", in.line, strings.ToUpper(in.cmd), src, msg))
				}
			}
		}
	}
	return out
}

// contextSource says what is wrong with a COPY source, or "".
func contextSource(bc *buildContext, src string) string {
	p := strings.TrimPrefix(path.Clean(src), "/")
	if p == ".." || strings.HasPrefix(p, "../") {
		return "outside the build context"
	}
	if strings.ContainsAny(p, "*?[") {
		matches, err := fs.Glob(bc.fsys, p)
		if err != nil {
			return err.Error()
		}
		for _, m := range matches {
			if !ignored(bc.ignore, m) {
				return ""
			}
		}
		return "matches nothing in the build context"
	}
	if _, err := fs.Stat(bc.fsys, p); err != nil {
		return "not in the repository"
	}
	if ignored(bc.ignore, p) {
		return "excluded by .dockerignore"
	}
	return ""
}

func checkSmokeNeedsNoRyll(df *dockerfile, _ *buildContext) []string {
	st, p := need(df, "smoke")
	if st == nil {
		return p
	}
	if df.needs(st)["ryll"] {
		return []string{"building --target smoke needs the ryll stage, so it needs the Rust toolchain and a ryll clone"}
	}
	return nil
}

// Packages that are compilers or pull one in, and toolchain images.
var (
	compilerPackages = map[string]bool{
		"gcc": true, "cc": true, "c++": true, "g++": true, "cpp": true, "clang": true, "llvm": true,
		"tcc": true, "rustc": true, "cargo": true, "rustup": true, "golang": true, "golang-go": true,
		"gccgo": true, "build-essential": true, "musl-tools": true,
	}
	compilerPrefixes = []string{"gcc-", "g++-", "clang-", "llvm-", "golang-", "rustc-", "gccgo-"}
	toolchainImages  = map[string]bool{"rust": true, "golang": true, "gcc": true, "buildpack-deps": true}
	toolchainPaths   = []string{"/usr/local/go", "/usr/local/cargo", "/usr/local/rustup", "/root/.cargo", "/root/.rustup"}
	shellSeparators  = regexp.MustCompile(`&&|\|\||[;|()\n]`)
)

// installedPackages returns the package names an apt-get (or apt) install
// in a RUN text names.
func installedPackages(run string) []string {
	var pkgs []string
	for _, cmd := range shellSeparators.Split(run, -1) {
		words := strings.Fields(cmd)
		i := slices.IndexFunc(words, func(w string) bool { return w == "apt-get" || w == "apt" })
		if i < 0 {
			continue
		}
		j := slices.Index(words[i:], "install")
		if j < 0 {
			continue
		}
		for _, w := range words[i+j+1:] {
			w = unquote(w)
			if strings.HasPrefix(w, "-") || w == "\\" || w == "" {
				continue
			}
			w, _, _ = strings.Cut(w, "=") // pkg=version
			w, _, _ = strings.Cut(w, ":") // pkg:arch
			pkgs = append(pkgs, w)
		}
	}
	return pkgs
}

func isCompiler(pkg string) bool {
	if compilerPackages[pkg] {
		return true
	}
	for _, p := range compilerPrefixes {
		if strings.HasPrefix(pkg, p) {
			return true
		}
	}
	return false
}

// shipped returns the stages whose files end up in a shipped image: the
// shipped targets and everything they are built FROM.
func shipped(df *dockerfile) []*stage {
	var out []*stage
	for _, name := range shippedTargets {
		st := df.stage(name)
		if st == nil {
			continue
		}
		for _, s := range df.chain(st) {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func checkNoCompiler(df *dockerfile, _ *buildContext) []string {
	var out []string
	for _, st := range shipped(df) {
		if df.parent(st) == nil {
			name, tag := imageRef(st.base)
			if toolchainImages[name] {
				out = append(out, fmt.Sprintf("line %d: stage %s is based on the toolchain image %s", st.line, st, st.base))
			} else if name != "debian" || tag != "bookworm-slim" {
				out = append(out, fmt.Sprintf("line %d: stage %s is based on %s, want debian:bookworm-slim", st.line, st, st.base))
			}
		}
		for _, in := range st.instrs {
			switch in.cmd {
			case "run":
				for _, pkg := range installedPackages(in.text()) {
					if isCompiler(pkg) {
						out = append(out, fmt.Sprintf("line %d: stage %s installs the compiler package %s", in.line, st, pkg))
					}
				}
			case "copy", "add":
				if _, ok := in.flag("from"); !ok || len(in.args) < 2 {
					continue
				}
				for _, src := range in.args[:len(in.args)-1] {
					for _, tp := range toolchainPaths {
						if src == tp || strings.HasPrefix(src, tp+"/") {
							out = append(out, fmt.Sprintf("line %d: stage %s copies the toolchain %s", in.line, st, src))
						}
					}
				}
			}
		}
	}
	return out
}

var userCreation = regexp.MustCompile(`\b(?:useradd|adduser)\b`)

func checkNonRoot(df *dockerfile, _ *buildContext) []string {
	var out []string
	for _, name := range shippedTargets {
		st, p := need(df, name)
		if st == nil {
			out = append(out, p...)
			continue
		}
		in, ok := df.effective(st, "user")
		if !ok || len(in.args) == 0 {
			out = append(out, fmt.Sprintf("stage %s runs as root: no USER", name))
			continue
		}
		user, _, _ := strings.Cut(in.args[0], ":")
		if user == "root" || user == "0" || user == "" {
			out = append(out, fmt.Sprintf("line %d: stage %s runs as root (USER %s)", in.line, name, in.args[0]))
			continue
		}
		if _, err := strconv.Atoi(user); err == nil {
			continue // a numeric uid needs no passwd entry
		}
		created := false
		for _, s := range df.chain(st) {
			for _, r := range s.instrs {
				if r.cmd == "run" && userCreation.MatchString(r.text()) && slices.Contains(strings.Fields(r.text()), user) {
					created = true
				}
			}
		}
		if !created {
			out = append(out, fmt.Sprintf("line %d: stage %s runs as %s, which no useradd/adduser creates", in.line, name, user))
		}
	}
	return out
}

func checkEntrypoint(df *dockerfile, _ *buildContext) []string {
	var out []string
	for _, name := range shippedTargets {
		st, p := need(df, name)
		if st == nil {
			out = append(out, p...)
			continue
		}
		var dest string
		for _, s := range df.chain(st) {
			for _, in := range s.instrs {
				if in.cmd != "copy" || len(in.args) < 2 {
					continue
				}
				if _, ok := in.flag("from"); ok || !slices.Contains(in.args[:len(in.args)-1], "deploy/entrypoint.sh") {
					continue
				}
				dest = in.args[len(in.args)-1]
				if strings.HasSuffix(dest, "/") {
					dest += "entrypoint.sh"
				}
			}
		}
		if dest == "" {
			out = append(out, fmt.Sprintf("stage %s does not COPY deploy/entrypoint.sh", name))
			continue
		}
		ep, ok := df.effective(st, "entrypoint")
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("stage %s has no ENTRYPOINT", name))
		case !ep.json:
			out = append(out, fmt.Sprintf("line %d: stage %s's ENTRYPOINT is in shell form; signals would stop at /bin/sh", ep.line, name))
		case !slices.Contains(ep.args, dest):
			out = append(out, fmt.Sprintf("line %d: stage %s's ENTRYPOINT %v does not run %s", ep.line, name, ep.args, dest))
		}
	}
	return out
}

func checkResults(df *dockerfile, _ *buildContext) []string {
	var out []string
	for _, name := range shippedTargets {
		st, p := need(df, name)
		if st == nil {
			out = append(out, p...)
			continue
		}
		if got := df.effectiveEnv(st)["LATENCY_RESULTS_DIR"]; got != "/results" {
			out = append(out, fmt.Sprintf("stage %s sets LATENCY_RESULTS_DIR=%q, want /results", name, got))
		}
		made := false
		for _, s := range df.chain(st) {
			for _, in := range s.instrs {
				if in.cmd == "run" && slices.Contains(strings.Fields(in.text()), "/results") {
					made = true
				}
			}
		}
		if !made {
			out = append(out, fmt.Sprintf("stage %s never creates /results for its user", name))
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Tests of the repository's artefacts.

// readRepoFile reads a file of the repository, failing the test if it is
// missing.
func readRepoFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	require.NoError(t, err, "read %s", name)
	return string(b)
}

// repoContext is the real build context: the repository, its
// .dockerignore and go.mod's go version.
func repoContext(t testing.TB) *buildContext {
	t.Helper()
	rules, err := parseDockerignore(readRepoFile(t, ".dockerignore"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go\s+(\S+)`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	require.NotNil(t, m, "go.mod has no go line")
	return &buildContext{fsys: os.DirFS(repoRoot), ignore: rules, goVersion: m[1]}
}

func TestDockerfile(t *testing.T) {
	df, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	require.NoError(t, err)
	bc := repoContext(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			assert.Empty(t, c.fn(df, bc))
		})
	}
}

func TestDockerignore(t *testing.T) {
	rules := repoContext(t).ignore
	for _, tc := range []struct {
		path string
		want bool
	}{
		{".git/HEAD", true},
		{"results/20260102T030405Z-ab12.csv", true},
		{"results/short/junit.xml", true},
		{"bin/fakeryll", true},
		{"latency.test", true},
		{"harness/control/control.test", true},
		{"cover.out", true},
		{"cpu.prof", true},
		{"deploy/.entrypoint.sh.swp", true},
		{"harness/ryll/spec.go~", true},
		{".DS_Store", true},
		{".idea/workspace.xml", true},
		// What the image is built from must stay in the context.
		{"go.mod", false},
		{"go.sum", false},
		{"latency_test.go", false},
		{"deploy/entrypoint.sh", false},
		{"fakeryll/main.go", false},
		{"cmd/latency-sweep/main.go", false},
		{"harness/results/results.go", false},
		{"harness/bin/bin.go", false},
		{"harness/control/testdata/hello.golden", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			assert.Equal(t, tc.want, ignored(rules, tc.path))
		})
	}
}

func TestEntrypointScript(t *testing.T) {
	script := filepath.Join(repoRoot, "deploy", "entrypoint.sh")
	info, err := os.Stat(script)
	require.NoError(t, err)
	assert.NotZero(t, info.Mode().Perm()&0o111, "deploy/entrypoint.sh is not executable (mode %v)", info.Mode())

	text := readRepoFile(t, "deploy/entrypoint.sh")
	assert.True(t, strings.HasPrefix(text, "#!/bin/sh\n") || strings.HasPrefix(text, "#!/bin/bash\n"), "no #!/bin/sh or #!/bin/bash line")
	assert.Regexp(t, `(?m)^set -eu`, text)
	assert.Regexp(t, `(?m)^exec gotestsum`, text, "gotestsum must replace the shell so its exit status is the container's")

	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell+" -n", func(t *testing.T) {
			bin, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("no %s on PATH, so the syntax check cannot run; install it to run this test", shell)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-n", script).CombinedOutput()
			assert.NoError(t, err, "%s -n: %s", shell, out)
		})
	}
}

// stubScript is a stand-in for gotestsum, test2json and the test binary:
// it records its arguments and the variables the entry point sets, and
// exits with STUB_EXIT.
const stubScript = `#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done > "$STUB_DIR/args"
printf '%s\n' "$LATENCY_RESULTS_DIR" > "$STUB_DIR/results_dir"
exit "${STUB_EXIT:-0}"
`

func TestEntrypointRuns(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH, so the entry point cannot run; install a POSIX shell to run this test")
	}
	script, err := filepath.Abs(filepath.Join(repoRoot, "deploy", "entrypoint.sh"))
	require.NoError(t, err)

	type result struct {
		code   int
		stderr string
		args   []string // gotestsum's arguments; nil if it never ran
		resDir string   // LATENCY_RESULTS_DIR as gotestsum saw it
		binary string   // the stub test binary
	}
	run := func(t *testing.T, env map[string]string, args ...string) result {
		t.Helper()
		stubs := t.TempDir()
		for _, name := range []string{"gotestsum", "test2json", "latency.test"} {
			require.NoError(t, os.WriteFile(filepath.Join(stubs, name), []byte(stubScript), 0o755))
		}
		environ := []string{
			"PATH=" + stubs + ":/usr/bin:/bin",
			"STUB_DIR=" + stubs,
			"GOVERSION=go0.0-test",
			"LATENCY_TEST_BINARY=" + filepath.Join(stubs, "latency.test"),
			"LATENCY_RESULTS_DIR=" + filepath.Join(t.TempDir(), "results"),
		}
		for k, v := range env {
			environ = append(environ, k+"="+v)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, sh, append([]string{script}, args...)...)
		cmd.Env = environ
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		res := result{stderr: stderr.String(), binary: filepath.Join(stubs, "latency.test")}
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			res.code = exitErr.ExitCode()
		} else {
			require.NoError(t, err)
		}
		if b, err := os.ReadFile(filepath.Join(stubs, "args")); err == nil {
			res.args = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		}
		if b, err := os.ReadFile(filepath.Join(stubs, "results_dir")); err == nil {
			res.resDir = strings.TrimSpace(string(b))
		}
		return res
	}

	t.Run("runs the loadtest under gotestsum and test2json", func(t *testing.T) {
		resDir := filepath.Join(t.TempDir(), "nested", "results")
		res := run(t, map[string]string{"LATENCY_RESULTS_DIR": resDir, "LATENCY_TEST_TIMEOUT": "5m"},
			"-test.run", "^TestLatency$/with space")
		require.Equal(t, 0, res.code, res.stderr)
		assert.Equal(t, []string{
			"--junitfile", resDir + "/junit.xml",
			"--format", "testname",
			"--raw-command", "--",
			"test2json", "-t", "-p", "latency", res.binary,
			"-test.v=test2json",
			"-test.timeout=5m",
			"-test.run", "^TestLatency$/with space",
		}, res.args)
		assert.Equal(t, resDir, res.resDir, "LATENCY_RESULTS_DIR as the loadtest sees it")
		assert.DirExists(t, resDir, "the results directory is created")
	})

	t.Run("default timeout", func(t *testing.T) {
		res := run(t, nil)
		require.Equal(t, 0, res.code, res.stderr)
		assert.Contains(t, res.args, "-test.timeout=40m")
	})

	for _, code := range []int{1, 3, 130} {
		t.Run(fmt.Sprintf("exit status %d is the container's", code), func(t *testing.T) {
			res := run(t, map[string]string{"STUB_EXIT": strconv.Itoa(code)})
			assert.Equal(t, code, res.code, res.stderr)
		})
	}

	t.Run("missing test binary", func(t *testing.T) {
		res := run(t, map[string]string{"LATENCY_TEST_BINARY": "/nonexistent/latency.test"})
		assert.Equal(t, 2, res.code)
		assert.Contains(t, res.stderr, "/nonexistent/latency.test is missing")
		assert.Nil(t, res.args, "gotestsum must not run")
	})

	t.Run("results path is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "results")
		require.NoError(t, os.WriteFile(file, nil, 0o644))
		res := run(t, map[string]string{"LATENCY_RESULTS_DIR": file})
		assert.Equal(t, 2, res.code)
		assert.Contains(t, res.stderr, "is not a directory writable by uid")
		assert.Nil(t, res.args, "gotestsum must not run")
	})

	t.Run("results directory not writable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root can write any directory; run the tests as an ordinary user to check this case")
		}
		dir := filepath.Join(t.TempDir(), "results")
		require.NoError(t, os.Mkdir(dir, 0o555))
		res := run(t, map[string]string{"LATENCY_RESULTS_DIR": dir})
		assert.Equal(t, 2, res.code)
		assert.Contains(t, res.stderr, "is not a directory writable by uid")
	})
}

// ---------------------------------------------------------------------------
// Tests that the checks can fail.

// fixtureDockerfile is a small Dockerfile with every property the checks
// want. The broken cases below each change one thing in it.
const fixtureDockerfile = `# syntax=docker/dockerfile:1
ARG RUST_VERSION=1.88
ARG RYLL_REF=main

FROM rust:${RUST_VERSION}-bookworm AS ryll
ARG RYLL_REF
RUN git clone --no-checkout https://github.com/shakenfist/ryll.git /src \
 && git -C /src checkout "$RYLL_REF"
WORKDIR /src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --no-default-features -p ryll \
 && install -D target/release/ryll /out/ryll

FROM golang:1.26-bookworm AS go
ENV CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go test -c -tags loadtest -o /out/latency.test . \
 && go build -o /out/test2json cmd/test2json \
 && go build -o /out/gotestsum gotest.tools/gotestsum \
 && go build -o /out/fakeryll ./fakeryll

FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 1000 --create-home latency \
 && install -d -o latency /results
COPY --from=go /out/latency.test /out/test2json /out/gotestsum /usr/local/bin/
COPY deploy/entrypoint.sh /usr/local/bin/latency-entrypoint
ENV LATENCY_RESULTS_DIR=/results
USER latency
ENTRYPOINT ["/usr/local/bin/latency-entrypoint"]

FROM runtime-base AS smoke
COPY --from=go /out/fakeryll /usr/local/bin/ryll
ENV LATENCY_PROVIDER=fake

FROM runtime-base AS runtime
COPY --from=ryll /out/ryll /usr/local/bin/ryll
`

// fixtureContext is the build context the fixture is checked against.
func fixtureContext(t testing.TB) *buildContext {
	t.Helper()
	rules, err := parseDockerignore(".git\n/results\n**/*.test\nsecret.env\n")
	require.NoError(t, err)
	return &buildContext{
		fsys: fstest.MapFS{
			"go.mod":               {Data: []byte("module example.com/x\n\ngo 1.26.0\n")},
			"go.sum":               {},
			"latency_test.go":      {},
			"fakeryll/main.go":     {},
			"deploy/entrypoint.sh": {Mode: 0o755},
			"secret.env":           {},
			"old.test":             {},
		},
		ignore:    rules,
		goVersion: "1.26.0",
	}
}

func TestFixturePassesEveryCheck(t *testing.T) {
	df, err := parseDockerfile(fixtureDockerfile)
	require.NoError(t, err)
	assert.Empty(t, runChecks(df, fixtureContext(t)))
}

func TestChecksCatchBrokenDockerfiles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string // replace old (which must be in the fixture) by new
		goMod    string // go.mod's go version, if not the fixture's
		check    string // the check that must complain
		want     string // part of its complaint
	}{
		{
			name: "rust too old", old: "RUST_VERSION=1.88", new: "RUST_VERSION=1.83",
			check: "rust image", want: "rust 1.83 is older than ryll's rust-version 1.88",
		},
		{
			name: "rust not pinned", old: "rust:${RUST_VERSION}-bookworm", new: "rust:latest",
			check: "rust image", want: "not a pinned version",
		},
		{
			name: "rust not bookworm", old: "rust:${RUST_VERSION}-bookworm", new: "rust:1.92-trixie",
			check: "rust image", want: "not a bookworm image",
		},
		{
			name: "rust built on the wrong image", old: "rust:${RUST_VERSION}-bookworm", new: "debian:bookworm",
			check: "rust image", want: "want a rust image",
		},
		{
			name: "golang older than go.mod", old: "golang:1.26-bookworm", new: "golang:1.25-bookworm",
			check: "golang image", want: "golang image is Go 1.25, go.mod says go 1.26.0",
		},
		{
			name: "go.mod moved on", goMod: "1.27",
			check: "golang image", want: "go.mod says go 1.27",
		},
		{
			name: "COPY --from an unknown stage", old: "COPY --from=go /out/fakeryll", new: "COPY --from=builder /out/fakeryll",
			check: "stage references", want: `refers to "builder", which is not an earlier stage`,
		},
		{
			name: "COPY --from a later stage", old: "COPY --from=go /out/latency.test", new: "COPY --from=smoke /out/latency.test",
			check: "stage references", want: `refers to "smoke", which is not an earlier stage`,
		},
		{
			name: "RUN --mount from an unknown stage", old: "RUN go mod download", new: "RUN --mount=type=bind,from=deps,target=/d go mod download",
			check: "stage references", want: `refers to "deps"`,
		},
		{
			name: "missing COPY source", old: "COPY deploy/entrypoint.sh", new: "COPY deploy/entrypoint",
			check: "copy sources", want: "deploy/entrypoint: not in the repository",
		},
		{
			name: "COPY source excluded by .dockerignore", old: "COPY deploy/entrypoint.sh", new: "COPY secret.env deploy/entrypoint.sh",
			check: "copy sources", want: "secret.env: excluded by .dockerignore",
		},
		{
			name: "COPY glob matches only ignored files", old: "COPY deploy/entrypoint.sh", new: "COPY *.test deploy/entrypoint.sh",
			check: "copy sources", want: "*.test: matches nothing",
		},
		{
			name: "COPY from outside the context", old: "COPY deploy/entrypoint.sh", new: "COPY ../secrets deploy/entrypoint.sh",
			check: "copy sources", want: "outside the build context",
		},
		{
			name: "compiler installed at run time", old: "ca-certificates libssl3", new: "ca-certificates libssl3 gcc",
			check: "no compiler at run time", want: "installs the compiler package gcc",
		},
		{
			name: "build-essential installed in smoke", old: "ENV LATENCY_PROVIDER=fake", new: "RUN apt-get install -y build-essential",
			check: "no compiler at run time", want: "stage smoke installs the compiler package build-essential",
		},
		{
			name: "versioned compiler", old: "ca-certificates libssl3", new: "ca-certificates libssl3 clang-16=1:16.0.6-15",
			check: "no compiler at run time", want: "compiler package clang-16",
		},
		{
			name: "runtime on a golang image", old: "FROM debian:bookworm-slim AS runtime-base", new: "FROM golang:1.26-bookworm AS runtime-base",
			check: "no compiler at run time", want: "based on the toolchain image golang:1.26-bookworm",
		},
		{
			name: "runtime on another distribution", old: "FROM debian:bookworm-slim AS runtime-base", new: "FROM ubuntu:24.04 AS runtime-base",
			check: "no compiler at run time", want: "want debian:bookworm-slim",
		},
		{
			name: "toolchain copied into runtime", old: "COPY --from=ryll /out/ryll", new: "COPY --from=ryll /usr/local/cargo/bin/cargo",
			check: "no compiler at run time", want: "copies the toolchain /usr/local/cargo/bin/cargo",
		},
		{
			name: "runs as root", old: "USER latency", new: "USER root",
			check: "non-root user", want: "runs as root (USER root)",
		},
		{
			name: "runs as uid 0", old: "USER latency", new: "USER 0:0",
			check: "non-root user", want: "runs as root (USER 0:0)",
		},
		{
			name: "no USER", old: "USER latency\n", new: "",
			check: "non-root user", want: "runs as root: no USER",
		},
		{
			name: "USER never created", old: "USER latency", new: "USER tester",
			check: "non-root user", want: "runs as tester, which no useradd/adduser creates",
		},
		{
			name: "stages out of order", old: "FROM runtime-base AS smoke", new: "FROM runtime-base AS smoke-test",
			check: "stages", want: "want [ryll go runtime-base smoke runtime] in that order",
		},
		{
			name: "smoke built on the real runtime", old: "FROM runtime-base AS smoke\n", new: "FROM runtime-base AS runtime0\nCOPY --from=ryll /out/ryll /usr/local/bin/ryll\nFROM runtime0 AS smoke\n",
			check: "smoke needs no ryll", want: "needs the ryll stage",
		},
		{
			name: "RYLL_REF not used", old: `checkout "$RYLL_REF"`, new: "checkout main",
			check: "ryll build", want: `git checkout "$RYLL_REF"`,
		},
		{
			name: "RYLL_REF default", old: "ARG RYLL_REF=main", new: "ARG RYLL_REF=develop",
			check: "ryll build", want: `RYLL_REF defaults to "develop", want main`,
		},
		{
			name: "full-fat ryll", old: "cargo build --release --no-default-features -p ryll", new: "cargo build --release -p ryll",
			check: "ryll build", want: "lacks --no-default-features",
		},
		{
			name: "cgo on", old: "ENV CGO_ENABLED=0", new: "ENV CGO_ENABLED=1",
			check: "go build", want: "CGO_ENABLED=0",
		},
		{
			name: "modules downloaded after the sources", old: "COPY go.mod go.sum ./\nRUN go mod download\nCOPY . .", new: "COPY . .\nRUN go mod download",
			check: "go build", want: "COPY go.mod go.sum, RUN go mod download, then COPY the sources",
		},
		{
			name: "fakeryll not built", old: " \\\n && go build -o /out/fakeryll ./fakeryll", new: "",
			check: "go build", want: `"./fakeryll"`,
		},
		{
			name: "entrypoint in shell form", old: `ENTRYPOINT ["/usr/local/bin/latency-entrypoint"]`, new: "ENTRYPOINT /usr/local/bin/latency-entrypoint",
			check: "entrypoint", want: "shell form",
		},
		{
			name: "entrypoint runs something else", old: `ENTRYPOINT ["/usr/local/bin/latency-entrypoint"]`, new: `ENTRYPOINT ["/usr/local/bin/latency.test"]`,
			check: "entrypoint", want: "does not run /usr/local/bin/latency-entrypoint",
		},
		{
			name: "results elsewhere", old: "ENV LATENCY_RESULTS_DIR=/results", new: "ENV LATENCY_RESULTS_DIR=/tmp",
			check: "results", want: `LATENCY_RESULTS_DIR="/tmp", want /results`,
		},
		{
			name: "empty continuation line", old: "RUN go mod download", new: "RUN go mod \\\n\n    download",
			check: "parser warnings", want: "Empty continuation line",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := fixtureDockerfile
			if tc.old != "" {
				require.Contains(t, text, tc.old, "the case's mutation must apply to the fixture")
				text = strings.Replace(text, tc.old, tc.new, 1)
			}
			bc := fixtureContext(t)
			if tc.goMod != "" {
				bc.goVersion = tc.goMod
			}
			df, err := parseDockerfile(text)
			require.NoError(t, err)
			problems := runChecks(df, bc)
			require.NotEmpty(t, problems[tc.check], "check %q found nothing; all problems: %v", tc.check, problems)
			assert.Contains(t, strings.Join(problems[tc.check], "\n"), tc.want)
		})
	}
}

func TestParseDockerfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty", "", "no instructions"},
		{"only comments", "# nothing here\n", "no instructions"},
		{"only ARG", "ARG RUST_VERSION=1.92\n", "no FROM"},
		{"instruction before FROM", "RUN true\nFROM debian:bookworm-slim\n", "RUN before the first FROM"},
		{"undefined build argument", "FROM rust:${RUST_VERSION}-bookworm AS ryll\n", "RUST_VERSION has no default"},
		{"build argument without default", "ARG RUST_VERSION\nFROM rust:$RUST_VERSION AS ryll\n", "RUST_VERSION has no default"},
		{"malformed FROM", "FROM debian:bookworm-slim runtime\n", "malformed FROM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDockerfile(tc.text)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDockerignoreMatching(t *testing.T) {
	rules, err := parseDockerignore(`# comment
/results
**/*.test
docs/*.md
!docs/keep.md
**/cache/**
tmp?
[ab].txt
`)
	require.NoError(t, err)
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"results", true},
		{"results/a/b.csv", true},
		{"harness/results/results.go", false},
		{"x.test", true},
		{"a/b/x.test", true},
		{"x.test.go", false},
		{"docs/a.md", true},
		{"docs/keep.md", false},
		{"docs/sub/a.md", false},
		{"cache/x", true},
		{"a/cache/b/c", true},
		{"tmp1", true},
		{"tmp12", false},
		{"a.txt", true},
		{"c.txt", false},
		{".", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			assert.Equal(t, tc.want, ignored(rules, tc.path))
		})
	}

	_, err = parseDockerignore("[abc\n")
	assert.ErrorContains(t, err, "unterminated [")
}

func TestInstalledPackages(t *testing.T) {
	for _, tc := range []struct {
		name, run string
		want      []string
	}{
		{"plain", "apt-get install -y gcc", []string{"gcc"}},
		{"chained", "apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates && rm -rf /x", []string{"libssl3", "ca-certificates"}},
		{"apt", "apt install cargo", []string{"cargo"}},
		{"versioned and arch", "apt-get install -y 'gcc-12=12.2.0-14' libc6:amd64", []string{"gcc-12", "libc6"}},
		{"not an install", "apt-get remove gcc; echo install gcc", nil},
		{"no apt", "useradd gcc", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, installedPackages(tc.run))
		})
	}
	assert.True(t, isCompiler("gcc-12"))
	assert.True(t, isCompiler("build-essential"))
	assert.False(t, isCompiler("libgcc-s1"))
	assert.False(t, isCompiler("libssl3"))
}
