package cloud

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/stretchr/testify/assert"
)

func TestIsDeterministic(t *testing.T) {
	refused := func(code int) error {
		return fmt.Errorf("create server: %w", gophercloud.ErrUnexpectedResponseCode{Actual: code})
	}
	for _, code := range []int{400, 401, 403, 404, 406, 409, 413} {
		assert.True(t, IsDeterministic(refused(code)), "%d", code)
	}
	for _, code := range []int{408, 429, 500, 503} {
		assert.False(t, IsDeterministic(refused(code)), "%d", code)
	}
	assert.False(t, IsDeterministic(errors.New("server went to ERROR: No valid host was found")))
	assert.False(t, IsDeterministic(nil))
}
