package routerostest

// The fake's fault hooks (unreachable, delay, a failing command) and its
// inspection methods: what clients sent, how often they logged in, and
// Await helpers that wait for a command or a stream.

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// SetUnreachable(true) closes the current connections and makes the
// server close new ones as soon as they are accepted (the listener stays
// bound, so clients see a reset rather than a refused dial).
func (s *Server) SetUnreachable(b bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	s.unreachable = b
	if b {
		s.closeConnsLocked()
	}
}

// SetDelay sets a delay before the reply to every command.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// FailNext makes the next command on path (e.g. "/ppp/active/print")
// answer !trap =message=message. Calls queue up.
func (s *Server) FailNext(path, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	s.failNext[path] = append(s.failNext[path], message)
}

// Commands returns every sentence received so far, in order.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// Logins returns the number of successful logins.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// AwaitCommand waits until a command with that path (its first word, e.g.
// "/ppp/active/remove") has been received, counting ones received before
// the call, and returns the first such command.
func (s *Server) AwaitCommand(ctx context.Context, path string) (Command, error) {
	next := 0
	for {
		s.mu.Lock()
		s.initLocked()
		for ; next < len(s.commands); next++ {
			if s.commands[next].Path() == path {
				c := s.commands[next]
				s.mu.Unlock()
				return c, nil
			}
		}
		ch := s.cmdNotify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Command{}, fmt.Errorf("await command %s: %w", path, ctx.Err())
		}
	}
}

// AwaitStream waits until a follow, listen or interval print with that
// path (e.g. "/interface/listen") has taken its first look at the rows,
// counting ones that did before the call: a change made after it returns
// reaches that stream. A listen started but not yet looking would take
// the change as an existing row and never send it.
func (s *Server) AwaitStream(ctx context.Context, path string) error {
	for {
		s.mu.Lock()
		s.initLocked()
		found := slices.Contains(s.looked, path)
		ch := s.cmdNotify
		s.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("await stream %s: %w", path, ctx.Err())
		}
	}
}

// streamLooked records that a stream took its first look at the rows.
func (s *Server) streamLooked(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	s.looked = append(s.looked, path)
	close(s.cmdNotify)
	s.cmdNotify = make(chan struct{})
}

func (s *Server) record(words []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, Command{Words: words, At: time.Now()})
	close(s.cmdNotify)
	s.cmdNotify = make(chan struct{})
}
