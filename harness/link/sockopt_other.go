//go:build !linux

package link

// shapeSocket does nothing here: the socket options are Linux's.
func shapeSocket(fd uintptr, readBuffer, mss int) error { return nil }
