package qemu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseXP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		addr    uint64
		size    int
		want    uint64
		wantErr string
	}{
		// Outputs as QEMU 7.2 prints them.
		{name: "byte", out: "0000000000000500: 0x03\r\n", addr: 0x500, size: 1, want: 3},
		{name: "half word", out: "0000000000000500: 0x0103\r\n", addr: 0x500, size: 2, want: 0x103},
		{name: "word", out: "0000000000000500: 0x00010003\r\n", addr: 0x500, size: 4, want: 0x10003},
		{name: "giant", out: "0000000000007e00: 0xffffffffffffffff\r\n", addr: 0x7e00, size: 8, want: 1<<64 - 1},
		{name: "no line ending", out: "0000000000000500: 0xbeef", addr: 0x500, size: 2, want: 0xbeef},
		{name: "unreadable", out: "00000ffffffffff0: Cannot access memory\r\n", addr: 0xffffffffff0, size: 2, wantErr: "Cannot access memory"},
		{name: "unknown command", out: "unknown command: 'xp'\r\n", addr: 0x500, size: 2, wantErr: "unexpected xp output"},
		{name: "empty", out: "", addr: 0x500, size: 2, wantErr: "printed nothing"},
		{name: "other address", out: "0000000000000502: 0x0003\r\n", addr: 0x500, size: 2, wantErr: "address 0x502, asked 0x500"},
		{name: "wrong width", out: "0000000000000500: 0x03\r\n", addr: 0x500, size: 2, wantErr: "2-byte value"},
		{name: "several lines", out: "0000000000000500: 0x0003\r\n0000000000000502: 0x0000\r\n", addr: 0x500, size: 2, wantErr: "several lines"},
		{name: "not hex", out: "0000000000000500: 0xzzzz\r\n", addr: 0x500, size: 2, wantErr: "2-byte value"},
		{name: "decimal", out: "0000000000000500: 3\r\n", addr: 0x500, size: 1, wantErr: "1-byte value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseXP(tc.out, tc.addr, tc.size)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Zero(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseXP(f *testing.F) {
	f.Add("0000000000000500: 0x0003\r\n", uint64(0x500), 2)
	f.Add("00000ffffffffff0: Cannot access memory\r\n", uint64(0xffffffffff0), 8)
	f.Fuzz(func(t *testing.T, out string, addr uint64, size int) {
		v, err := parseXP(out, addr, size)
		if err == nil && size < 8 && v >= 1<<(8*size) {
			t.Fatalf("value 0x%x does not fit in %d bytes", v, size)
		}
	})
}
