// Command latency-guest-image writes the loadtest's boot-sector guest as
// a disk image a cloud boots from Glance: the guest in sector 0 of a
// 1 MiB hard disk (MBR, booted by SeaBIOS), raw or qcow2
// (harness/guest.Disk; the qcow2 is written by our own code, no
// qemu-img). The dev cloud (deploy/devcloud) seeds Glance with it.
//
// Usage:
//
//	latency-guest-image [-format raw|qcow2] -o FILE
//
// The file is written whole or not at all (a temporary file renamed into
// place), mode 0644. Exit status: 0 written, 1 it could not be written,
// 2 a bad flag.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/shakenfist/kerbside-latency/harness/guest"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitBadUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("latency-guest-image", flag.ContinueOnError)
	fl.SetOutput(stderr)
	format := fl.String("format", guest.FormatQCOW2, fmt.Sprintf("disk format, one of %v", guest.Formats))
	out := fl.String("o", "", "the image file to write (required)")
	if err := fl.Parse(args); err != nil {
		return exitBadUsage
	}
	if *out == "" || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: latency-guest-image [-format raw|qcow2] -o FILE")
		return exitBadUsage
	}
	img, err := guest.Disk(guest.Image, *format)
	if err != nil {
		fmt.Fprintln(stderr, "latency-guest-image:", err)
		return exitBadUsage
	}
	if err := writeFile(*out, img); err != nil {
		fmt.Fprintln(stderr, "latency-guest-image:", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d bytes (virtual disk %d bytes)\n", *out, *format, len(img), guest.DiskSize)
	return exitOK
}

// writeFile writes data to path through a temporary file in the same
// directory, so a reader never sees half an image.
func writeFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
