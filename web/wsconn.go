package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nettportal/nettportal"
)

// checkOrigin allows pages from the same host as the request, or from a
// configured origin. Cross-site pages must not ride on the login cookie.
// Clients that send no Origin are not browsers and authenticate with a
// token or a cookie they hold themselves.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	if s.publicOrigin != "" {
		// Behind a proxy the Host may be rewritten; the public origin is
		// the one browsers are on.
		return strings.EqualFold(origin, s.publicOrigin)
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	id, err := s.authenticate(r)
	if err != nil {
		if errors.Is(err, nettportal.ErrUnauthorized) {
			writeError(w, http.StatusUnauthorized, "not logged in")
			return
		}
		s.fail(w, r, err)
		return
	}
	if !s.checkOrigin(r) {
		writeError(w, http.StatusForbidden, "origin "+r.Header.Get("Origin")+" may not open the WebSocket")
		return
	}
	up := websocket.Upgrader{CheckOrigin: s.checkOrigin, EnableCompression: true}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	cred, _ := requestCredential(r) // authenticate has read it already
	c := &wsClient{conn: conn, cred: cred, user: id.user, send: make(chan wsOut, s.WSSendBuffer), done: make(chan struct{}),
		wake: make(chan struct{}, 1)}
	h := s.hub
	if !h.admit(c, r) {
		return
	}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	go h.writeLoop(c)
	go h.subscribeLoop(c)
	h.sendJSON(c, map[string]any{"type": "hello", "user": id.user.Name, "role": id.user.Role})
	h.readLoop(r.Context(), c)
}

func (h *hub) writeLoop(c *wsClient) {
	ping := time.NewTicker(wsPingEvery)
	defer ping.Stop()
	defer h.drop(c)
	for {
		select {
		case <-c.done:
			return
		case msg := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(h.s.WSWriteTimeout)) //nolint:errcheck // the write reports it
			if err := writeOut(c.conn, msg); err != nil {
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.s.WSWriteTimeout)); err != nil {
				return
			}
		}
	}
}

// writeOut writes msg as one text message: a snapshot after its
// socket's header, which is what the shared body leaves out.
func writeOut(conn *websocket.Conn, msg wsOut) error {
	if msg.seq == 0 {
		return conn.WriteMessage(websocket.TextMessage, msg.body)
	}
	w, err := conn.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	var header [48]byte
	h := append(header[:0], `{"type":"sessions","seq":`...)
	h = strconv.AppendInt(h, msg.seq, 10)
	h = append(h, ',')
	if _, err := w.Write(h); err != nil {
		return err
	}
	if _, err := w.Write(msg.body); err != nil {
		return err
	}
	return w.Close()
}

func (h *hub) readLoop(ctx context.Context, c *wsClient) {
	defer h.drop(c)
	c.conn.SetReadLimit(wsMaxMessage)
	c.conn.SetReadDeadline(time.Now().Add(wsReadTimeout)) //nolint:errcheck // the read reports it
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(wsReadTimeout))
	})
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(wsReadTimeout)) //nolint:errcheck // the read reports it
		var m subscribeMsg
		if err := json.Unmarshal(data, &m); err != nil {
			h.sendJSON(c, map[string]string{"type": "error", "error": "bad JSON: " + err.Error()})
			continue
		}
		if m.Type != "subscribe" {
			h.sendJSON(c, map[string]string{"type": "error", "error": "unknown message type " + strconv.Quote(m.Type) + " (want subscribe)"})
			continue
		}
		// The rate first: a subscribe over it costs no query.
		if !h.allowSubscribe(c) {
			return
		}
		// Roles and the credential are checked again on every subscribe:
		// the socket may be long-lived, the credential not.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		id, err := h.s.check(cctx, c.cred)
		cancel()
		if !h.applyCheck(c, id, err) {
			return
		}
		if err != nil {
			h.sendJSON(c, map[string]string{"type": "error", "error": "internal error"})
			continue
		}
		// The first snapshot is queried for this socket, not by the hub's
		// push, so a new view shows at once (or as soon as a snapshot
		// query frees); it also validates the view.
		h.queueSubscribe(c, m)
	}
}
