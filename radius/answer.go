package radius

import (
	"net"

	"golang.org/x/net/ipv4"
	rad "layeh.com/radius"

	"github.com/nettportal/nettportal"
)

func (s *Server) answer(batch []item) {
	now := s.Now()
	var out []ipv4.Message
	var sent []*item // out[i] answers sent[i]
	if s.batchConn != nil {
		out = make([]ipv4.Message, 0, min(len(batch), ioBatch))
		sent = make([]*item, 0, cap(out))
	}
	for i := range batch {
		it := &batch[i]
		resp := rad.Packet{Code: rad.CodeAccountingResponse, Identifier: it.id, Authenticator: it.auth, Secret: it.secret}
		b, err := resp.Encode()
		if err != nil {
			s.Log.Error().Err(err).Msg("encode Accounting-Response")
			s.Stats.count(nettportal.OutcomeSendFailed)
			continue
		}
		s.dedupe.done(it.key, b, now)
		if s.batchConn == nil {
			if _, err := s.conn.WriteToUDPAddrPort(b, it.addr); err != nil {
				s.Log.Warn().Err(err).Msg("send Accounting-Response")
				s.Stats.count(nettportal.OutcomeSendFailed)
				continue
			}
			s.countAnswer(it)
			continue
		}
		out = append(out, ipv4.Message{Buffers: [][]byte{b}, Addr: net.UDPAddrFromAddrPort(it.addr)})
		sent = append(sent, it)
		if len(out) == ioBatch {
			s.sendBatch(out, sent)
			out, sent = out[:0], sent[:0]
		}
	}
	if len(out) > 0 {
		s.sendBatch(out, sent)
	}
}

// countAnswer counts an answered packet under its outcome, and OutcomeOK
// ones by Acct-Status-Type.
func (s *Server) countAnswer(it *item) {
	s.Stats.Acknowledged.Add(1)
	// Before the outcome, which OnOutcome reports: whoever learns of the
	// answer from it finds it counted here too.
	if it.ticket != nil {
		s.Stats.RetryAnswered.Add(1)
	}
	s.Stats.count(it.outcome)
	if it.outcome != nettportal.OutcomeOK {
		return
	}
	switch it.rec.Status {
	case nettportal.StatusStart:
		s.Stats.Starts.Add(1)
	case nettportal.StatusInterimUpdate:
		s.Stats.Interims.Add(1)
	case nettportal.StatusStop:
		s.Stats.Stops.Add(1)
	default:
		s.Stats.OnOffs.Add(1)
	}
}

// sendBatch writes answers with as few system calls as it can (sendmmsg
// on Linux). An answer the kernel refuses is logged and skipped, as a lost
// datagram would be: the router retransmits and gets it from the cache.
func (s *Server) sendBatch(msgs []ipv4.Message, items []*item) {
	for len(msgs) > 0 {
		n, err := s.batchConn.WriteBatch(msgs, 0)
		if n > 0 {
			for _, it := range items[:n] {
				s.countAnswer(it)
			}
		}
		if err != nil {
			s.Log.Warn().Err(err).Msg("send Accounting-Response")
			if n <= 0 {
				// The first message is the one refused; skip it.
				s.Stats.count(nettportal.OutcomeSendFailed)
				n = 1
			}
		}
		if n <= 0 {
			return
		}
		msgs, items = msgs[n:], items[n:]
	}
}
