package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

// virtualInterim spaces a load session's events in Event-Timestamp, so the
// rows look like five-minute interims although the run takes seconds.
const virtualInterim = 300 * time.Second

// Offsets of the patched fields inside the templates.
type loadTemplate struct {
	common                       []byte // per router
	user, sid, port, mac, framed int
	tails                        [3][]byte // Start, Interim, Stop
	tailOff                      [3][256]int
}

// valueOffsets maps attribute types to their value offsets in attrs
// (0 when absent; offsets are shifted by one so 0 stays free).
func valueOffsets(attrs []byte) [256]int {
	var off [256]int
	for i := 0; i+2 <= len(attrs); i += int(attrs[i+1]) {
		off[attrs[i]] = i + 2 + 1
		if attrs[i+1] < 2 {
			break
		}
	}
	return off
}

func attrsOf(p *rad.Packet) ([]byte, error) {
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return b[20:], nil
}

// newLoadTemplates builds, through layeh, one attribute block per router
// with placeholders of the final widths, and the status tails; packets are
// then these bytes with a few fields overwritten.
func newLoadTemplates(c LoadConfig, tag string) ([]loadTemplate, error) {
	var tails [3][]byte
	var tailOff [3][256]int
	for i, st := range []rfc2866.AcctStatusType{rfc2866.AcctStatusType_Value_Start, rfc2866.AcctStatusType_Value_InterimUpdate, rfc2866.AcctStatusType_Value_Stop} {
		p := &rad.Packet{Code: rad.CodeAccountingRequest}
		var errs []error
		add := func(err error) { errs = append(errs, err) }
		add(rfc2866.AcctStatusType_Add(p, st))
		add(rfc2869.EventTimestamp_Add(p, time.Unix(1, 0)))
		if i > 0 {
			add(rfc2866.AcctSessionTime_Add(p, 0))
			add(rfc2866.AcctInputOctets_Add(p, 0))
			add(rfc2869.AcctInputGigawords_Add(p, 0))
			add(rfc2866.AcctOutputOctets_Add(p, 0))
			add(rfc2869.AcctOutputGigawords_Add(p, 0))
			add(rfc2866.AcctInputPackets_Add(p, 0))
			add(rfc2866.AcctOutputPackets_Add(p, 0))
		}
		if i == 2 {
			add(rfc2866.AcctTerminateCause_Add(p, rfc2866.AcctTerminateCause_Value_UserRequest))
		}
		add(rfc2866.AcctDelayTime_Add(p, 0))
		b, err := attrsOf(p)
		if err = errors.Join(append(errs, err)...); err != nil {
			return nil, fmt.Errorf("load: build template: %w", err)
		}
		tails[i], tailOff[i] = b, valueOffsets(b)
	}
	out := make([]loadTemplate, c.Routers)
	for r := range out {
		addr := addrAdd(c.BaseIP, r)
		p := &rad.Packet{Code: rad.CodeAccountingRequest}
		var errs []error
		add := func(err error) { errs = append(errs, err) }
		add(rfc2865.ServiceType_Add(p, rfc2865.ServiceType_Value_FramedUser))
		add(rfc2865.FramedProtocol_Add(p, rfc2865.FramedProtocol_Value_PPP))
		add(rfc2865.NASPort_Add(p, 0))
		add(rfc2865.NASPortType_Add(p, rfc2865.NASPortType_Value_Ethernet))
		add(rfc2865.UserName_AddString(p, loadUsername(tag, r, 0)))
		add(rfc2865.CallingStationID_AddString(p, loadMAC(r, 0)))
		add(rfc2865.CalledStationID_AddString(p, "pppoe-load"))
		add(rfc2869.NASPortID_AddString(p, "vlan100"))
		add(rfc2866.AcctSessionID_AddString(p, "00000000"))
		add(rfc2865.FramedIPAddress_Add(p, subscriberIP(addr, 0).AsSlice()))
		add(rfc2866.AcctAuthentic_Add(p, rfc2866.AcctAuthentic_Value_RADIUS))
		add(rfc2865.NASIdentifier_AddString(p, loadRouterName(r)))
		add(rfc2865.NASIPAddress_Add(p, addr.AsSlice()))
		b, err := attrsOf(p)
		if err = errors.Join(append(errs, err)...); err != nil {
			return nil, fmt.Errorf("load: build template: %w", err)
		}
		off := valueOffsets(b)
		out[r] = loadTemplate{
			common: b, user: off[rfc2865.UserName_Type] - 1, sid: off[rfc2866.AcctSessionID_Type] - 1,
			port: off[rfc2865.NASPort_Type] - 1, mac: off[rfc2865.CallingStationID_Type] - 1,
			framed: off[rfc2865.FramedIPAddress_Type] - 1, tails: tails, tailOff: tailOff,
		}
	}
	return out, nil
}

// loadUsername is fixed-width for a run, so templates can be patched.
func loadUsername(tag string, router, s int) string {
	return fmt.Sprintf("ld%s-%03d-%07d", tag, router+1, s+1)
}

func loadMAC(router, s int) string {
	return fmt.Sprintf("02:%02X:%02X:%02X:%02X:%02X", byte(router>>8), byte(router), byte(s>>16), byte(s>>8), byte(s))
}

// putDecimal writes v into b right-aligned with leading zeros.
func putDecimal(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

func putHex(b []byte, v uint64, upper bool) {
	digits := "0123456789abcdef"
	if upper {
		digits = "0123456789ABCDEF"
	}
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
}

// sessionRates are a session's upload and download bytes per virtual
// second: fixed per session (a hash of tag and index), so counters keep
// growing across steady runs.
func sessionRates(tag string, sess int) (up, down float64) {
	h := uint64(sess)*0x9E3779B97F4A7C15 ^ uint64(tag[0])<<8 ^ uint64(tag[1])<<16 ^ uint64(tag[2])<<24 ^ uint64(tag[3])<<32
	h ^= h >> 29
	up = 2_000 + float64(h%60_000)
	down = up * (3 + float64((h>>20)%8))
	return up, down
}

// buildLoadPacket writes one accounting request from the router's
// template into b and returns its length: kind 0 Start, 1 Interim, 2
// Stop; step counts virtual interim intervals since the Start.
func buildLoadPacket(b []byte, t *loadTemplate, h hash.Hash, secret []byte, id byte, baseIP netip.Addr, router, sess int,
	sid uint32, kind, step, attempts int, event time.Time, up, down float64) int {
	n := 20 + copy(b[20:], t.common)
	putDecimal(b[20+t.user+11:20+t.user+18], sess+1)
	putHex(b[20+t.sid:20+t.sid+8], uint64(sid), false)
	binary.BigEndian.PutUint32(b[20+t.port:], sid)
	putHex(b[20+t.mac+9:20+t.mac+11], uint64(byte(sess>>16)), true)
	putHex(b[20+t.mac+12:20+t.mac+14], uint64(byte(sess>>8)), true)
	putHex(b[20+t.mac+15:20+t.mac+17], uint64(byte(sess)), true)
	ip := subscriberIP(addrAdd(baseIP, router), sess).As4()
	copy(b[20+t.framed:], ip[:])
	tailAt := n
	n += copy(b[n:], t.tails[kind])
	off := func(typ byte) []byte { return b[tailAt+t.tailOff[kind][typ]-1:] }
	elapsed := time.Duration(step) * virtualInterim
	binary.BigEndian.PutUint32(off(byte(rfc2869.EventTimestamp_Type)), uint32(event.Unix()))
	binary.BigEndian.PutUint32(off(byte(rfc2866.AcctDelayTime_Type)), uint32(max(attempts-1, 0)))
	if kind > 0 {
		secs := elapsed.Seconds()
		in, out := uint64(up*secs), uint64(down*secs)
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctSessionTime_Type)), uint32(elapsed/time.Second))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctInputOctets_Type)), uint32(in))
		binary.BigEndian.PutUint32(off(byte(rfc2869.AcctInputGigawords_Type)), uint32(in>>32))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctOutputOctets_Type)), uint32(out))
		binary.BigEndian.PutUint32(off(byte(rfc2869.AcctOutputGigawords_Type)), uint32(out>>32))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctInputPackets_Type)), packetsOf(in, avgUpPacket))
		binary.BigEndian.PutUint32(off(byte(rfc2866.AcctOutputPackets_Type)), packetsOf(out, avgDownPacket))
	}
	b[0] = byte(rad.CodeAccountingRequest)
	b[1] = id
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	clear(b[4:20])
	// RFC 2866 3: MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret).
	h.Reset()
	h.Write(b[:n])
	h.Write(secret)
	h.Sum(b[4:4:20])
	return n
}
