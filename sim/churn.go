package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"layeh.com/radius/rfc2866"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/routeros/routerostest"
)

// loop runs the interim timers and churn.
func (r *Router) loop(ctx context.Context) {
	defer r.wg.Done()
	step := min(max(r.cfg.Interim/10, 10*time.Millisecond), time.Second)
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.round(false)
		}
	}
}

// Tick forces an interim round now: every session sends an Interim-Update
// with its current counters, and sessions missing since a reboot or churn
// log in again. Tests use it rather than waiting for the interval.
func (r *Router) Tick() { r.round(true) }

func (r *Router) round(force bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	now := r.cfg.Now()
	var reqs []*acctReq
	if !force && r.cfg.Churn > 0 && !now.Before(r.nextChurn) {
		r.nextChurn = now.Add(r.cfg.Interim)
		reqs = append(reqs, r.churnLocked(now)...)
	}
	for _, s := range r.sessions {
		if force || !now.Before(s.nextInterim) {
			reqs = append(reqs, r.reportLocked(s, now, nettportal.StatusInterimUpdate, 0))
			s.nextInterim = now.Add(r.cfg.Interim)
		}
	}
	reqs = append(reqs, r.refillLocked(now)...)
	r.mu.Unlock()
	r.sendAll(reqs)
}

// churnLocked ends a Churn fraction of the sessions; refill replaces them.
// Fractions accumulate as probability, so small routers churn too.
func (r *Router) churnLocked(now time.Time) []*acctReq {
	want := r.cfg.Churn * float64(len(r.sessions))
	n := int(want)
	if r.rng.Float64() < want-float64(n) {
		n++
	}
	var reqs []*acctReq
	for _, s := range r.sessions { // map order is random enough
		if n == 0 {
			break
		}
		n--
		cause := rfc2866.AcctTerminateCause_Value_UserRequest
		if r.rng.IntN(10) < 3 {
			cause = rfc2866.AcctTerminateCause_Value_LostCarrier
		}
		if req := r.endLocked(s, now, cause); req != nil {
			reqs = append(reqs, req)
		}
	}
	return reqs
}

// refillLocked logs in offline subscribers until the target is reached.
// A subscriber the operator disconnected holds its place until it redials,
// so another one does not log in instead.
func (r *Router) refillLocked(now time.Time) []*acctReq {
	for sub, at := range r.redialAt {
		if !now.Before(at) {
			delete(r.redialAt, sub)
		}
	}
	var reqs []*acctReq
	for i := 0; len(r.sessions)+len(r.redialAt) < r.target; i++ {
		if i == len(r.subs) {
			r.subs = append(r.subs, r.newSubscriberLocked(i))
		}
		sub := r.subs[i]
		if _, on := r.sessions[sub.name]; on {
			continue
		}
		if _, waiting := r.redialAt[sub]; waiting {
			continue
		}
		reqs = append(reqs, r.loginLocked(sub, now))
	}
	return reqs
}

// operatorEndedLocked accounts for a session the operator ended: the CPE
// dials again after Redial, or stays offline without it.
func (r *Router) operatorEndedLocked(s *session, now time.Time) {
	if r.cfg.Redial > 0 {
		r.redialAt[s.sub] = now.Add(r.cfg.Redial)
		return
	}
	r.target--
}

func (r *Router) newSubscriberLocked(i int) *subscriber {
	sub := &subscriber{
		name:  fmt.Sprintf("u%04d@%s", i+1, r.cfg.Name),
		mac:   drawMAC(r.rng),
		iface: "vlan" + strconv.Itoa(100+i%4),
		ip:    subscriberIP(r.cfg.Addr, i),
	}
	if len(r.cfg.Plans) > 0 {
		sub.plan = r.cfg.Plans[i%len(r.cfg.Plans)]
		if r.api != nil && !r.cfg.GroupAttr {
			r.api.SetSecret(routerostest.Secret{Name: sub.name, Profile: sub.plan.Name, Service: "pppoe"})
		}
	}
	return sub
}

func (r *Router) loginLocked(sub *subscriber, now time.Time) *acctReq {
	r.seq++
	s := &session{
		sub:         sub,
		id:          sessionNumber(r.boot, r.seq),
		start:       now,
		traffic:     drawTraffic(r.rng, now),
		rateLimit:   sub.plan.RateLimit,
		nextInterim: now.Add(r.cfg.Interim),
		up:          true,
	}
	s.traffic.day = r.cfg.DayLength
	s.traffic.reburst(r.rng)
	if sub.plan.RateLimit != "" {
		// Plans are validated in New.
		s.traffic.capUp, s.traffic.capDown, _ = parseRateLimit(sub.plan.RateLimit)
	}
	r.sessions[sub.name] = s
	if r.api != nil {
		r.api.SetSession(routerostest.Session{
			Name: sub.name, Service: "pppoe", CallerID: sub.mac, Address: sub.ip.String(),
			SessionID: s.id, Radius: true,
		})
	}
	return r.newReqLocked(s, nettportal.StatusStart, now, 0)
}

// reportLocked moves the session's counters to now, shows them in the API
// and makes the Interim-Update or Stop that reports them.
func (r *Router) reportLocked(s *session, now time.Time, status nettportal.StatusType, cause rfc2866.AcctTerminateCause) *acctReq {
	s.traffic.advance(now)
	s.traffic.reburst(r.rng)
	s.in, s.out = s.traffic.counters()
	s.sessionTime = uint32(max(now.Sub(s.start), 0) / time.Second)
	if r.api != nil && status == nettportal.StatusInterimUpdate {
		r.api.UpdateCounters(s.sub.name, s.in, s.out, now.Sub(s.start))
	}
	return r.newReqLocked(s, status, now, cause)
}

// endLocked ends a session and returns its Stop, nil when Stops are lost.
func (r *Router) endLocked(s *session, now time.Time, cause rfc2866.AcctTerminateCause) *acctReq {
	req := r.reportLocked(s, now, nettportal.StatusStop, cause)
	s.up = false
	delete(r.sessions, s.sub.name)
	r.ended[s.sub.name] = s
	if r.api != nil {
		r.api.RemoveSession(s.sub.name)
	}
	if r.loseStops.Load() {
		r.st.lostStops.Add(1)
		return nil
	}
	return req
}

func (r *Router) newReqLocked(s *session, status nettportal.StatusType, now time.Time, cause rfc2866.AcctTerminateCause) *acctReq {
	s.seq++
	return &acctReq{
		epoch: r.epoch.Load(), sess: s, seq: s.seq, status: status, event: now,
		username: s.sub.name, sessionID: s.id, ip: s.sub.ip, mac: s.sub.mac, iface: s.sub.iface,
		sessionTime: s.sessionTime, in: s.in, out: s.out, cause: cause,
	}
}

func (r *Router) accountingOn() *acctReq {
	return &acctReq{epoch: r.epoch.Load(), status: nettportal.StatusAccountingOn, event: r.cfg.Now()}
}

func (r *Router) sendAll(reqs []*acctReq) {
	for _, req := range reqs {
		if req != nil {
			r.acct.send(req)
		}
	}
}

// changed wakes every waiter.
func (r *Router) changed() {
	r.mu.Lock()
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
}

// acked records an acknowledged request; called from the socket readers.
func (r *Router) acked(req *acctReq) {
	ap := req.ackedPacket(r)
	r.mu.Lock()
	if s := req.sess; s != nil {
		if req.status == nettportal.StatusStart {
			s.startAcked = true
		}
		if req.seq > s.ackedSeq {
			s.ackedSeq, s.lastAcked = req.seq, ap
		}
	}
	r.st.acked.Add(1)
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
	if r.cfg.OnAck != nil {
		r.cfg.OnAck(ap)
	}
}

func (r *Router) lost() bool {
	p := math.Float64frombits(r.loss.Load())
	if p > 0 && rand.Float64() < p {
		r.st.lost.Add(1)
		return true
	}
	return false
}
