package spice

import (
	"errors"
	"fmt"
)

// ErrBadScancode: a scancode that is not an AT set-1 make code.
var ErrBadScancode = errors.New("not a PC AT set-1 scancode")

// WireScancode turns a logical AT set-1 scancode, as ryll's control socket
// takes it (protocol 1.2 send_key), into the u32 a SPICE KEY_DOWN or
// KEY_UP carries.
//
// A plain key is one byte, 0x01..0xFF; the break (up) code sets bit 7. An
// extended key has the 0xE0 prefix in the high byte, e.g. 0xE04B for left
// arrow. On the wire SPICE wants the prefix byte first in a little-endian
// u32 and the break bit on the scancode byte, so 0xE04B goes out as
// 0x4BE0 down and 0xCBE0 up (ryll's make_scancode, spice-gtk's
// spice_make_scancode). A code that already has the break bit set gives
// the same up value. Any other high byte is refused, as ryll 1.2 refuses
// pre-swapped wire values.
func WireScancode(scancode uint16, up bool) (uint32, error) {
	prefix, code := byte(scancode>>8), byte(scancode)
	if code == 0 || (prefix != 0 && prefix != 0xE0) {
		return 0, fmt.Errorf("%w: %#04x (want 0x01..0xff, or 0xe0 in the high byte for an extended key)", ErrBadScancode, scancode)
	}
	if up {
		code |= 0x80
	}
	if prefix == 0 {
		return uint32(code), nil
	}
	return uint32(code)<<8 | 0xE0, nil
}
