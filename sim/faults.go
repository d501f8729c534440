package sim

import (
	"math"

	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal/routeros/routerostest"
)

// SetLoss sets the probability that a packet, in either direction, is lost.
func (r *Router) SetLoss(p float64) { r.loss.Store(math.Float64bits(min(max(p, 0), 1))) }

// LoseStops makes the router end sessions without ever sending their Stop.
func (r *Router) LoseStops(b bool) { r.loseStops.Store(b) }

// IgnoreCoA makes the router drop every Disconnect and CoA request
// unanswered, like a router without `/radius incoming accept=yes`.
func (r *Router) IgnoreCoA(b bool) { r.ignoreCoA.Store(b) }

// SetAPIUnreachable makes the RouterOS API drop every connection.
func (r *Router) SetAPIUnreachable(b bool) {
	if r.api != nil {
		r.api.SetUnreachable(b)
	}
}

// Reboot simulates a reboot: every session vanishes without a Stop,
// requests in flight are forgotten, the boot digit of new session ids
// changes, and with withAccountingOn the router announces itself with
// Accounting-On. Subscribers log in again at the next round (or Tick).
func (r *Router) Reboot(withAccountingOn bool) {
	r.mu.Lock()
	r.epoch.Add(1)
	r.boot = nextBoot(r.boot)
	r.seq = 0
	for name, s := range r.sessions {
		s.up = false
		r.ended[name] = s
		delete(r.sessions, name)
	}
	clear(r.coaSeen)
	api := r.api
	r.mu.Unlock()
	r.acct.abandonAll()
	if api != nil {
		api.Reboot()
	}
	if withAccountingOn {
		r.acct.send(r.accountingOn())
	}
	r.changed()
}

// Connect logs in n more sessions now and returns their usernames; the
// router keeps them up from then on.
func (r *Router) Connect(n int) []string {
	r.mu.Lock()
	r.target += n
	before := make(map[string]bool, len(r.sessions))
	for name := range r.sessions {
		before[name] = true
	}
	reqs := r.refillLocked(r.cfg.Now())
	var names []string
	for name := range r.sessions {
		if !before[name] {
			names = append(names, name)
		}
	}
	r.mu.Unlock()
	r.sendAll(reqs)
	return names
}

// Disconnect ends the user's session with a Stop carrying cause; the
// subscriber stays offline. It returns false when the user has no session.
func (r *Router) Disconnect(username string, cause rfc2866.AcctTerminateCause) bool {
	r.mu.Lock()
	s, ok := r.sessions[username]
	var req *acctReq
	if ok {
		r.target--
		req = r.endLocked(s, r.cfg.Now(), cause)
	}
	r.mu.Unlock()
	if req != nil {
		r.acct.send(req)
	}
	return ok
}

// onAPIRemove ends a session a client removed with /ppp/active/remove, as
// RouterOS does: a Stop with Admin-Reset.
func (r *Router) onAPIRemove(rs routerostest.Session) {
	r.mu.Lock()
	s, ok := r.sessions[rs.Name]
	var req *acctReq
	if ok && s.id == rs.SessionID {
		r.operatorEndedLocked(s, r.cfg.Now())
		req = r.endLocked(s, r.cfg.Now(), rfc2866.AcctTerminateCause_Value_AdminReset)
	}
	r.mu.Unlock()
	if req != nil {
		r.acct.send(req)
	}
}
