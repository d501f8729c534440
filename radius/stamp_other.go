//go:build !linux

package radius

import (
	"net"
	"time"
)

// arrivalStampSpace: no arrival stamps off Linux.
var arrivalStampSpace = 0

// enableArrivalStamps: off Linux the read time stands in for the arrival.
func enableArrivalStamps(*net.UDPConn) bool { return false }

func arrivalStamp([]byte) time.Time { return time.Time{} }
