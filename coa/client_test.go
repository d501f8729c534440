package coa_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"
	"layeh.com/radius/vendors/mikrotik"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/coa"
	"github.com/nettportal/nettportal/coa/coatest"
)

const secret = "s3cret"

// bob is the session most tests disconnect.
func bobSession() coa.Session {
	return coa.Session{
		Username:      "bob",
		AcctSessionID: "8100000c",
		FramedIP:      netip.MustParseAddr("10.0.0.7"),
	}
}

// fast keeps timeout tests short; loopback answers in microseconds.
func fast() *coa.Client { return &coa.Client{Timeout: 150 * time.Millisecond, Retries: 2} }

func startServer(t *testing.T, h coatest.Handler, opts ...coatest.Option) *coatest.Server {
	t.Helper()
	srv, err := coatest.NewServer(secret, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// fastDisconnect sends bob's Disconnect-Request to to with the fast
// client; an error is fatal.
func fastDisconnect(t *testing.T, to coa.Target) coa.Response {
	t.Helper()
	resp, err := fast().Disconnect(t.Context(), to, bobSession())
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// wantFirstNAK fails t unless resp is a NAK with Error-Cause cause to the
// first attempt, and its Detail contains detail.
func wantFirstNAK(t *testing.T, resp coa.Response, cause uint32, detail string) {
	t.Helper()
	if resp.Result != coa.ResultNAK || resp.ErrorCause != cause || resp.Attempts != 1 {
		t.Fatalf("response %+v", resp)
	}
	if !strings.Contains(resp.Detail, detail) {
		t.Errorf("detail %q", resp.Detail)
	}
}

func target(srv *coatest.Server) coa.Target {
	return coa.Target{Addr: srv.Addr(), Secret: secret, NASIP: netip.MustParseAddr("192.0.2.1")}
}

func TestDisconnectACK(t *testing.T) {
	srv := startServer(t, coatest.ACK)
	before := time.Now().Truncate(time.Second)
	resp := fastDisconnect(t, target(srv))
	if resp.Result != coa.ResultACK || resp.Attempts != 1 || resp.RTT <= 0 {
		t.Fatalf("response %+v", resp)
	}

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests received", len(reqs))
	}
	// Err nil means the request authenticator and a Message-Authenticator
	// both verified: the responder requires it.
	if reqs[0].Err != nil {
		t.Fatal(reqs[0].Err)
	}
	p := reqs[0].Packet
	if p.Code != radius.CodeDisconnectRequest {
		t.Errorf("code %v", p.Code)
	}
	if got := rfc2865.UserName_GetString(p); got != "bob" {
		t.Errorf("User-Name %q", got)
	}
	if got := rfc2866.AcctSessionID_GetString(p); got != "8100000c" {
		t.Errorf("Acct-Session-Id %q", got)
	}
	if got := rfc2865.FramedIPAddress_Get(p); !got.Equal(net.IPv4(10, 0, 0, 7)) {
		t.Errorf("Framed-IP-Address %v", got)
	}
	if got := rfc2865.NASIPAddress_Get(p); !got.Equal(net.IPv4(192, 0, 2, 1)) {
		t.Errorf("NAS-IP-Address %v", got)
	}
	if ts := rfc2869.EventTimestamp_Get(p); ts.Before(before) || ts.After(time.Now()) {
		t.Errorf("Event-Timestamp %v", ts)
	}
	if ma, err := rfc2869.MessageAuthenticator_Gets(p); err != nil || len(ma) != 1 {
		t.Errorf("Message-Authenticator %x, %v", ma, err)
	}
}

func TestDisconnectNAK(t *testing.T) {
	srv := startServer(t, coatest.NAK(rfc3576.ErrorCause_Value_SessionContextNotFound))
	resp := fastDisconnect(t, target(srv))
	wantFirstNAK(t, resp, 503, "503 Session-Context-Not-Found")
}

func TestDisconnectRetransmitsSamePacket(t *testing.T) {
	srv := startServer(t, coatest.ACK, coatest.DropFirst(1))
	resp := fastDisconnect(t, target(srv))
	if resp.Result != coa.ResultACK || resp.Attempts != 2 {
		t.Fatalf("response %+v", resp)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests received", len(reqs))
	}
	// Same Identifier, same Authenticator, same source port: the router's
	// duplicate detection must see a retransmission.
	if !bytes.Equal(reqs[0].Raw, reqs[1].Raw) {
		t.Errorf("retransmission differs:\n%x\n%x", reqs[0].Raw, reqs[1].Raw)
	}
	if reqs[0].From != reqs[1].From {
		t.Errorf("retransmission from %v, first from %v", reqs[1].From, reqs[0].From)
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 100*time.Millisecond {
		t.Errorf("retransmitted after %v, before the attempt timeout", gap)
	}
}

func TestDisconnectTimeout(t *testing.T) {
	srv := startServer(t, coatest.ACK, coatest.Ignore())
	start := time.Now()
	resp := fastDisconnect(t, target(srv))
	if resp.Result != coa.ResultTimeout || resp.Attempts != 3 || resp.RTT != 0 {
		t.Fatalf("response %+v", resp)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("%d requests received, want 3", n)
	}
	if d := time.Since(start); d < 450*time.Millisecond || d > 2*time.Second {
		t.Errorf("took %v for 3 attempts of 150ms", d)
	}
}

func TestDisconnectWrongSecretResponderTimesOut(t *testing.T) {
	srv := startServer(t, coatest.ACK, coatest.ResponseSecret("not-"+secret))
	resp := fastDisconnect(t, target(srv))
	if resp.Result != coa.ResultTimeout || resp.Attempts != 3 {
		t.Fatalf("response %+v", resp)
	}
	if !strings.Contains(resp.Detail, "ignored 3") {
		t.Errorf("detail %q does not count the forged answers", resp.Detail)
	}
}

// TestDisconnectIgnoresForgeries answers each request with junk, an answer
// for another identifier and a mis-signed ACK before the real NAK; only the
// NAK may count.
func TestDisconnectIgnoresForgeries(t *testing.T) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			raw := bytes.Clone(buf[:n])
			req, err := radius.Parse(raw, []byte(secret))
			if err != nil {
				continue
			}
			send := func(b []byte) { _, _ = conn.WriteToUDPAddrPort(b, from) }
			send([]byte("not radius at all"))

			other := bytes.Clone(raw)
			other[1]++
			p := req.Response(radius.CodeDisconnectACK)
			p.Identifier = other[1]
			if b, err := coa.EncodeResponse(p, other); err == nil {
				send(b)
			}
			p = req.Response(radius.CodeDisconnectACK)
			p.Secret = []byte("guess")
			if b, err := coa.EncodeResponse(p, raw); err == nil {
				send(b)
			}
			p = req.Response(radius.CodeDisconnectNAK)
			_ = rfc3576.ErrorCause_Add(p, rfc3576.ErrorCause_Value_SessionContextNotRemovable)
			if b, err := coa.EncodeResponse(p, raw); err == nil {
				send(b)
			}
		}
	}()

	resp := fastDisconnect(t, coa.Target{Addr: conn.LocalAddr().String(), Secret: secret})
	wantFirstNAK(t, resp, 504, "ignored 3")
}

func TestChangeRateLimit(t *testing.T) {
	srv := startServer(t, coatest.ACK)
	resp, err := fast().ChangeRateLimit(t.Context(), target(srv), bobSession(), "10M/20M")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result != coa.ResultACK {
		t.Fatalf("response %+v", resp)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Err != nil {
		t.Fatalf("requests %+v", reqs)
	}
	p := reqs[0].Packet
	if p.Code != radius.CodeCoARequest {
		t.Errorf("code %v", p.Code)
	}
	rates, err := mikrotik.MikrotikRateLimit_GetStrings(p)
	if err != nil || len(rates) != 1 || rates[0] != "10M/20M" {
		t.Errorf("Mikrotik-Rate-Limit %q, %v", rates, err)
	}
	if got := rfc2866.AcctSessionID_GetString(p); got != "8100000c" {
		t.Errorf("Acct-Session-Id %q", got)
	}
}

func TestChangeRateLimitNAK(t *testing.T) {
	srv := startServer(t, coatest.NAK(rfc3576.ErrorCause_Value_UnsupportedAttribute))
	resp, err := fast().ChangeRateLimit(t.Context(), target(srv), bobSession(), "1M/1M")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result != coa.ResultNAK || resp.ErrorCause != 401 {
		t.Fatalf("response %+v", resp)
	}
}

func TestNetworkErrorsAreResults(t *testing.T) {
	// A port nobody listens on: loopback answers with ICMP port
	// unreachable, which a connected UDP socket reports as refused.
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	closed := c.LocalAddr().String()
	c.Close()

	for _, addr := range []string{"no-port-here", "127.0.0.1:99999", closed} {
		t.Run(addr, func(t *testing.T) {
			resp, err := fast().Disconnect(t.Context(), coa.Target{Addr: addr, Secret: secret}, bobSession())
			if err != nil {
				t.Fatalf("network outcome returned as error: %v", err)
			}
			if resp.Result != coa.ResultError || resp.Detail == "" {
				t.Fatalf("response %+v", resp)
			}
			t.Log(resp.Detail)
		})
	}
}

func TestContextEndsAttempts(t *testing.T) {
	srv := startServer(t, coatest.ACK, coatest.Ignore())
	slow := &coa.Client{Timeout: 10 * time.Second, Retries: 5}

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := slow.Disconnect(ctx, target(srv), bobSession())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result != coa.ResultTimeout || resp.Attempts != 1 {
		t.Errorf("deadline: response %+v", resp)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("deadline of 200ms honoured after %v", d)
	}

	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	resp, err = slow.Disconnect(ctx, target(srv), bobSession())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result != coa.ResultError || !strings.Contains(resp.Detail, "canceled") {
		t.Errorf("cancel: response %+v", resp)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel honoured after %v", d)
	}
}

func TestRetriesNegativeMeansOneAttempt(t *testing.T) {
	srv := startServer(t, coatest.ACK, coatest.Ignore())
	c := &coa.Client{Timeout: 50 * time.Millisecond, Retries: -1}
	resp, err := c.Disconnect(t.Context(), target(srv), bobSession())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Result != coa.ResultTimeout || resp.Attempts != 1 {
		t.Fatalf("response %+v", resp)
	}
}

func TestInvalidArguments(t *testing.T) {
	ok := coa.Target{Addr: "127.0.0.1:3799", Secret: secret}
	var c coa.Client
	cases := []struct {
		name string
		call func() (coa.Response, error)
	}{
		{"empty secret", func() (coa.Response, error) {
			return c.Disconnect(t.Context(), coa.Target{Addr: ok.Addr}, bobSession())
		}},
		{"empty session", func() (coa.Response, error) {
			return c.Disconnect(t.Context(), ok, coa.Session{})
		}},
		{"IPv6 Framed-IP-Address", func() (coa.Response, error) {
			return c.Disconnect(t.Context(), ok, coa.Session{Username: "bob", FramedIP: netip.MustParseAddr("2001:db8::1")})
		}},
		{"user name too long", func() (coa.Response, error) {
			return c.Disconnect(t.Context(), ok, coa.Session{Username: strings.Repeat("x", 300)})
		}},
		{"empty rate limit", func() (coa.Response, error) {
			return c.ChangeRateLimit(t.Context(), ok, bobSession(), "")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.call(); !errors.Is(err, nettportal.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestTargetFor(t *testing.T) {
	r := nettportal.Router{IP: netip.MustParseAddr("192.0.2.9"), Secret: "x"}
	got := coa.TargetFor(r)
	want := coa.Target{Addr: "192.0.2.9:3799", Secret: "x", NASIP: r.IP}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLogsOutcome(t *testing.T) {
	srv := startServer(t, coatest.NAK(rfc3576.ErrorCause_Value_SessionContextNotFound))
	var buf bytes.Buffer
	c := fast()
	c.Log = zerolog.New(&buf)
	if _, err := c.Disconnect(t.Context(), target(srv), bobSession()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"op":"disconnect"`, `"user":"bob"`, `"result":"nak"`, `"error_cause":503`, `"attempts":1`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
}
