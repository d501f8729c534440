package radius

import "time"

// Behind says whether accounting is behind its load: the readers have
// found the socket's buffer fuller than a read for more than
// BehindLatency, or a packet waiting for its answer (queued or in a
// commit) arrived longer ago than that, or more than a batch's worth of
// packets is queued, or the last batch answered, within the last second,
// waited longer than BehindLatency.
// Other work on the same machine and database (the web page's queries,
// exports) can wait while it says so: on a small VM the CPU goes to the
// commits first.
func (s *Server) Behind() bool {
	s.mu.Lock()
	fresh := s.fresh
	s.mu.Unlock()
	queued := 0
	if fresh != nil {
		queued = fresh.len()
	}
	now := s.Now().UnixNano()
	return queued > s.MaxBatch || s.backlogBehind(now) || s.inFlightBehind(now) || s.answeredBehind(now)
}

// noteRead learns whether a read took as many datagrams as it could: the
// socket's buffer held more. Packets waiting there are invisible to the
// queue and the commits, and on a machine short of CPU they are where the
// time goes.
func (s *Server) noteRead(full bool) {
	switch {
	case !full:
		if s.backlogSince.Load() != 0 {
			s.backlogSince.Store(0)
		}
	case s.backlogSince.Load() == 0:
		s.backlogSince.CompareAndSwap(0, s.Now().UnixNano())
	}
}

// backlogBehind says whether the readers have found the socket's buffer
// fuller than a read for longer than BehindLatency.
func (s *Server) backlogBehind(now int64) bool {
	since := s.backlogSince.Load()
	return since != 0 && now-since > int64(s.BehindLatency)
}

// inFlightBehind says whether a batch being committed at now holds a
// packet older than BehindLatency.
func (s *Server) inFlightBehind(now int64) bool {
	s.mu.Lock()
	inFlight := s.inFlightSince
	s.mu.Unlock()
	for i := range inFlight {
		if since := inFlight[i].Load(); since != 0 && now-since > int64(s.BehindLatency) {
			return true
		}
	}
	return false
}

// answeredBehind says whether the last batch answered, within a second of
// now, waited longer than BehindLatency.
func (s *Server) answeredBehind(now int64) bool {
	at := s.answeredAt.Load()
	if at == 0 || now-at > int64(time.Second) {
		return false
	}
	return time.Duration(s.answerLatency.Load()) > s.BehindLatency
}

// noteLatency records, just before batch is answered, how long its oldest
// packet waited for the answer.
func (s *Server) noteLatency(batch []item) {
	if len(batch) == 0 {
		return
	}
	now := s.Now()
	s.answerLatency.Store(int64(now.Sub(oldestArrival(batch))))
	s.answeredAt.Store(now.UnixNano())
}

// oldestArrival is when the batch's oldest packet arrived.
func oldestArrival(batch []item) time.Time {
	var oldest time.Time
	for i := range batch {
		if i == 0 || batch[i].at.Before(oldest) {
			oldest = batch[i].at
		}
	}
	return oldest
}
