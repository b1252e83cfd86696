// Package guest holds the repaint-on-key boot-sector guest that a real
// SPICE lane boots under QEMU, its activity variants, and the addresses a
// test reads back from it.
//
// guest.asm (nasm, BIOS boot sector) is the source and guest.img the
// committed 512-byte image built from it (`make guest`). On every key the
// guest repaints its key region (the top three text rows, KeyRegion; the
// idle guest, the whole screen) with a new background colour and writes ">> ", the key, its scancode and a
// key counter, so every key that reaches the guest produces a burst of
// SPICE draws in that region. The counter lives at a fixed physical
// address: reading it through QMP at the end of a run proves that every
// key sent arrived once.
//
// Below the key region (and a separator row that never changes, so QEMU
// never merges the two into one damaged rectangle) the guest can keep the
// screen busy by itself: ImageFor patches one byte of the image to choose
// the activity (Activities). The idle guest draws nothing but keys.
package guest

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Image is the boot sector (512 bytes, ending 0x55 0xAA). Boot it with
// `-drive format=raw,file=COPY,if=floppy -boot a -vga std`; each QEMU
// needs its own copy of the file because QEMU takes a write lock on it.
//
//go:embed guest.img
var Image []byte

// ImageSize is the size of Image: one floppy boot sector.
const ImageSize = 512

// The activities a guest can run below its key region (LATENCY_ACTIVITY).
const (
	// ActivityIdle draws nothing but the key's repaint: the guest of old.
	ActivityIdle = "idle"
	// ActivityTyping changes one character cell four times a second, as a
	// person typing in a terminal would.
	ActivityTyping = "typing"
	// ActivityScroll scrolls the whole text area below the key region up
	// by one line ten times a second.
	ActivityScroll = "scroll"
	// ActivityVideo changes every cell of the area below the key region
	// (glyph and colour) 100 times a second, faster than QEMU's ~30 ms
	// display refresh: every refresh carries the whole area.
	ActivityVideo = "video"
)

// Activities lists the activities in the order of their codes.
var Activities = []string{ActivityIdle, ActivityTyping, ActivityScroll, ActivityVideo}

// ActivityOffset is the offset in the image of the byte that chooses the
// activity: its index in Activities (0 idle in the committed image).
const ActivityOffset = 509

// ImageFor returns a copy of Image whose activity byte chooses activity
// (one of Activities), so a busy guest is the same program as the idle
// one. Each QEMU still needs its own copy of the bytes on disk.
func ImageFor(activity string) ([]byte, error) {
	code := slices.Index(Activities, activity)
	if code < 0 {
		return nil, fmt.Errorf("guest activity %q: want one of %s", activity, strings.Join(Activities, ", "))
	}
	img := slices.Clone(Image)
	img[ActivityOffset] = byte(code)
	return img, nil
}

// Box is a rectangle of the guest's screen in pixels: Left and Top
// inclusive, Right and Bottom exclusive, as SPICE's boxes are.
type Box struct {
	Left, Top, Right, Bottom int
}

// KeyRows is how many text rows, from the top, the key repaints.
const KeyRows = 3

// KeyRegion is where a busy guest's key repaint draws: the top KeyRows
// text rows, the whole width. The activity never draws there (a separator
// row keeps it one row away), so a draw whose rectangle touches KeyRegion
// answers a key, whatever the guest is doing.
var KeyRegion = Box{Left: 0, Top: 0, Right: ScreenWidth, Bottom: KeyRows * 16}

// KeyRegionFor is where the key's repaint draws for activity: KeyRegion
// for a busy guest, the whole screen for the idle one, which repaints the
// whole screen on a key as it always has. (A display refresh can catch
// that repaint half done: its second half then comes as strips below
// KeyRegion, which must still count as the key's.)
func KeyRegionFor(activity string) Box {
	if activity == ActivityIdle {
		return Box{Right: ScreenWidth, Bottom: ScreenHeight}
	}
	return KeyRegion
}

// ScreenWidth and ScreenHeight are the guest's screen once it runs: 80x25
// text with the VGA's 9x16 font. Before that the BIOS shows a screen of
// its own (640x480), whose draws are boot, not keys: a loadtest must wait
// for this size before it presses anything.
const (
	ScreenWidth  = 720
	ScreenHeight = 400
)

const (
	// CounterAddr is the guest-physical address of the key counter: a
	// little-endian uint32 that starts at 0 and grows by one per key the
	// BIOS delivers (key presses, not releases).
	CounterAddr = 0x7E00
	// CounterSize is the counter's size in bytes.
	CounterSize = 4
	// LastKeyAddr holds the last BIOS key word (int 16h, AH=10h): the
	// low byte is the ASCII code (0xE0 for grey extended keys), the high
	// byte the scancode.
	LastKeyAddr = 0x7E04
	// LastKeySize is the size of the last-key word in bytes.
	LastKeySize = 2
)

// CounterCommand is the HMP command (for QMP human-monitor-command) that
// prints the counter; ParseCounter reads its answer.
func CounterCommand() string { return fmt.Sprintf("xp /1wx %#x", CounterAddr) }

// LastKeyCommand is the HMP command that prints the last key word;
// ParseLastKey reads its answer.
func LastKeyCommand() string { return fmt.Sprintf("xp /1hx %#x", LastKeyAddr) }

// ParseCounter reads the answer to CounterCommand, such as
// "0000000000007e00: 0x00000017\r\n".
func ParseCounter(hmp string) (uint32, error) {
	v, err := parseXP(hmp, CounterAddr, 32)
	return uint32(v), err
}

// ParseLastKey reads the answer to LastKeyCommand and returns the
// scancode and ASCII bytes.
func ParseLastKey(hmp string) (scancode, ascii byte, err error) {
	v, err := parseXP(hmp, LastKeyAddr, 16)
	return byte(v >> 8), byte(v), err
}

// parseXP reads one "ADDR: 0xVALUE" line of HMP xp output and checks the
// address, so an error message from the monitor is never read as a value.
func parseXP(hmp string, wantAddr uint64, bits int) (uint64, error) {
	line := strings.TrimSpace(hmp)
	addr, val, ok := strings.Cut(line, ":")
	if !ok || strings.Contains(line, "\n") {
		return 0, fmt.Errorf("parse xp output %q: want one line \"ADDR: 0xVALUE\"", line)
	}
	a, err := strconv.ParseUint(strings.TrimSpace(addr), 16, 64)
	if err != nil || a != wantAddr {
		return 0, fmt.Errorf("parse xp output %q: want address %#x", line, wantAddr)
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(val), "0x"), 16, bits)
	if err != nil {
		return 0, fmt.Errorf("parse xp output %q: value: %w", line, err)
	}
	return v, nil
}
