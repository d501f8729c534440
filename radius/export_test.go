package radius

import "time"

// ExpireDedupe runs one expiry pass of s's dedupe cache at now, as the
// server's once-a-second loop does, so tests move past the window
// without waiting for the loop.
func ExpireDedupe(s *Server, now time.Time) { s.dedupe.expire(now) }

// Closing says whether Shutdown has begun.
func Closing(s *Server) bool { return s.closing.Load() }

// BehindInFlight says whether a commit in flight makes s behind (one of
// Behind's three reasons).
func BehindInFlight(s *Server) bool { return s.inFlightBehind(s.Now().UnixNano()) }

// NoteRead tells s what its reader would after a read that filled (full)
// or did not fill its batch.
func NoteRead(s *Server, full bool) { s.noteRead(full) }
