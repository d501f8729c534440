// Package routerostest provides a fake MikroTik RouterOS API server that
// speaks the real wire protocol (length-prefixed words over TCP), for tests
// and the fleet simulator. It serves the handful of menus NettPortal reads
// (/ppp/active, /ppp/secret, /interface, /system/identity,
// /system/resource), lets tests inspect what clients sent, and injects
// faults: delays, traps, reboots and unreachability.
package routerostest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Session is one PPPoE session as the fake router has it.
type Session struct {
	Name     string // PPPoE username
	Service  string // "pppoe"; empty is shown as "pppoe"
	CallerID string // client MAC, upper case "AA:BB:CC:DD:EE:FF"
	Address  string // framed IPv4
	// Uptime is shown in RouterOS form ("3h12m7s"). It does not advance by
	// itself: the owner moves it with UpdateCounters, so tests stay exact.
	Uptime    time.Duration
	SessionID uint32 // shown as "0x8100000c"
	Radius    bool   // shown "true"/"false"
	Encoding  string
	RxBytes   uint64 // interface <pppoe-NAME> rx-byte = upload from subscriber
	TxBytes   uint64 // tx-byte = download to subscriber
	// Profile is the PPP profile. A session with a Profile and Radius false
	// also appears in /ppp/secret (unless SetSecret added that name), like a
	// router with local secrets.
	Profile string
}

// Secret is one /ppp/secret entry.
type Secret struct{ Name, Password, Profile, Service string }

// Command is one sentence the server received, in arrival order.
type Command struct {
	Words []string
	At    time.Time
}

// Path is the command word, e.g. "/ppp/active/remove".
func (c Command) Path() string {
	if len(c.Words) == 0 {
		return ""
	}
	return c.Words[0]
}

// Attr returns the value of the =key=value attribute word key.
func (c Command) Attr(key string) (string, bool) {
	for _, w := range c.Words[min(1, len(c.Words)):] {
		if v, ok := strings.CutPrefix(w, "="+key+"="); ok {
			return v, true
		}
		if w == "="+key {
			return "", true
		}
	}
	return "", false
}

// Server is a fake RouterOS API endpoint. Set the exported fields before
// Start; the zero value is usable. All methods are safe for concurrent use.
type Server struct {
	// Addr is host:port once started; before Start it is the address to
	// listen on ("" means 127.0.0.1:0).
	Addr string
	// Username and Password are the accepted credentials; zero value:
	// "admin" with an empty password.
	Username, Password string
	// Identity is the /system/identity name; zero: "MikroTik".
	Identity string
	// Version is the /system/resource version; zero: "7.16 (stable)".
	Version string
	// BootTime sets /system/resource uptime (now - BootTime); zero: the
	// time Start was called. Reboot moves it to the time of the reboot.
	BootTime time.Time
	// LegacyLogin makes /login without =response= answer with the pre-6.43
	// MD5 challenge (=ret=hex), whether or not it carries =name=, because
	// old routers ignored the name and password in the first /login; the
	// second /login =name= =response=00<md5(0x00+password+challenge)> logs in.
	LegacyLogin bool
	// EmptyReplies makes a print with no rows answer !empty then !done
	// (RouterOS 7.18+); otherwise just !done.
	EmptyReplies bool
	// OnRemove is called (outside locks) after a client removed an active
	// session through /ppp/active/remove.
	OnRemove func(Session)

	mu          sync.Mutex
	ln          net.Listener
	started     bool
	closed      bool
	conns       map[*conn]struct{}
	wg          sync.WaitGroup
	sessions    []*sessionEntry
	secrets     []*secretEntry
	nextID      uint64
	unreachable bool
	delay       time.Duration
	failNext    map[string][]string
	commands    []Command
	cmdNotify   chan struct{} // closed and replaced when a command arrives or a stream looks
	looked      []string      // paths of streams that took their first look at the rows
	change      chan struct{} // closed and replaced when menu data changes
	logins      int
}

type sessionEntry struct {
	s Session
	// ids in /ppp/active, /interface, and /ppp/secret (when implied)
	id, ifaceID, secretID string
}

type secretEntry struct {
	s  Secret
	id string
}

func (e *sessionEntry) name() string { return e.s.Name }
func (e *secretEntry) name() string  { return e.s.Name }

// NewServer returns a started server listening on 127.0.0.1:0. It panics
// if it cannot listen, like httptest.NewServer, since that is a broken test
// environment rather than something a caller could handle.
func NewServer() *Server {
	s := NewUnstartedServer("")
	if err := s.Start(); err != nil {
		panic(fmt.Sprintf("routerostest: %v", err))
	}
	return s
}

// NewUnstartedServer returns a server that will listen on addr ("" means
// 127.0.0.1:0) once Start is called.
func NewUnstartedServer(addr string) *Server {
	return &Server{Addr: addr}
}

// initLocked makes the zero value usable; every entry point calls it.
func (s *Server) initLocked() {
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
		s.failNext = make(map[string][]string)
		s.cmdNotify = make(chan struct{})
		s.change = make(chan struct{})
		s.nextID = 0x10
	}
}

// Start listens on Addr and serves connections until Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if s.started {
		return errors.New("start routerostest server: already started")
	}
	addr := s.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("start routerostest server: %w", err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.started = true
	if s.BootTime.IsZero() {
		s.BootTime = time.Now()
	}
	s.wg.Add(1)
	go s.acceptLoop(ln)
	return nil
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.mu.Lock()
		if s.closed || s.unreachable {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Close closes the listener and all connections and waits for every
// goroutine of the server to end.
func (s *Server) Close() {
	s.mu.Lock()
	s.initLocked()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	s.closeConnsLocked()
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) closeConnsLocked() {
	for c := range s.conns {
		c.close()
	}
}

func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) newIDLocked() string {
	id := fmt.Sprintf("*%X", s.nextID)
	s.nextID++
	return id
}

// changedLocked wakes every follow/listen stream.
func (s *Server) changedLocked() {
	close(s.change)
	s.change = make(chan struct{})
}

// SetSession adds the session, or replaces the one with the same Name,
// and returns its /ppp/active ".id" (like "*1A").
func (s *Server) SetSession(sess Session) (id string) {
	s.mutate(func() bool {
		e := named(&s.sessions, sess.Name, func() *sessionEntry {
			return &sessionEntry{id: s.newIDLocked(), ifaceID: s.newIDLocked(), secretID: s.newIDLocked()}
		})
		e.s, id = sess, e.id
		return true
	})
	return id
}

// UpdateCounters sets the interface counters and uptime of the named
// session; false when there is no such session.
func (s *Server) UpdateCounters(name string, rx, tx uint64, uptime time.Duration) bool {
	return s.changeSession(name, func(i int) {
		e := s.sessions[i]
		e.s.RxBytes, e.s.TxBytes, e.s.Uptime = rx, tx, uptime
	})
}

// RemoveSession drops the named session without calling OnRemove (the
// owner's own churn, not a client's action); false when there is none.
func (s *Server) RemoveSession(name string) bool {
	return s.changeSession(name, func(i int) { s.sessions = slices.Delete(s.sessions, i, i+1) })
}

// changeSession runs fn on the index of the named session, as a change;
// false when there is no such session.
func (s *Server) changeSession(name string, fn func(i int)) bool {
	return s.mutate(func() bool {
		i := slices.IndexFunc(s.sessions, func(e *sessionEntry) bool { return e.s.Name == name })
		if i >= 0 {
			fn(i)
		}
		return i >= 0
	})
}

// mutate runs fn under the lock; when fn reports that it changed
// something, every follow/listen stream wakes to see it.
func (s *Server) mutate(fn func() bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	changed := fn()
	if changed {
		s.changedLocked()
	}
	return changed
}

// named is the entry called name in *entries, or a new one that add makes
// and *entries gets.
func named[E interface{ name() string }](entries *[]E, name string, add func() E) E {
	for _, e := range *entries {
		if e.name() == name {
			return e
		}
	}
	e := add()
	*entries = append(*entries, e)
	return e
}

// Sessions returns a copy of the active sessions in creation order.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.sessions))
	for _, e := range s.sessions {
		out = append(out, e.s)
	}
	return out
}

// SetSecret adds a /ppp/secret entry, or replaces the one with that Name.
func (s *Server) SetSecret(sec Secret) {
	s.mutate(func() bool {
		named(&s.secrets, sec.Name, func() *secretEntry { return &secretEntry{id: s.newIDLocked()} }).s = sec
		return true
	})
}

// Reboot drops all sessions and connections and sets BootTime to now.
// Secrets survive, as they are configuration.
func (s *Server) Reboot() {
	s.mutate(func() bool {
		s.sessions = nil
		s.BootTime = time.Now()
		s.closeConnsLocked()
		return true
	})
}
