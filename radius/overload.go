package radius

import (
	"net/netip"
	"sync/atomic"
	"time"

	rad "layeh.com/radius"

	"github.com/nettportal/nettportal"
)

// Overload handling. A packet shed for waiting past the delay budget comes
// back as its router's retransmission about a second later; served in turn
// with new packets it would be answered after the router's timeout, so
// under sustained overload everything answered is late. So the listener
// remembers what it shed (a fingerprint), and a recognised retransmission
// waits in a retry queue that workers take from only when the fresh queue
// is empty: new packets are answered inside the budget, and the shed
// backlog is served with the capacity that is left (at once after a short
// burst, not at all during a long overload, where it expires).

// overloadHold is how long, in units of MaxQueueDelay, the tighter
// OverloadQueueDelay stays in force after the last packet that waited
// past MaxQueueDelay.
const overloadHold = 5

// retransmitOfShed sorts a new request (key not seen) by what the shed
// memory knows of it. A later copy of a request waiting in the retry queue
// is folded into it (true: handled). Otherwise retry says whether it is a
// retransmission of a shed packet, for the retry queue.
func (s *Server) retransmitOfShed(raw []byte, key dedupeKey, entry *routerEntry) (fp uint64, retry, handled bool) {
	if !s.shedMem.active() {
		return 0, false, false
	}
	fp = s.shedMem.fingerprint(key.addr, raw)
	t, known := s.shedMem.lookup(fp)
	switch {
	case t != nil:
		return fp, true, s.fold(t, raw, key, entry)
	case known:
		return fp, true, false
	}
	return fp, false, false
}

// fold makes a later copy of a waiting retransmission the one its answer
// is for, once the copy is authentic; false when the ticket is settled
// already (the copy is then a new request).
func (s *Server) fold(t *retryTicket, raw []byte, key dedupeKey, entry *routerEntry) bool {
	length := int(raw[2])<<8 | int(raw[3])
	if length < 20 || length > len(raw) || !rad.IsAuthenticRequest(raw[:length], entry.secret) {
		return false // the decoder says what is wrong with it
	}
	old, ok := t.replace(key)
	if !ok {
		return false
	}
	s.dedupe.forget(old)
	s.Stats.RetryFolded.Add(1)
	s.Stats.count(nettportal.OutcomeDuplicate)
	return true
}

// retryRoom says whether q can take one more, dropping the expired ones
// first; checked before decoding, which a dropped packet does not need.
func (s *Server) retryRoom(q *retryQueue, now time.Time) bool {
	if q.len() < s.RetryQueueSize {
		return true
	}
	s.expireRetry(now)
	return q.len() < s.RetryQueueSize
}

// quietAllowance bounds what a router may have queued, fresh packets and
// retransmissions of shed ones each, for its retransmissions to count as
// a quiet router's (retryQueueOf): a router that has just sent a burst,
// or floods and pauses to be served first, has more.
const quietAllowance = 16

// retryQueueOf is the retry queue for a retransmission of a shed packet
// of entry's router: the quiet one when the router has little queued and
// few retransmissions waiting while other routers have packets queued, so
// that its retransmissions are not left behind another router's storm
// (the retry queue waits until no fresh packet waits, which a storm never
// allows); else the retry queue, whose retransmissions wait for spare
// capacity. One router on its own always takes the retry queue.
func (s *Server) retryQueueOf(entry *routerEntry) *retryQueue {
	if entry.retried.Load() >= quietAllowance {
		return s.retry
	}
	if own, others := s.fresh.waiting(entry.queued); own < quietAllowance && others > 0 {
		return s.quietRetry
	}
	return s.retry
}

// deferRetry queues it, a retransmission of a shed packet, in q (see
// retryQueueOf).
func (s *Server) deferRetry(it item, fp uint64, entry *routerEntry, raw []byte, q *retryQueue) {
	t := &retryTicket{key: it.key}
	if cur := s.shedMem.claim(fp, t); cur != nil {
		// Another reader queued a copy meanwhile.
		if !s.fold(cur, raw, it.key, entry) {
			s.dedupe.forget(it.key)
			s.Stats.count(nettportal.OutcomeDuplicate)
		}
		return
	}
	it.ticket, it.fp, it.queued = t, fp, entry.retried
	reason := &s.Stats.RetryOverQuota
	if entry.retried.Add(1) <= entry.retryQuota {
		if q.push(it) {
			s.Stats.Retried.Add(1)
			return
		}
		reason = &s.Stats.RetryFull
	}
	entry.retried.Add(-1)
	t.finish()
	s.shedMem.shed(fp, t)
	s.dropRetry(it.key, reason)
}

// dropRetry leaves a retransmission of a shed packet unanswered; its
// fingerprint stays remembered, so the router's next copy tries again.
func (s *Server) dropRetry(key dedupeKey, reason *atomic.Uint64) {
	s.dedupe.forget(key)
	reason.Add(1)
	s.Stats.count(nettportal.OutcomeShed)
}

// expireRetry drops the retransmissions that waited in the retry queue
// longer than RetryQueueDelay: their router has given up on them. While
// shutting down nothing is dropped (Shutdown answers what is queued).
func (s *Server) expireRetry(now time.Time) {
	if s.RetryQueueDelay < 0 || s.closing.Load() {
		return
	}
	var buf [64]item
	for _, q := range []*retryQueue{s.quietRetry, s.retry} {
		for {
			expired := q.popExpired(buf[:0], now.Add(-s.RetryQueueDelay))
			for i := range expired {
				it := &expired[i]
				k := it.ticket.finish()
				s.shedMem.shed(it.fp, it.ticket)
				s.dropRetry(k, &s.Stats.RetryExpired)
			}
			if len(expired) < len(buf) {
				break
			}
		}
	}
}

// settleTickets closes the tickets of the batch's retransmissions once
// their commit is decided: each then answers (or forgets) the copy its
// router sent last, and its fingerprint is dropped, so a copy after this
// is a new request.
func (s *Server) settleTickets(batch []item) {
	for i := range batch {
		it := &batch[i]
		if it.ticket == nil {
			continue
		}
		it.key = it.ticket.finish()
		it.addr, it.id, it.auth = it.key.addr, it.key.id, it.key.auth
		s.shedMem.forget(it.fp, it.ticket)
	}
}

// nextBatch waits for work and fills batch: fresh packets first, up to
// batchLimit, each taken through admit, so a batch fills with packets that
// can still be answered in time; retransmissions of shed packets only when
// the fresh queue is empty and they are welcome (retriesWelcome), and at
// most a quarter of a batch, so a fresh packet arriving meanwhile waits
// for a short commit. False: the queue is closed and nothing is left.
func (s *Server) nextBatch(batch []item, since *atomic.Int64) ([]item, bool) {
	limit := s.batchLimit()
	share := max(limit/4, 1)
	shed := 0
	defer func() { s.logShed(shed) }()
	take := func(it item) {
		now := s.Now()
		// Behind counts a batch's oldest packet from the moment it is
		// taken (before OnDequeue learns of it). Routers are taken in
		// turn, so a later packet may be older than the first.
		oldest := since.Load()
		if at := it.at.UnixNano(); len(batch) == 0 || at < oldest {
			since.Store(at)
		}
		if s.admit(&it, now) {
			batch = append(batch, it)
			return
		}
		shed++
		if len(batch) == 0 {
			oldest = 0
		}
		since.Store(oldest)
	}
	// Shutting down: what the retry queues hold is answered too.
	closed := func() ([]item, bool) {
		batch = s.quietRetry.pop(batch, share)
		batch = s.retry.pop(batch, min(share, limit-len(batch)))
		return batch, len(batch) > 0
	}
	// A quiet router's retransmissions first: they are few, and they
	// would otherwise wait behind another router's storm.
	takeQuiet := func() {
		if batch = s.quietRetry.pop(batch, share); len(batch) > 0 {
			since.Store(oldestArrival(batch).UnixNano())
		}
	}
	takeQuiet()
	for len(batch) == 0 {
		switch it, got := s.fresh.tryPop(); got {
		case popped:
			take(it)
			continue
		case queueClosed:
			return closed()
		}
		s.noteDrained()
		now := s.Now()
		s.expireRetry(now)
		if s.retriesWelcome(now) {
			if batch = s.retry.pop(batch, share); len(batch) > 0 {
				return batch, true
			}
		}
		// Not welcome yet: the worker whose commit ends last signals
		// ready when retries wait.
		select {
		case <-s.fresh.ready:
		case <-s.fresh.done:
		case <-s.retry.ready:
		case <-s.quietRetry.ready:
			takeQuiet()
		}
	}
	for len(batch) < limit {
		switch it, got := s.fresh.tryPop(); got {
		case popped:
			take(it)
		case queueClosed:
			return batch, true
		default:
			// Drained: spare room goes to the retry queue.
			s.noteDrained()
			if !s.retriesWelcome(s.Now()) {
				return batch, true
			}
			return s.retry.pop(batch, min(limit-len(batch), share)), true
		}
	}
	s.noteStandingQueue()
	return batch, true
}

// noteStandingQueue learns, when a batch was cut at its limit, whether
// fresh packets are still queued behind it, and keeps the listener
// overloaded (see overloadHold) once that has been so at every cut, cuts
// following each other closely, for longer than MaxQueueDelay: the
// workers are not catching up. Without this the tighter budget would
// lapse once it had shed every packet that would have waited past
// MaxQueueDelay, and the queue would grow old again before the budget
// returned. A backlog the workers clear within MaxQueueDelay is not an
// overload, nor is a stall: a gap of more than half of MaxQueueDelay
// between cuts starts the count again.
func (s *Server) noteStandingQueue() {
	now := s.Now().UnixNano()
	lastCut := s.lastCut.Swap(now)
	if s.fresh.len() == 0 || s.MaxQueueDelay <= 0 {
		s.noteDrained()
		return
	}
	since := s.standingSince.Load()
	switch {
	case since == 0 || now-lastCut > int64(s.MaxQueueDelay/2):
		s.standingSince.Store(now)
	case now-since > int64(s.MaxQueueDelay):
		// The routers whose packets stand in the queue: the others' are
		// taken in turn ahead of the backlog, and keep MaxQueueDelay.
		until := now + int64(overloadHold*s.MaxQueueDelay)
		s.overloadUntil.Store(until)
		// A line whose oldest packet waited less than half of
		// MaxQueueDelay is taken in turn, not standing.
		s.fresh.eachStanding(time.Unix(0, now-int64(s.MaxQueueDelay/2)), func(overloadUntil *atomic.Int64) { overloadUntil.Store(until) })
	}
}

// noteDrained learns that a worker found no fresh packet left to take.
func (s *Server) noteDrained() {
	if s.standingSince.Load() != 0 {
		s.standingSince.Store(0)
	}
}

// retriesWelcome says whether a worker may take retransmissions of shed
// packets at now. While overloaded (see OverloadQueueDelay), only when no
// other commit is in flight: an idle worker is not spare capacity while the database is busy
// with the others' batches. Under sustained overload the capacity answers
// as many packets either way; spent on fresh packets the answers arrive
// inside the routers' timeout, spent on retransmissions each answer is a
// second or more late and sheds a fresh packet, which comes back as one
// more retransmission. Otherwise, and while shutting down, always.
func (s *Server) retriesWelcome(now time.Time) bool {
	return s.inFlight.Load() == 0 || now.UnixNano() >= s.overloadUntil.Load() || s.closing.Load()
}

// admit accounts for a fresh packet leaving the queue at now: its
// router's share is free again, and when it waited past its budget
// (budgetOf) it is dropped unanswered (false). Its answer would arrive
// after the router gave up on it: committing it only delays the packets
// behind. Its fingerprint is
// remembered, so the router's retransmission waits in the retry queue
// instead of competing with new packets.
func (s *Server) admit(it *item, now time.Time) bool {
	it.queued.Add(-1)
	budget := s.budgetOf(it, now)
	waited := now.Sub(it.at)
	if s.OnDequeue != nil {
		s.OnDequeue(waited)
	}
	// Shutdown promised to answer what is queued: nothing is shed then.
	if s.MaxQueueDelay <= 0 || waited <= budget || s.closing.Load() {
		return true
	}
	if waited > s.MaxQueueDelay {
		until := now.Add(overloadHold * s.MaxQueueDelay).UnixNano()
		s.overloadUntil.Store(until)
		if it.overloadUntil != nil {
			it.overloadUntil.Store(until)
		}
	}
	s.shedMem.shed(s.shedMem.fingerprint(it.addr, it.rec.Raw), nil)
	s.dedupe.forget(it.key)
	s.Stats.ShedFresh.Add(1)
	s.Stats.count(nettportal.OutcomeShed)
	return false
}

// logShed says, rate-limited, that n packets were shed.
func (s *Server) logShed(n int) {
	if n == 0 {
		return
	}
	// Shedding is the listener's own state, not one router's: logged
	// under the unspecified address's share of the limiter.
	if ok, _ := s.logLimit.allow(netip.Addr{}, time.Now()); !ok {
		return
	}
	s.Log.Warn().Int("shed", n).Dur("max_queue_delay", s.MaxQueueDelay).Dur("budget", s.budget(s.Now())).
		Msg("overloaded: dropped packets that waited too long for their batch; the routers will retransmit")
}

// budget is how long a fresh packet may wait at now: MaxQueueDelay, or
// the tighter OverloadQueueDelay while overloaded (see overloadHold).
func (s *Server) budget(now time.Time) time.Duration {
	return s.budgetWhile(&s.overloadUntil, now)
}

// budgetOf is budget for it's router: the tighter budget holds for the
// routers whose packets waited past MaxQueueDelay or stood in the queue,
// not for one whose packets are taken in turn ahead of another's storm.
// A packet without a router's state (none in the listener) has the
// listener's.
func (s *Server) budgetOf(it *item, now time.Time) time.Duration {
	if it.overloadUntil == nil {
		return s.budget(now)
	}
	return s.budgetWhile(it.overloadUntil, now)
}

// budgetWhile is OverloadQueueDelay before overloadUntil, else
// MaxQueueDelay.
func (s *Server) budgetWhile(overloadUntil *atomic.Int64, now time.Time) time.Duration {
	if now.UnixNano() < overloadUntil.Load() {
		return s.OverloadQueueDelay
	}
	return s.MaxQueueDelay
}

// RetryDepth is the number of retransmissions of shed packets waiting in
// the retry queues (QueueDepth counts them too).
func (s *Server) RetryDepth() int {
	s.mu.Lock()
	q, quiet := s.retry, s.quietRetry
	s.mu.Unlock()
	if q == nil {
		return 0
	}
	return q.len() + quiet.len()
}
