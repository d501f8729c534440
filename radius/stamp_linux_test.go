//go:build linux

package radius

import (
	"net"
	"testing"
	"time"
)

// The kernel stamps a datagram's arrival on a socket with stamps on, and
// arrivalStamp reads it back from the control messages a read returns.
func TestArrivalStampFromTheKernel(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !enableArrivalStamps(c) {
		t.Fatal("SO_TIMESTAMPNS refused")
	}
	sender, err := net.DialUDP("udp", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	before := time.Now()
	if _, err := sender.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, arrivalStampSpace)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, oobn, _, _, err := c.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	at := arrivalStamp(oob[:oobn])
	// The kernel's clock is the wall clock; allow for its coarser reads.
	if at.Before(before.Add(-time.Millisecond)) || at.After(after.Add(time.Millisecond)) {
		t.Errorf("arrival stamp %v, want between %v and %v", at, before, after)
	}
	if w := socketWait(oob[:oobn]); w < 0 || w > time.Since(before) {
		t.Errorf("socket wait %v, want 0..%v", w, time.Since(before))
	}
	if got := arrivalStamp(nil); !got.IsZero() {
		t.Errorf("no control messages: %v, want zero", got)
	}
	if got := arrivalStamp([]byte{1, 2, 3}); !got.IsZero() {
		t.Errorf("truncated control messages: %v, want zero", got)
	}
}
