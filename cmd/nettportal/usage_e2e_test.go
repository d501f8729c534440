package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/nettportal/nettportal/radius/radiustest"
)

// sendAcct sends one Accounting-Request from conn and waits for its answer.
func sendAcct(t *testing.T, conn *net.UDPConn, secret string, req radiustest.Request) {
	t.Helper()
	raw := req.Encode(t, secret)
	buf := make([]byte, 4096)
	for attempt := 0; attempt < 3; attempt++ {
		conn.Write(raw)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err == nil && rad.IsAuthenticResponse(buf[:n], raw, []byte(secret)) {
			return
		}
	}
	t.Fatal("no Accounting-Response")
}

func TestUsageThroughTheAPI(t *testing.T) {
	dbURL := migratedDBWithRouter(t, "core-1", "127.0.0.1", "s3cret")
	// Fixed dates in the past: believed only with a wider clock window.
	srv := startServe(t, dbURL, "--usage-timezone", "UTC", "--clock-skew-past", "87600h")
	api := tokenAPI(t, dbURL, srv, "billing", "viewer")
	conn := udpFrom(t, "127.0.0.1", srv.AcctAddr) // the router's address
	packet := func(status rfc2866.AcctStatusType, ts string, in, out uint32) radiustest.Request {
		at, _ := time.Parse(time.DateTime, ts)
		r := radiustest.Request{Status: status, User: "carol", SessionID: "81000042", Event: at}
		if status != rfc2866.AcctStatusType_Value_Start {
			// Octets without a session time; downloads above 4 GiB.
			r.Set = func(p *rad.Packet) {
				rfc2866.AcctInputOctets_Set(p, rfc2866.AcctInputOctets(in))
				rfc2866.AcctOutputOctets_Set(p, rfc2866.AcctOutputOctets(out))
				rfc2869.AcctOutputGigawords_Set(p, 1)
			}
		}
		return r
	}
	sendAcct(t, conn, "s3cret", packet(rfc2866.AcctStatusType_Value_Start, "2026-11-24 22:00:00", 0, 0))
	sendAcct(t, conn, "s3cret", packet(rfc2866.AcctStatusType_Value_InterimUpdate, "2026-11-24 23:59:00", 100, 200))
	// The Stop from the next day arrives before the interim of 00:10 (reordered).
	sendAcct(t, conn, "s3cret", packet(rfc2866.AcctStatusType_Value_Stop, "2026-11-25 01:00:00", 500, 900))
	sendAcct(t, conn, "s3cret", packet(rfc2866.AcctStatusType_Value_InterimUpdate, "2026-11-25 00:10:00", 300, 400))

	var got struct {
		Usage []struct {
			Username     string `json:"username"`
			Day          string `json:"day"`
			InputOctets  int64  `json:"input_octets"`
			OutputOctets int64  `json:"output_octets"`
		} `json:"usage"`
	}
	api.mustGet("/api/usage?from=2026-11-24&to=2026-11-25", &got)
	const g = int64(1) << 32
	want := map[string][2]int64{"2026-11-24": {100, g + 200}, "2026-11-25": {400, 700}}
	if len(got.Usage) != 2 {
		t.Fatalf("usage %+v", got.Usage)
	}
	for _, u := range got.Usage {
		if w := want[u.Day]; u.Username != "carol" || u.InputOctets != w[0] || u.OutputOctets != w[1] {
			t.Errorf("%+v, want %v", u, w)
		}
	}
	var month struct {
		Usage []struct {
			Day          string `json:"day"`
			OutputOctets int64  `json:"output_octets"`
		} `json:"usage"`
	}
	api.do("GET", "/api/usage?from=2026-11-01&to=2026-11-30&period=month", nil, &month)
	if len(month.Usage) != 1 || month.Usage[0].OutputOctets != g+900 || month.Usage[0].Day != "2026-11-01" {
		t.Errorf("month %+v", month.Usage)
	}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.HTTPURL+"/api/usage.csv?from=2026-11-24&to=2026-11-25", nil)
	req.Header.Set("Authorization", "Bearer "+api.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "carol,2026-11-25,700,400") {
		t.Errorf("CSV:\n%s", body)
	}
	var bad map[string]string
	if code := api.do("GET", "/api/usage?from=yesterday", nil, &bad); code != 400 || !strings.Contains(bad["error"], "from must be a date") {
		t.Errorf("bad date: %d %v", code, bad)
	}
}
