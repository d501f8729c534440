package sim

import (
	"errors"
	"net"
	"net/netip"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc3576"
	"layeh.com/radius/vendors/mikrotik"

	"github.com/nettportal/nettportal/coa"
)

// coaKey identifies a Disconnect/CoA request: a retransmission keeps the
// source, Identifier and Request Authenticator (RFC 5080 2.2.2).
type coaKey struct {
	from netip.AddrPort
	id   byte
	auth [16]byte
}

type coaAnswer struct {
	raw []byte
	at  time.Time
}

// coaReplayWindow is how long an answer is kept for retransmissions: a
// router that already disconnected a session must ACK the copy again, not
// NAK it for a session that no longer exists.
const coaReplayWindow = 30 * time.Second

func (r *Router) serveCoA() {
	defer r.wg.Done()
	buf := make([]byte, rad.MaxPacketLength+1)
	for {
		n, from, err := r.coa.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.handleCoA(append([]byte(nil), buf[:n]...), from)
	}
}

// handleCoA answers one Disconnect-Request or CoA-Request the way RouterOS
// does: requests that do not verify with the router's secret (Request
// Authenticator and Message-Authenticator, which is required here as on a
// BlastRADIUS-hardened router) are dropped silently; a request matches a
// session only by User-Name, Acct-Session-Id and Framed-IP-Address
// together, else NAK with Error-Cause 503.
func (r *Router) handleCoA(raw []byte, from netip.AddrPort) {
	if r.ignoreCoA.Load() {
		r.st.coaIgnored.Add(1)
		return
	}
	if r.lost() {
		return
	}
	if err := coa.VerifyRequest(raw, r.secret); err != nil {
		r.st.coaDropped.Add(1)
		r.log.Debug().Err(err).Stringer("addr", from).Msg("CoA request dropped")
		return
	}
	p, err := rad.Parse(raw, r.secret)
	if err != nil {
		r.st.coaDropped.Add(1)
		return
	}
	key := coaKey{from: from, id: p.Identifier, auth: p.Authenticator}
	now := time.Now()

	r.mu.Lock()
	if a, ok := r.coaSeen[key]; ok && now.Sub(a.at) < coaReplayWindow {
		r.mu.Unlock()
		r.answerCoA(a.raw, from)
		return
	}
	for k, a := range r.coaSeen {
		if now.Sub(a.at) >= coaReplayWindow {
			delete(r.coaSeen, k)
		}
	}
	ack, nak := rad.CodeDisconnectACK, rad.CodeDisconnectNAK
	if p.Code == rad.CodeCoARequest {
		ack, nak = rad.CodeCoAACK, rad.CodeCoANAK
	}
	code, cause := ack, rfc3576.ErrorCause(0)
	var stop *acctReq
	s := r.matchLocked(p)
	switch {
	case !r.nasMatches(p):
		code, cause = nak, rfc3576.ErrorCause_Value_NASIdentificationMismatch
	case s == nil:
		code, cause = nak, rfc3576.ErrorCause_Value_SessionContextNotFound
	case p.Code == rad.CodeDisconnectRequest:
		r.operatorEndedLocked(s, r.cfg.Now())
		stop = r.endLocked(s, r.cfg.Now(), rfc2866.AcctTerminateCause_Value_AdminReset)
	default:
		if limit, err := mikrotik.MikrotikRateLimit_LookupString(p); err == nil {
			up, down, perr := parseRateLimit(limit)
			if perr != nil {
				code, cause = nak, rfc3576.ErrorCause_Value_InvalidRequest
				break
			}
			// Traffic so far ran at the old rate.
			s.traffic.advance(r.cfg.Now())
			s.traffic.capUp, s.traffic.capDown = up, down
			s.rateLimit = limit
		}
	}
	resp := p.Response(code)
	if cause != 0 {
		_ = rfc3576.ErrorCause_Add(resp, cause) // an integer always fits
	}
	out, err := coa.EncodeResponse(resp, raw)
	if err == nil {
		r.coaSeen[key] = coaAnswer{raw: out, at: now}
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Error().Err(err).Msg("cannot encode CoA answer")
		return
	}
	if code == ack {
		r.st.coaACKs.Add(1)
	} else {
		r.st.coaNAKs.Add(1)
	}
	r.log.Debug().Stringer("code", code).Uint32("error_cause", uint32(cause)).Msg("CoA answered")
	r.answerCoA(out, from)
	// RouterOS answers first, then accounts for the ended session.
	if stop != nil {
		r.acct.send(stop)
	}
	r.changed()
}

func (r *Router) answerCoA(b []byte, to netip.AddrPort) {
	if r.lost() {
		return
	}
	if _, err := r.coa.WriteToUDPAddrPort(b, to); err != nil {
		r.log.Debug().Err(err).Msg("CoA answer not sent")
	}
}

// nasMatches rejects requests meant for another router.
func (r *Router) nasMatches(p *rad.Packet) bool {
	ip, err := rfc2865.NASIPAddress_Lookup(p)
	if err != nil {
		return true
	}
	a, ok := netip.AddrFromSlice(ip)
	return ok && a.Unmap() == r.cfg.Addr
}

func (r *Router) matchLocked(p *rad.Packet) *session {
	user, err := rfc2865.UserName_LookupString(p)
	if err != nil {
		return nil
	}
	s, ok := r.sessions[user]
	if !ok {
		return nil
	}
	sid, err := rfc2866.AcctSessionID_LookupString(p)
	if err != nil || sid != FormatSessionID(s.id) {
		return nil
	}
	ip, err := rfc2865.FramedIPAddress_Lookup(p)
	if err != nil {
		return nil
	}
	if a, ok := netip.AddrFromSlice(ip); !ok || a.Unmap() != s.sub.ip {
		return nil
	}
	return s
}
