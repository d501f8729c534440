package radius

import (
	"net/netip"
	"sync"
	"time"
)

func (s *Server) logDrop(msg string, src netip.Addr, err error) {
	ok, suppressed := s.logLimit.allow(src, time.Now())
	if !ok {
		return
	}
	ev := s.Log.Warn().Err(err).Str("addr", src.String())
	if suppressed > 0 {
		ev = ev.Int("suppressed_before", suppressed)
	}
	ev.Msg(msg)
}

// Log limits: a few lines a second per source address, so junk from one
// address cannot hide another router's errors, and a ceiling for all
// sources together, so a flood from spoofed addresses cannot fill the disk.
const (
	logPerSource  = 5
	logAllSources = 100
	// logMaxSources bounds the limiter's memory; past it the per-source
	// state is forgotten at the next window (the ceiling still holds).
	logMaxSources = 4096
)

// logLimiter is a per-source-address log rate limiter with a global
// ceiling, in one-second windows.
type logLimiter struct {
	mu     sync.Mutex
	window time.Time
	total  int
	per    map[netip.Addr]*sourceLog
}

type sourceLog struct {
	n          int // lines this window
	suppressed int // lines dropped since the last one let through
}

// allow says whether a line from src may be logged now, and how many of
// src's lines were suppressed before it.
func (l *logLimiter) allow(src netip.Addr, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[netip.Addr]*sourceLog{}
	}
	if now.Sub(l.window) >= time.Second {
		l.window, l.total = now, 0
		if len(l.per) >= logMaxSources {
			clear(l.per)
		}
		for a, e := range l.per {
			if e.n == 0 && e.suppressed == 0 {
				delete(l.per, a) // quiet for a whole window
				continue
			}
			e.n = 0
		}
	}
	e := l.per[src]
	if e == nil {
		if len(l.per) >= logMaxSources {
			return false, 0
		}
		e = &sourceLog{}
		l.per[src] = e
	}
	if e.n >= logPerSource || l.total >= logAllSources {
		e.suppressed++
		return false, 0
	}
	e.n++
	l.total++
	suppressed := e.suppressed
	e.suppressed = 0
	return true, suppressed
}
