package interrupt

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTheFirstStopAndItsPhaseAreKept(t *testing.T) {
	r := New("reading the configuration")
	assert.Nil(t, r.Err())
	plain := errors.New("build fakeryll: signal: killed")
	assert.Same(t, plain, r.Explain(plain), "no interrupt, no change")

	r.Enter("building fakeryll")
	in := r.Interrupt("received interrupt")
	r.Enter("writing results")
	again := r.Interrupt("received terminated")
	assert.Same(t, in, again, "the first stop is the one kept")
	assert.Equal(t, "building fakeryll", in.Phase)
	assert.Equal(t, "writing results", r.Phase())
	assert.Contains(t, in.Error(), "received interrupt while building fakeryll")
	assert.ErrorIs(t, in, context.Canceled, "an interrupt is a cancellation")

	err := r.Explain(plain)
	assert.Contains(t, err.Error(), "interrupted: received interrupt while building fakeryll")
	assert.Contains(t, err.Error(), "cut short: build fakeryll: signal: killed")
	assert.ErrorIs(t, err, plain)
	assert.ErrorIs(t, err, context.Canceled)
	var got *Interrupted
	require.ErrorAs(t, err, &got)
	assert.Same(t, in, got)
	assert.Nil(t, r.Explain(nil))
}

// TestTheCauseOfACancelledContextTellsThePhase: the interrupt as the
// context's cancel cause.
func TestTheCauseOfACancelledContextTellsThePhase(t *testing.T) {
	r := New("measuring")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(r.Interrupt("received terminated"))
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
	assert.Contains(t, context.Cause(ctx).Error(), "received terminated while measuring")
}

func TestWrapOnlyWhatAnInterruptCut(t *testing.T) {
	plain := errors.New("console c1 not started")
	assert.Same(t, plain, Wrap(context.Background(), plain), "not cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("the run exceeded its bound"))
	assert.Same(t, plain, Wrap(ctx, plain), "cancelled, but not by an interrupt")

	r := New("setting up the console and ryll")
	ctx, cancel = context.WithCancelCause(context.Background())
	cancel(r.Interrupt("received interrupt"))
	err := Wrap(ctx, plain)
	assert.Contains(t, err.Error(), "interrupted: received interrupt while setting up the console and ryll")
	assert.ErrorIs(t, err, plain)
	assert.Same(t, err, Wrap(ctx, err), "wrapped once")
	assert.Nil(t, Wrap(ctx, nil))
}

// TestExplainSaysTheInterruptOnce: an error already cut short by the
// interrupt is not wrapped again.
func TestExplainSaysTheInterruptOnce(t *testing.T) {
	r := New("setting up")
	r.Interrupt("received terminated")
	once := r.Explain(errors.New("wait for server"))
	twice := r.Explain(once)
	assert.Equal(t, once.Error(), twice.Error())
	assert.Equal(t, 1, strings.Count(twice.Error(), "interrupted:"))
}
