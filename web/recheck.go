package web

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nettportal/nettportal"
)

// wsRecheckConcurrency bounds the credential queries of one re-check.
const wsRecheckConcurrency = 4

// closeCredentialEnded is the WebSocket close code for a socket whose
// token, login or user ended (4000-4999 are for applications; the UI
// shows the login page on it).
const closeCredentialEnded = 4001

// recheckLoop closes sockets whose credential ended: at once when any
// instance announces a change, and every WSRecheck in case a
// notification was lost (a login expiring announces nothing).
func (h *hub) recheckLoop(ctx context.Context) {
	if h.s.AuthChanges != nil {
		go func() {
			err := h.s.AuthChanges.ListenAuthChanged(ctx, func() {
				select {
				case h.authChanged <- struct{}{}:
				default:
				}
			})
			if err != nil {
				h.s.Log.Error().Err(err).Msg("credential change listener stopped")
			}
		}()
	}
	t := time.NewTicker(h.s.WSRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.authChanged:
		case <-t.C:
		}
		h.recheck(ctx)
	}
}

// recheck checks every open socket's credential once (sockets sharing one
// credential share the query) and closes those whose credential ended.
// A database error keeps the sockets: the next re-check decides.
func (h *hub) recheck(ctx context.Context) {
	groups := map[credential][]*wsClient{}
	h.mu.Lock()
	for c := range h.clients {
		groups[c.cred] = append(groups[c.cred], c)
	}
	h.mu.Unlock()
	sem := make(chan struct{}, wsRecheckConcurrency)
	var wg sync.WaitGroup
	for cred, clients := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			id, err := h.s.check(qctx, cred)
			cancel()
			for _, c := range clients {
				h.applyCheck(c, id, err)
			}
		}()
	}
	wg.Wait()
}

// applyCheck closes c if its credential ended, or takes on the user's
// current role. It reports whether c stays open.
func (h *hub) applyCheck(c *wsClient, id identity, err error) bool {
	if errors.Is(err, nettportal.ErrUnauthorized) || (err == nil && !id.user.Role.AtLeast(nettportal.RoleViewer)) {
		c.mu.Lock()
		name := c.user.Name
		c.mu.Unlock()
		h.s.Log.Info().Str("user", name).Msg("websocket closed: its token, login or user ended")
		c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCredentialEnded, "logged out"), //nolint:errcheck // closing anyway
			time.Now().Add(time.Second))
		h.drop(c)
		return false
	}
	if err != nil {
		h.s.Log.Warn().Err(err).Msg("websocket credential re-check")
		return true
	}
	c.mu.Lock()
	c.user = id.user
	c.mu.Unlock()
	return true
}
