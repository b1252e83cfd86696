package guest

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestDiskRaw(t *testing.T) {
	img, err := Disk(Image, FormatRaw)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) != DiskSize {
		t.Fatalf("raw disk is %d bytes, want %d", len(img), DiskSize)
	}
	if !bytes.Equal(img[:ImageSize], Image) {
		t.Error("sector 0 is not the boot sector")
	}
	if bytes.ContainsFunc(img[ImageSize:], func(r rune) bool { return r != 0 }) {
		t.Error("the raw disk holds more than the boot sector")
	}
}

// TestDiskQCOW2Layout reads the image back the way QEMU does (header,
// L1, L2, refcounts) and finds the boot sector at guest offset 0.
// qemu-img checks the same image in TestDiskQCOW2QemuImg.
func TestDiskQCOW2Layout(t *testing.T) {
	img, err := Disk(Image, FormatQCOW2)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	if string(img[:4]) != "QFI\xfb" || be.Uint32(img[4:]) != 2 {
		t.Fatalf("header magic/version = %q/%d, want QFI\\xfb/2", img[:4], be.Uint32(img[4:]))
	}
	cluster := uint64(1) << be.Uint32(img[20:])
	if size := be.Uint64(img[24:]); size != DiskSize {
		t.Errorf("virtual size %d, want %d", size, DiskSize)
	}
	if len(img)%int(cluster) != 0 {
		t.Errorf("file is %d bytes, not a whole number of %d-byte clusters", len(img), cluster)
	}
	l1 := be.Uint64(img[40:])
	l2 := be.Uint64(img[l1:]) &^ qcowCopied
	data := be.Uint64(img[l2:]) &^ qcowCopied
	if data == 0 || data%cluster != 0 || data+cluster > uint64(len(img)) {
		t.Fatalf("guest cluster 0 maps to %#x, not a cluster of the file", data)
	}
	if !bytes.Equal(img[data:data+ImageSize], Image) {
		t.Error("guest sector 0 is not the boot sector")
	}
	// Every cluster of the file is referenced exactly once.
	rt := be.Uint64(img[48:])
	rb := be.Uint64(img[rt:])
	for i := range uint64(len(img)) / cluster {
		if n := be.Uint16(img[rb+2*i:]); n != 1 {
			t.Errorf("refcount of cluster %d = %d, want 1", i, n)
		}
	}
}

func TestDiskRefuses(t *testing.T) {
	bad := bytes.Clone(Image)
	bad[511] = 0
	for _, tc := range []struct {
		name, format, want string
		boot               []byte
	}{
		{"unknown format", "vmdk", `format "vmdk"`, Image},
		{"no boot signature", FormatRaw, "ending 0x55 0xaa", bad},
		{"short", FormatQCOW2, "512 bytes", Image[:511]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Disk(tc.boot, tc.format)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Disk = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
