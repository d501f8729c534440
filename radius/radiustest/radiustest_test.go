package radiustest_test

import (
	"net"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/nettportal/nettportal/radius/radiustest"
)

// The encoded request is a valid, authentic Accounting-Request carrying
// what was asked for and nothing that was not.
func TestEncodeCarriesTheFields(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r := radiustest.MikroTik(rfc2866.AcctStatusType_Value_InterimUpdate, "alice", "8100000c", net.IPv4(127, 0, 0, 11), "core-1")
	r.Counters = &radiustest.Counters{SessionTime: 60, In: 1000, Out: 2000}
	r.Event = at
	r.Set = func(p *radius.Packet) { rfc2865.CalledStationID_Del(p) }
	raw := r.Encode(t, "s3cret")
	if !radius.IsAuthenticRequest(raw, []byte("s3cret")) {
		t.Fatal("not authentic with its secret")
	}
	p, err := radius.Parse(raw, []byte("s3cret"))
	if err != nil || p.Code != radius.CodeAccountingRequest {
		t.Fatalf("parse: %v %v", p, err)
	}
	if rfc2866.AcctStatusType_Get(p) != rfc2866.AcctStatusType_Value_InterimUpdate || rfc2865.UserName_GetString(p) != "alice" ||
		rfc2866.AcctSessionID_GetString(p) != "8100000c" || !rfc2865.NASIPAddress_Get(p).Equal(net.IPv4(127, 0, 0, 11)) ||
		rfc2865.NASIdentifier_GetString(p) != "core-1" || rfc2865.NASPort_Get(p) != 0x8100000c || rfc2869.NASPortID_GetString(p) != "vlan100" ||
		rfc2865.ServiceType_Get(p) != rfc2865.ServiceType_Value_FramedUser || rfc2865.FramedProtocol_Get(p) != rfc2865.FramedProtocol_Value_PPP {
		t.Errorf("MikroTik fields: %+v", p.Attributes)
	}
	if rfc2866.AcctSessionTime_Get(p) != 60 || rfc2866.AcctInputOctets_Get(p) != 1000 || rfc2866.AcctOutputOctets_Get(p) != 2000 {
		t.Errorf("counters: %+v", p.Attributes)
	}
	if !rfc2869.EventTimestamp_Get(p).Equal(at) {
		t.Errorf("Event-Timestamp %v", rfc2869.EventTimestamp_Get(p))
	}
	if _, err := rfc2865.CalledStationID_Lookup(p); err == nil {
		t.Error("Set ran before the fields: Called-Station-Id is still there")
	}

	bare := radiustest.Start("bob", "81000001").Packet("s")
	if _, err := rfc2866.AcctSessionTime_Lookup(bare); err == nil {
		t.Error("a Start without Counters carries Acct-Session-Time")
	}
	if _, err := rfc2865.NASIPAddress_Lookup(bare); err == nil {
		t.Error("a Request without NASIP carries NAS-IP-Address")
	}
}
