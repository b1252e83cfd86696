package runid

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewSortsByTimeAndIsValid(t *testing.T) {
	a := New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b := New(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC))
	assert.Regexp(t, `^20260102T030405Z-[0-9a-f]{6}$`, a)
	assert.Less(t, a, b)
	require.NoError(t, Validate(a))
	assert.NotEqual(t, New(time.Unix(0, 0)), New(time.Unix(0, 0)), "random suffix")
}

func TestValidate(t *testing.T) {
	for _, ok := range []string{"a", "ci-42", "r1.p3_c2", strings.Repeat("x", MaxLen)} {
		assert.NoError(t, Validate(ok), ok)
	}
	for _, bad := range []string{"", "-x", ".x", "a/b", "a..b", "../etc", "a b", "é", strings.Repeat("x", MaxLen+1)} {
		err := Validate(bad)
		if assert.Error(t, err, bad) {
			assert.Contains(t, err.Error(), "invalid run id")
		}
	}
	assert.Error(t, ValidateLen("abcdef", 5))
	assert.NoError(t, ValidateLen("abcde", 5))
}
