package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shakenfist/kerbside-latency/harness/guest"
)

func TestWritesEachFormat(t *testing.T) {
	for _, format := range guest.Formats {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "guest."+format)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"-format", format, "-o", path}, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := guest.Disk(guest.Image, format)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s holds %d bytes that are not guest.Disk's %d", path, len(got), len(want))
			}
			if !strings.Contains(stdout.String(), "wrote "+path) {
				t.Errorf("stdout %q does not say what it wrote", stdout.String())
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
			if len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no output", []string{"-format", "raw"}, exitBadUsage, "usage"},
		{"unknown format", []string{"-format", "vdi", "-o", filepath.Join(dir, "x")}, exitBadUsage, `format "vdi"`},
		{"unwritable", []string{"-o", filepath.Join(dir, "missing", "x")}, exitFailed, "write "},
		{"stray argument", []string{"-o", filepath.Join(dir, "x"), "extra"}, exitBadUsage, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a refused run wrote its file")
	}
}
