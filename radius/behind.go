package radius

import "time"

// Behind says whether accounting is behind its load: the last batch
// answered, within the last second, had a packet that waited longer than
// BehindLatency from its arrival to its answer, or more than a batch's
// worth of packets waits in the queue. Other work on the same machine
// and database (the web page's queries, exports) can wait while it says
// so: on a small VM the CPU goes to the commits first.
func (s *Server) Behind() bool {
	s.mu.Lock()
	queue := s.queue
	s.mu.Unlock()
	if len(queue) > s.MaxBatch {
		return true
	}
	at := s.answeredAt.Load()
	if at == 0 || s.Now().UnixNano()-at > int64(time.Second) {
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
	oldest := batch[0].at
	for i := range batch[1:] {
		if batch[i+1].at.Before(oldest) {
			oldest = batch[i+1].at
		}
	}
	now := s.Now()
	s.answerLatency.Store(int64(now.Sub(oldest)))
	s.answeredAt.Store(now.UnixNano())
}
