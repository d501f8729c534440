package routerostest

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// conn is one client connection. Commands are handled one at a time in
// the read loop, as their replies must not interleave for untagged
// clients; only follow/listen streams run on their own goroutines.
type conn struct {
	s  *Server
	nc net.Conn
	br *bufio.Reader

	wmu sync.Mutex // serializes whole sentences on the wire
	bw  *bufio.Writer

	done      chan struct{}
	closeOnce sync.Once

	// Owned by the read loop.
	loggedIn  bool
	challenge []byte

	smu     sync.Mutex
	streams map[string]*stream // running follow/listen commands by tag
}

type stream struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// request is a parsed command sentence.
type request struct {
	path    string
	attrs   map[string]string
	queries []string
	tag     string
	hasTag  bool
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s:       s,
		nc:      nc,
		br:      bufio.NewReader(nc),
		bw:      bufio.NewWriter(nc),
		done:    make(chan struct{}),
		streams: make(map[string]*stream),
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.s.dropConn(c)
	defer c.close()
	for {
		words, err := readSentence(c.br)
		if err != nil {
			return
		}
		if len(words) == 0 {
			continue
		}
		c.s.record(words)
		if !c.handle(parseRequest(words)) {
			return
		}
	}
}

func parseRequest(words []string) request {
	req := request{path: words[0], attrs: make(map[string]string)}
	for _, w := range words[1:] {
		switch {
		case strings.HasPrefix(w, "="):
			k, v, _ := strings.Cut(w[1:], "=")
			req.attrs[k] = v
		case strings.HasPrefix(w, "?"):
			req.queries = append(req.queries, w[1:])
		case strings.HasPrefix(w, ".tag="):
			req.tag, req.hasTag = w[len(".tag="):], true
		}
	}
	return req
}

// send writes one reply sentence of req, echoing its .tag.
func (c *conn) send(req request, word string, attrs ...string) bool {
	words := make([]string, 0, len(attrs)+2)
	words = append(words, word)
	words = append(words, attrs...)
	if req.hasTag {
		words = append(words, ".tag="+req.tag)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := writeSentence(c.bw, words); err != nil {
		c.close()
		return false
	}
	return true
}

func (c *conn) finish(req request, attrs ...string) bool { return c.send(req, "!done", attrs...) }

// trap answers with !trap and the closing !done, as RouterOS does.
func (c *conn) trap(req request, category int, message string) bool {
	attrs := []string{"=message=" + message}
	if category >= 0 {
		attrs = append([]string{"=category=" + strconv.Itoa(category)}, attrs...)
	}
	return c.send(req, "!trap", attrs...) && c.finish(req)
}

// handle runs one command; false means the connection must close.
func (c *conn) handle(req request) bool {
	c.s.mu.Lock()
	delay := c.s.delay
	var fail string
	failing := false
	if q := c.s.failNext[req.path]; len(q) > 0 {
		fail, failing = q[0], true
		c.s.failNext[req.path] = q[1:]
	}
	c.s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return false
		}
	}
	if failing {
		return c.trap(req, -1, fail)
	}
	switch req.path {
	case "/login":
		return c.login(req)
	case "/quit":
		c.send(req, "!fatal", "=message=session terminated on request")
		return false
	}
	if !c.loggedIn {
		return c.trap(req, -1, "not logged in")
	}
	if req.path == "/cancel" {
		return c.cancel(req)
	}
	if req.path == "/ppp/active/remove" {
		return c.remove(req)
	}
	menu, verb := splitPath(req.path)
	if !knownMenu(menu) {
		return c.trap(req, -1, "no such command")
	}
	switch verb {
	case "print", "getall":
		if _, ok := req.attrs["follow"]; ok {
			return c.startStream(req, menu, false)
		}
		if _, ok := req.attrs["follow-only"]; ok {
			return c.startStream(req, menu, true)
		}
		if _, ok := req.attrs["interval"]; ok {
			return c.startStream(req, menu, false)
		}
		return c.print(req, menu)
	case "listen":
		return c.startStream(req, menu, true)
	}
	return c.trap(req, -1, "no such command")
}

func splitPath(p string) (menu, verb string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

func knownMenu(menu string) bool {
	switch menu {
	case "/ppp/active", "/ppp/secret", "/interface", "/system/identity", "/system/resource":
		return true
	}
	return false
}

func (c *conn) login(req request) bool {
	s := c.s
	s.mu.Lock()
	user, pass, legacy := s.Username, s.Password, s.LegacyLogin
	s.mu.Unlock()
	if user == "" {
		user = "admin"
	}
	name, hasName := req.attrs["name"]
	ok := false
	if resp, isResponse := req.attrs["response"]; isResponse {
		if c.challenge != nil {
			h := md5.New()
			h.Write([]byte{0})
			h.Write([]byte(pass))
			h.Write(c.challenge)
			ok = hasName && name == user && resp == "00"+hex.EncodeToString(h.Sum(nil))
			c.challenge = nil
		}
	} else if legacy {
		c.challenge = make([]byte, 16)
		rand.Read(c.challenge)
		return c.finish(req, "=ret="+hex.EncodeToString(c.challenge))
	} else {
		password, hasPassword := req.attrs["password"]
		ok = hasName && hasPassword && name == user && password == pass
	}
	if !ok {
		return c.trap(req, -1, "invalid user name or password (6)")
	}
	c.loggedIn = true
	s.mu.Lock()
	s.logins++
	s.mu.Unlock()
	return c.finish(req)
}

// proplist returns the requested fields, or nil for all of them.
func (req request) proplist() []string {
	p, ok := req.attrs[".proplist"]
	if !ok {
		return nil
	}
	if p == "" {
		return []string{}
	}
	return strings.Split(p, ",")
}

// selectRows reads the menu and applies the query; false after a trap.
func (c *conn) selectRows(req request, menu string) ([]row, bool, bool) {
	c.s.mu.Lock()
	all := c.s.rowsLocked(menu)
	c.s.mu.Unlock()
	var out []row
	for _, r := range all {
		m, err := match(req.queries, r)
		if err != nil {
			return nil, false, c.trap(req, -1, err.Error())
		}
		if m {
			out = append(out, r)
		}
	}
	return out, true, true
}

func (c *conn) print(req request, menu string) bool {
	rows, ok, alive := c.selectRows(req, menu)
	if !ok {
		return alive
	}
	if _, ok := req.attrs["count-only"]; ok {
		return c.finish(req, "=ret="+strconv.Itoa(len(rows)))
	}
	pl := req.proplist()
	for _, r := range rows {
		if !c.send(req, "!re", project(r, pl).words()...) {
			return false
		}
	}
	c.s.mu.Lock()
	empty := c.s.EmptyReplies
	c.s.mu.Unlock()
	if len(rows) == 0 && empty {
		if !c.send(req, "!empty") {
			return false
		}
	}
	return c.finish(req)
}

func (c *conn) remove(req request) bool {
	ids, ok := req.attrs[".id"]
	if !ok {
		ids, ok = req.attrs["numbers"]
	}
	if !ok || ids == "" {
		return c.trap(req, 1, "missing =.id=")
	}
	s := c.s
	s.mu.Lock()
	var removed []Session
	var missing bool
	for _, id := range strings.Split(ids, ",") {
		found := false
		for i, e := range s.sessions {
			if e.id == id || e.s.Name == id {
				removed = append(removed, e.s)
				s.sessions = append(s.sessions[:i:i], s.sessions[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			missing = true
			break
		}
	}
	if len(removed) > 0 {
		s.changedLocked()
	}
	onRemove := s.OnRemove
	s.mu.Unlock()
	if onRemove != nil {
		for _, sess := range removed {
			onRemove(sess)
		}
	}
	if missing {
		return c.trap(req, 0, "no such item")
	}
	return c.finish(req)
}
