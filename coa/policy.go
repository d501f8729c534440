package coa

import (
	"context"
	"fmt"
	"time"
)

// Remover removes an active PPP session through the RouterOS API
// (`/ppp/active/remove`); the routeros package's client satisfies it.
// RemoveActive reports false with a nil error when the router has no active
// session with that name and session id.
type Remover interface {
	RemoveActive(ctx context.Context, name, sessionID string) (bool, error)
}

// Methods recorded in Outcome and Attempt.
const (
	MethodRADIUS   = "radius"
	MethodRouterOS = "routeros"
)

// Attempt is one try at ending a session, for the audit trail.
type Attempt struct {
	Method   string // MethodRADIUS or MethodRouterOS
	Result   Result
	Detail   string
	At       time.Time
	Duration time.Duration
}

// Outcome is the result of Disconnector.Disconnect.
type Outcome struct {
	// OK reports whether the session is known to be gone (or going: after
	// an ACK the router sends the Stop).
	OK bool
	// Method is the method of the last attempt, the one that decided.
	Method string
	Result Result
	// Detail tells the whole story, RADIUS first, e.g. "radius nak
	// (Error-Cause 503 Session-Context-Not-Found); removed via RouterOS API".
	Detail string
	// ErrorCause is the RADIUS NAK's Error-Cause, zero when none.
	ErrorCause uint32
	// Attempts lists every method tried, in order.
	Attempts []Attempt
}

// Disconnector applies the disconnect policy: a RADIUS Disconnect-Request
// first; an ACK ends it; a NAK, a timeout or a network error hands over to
// the RouterOS API when the router has one. Every attempt is recorded in the
// Outcome. The zero value uses a zero Client.
type Disconnector struct {
	Client *Client
}

// Disconnect ends the session s on the router t, falling back to api (nil
// when the router has no API access). ctx bounds both methods together, so
// give it room for the RADIUS retries and an API call.
//
// A router without a RADIUS secret (routers fed by the reconciler alone)
// makes the RADIUS attempt fail at once with ResultError, so such routers go
// straight to the API while the record still shows why.
func (d *Disconnector) Disconnect(ctx context.Context, t Target, s Session, api Remover) Outcome {
	client := d.Client
	if client == nil {
		client = &Client{}
	}

	var out Outcome
	start := time.Now()
	resp, err := client.Disconnect(ctx, t, s)
	if err != nil {
		resp = Response{Result: ResultError, Detail: err.Error()}
	}
	out.Attempts = append(out.Attempts, Attempt{
		Method: MethodRADIUS, Result: resp.Result, Detail: resp.Detail,
		At: start, Duration: time.Since(start),
	})
	out.Method = MethodRADIUS
	out.Result = resp.Result
	out.ErrorCause = resp.ErrorCause
	out.Detail = MethodRADIUS + " " + string(resp.Result)
	if resp.Detail != "" {
		out.Detail += " (" + resp.Detail + ")"
	}
	if resp.Result == ResultACK {
		out.OK = true
		return out
	}
	if api == nil {
		out.Detail += "; no RouterOS API fallback for this router"
		return out
	}

	start = time.Now()
	removed, err := api.RemoveActive(ctx, s.Username, s.AcctSessionID)
	a := Attempt{Method: MethodRouterOS, At: start, Duration: time.Since(start)}
	switch {
	case err != nil:
		a.Result, a.Detail = ResultError, fmt.Sprintf("remove active session: %v", err)
		out.Detail += "; RouterOS API failed: " + err.Error()
	case removed:
		a.Result, a.Detail = ResultACK, "active session removed"
		out.OK = true
		out.Detail += "; removed via RouterOS API"
	default:
		a.Result = ResultNAK
		a.Detail = fmt.Sprintf("no active session %q with session id %q", s.Username, s.AcctSessionID)
		out.Detail += "; RouterOS API has " + a.Detail
	}
	out.Attempts = append(out.Attempts, a)
	out.Method = MethodRouterOS
	out.Result = a.Result
	return out
}
