package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal/radius/radiustest"
)

// acctPacket is one encoded Accounting-Request as a MikroTik sends it.
type acctPacket struct {
	User, SessionID string
	Status          rfc2866.AcctStatusType
	SessionTime     uint32
	In, Out         uint32
	NASIP           net.IP
	// Event, when set, is sent as Event-Timestamp.
	Event time.Time
}

func (a acctPacket) encode(t testing.TB, secret string) []byte {
	t.Helper()
	r := radiustest.Request{Status: a.Status, User: a.User, SessionID: a.SessionID, NASIP: a.NASIP, NASIdentifier: "sim",
		NASPortID: "<pppoe-" + a.User + ">", FramedIP: net.IPv4(100, 64, 0, 1), Event: a.Event}
	if a.Status != rfc2866.AcctStatusType_Value_Start {
		r.Counters = &radiustest.Counters{SessionTime: a.SessionTime, In: a.In, Out: a.Out}
	}
	return r.Encode(t, secret)
}

// udpFrom opens a UDP socket bound to the loopback address src (a router's
// address) and connected to the server.
func udpFrom(t testing.TB, src, server string) *net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, raddr)
	if err != nil {
		t.Fatalf("bind %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends raw on c and reports whether an authentic
// Accounting-Response came back within wait.
func exchange(t testing.TB, c *net.UDPConn, raw []byte, secret string, wait time.Duration) bool {
	t.Helper()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(wait)
	for {
		c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return false
		}
		// A late answer to an earlier request has another identifier.
		if rad.IsAuthenticResponse(buf[:n], raw, []byte(secret)) {
			return true
		}
	}
}

// scrape reads /metrics into a map keyed by the series as exposed, e.g.
// `nettportal_radius_packets_total{outcome="ok",type="start"}`.
func scrape(t testing.TB, baseURL string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsCountKnownTraffic sends known traffic from real UDP sockets
// to a real serve and checks /metrics counts it exactly.
func TestMetricsCountKnownTraffic(t *testing.T) {
	const secret = "m3trics"
	dbURL := migratedDBWithRouter(t, "core-1", "127.0.0.21", secret)
	addRouter(t, dbURL, "edge-idle", "127.0.0.22", secret)
	srv := startServe(t, dbURL)

	router := udpFrom(t, "127.0.0.21", srv.AcctAddr)
	nas := net.ParseIP("127.0.0.21")
	pkt := func(user, sid string, st rfc2866.AcctStatusType, secs uint32) acctPacket {
		return acctPacket{User: user, SessionID: sid, Status: st, SessionTime: secs, In: secs * 1000, Out: secs * 2000, NASIP: nas}
	}

	// Dropped ones first, so they are read before the answered ones.
	if exchange(t, router, pkt("mallory", "8f000001", rfc2866.AcctStatusType_Value_Start, 0).encode(t, "wrong-secret"), secret, 300*time.Millisecond) {
		t.Error("a packet with the wrong secret was answered")
	}
	stranger := udpFrom(t, "127.0.0.99", srv.AcctAddr)
	if exchange(t, stranger, acctPacket{User: "eve", SessionID: "8f000002", Status: rfc2866.AcctStatusType_Value_Start, NASIP: net.ParseIP("127.0.0.99")}.encode(t, secret), secret, 300*time.Millisecond) {
		t.Error("a packet from an unknown address was answered")
	}

	var starts [][]byte
	for i := range 5 {
		raw := pkt("user"+strconv.Itoa(i), "8100000"+strconv.Itoa(i), rfc2866.AcctStatusType_Value_Start, 0).encode(t, secret)
		if !exchange(t, router, raw, secret, 3*time.Second) {
			t.Fatalf("Start %d not answered\n%s", i, srv.Log.String())
		}
		starts = append(starts, raw)
	}
	// Two retransmissions of answered Starts: answered from the cache.
	for _, raw := range starts[:2] {
		if !exchange(t, router, raw, secret, 3*time.Second) {
			t.Fatal("a retransmission was not answered")
		}
	}
	// One interim and one stop, so every open-session count is known.
	if !exchange(t, router, pkt("user3", "81000003", rfc2866.AcctStatusType_Value_InterimUpdate, 300).encode(t, secret), secret, 3*time.Second) {
		t.Fatal("Interim not answered")
	}
	if !exchange(t, router, pkt("user4", "81000004", rfc2866.AcctStatusType_Value_Stop, 600).encode(t, secret), secret, 3*time.Second) {
		t.Fatal("Stop not answered")
	}

	const received = 5 + 2 + 1 + 1 + 1 + 1
	// The unanswered packets have no answer to wait for: their count is
	// read from /metrics until it is in.
	var m map[string]float64
	eventually(t, 5*time.Second, 50*time.Millisecond, "every packet received counted", func() (string, bool) {
		m = scrape(t, srv.HTTPURL)
		return fmt.Sprintf("received_total %v", m["nettportal_radius_received_total"]), m["nettportal_radius_received_total"] >= received
	})
	want := map[string]float64{
		"nettportal_radius_received_total":                                            received,
		`nettportal_radius_packets_total{outcome="ok",type="start"}`:                  5,
		`nettportal_radius_packets_total{outcome="ok",type="interim"}`:                1,
		`nettportal_radius_packets_total{outcome="ok",type="stop"}`:                   1,
		`nettportal_radius_packets_total{outcome="ok",type="on_off"}`:                 0,
		`nettportal_radius_packets_total{outcome="duplicate",type="unknown"}`:         2,
		`nettportal_radius_packets_total{outcome="bad_authenticator",type="unknown"}`: 1,
		`nettportal_radius_packets_total{outcome="unknown_router",type="unknown"}`:    1,
		`nettportal_radius_packets_total{outcome="malformed",type="unknown"}`:         0,
		`nettportal_radius_packets_total{outcome="queue_full",type="unknown"}`:        0,
		`nettportal_radius_packets_total{outcome="given_up",type="unknown"}`:          0,
		"nettportal_radius_batch_records_sum":                                         7, // every answered, non-duplicate record once
		"nettportal_radius_commit_errors_total":                                       0,
		"nettportal_radius_queue_records":                                             0,
		`nettportal_open_sessions{router="core-1"}`:                                   4,
		`nettportal_open_sessions{router="edge-idle"}`:                                0,
		"nettportal_spool_records":                                                    0,
		"nettportal_radius_spooled_records_total":                                     0,
		"nettportal_websocket_clients":                                                0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s missing from /metrics", k)
			continue
		}
		if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	// One histogram observation per committed batch.
	if b, c := m["nettportal_radius_batches_total"], m[`nettportal_radius_commit_seconds_count{result="ok"}`]; b < 1 || b != c || m["nettportal_radius_batch_records_count"] != b {
		t.Errorf("batches %v, commit latency observations %v, batch size observations %v: want equal and > 0",
			b, c, m["nettportal_radius_batch_records_count"])
	}
	if t.Failed() {
		t.Logf("server log:\n%s", srv.Log.String())
	}
}
