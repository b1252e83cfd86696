package ryll

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// script writes an executable shell script standing in for ryll.
func script(t testing.TB, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ryll")
	require.NoError(t, os.WriteFile(f, []byte("#!/bin/sh\n"+body+"\n"), 0o700))
	return f
}

func TestVersion(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    string
		wantErr string
	}{
		{"first line", `[ "$1" = --version ] || exit 9; echo; echo "ryll 0.4.2 (abc1234)"; echo more`, "ryll 0.4.2 (abc1234)", ""},
		{"fails", `echo "boom" >&2; exit 3`, "", "exit status 3: boom"},
		{"silent", `exit 0`, "", "printed nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Version(t.Context(), script(t, tc.body))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestVersionIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := Version(ctx, script(t, "exec sleep 30"))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestVersionMissingBinary(t *testing.T) {
	_, err := Version(t.Context(), filepath.Join(t.TempDir(), "nope"))
	assert.ErrorContains(t, err, "--version")
	_, err = Version(t.Context(), "")
	assert.ErrorContains(t, err, "no binary")
}
