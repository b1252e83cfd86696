package qemu

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// standinCounter is the guest physical address of the stand-in's key
// counter, a little-endian 16-bit word.
const standinCounter = 0x500

// standinMagic is at standinMagicAddr once the stand-in runs.
const (
	standinMagicAddr = 0x502
	standinMagic     = 0x4b4c
)

// standinCode is testdata/standin.asm assembled (without the padding and
// the boot signature, which standinImage adds).
var standinCode = []byte{
	0xfb,       // sti
	0x31, 0xc0, // xor ax, ax
	0x8e, 0xd8, // mov ds, ax
	0xc7, 0x06, 0x00, 0x05, 0x00, 0x00, // mov word [0x500], 0
	0xc7, 0x06, 0x02, 0x05, 0x4c, 0x4b, // mov word [0x502], 0x4b4c
	0xb4, 0x00, // wait_key: mov ah, 0
	0xcd, 0x16, // int 0x16
	0xff, 0x06, 0x00, 0x05, // inc word [0x500]
	0xeb, 0xf6, // jmp wait_key
}

// standinImage is the 512-byte boot sector.
func standinImage() []byte {
	img := make([]byte, 512)
	copy(img, standinCode)
	img[510], img[511] = 0x55, 0xaa
	return img
}

// TestStandinMatchesSource keeps the committed bytes honest: they must be
// what nasm makes of the source.
func TestStandinMatchesSource(t *testing.T) {
	nasm, err := exec.LookPath("nasm")
	if err != nil {
		t.Skip("nasm not found: apt-get install -y nasm")
	}
	out := filepath.Join(t.TempDir(), "standin.img")
	cmd := exec.CommandContext(t.Context(), nasm, "-f", "bin", "-o", out, filepath.Join("testdata", "standin.asm"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nasm: %v: %s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := standinImage(); !bytes.Equal(got, want) {
		t.Fatalf("nasm output differs from standinCode:\n got % x\nwant % x", got[:32], want[:32])
	}
}
