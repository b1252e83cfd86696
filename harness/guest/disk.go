package guest

import (
	"encoding/binary"
	"fmt"
)

// Disk image formats that Glance takes and Disk writes.
const (
	// FormatRaw is a plain disk: the boot sector in sector 0, zeros after.
	FormatRaw = "raw"
	// FormatQCOW2 is QEMU's copy-on-write format (version 2), written here
	// from its specification (QEMU's docs/interop/qcow2.txt), so no
	// qemu-img is needed where images are made.
	FormatQCOW2 = "qcow2"
)

// Formats lists the formats Disk writes.
var Formats = []string{FormatRaw, FormatQCOW2}

// DiskSize is the virtual size of a disk written by Disk: 1 MiB, the
// boot sector and nothing else (the guest reads no other sector). SeaBIOS
// boots it as the first hard disk (MBR), as a cloud's hypervisor does.
const DiskSize = 1 << 20

// The qcow2 layout Disk writes: 64 KiB clusters, one cluster each for the
// header, the L1 table, the refcount table, one refcount block, one L2
// table and the data cluster that holds sector 0. Every other cluster of
// the disk is unallocated, which reads as zeros.
const (
	qcowClusterBits = 16
	qcowCluster     = 1 << qcowClusterBits
	qcowHeaderV2    = 72
	qcowL1          = 1 * qcowCluster
	qcowRefTable    = 2 * qcowCluster
	qcowRefBlock    = 3 * qcowCluster
	qcowL2          = 4 * qcowCluster
	qcowData        = 5 * qcowCluster
	qcowClusters    = 6
	// qcowCopied marks an L1 or L2 entry whose cluster has refcount 1
	// (it may be written in place).
	qcowCopied = uint64(1) << 63
)

// Disk returns a disk image of format (FormatRaw or FormatQCOW2) whose
// first sector is boot, a BIOS boot sector such as Image: a cloud boots
// it from Glance as the server's root disk. The image is DiskSize bytes
// of virtual disk; the qcow2 file is 384 KiB, the raw one 1 MiB.
func Disk(boot []byte, format string) ([]byte, error) {
	if len(boot) != ImageSize || boot[510] != 0x55 || boot[511] != 0xAA {
		return nil, fmt.Errorf("guest disk: the boot sector must be %d bytes ending 0x55 0xaa (got %d bytes)", ImageSize, len(boot))
	}
	switch format {
	case FormatRaw:
		img := make([]byte, DiskSize)
		copy(img, boot)
		return img, nil
	case FormatQCOW2:
		return qcow2(boot), nil
	default:
		return nil, fmt.Errorf("guest disk: format %q: want one of %v", format, Formats)
	}
}

// qcow2 writes a version 2 qcow2 image of DiskSize bytes whose first
// cluster of guest data is boot followed by zeros.
func qcow2(boot []byte) []byte {
	img := make([]byte, qcowClusters*qcowCluster)
	be := binary.BigEndian
	h := img[:qcowHeaderV2]
	copy(h[0:], "QFI\xfb")
	be.PutUint32(h[4:], 2)                // version
	be.PutUint64(h[8:], 0)                // backing_file_offset: none
	be.PutUint32(h[16:], 0)               // backing_file_size
	be.PutUint32(h[20:], qcowClusterBits) // cluster_bits
	be.PutUint64(h[24:], DiskSize)        // size (virtual)
	be.PutUint32(h[32:], 0)               // crypt_method: none
	be.PutUint32(h[36:], 1)               // l1_size: one L2 table maps 512 MiB
	be.PutUint64(h[40:], qcowL1)          // l1_table_offset
	be.PutUint64(h[48:], qcowRefTable)    // refcount_table_offset
	be.PutUint32(h[56:], 1)               // refcount_table_clusters
	be.PutUint32(h[60:], 0)               // nb_snapshots
	be.PutUint64(h[64:], 0)               // snapshots_offset

	be.PutUint64(img[qcowL1:], qcowL2|qcowCopied)   // L1[0] -> the L2 table
	be.PutUint64(img[qcowL2:], qcowData|qcowCopied) // L2[0] -> guest cluster 0
	be.PutUint64(img[qcowRefTable:], qcowRefBlock)  // refcount table[0] -> the block
	for i := range qcowClusters {                   // every cluster of the file
		be.PutUint16(img[qcowRefBlock+2*i:], 1) // is used once (16-bit refcounts)
	}
	copy(img[qcowData:], boot)
	return img
}
