package qemu

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// xpUnits maps a read size in bytes to the unit letter of HMP's xp.
var xpUnits = map[int]byte{1: 'b', 2: 'h', 4: 'w', 8: 'g'}

// ReadCounter reads a little-endian unsigned integer of size bytes (1,
// 2, 4 or 8) at guest physical address addr, through HMP's xp command.
// The loadtest uses it to read the guest's key counter: every key the
// harness pressed must have reached the guest exactly once.
func (vm *VM) ReadCounter(ctx context.Context, addr uint64, size int) (uint64, error) {
	unit, ok := xpUnits[size]
	if !ok {
		return 0, fmt.Errorf("read guest memory: size %d, want 1, 2, 4 or 8 bytes", size)
	}
	var out string
	cmd := fmt.Sprintf("xp /1x%c 0x%x", unit, addr)
	if err := vm.Execute(ctx, "human-monitor-command", map[string]string{"command-line": cmd}, &out); err != nil {
		return 0, fmt.Errorf("read guest memory at 0x%x: %w", addr, err)
	}
	v, err := parseXP(out, addr, size)
	if err != nil {
		return 0, fmt.Errorf("read guest memory at 0x%x (%s): %w", addr, cmd, err)
	}
	return v, nil
}

// parseXP reads the answer to `xp /1xU ADDR`: one line
// "0000000000000500: 0x0003" whose address must be addr and whose value
// must have exactly 2*size hex digits. Anything else (QEMU's "Cannot
// access memory", an HMP error, a changed format) is an error quoting
// the output, never a guessed number.
func parseXP(out string, addr uint64, size int) (uint64, error) {
	text := strings.TrimRight(out, "\r\n")
	if text == "" {
		return 0, fmt.Errorf("xp printed nothing")
	}
	if strings.ContainsAny(text, "\r\n") {
		return 0, fmt.Errorf("xp printed several lines, want one: %s", quoteLine([]byte(out)))
	}
	at, value, ok := strings.Cut(text, ":")
	if !ok {
		return 0, fmt.Errorf("unexpected xp output: %s", quoteLine([]byte(out)))
	}
	got, err := strconv.ParseUint(strings.TrimSpace(at), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected xp output: %s", quoteLine([]byte(out)))
	}
	if got != addr {
		return 0, fmt.Errorf("xp answered for address 0x%x, asked 0x%x: %s", got, addr, quoteLine([]byte(out)))
	}
	value = strings.TrimSpace(value)
	digits, ok := strings.CutPrefix(value, "0x")
	if !ok || len(digits) != 2*size {
		return 0, fmt.Errorf("guest memory not readable as a %d-byte value: %s", size, quoteLine([]byte(out)))
	}
	v, err := strconv.ParseUint(digits, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("guest memory not readable as a %d-byte value: %s", size, quoteLine([]byte(out)))
	}
	return v, nil
}
