package coa

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/rfc3576"
	// Registers the names of RFC 5176's extra Error-Cause values (407, 508)
	// so NAK details print them.
	_ "layeh.com/radius/rfc5176"
	"layeh.com/radius/vendors/mikrotik"

	"github.com/nettportal/nettportal"
)

// Defaults for the zero values of Client's fields.
const (
	DefaultTimeout = 2 * time.Second
	DefaultRetries = 2
)

// Client sends Disconnect-Request and CoA-Request packets and waits for the
// router's answer. The zero value is ready to use; a Client is safe for
// concurrent use as long as its fields are not changed.
type Client struct {
	// Timeout is how long one attempt waits for an answer; zero means
	// DefaultTimeout. The overall limit is the context's deadline.
	Timeout time.Duration
	// Retries is the number of retransmissions after the first attempt;
	// zero means DefaultRetries and a negative value means none.
	Retries int
	// Log receives one line per attempt (debug) and per outcome (info);
	// the zero Logger discards everything.
	Log zerolog.Logger
}

// Target is the router a request goes to.
type Target struct {
	// Addr is the router's Disconnect/CoA host:port
	// (nettportal.Router.CoAAddr).
	Addr string
	// Secret is the RADIUS shared secret the router expects.
	Secret string
	// NASIP is sent as NAS-IP-Address (NAS-IPv6-Address for IPv6) so the
	// router can check the request is meant for it; the zero Addr omits it.
	NASIP netip.Addr
}

// TargetFor returns the Target of a router's CoA port.
func TargetFor(r nettportal.Router) Target {
	return Target{Addr: r.CoAAddr(), Secret: r.Secret, NASIP: r.IP}
}

// Session identifies the PPPoE session a request acts on. RouterOS matches a
// session by User-Name, Acct-Session-Id and Framed-IP-Address together, so
// callers should fill all three; empty fields are left out of the request.
type Session struct {
	Username      string
	AcctSessionID string
	FramedIP      netip.Addr // IPv4 only: Framed-IP-Address has no IPv6 form
}

// Result is how a request ended.
type Result string

// The results of a request.
const (
	// ResultACK: the router answered Disconnect-ACK or CoA-ACK.
	ResultACK Result = "ack"
	// ResultNAK: the router answered Disconnect-NAK or CoA-NAK.
	ResultNAK Result = "nak"
	// ResultTimeout: no authentic answer to any attempt.
	ResultTimeout Result = "timeout"
	// ResultError: the request could not be sent or the network refused
	// it (bad address, port unreachable, cancelled context).
	ResultError Result = "error"
)

// Response is the outcome of one Disconnect or CoA request.
type Response struct {
	Result Result
	// ErrorCause is the NAK's Error-Cause (RFC 3576 3.5, e.g. 503
	// Session-Context-Not-Found); zero when absent.
	ErrorCause uint32
	// Detail says what happened in words, for operators and logs.
	Detail string
	// Attempts is the number of datagrams sent.
	Attempts int
	// RTT is the time from the latest transmission to the answer; zero
	// without an answer.
	RTT time.Duration
}

// Disconnect asks the router to end the session with a Disconnect-Request.
// Network outcomes, including timeouts, are reported in the Response; the
// error is non-nil only for unusable arguments (wrapping
// nettportal.ErrInvalid).
func (c *Client) Disconnect(ctx context.Context, t Target, s Session) (Response, error) {
	p, err := newRequest(radius.CodeDisconnectRequest, t, s)
	if err != nil {
		return Response{}, fmt.Errorf("disconnect: %w", err)
	}
	return c.exchange(ctx, "disconnect", t, s, p), nil
}

// ChangeRateLimit asks the router to apply a new Mikrotik-Rate-Limit (for
// example "10M/20M") to the session without dropping it, with a CoA-Request.
// Outcomes and errors are reported as for Disconnect.
func (c *Client) ChangeRateLimit(ctx context.Context, t Target, s Session, rateLimit string) (Response, error) {
	if rateLimit == "" {
		return Response{}, fmt.Errorf("change rate limit: %w: empty rate limit", nettportal.ErrInvalid)
	}
	p, err := newRequest(radius.CodeCoARequest, t, s)
	if err != nil {
		return Response{}, fmt.Errorf("change rate limit: %w", err)
	}
	// The generated vendor _Set panics when the attribute is already
	// present, so replace it the safe way.
	mikrotik.MikrotikRateLimit_Del(p)
	if err := mikrotik.MikrotikRateLimit_AddString(p, rateLimit); err != nil {
		return Response{}, fmt.Errorf("change rate limit: %w: Mikrotik-Rate-Limit: %w", nettportal.ErrInvalid, err)
	}
	return c.exchange(ctx, "coa", t, s, p), nil
}

// newRequest builds an unsigned request identifying s.
func newRequest(code radius.Code, t Target, s Session) (*radius.Packet, error) {
	if t.Secret == "" {
		return nil, fmt.Errorf("%w: empty shared secret for %s", nettportal.ErrInvalid, t.Addr)
	}
	if s.Username == "" && s.AcctSessionID == "" && !s.FramedIP.IsValid() {
		return nil, fmt.Errorf("%w: session has no User-Name, Acct-Session-Id or Framed-IP-Address", nettportal.ErrInvalid)
	}
	framed := s.FramedIP.Unmap()
	if framed.IsValid() && !framed.Is4() {
		return nil, fmt.Errorf("%w: Framed-IP-Address %s is not IPv4", nettportal.ErrInvalid, s.FramedIP)
	}

	// radius.New draws the Identifier from crypto/rand: blind forgers must
	// guess it, and no per-router bookkeeping is needed because each
	// request has its own source port.
	p := radius.New(code, []byte(t.Secret))
	add := func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("%w: %s: %w", nettportal.ErrInvalid, name, err)
		}
		return nil
	}
	if s.Username != "" {
		if err := add("User-Name", rfc2865.UserName_SetString(p, s.Username)); err != nil {
			return nil, err
		}
	}
	if s.AcctSessionID != "" {
		if err := add("Acct-Session-Id", rfc2866.AcctSessionID_SetString(p, s.AcctSessionID)); err != nil {
			return nil, err
		}
	}
	if framed.IsValid() {
		if err := add("Framed-IP-Address", rfc2865.FramedIPAddress_Set(p, framed.AsSlice())); err != nil {
			return nil, err
		}
	}
	if nas := t.NASIP.Unmap(); nas.Is4() {
		if err := add("NAS-IP-Address", rfc2865.NASIPAddress_Set(p, nas.AsSlice())); err != nil {
			return nil, err
		}
	} else if nas.IsValid() {
		if err := add("NAS-IPv6-Address", rfc3162.NASIPv6Address_Set(p, nas.AsSlice())); err != nil {
			return nil, err
		}
	}
	// RFC 5176 3 recommends Event-Timestamp so a router can reject
	// replays of an old request.
	if err := add("Event-Timestamp", rfc2869.EventTimestamp_Set(p, time.Now())); err != nil {
		return nil, err
	}
	return p, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) retries() int {
	switch {
	case c.Retries > 0:
		return c.Retries
	case c.Retries < 0:
		return 0
	}
	return DefaultRetries
}

// exchange sends p and its retransmissions and waits for an authentic
// answer.
//
// All attempts share one socket: RFC 5176 2.3 and RFC 5080 2.2.2 let the
// router recognise a retransmission by source address, port and
// Identifier, so a new port per attempt would make a router that already
// acted on the first copy process the second as a new request (and NAK it
// with 503 after a successful disconnect). It also lets a late answer to an
// earlier attempt still count.
func (c *Client) exchange(ctx context.Context, op string, t Target, s Session, p *radius.Packet) Response {
	log := c.Log.With().Str("op", op).Str("addr", t.Addr).Str("user", s.Username).
		Str("acct_session_id", s.AcctSessionID).Uint8("radius_id", p.Identifier).Logger()
	resp := c.send(ctx, t, p, log)
	log.Info().Str("result", string(resp.Result)).Uint32("error_cause", resp.ErrorCause).
		Int("attempts", resp.Attempts).Dur("rtt", resp.RTT).Str("detail", resp.Detail).Msg("coa request done")
	return resp
}

func (c *Client) send(ctx context.Context, t Target, p *radius.Packet, log zerolog.Logger) Response {
	request, err := EncodeRequest(p)
	if err != nil {
		return Response{Result: ResultError, Detail: err.Error()}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", t.Addr)
	if err != nil {
		return Response{Result: ResultError, Detail: fmt.Sprintf("dial %s: %v", t.Addr, err)}
	}
	defer conn.Close()
	// A read blocked in the kernel does not watch ctx; a deadline in the
	// past wakes it.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	secret := []byte(t.Secret)
	timeout := c.timeout()
	attempts := 1 + c.retries()
	// One octet more than the largest packet tells an oversized datagram
	// apart from a maximal one.
	buf := make([]byte, radius.MaxPacketLength+1)
	var (
		ignored int
		sent    int
		lastErr error
	)
	detail := func(s string) string {
		if ignored > 0 {
			s += fmt.Sprintf("; ignored %d unverified or mismatched response(s)", ignored)
		}
		return s
	}

	ctxDeadline, hasDeadline := ctx.Deadline()
	// The read deadline can fire a moment before ctx's own timer marks it
	// done; without this check the remaining attempts would all time out
	// at once and be reported as sent.
	pastDeadline := func() bool { return hasDeadline && !time.Now().Before(ctxDeadline) }

attempts:
	for sent < attempts {
		if ctx.Err() != nil || pastDeadline() {
			break
		}
		start := time.Now()
		deadline := start.Add(timeout)
		if hasDeadline && ctxDeadline.Before(deadline) {
			deadline = ctxDeadline
		}
		if err := conn.SetReadDeadline(deadline); err != nil {
			return Response{Result: ResultError, Detail: detail(fmt.Sprintf("set deadline: %v", err)), Attempts: sent}
		}
		// ctx may have ended between the check above and the new
		// deadline, which would have overwritten AfterFunc's wake-up.
		if ctx.Err() != nil {
			break
		}
		sent++
		lastErr = nil
		log.Debug().Int("attempt", sent).Msg("sending coa request")
		if _, err := conn.Write(request); err != nil {
			lastErr = fmt.Errorf("send: %w", err)
			continue
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue attempts
				}
				// Typically ECONNREFUSED from an ICMP port unreachable:
				// nothing listens on the router's CoA port.
				lastErr = fmt.Errorf("receive: %w", err)
				continue attempts
			}
			rtt := time.Since(start)
			r, ok := parseResponse(buf[:n], request, secret)
			if !ok {
				ignored++
				log.Debug().Int("attempt", sent).Int("len", n).Msg("ignored unverified coa response")
				continue
			}
			r.Attempts = sent
			r.RTT = rtt
			r.Detail = detail(r.Detail)
			return r
		}
	}

	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || (ctx.Err() == nil && pastDeadline()):
		return Response{Result: ResultTimeout, Attempts: sent,
			Detail: detail(fmt.Sprintf("no response before the context deadline after %d attempt(s)", sent))}
	case ctx.Err() != nil:
		return Response{Result: ResultError, Attempts: sent,
			Detail: detail(fmt.Sprintf("stopped after %d attempt(s): %v", sent, context.Cause(ctx)))}
	case lastErr != nil:
		return Response{Result: ResultError, Attempts: sent,
			Detail: detail(fmt.Sprintf("%v (after %d attempt(s))", lastErr, sent))}
	}
	return Response{Result: ResultTimeout, Attempts: sent,
		Detail: detail(fmt.Sprintf("no response after %d attempt(s) of %v", sent, timeout))}
}

// parseResponse turns an authentic answer to request into a Response. It
// reports false for anything that is not one, so the caller keeps waiting:
// an attacker or a confused router must not end the exchange.
func parseResponse(raw, request, secret []byte) (Response, bool) {
	if err := VerifyResponse(raw, request, secret); err != nil {
		return Response{}, false
	}
	p, err := radius.Parse(raw, secret)
	if err != nil {
		return Response{}, false
	}
	switch p.Code {
	case radius.CodeDisconnectACK, radius.CodeCoAACK:
		return Response{Result: ResultACK}, true
	case radius.CodeDisconnectNAK, radius.CodeCoANAK:
		cause, err := rfc3576.ErrorCause_Lookup(p)
		switch {
		case errors.Is(err, radius.ErrNoAttribute):
			return Response{Result: ResultNAK, Detail: "no Error-Cause"}, true
		case err != nil:
			return Response{Result: ResultNAK, Detail: fmt.Sprintf("malformed Error-Cause: %v", err)}, true
		}
		return Response{Result: ResultNAK, ErrorCause: uint32(cause),
			Detail: fmt.Sprintf("Error-Cause %d %v", uint32(cause), cause)}, true
	}
	return Response{}, false
}
