package guest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestImageIsABootSector(t *testing.T) {
	if len(Image) != ImageSize {
		t.Fatalf("len(Image) = %d, want %d", len(Image), ImageSize)
	}
	if Image[510] != 0x55 || Image[511] != 0xAA {
		t.Errorf("boot signature = %#x %#x, want 0x55 0xaa", Image[510], Image[511])
	}
}

// TestImageMatchesSource rebuilds guest.img from guest.asm and compares
// bytes, so the committed image can never drift from its source.
func TestImageMatchesSource(t *testing.T) {
	nasm, err := exec.LookPath("nasm")
	if err != nil {
		t.Skip("nasm not installed: apt-get install -y nasm")
	}
	out := filepath.Join(t.TempDir(), "guest.img")
	cmd := exec.CommandContext(t.Context(), nasm, "-f", "bin", "-o", out, "guest.asm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nasm: %v\n%s", err, b)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, Image) {
		t.Errorf("guest.img differs from a fresh build of guest.asm (%d vs %d bytes): run `make guest` and commit the image", len(Image), len(built))
	}
}

func TestParseCounter(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint32
		wantErr bool
	}{
		{name: "qemu 7.2 answer", in: "0000000000007e00: 0x00000017\r\n", want: 23},
		{name: "zero", in: "0000000000007e00: 0x00000000\r\n", want: 0},
		{name: "largest", in: "0000000000007e00: 0xffffffff", want: 0xffffffff},
		{name: "wrong address", in: "0000000000007e04: 0x00000017\r\n", wantErr: true},
		{name: "monitor error", in: "Invalid parameter 'addr'\r\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "two lines", in: "0000000000007e00: 0x1\r\n0000000000007e04: 0x2\r\n", wantErr: true},
		{name: "not hex", in: "0000000000007e00: 0xzz", wantErr: true},
		{name: "too wide", in: "0000000000007e00: 0x100000000", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCounter(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseCounter(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseCounter(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseLastKey(t *testing.T) {
	sc, ascii, err := ParseLastKey("0000000000007e04: 0x48e0\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if sc != 0x48 || ascii != 0xE0 {
		t.Errorf("ParseLastKey = scancode %#x ascii %#x, want 0x48 0xe0", sc, ascii)
	}
	if _, _, err := ParseLastKey("0000000000007e00: 0x48e0"); err == nil {
		t.Error("ParseLastKey accepted the counter's address")
	}
}

func TestCommands(t *testing.T) {
	if got, want := CounterCommand(), "xp /1wx 0x7e00"; got != want {
		t.Errorf("CounterCommand() = %q, want %q", got, want)
	}
	if got, want := LastKeyCommand(), "xp /1hx 0x7e04"; got != want {
		t.Errorf("LastKeyCommand() = %q, want %q", got, want)
	}
}

func TestImageFor(t *testing.T) {
	for code, activity := range Activities {
		img, err := ImageFor(activity)
		if err != nil {
			t.Fatalf("ImageFor(%q): %v", activity, err)
		}
		if img[ActivityOffset] != byte(code) {
			t.Errorf("ImageFor(%q)[%d] = %d, want %d", activity, ActivityOffset, img[ActivityOffset], code)
		}
		img[ActivityOffset] = Image[ActivityOffset]
		if !bytes.Equal(img, Image) {
			t.Errorf("ImageFor(%q) changed more than the activity byte", activity)
		}
	}
	if Image[ActivityOffset] != 0 {
		t.Errorf("the committed image's activity byte is %d, want 0 (idle)", Image[ActivityOffset])
	}
	for _, bad := range []string{"", "Video", "busy"} {
		if _, err := ImageFor(bad); err == nil {
			t.Errorf("ImageFor(%q) accepted an unknown activity", bad)
		}
	}
}

func TestKeyRegionIsTheTopRows(t *testing.T) {
	k := KeyRegion
	if k.Left != 0 || k.Top != 0 || k.Right != ScreenWidth || k.Bottom != KeyRows*16 || k.Bottom >= ScreenHeight {
		t.Errorf("KeyRegion = %+v, want the top %d text rows (16 px each) across %d px", k, KeyRows, ScreenWidth)
	}
}

func TestKeyRegionFor(t *testing.T) {
	if got := KeyRegionFor(ActivityIdle); got != (Box{Right: ScreenWidth, Bottom: ScreenHeight}) {
		t.Errorf("KeyRegionFor(idle) = %+v, want the whole screen (the idle guest repaints it all)", got)
	}
	for _, a := range Activities[1:] {
		if got := KeyRegionFor(a); got != KeyRegion {
			t.Errorf("KeyRegionFor(%s) = %+v, want KeyRegion", a, got)
		}
	}
}
