//go:build linux

package radius

import (
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// arrivalStampSpace is the control-message room one datagram's arrival stamp
// takes.
var arrivalStampSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// enableArrivalStamps asks the kernel to stamp each datagram with when it
// arrived (SO_TIMESTAMPNS), so the time a packet waits in the socket's
// buffer, where it waits on a machine short of CPU, counts in its delay
// budget and in Behind. False: no stamps (the read time stands in).
func enableArrivalStamps(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// arrivalStamp is the kernel's arrival time in a datagram's control
// messages; zero when there is none.
func arrivalStamp(oob []byte) time.Time {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.SizeofCmsghdr || n > len(oob) {
			return time.Time{}
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && n-unix.CmsgLen(0) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return time.Unix(ts.Unix())
		}
		step := unix.CmsgSpace(n - unix.CmsgLen(0))
		if step > len(oob) {
			return time.Time{}
		}
		oob = oob[step:]
	}
	return time.Time{}
}
