package link

import (
	"fmt"
	"syscall"
)

// shapeSocket sets, on a socket before it connects or listens, the
// receive buffer and the TCP maximum segment size the link's sockets
// use (see Config.ReadBuffer and Config.MSS). The MSS is what the peer
// learns in the handshake: over loopback it is 64 KiB, and Linux sizes a
// sender's send buffer by segments, so a peer on loopback grows a send
// buffer of megabytes that a real path's MSS would never give it.
func shapeSocket(fd uintptr, readBuffer, mss int) error {
	if readBuffer > 0 {
		if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, readBuffer); err != nil {
			return fmt.Errorf("set SO_RCVBUF %d: %w", readBuffer, err)
		}
	}
	if mss > 0 {
		if err := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss); err != nil {
			return fmt.Errorf("set TCP_MAXSEG %d: %w", mss, err)
		}
	}
	return nil
}
