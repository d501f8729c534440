package web

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nettportal/nettportal"
	rad "layeh.com/radius"
)

// QuarantineSource lists the accounting records PostgreSQL refused; the
// router source implements it when it can (the store does).
type QuarantineSource interface {
	Quarantine(ctx context.Context, routerID int64, limit int) ([]nettportal.QuarantinedRecord, error)
}

// Bounds of GET /api/quarantine: the list is for an operator to read, and
// each record carries its packet.
const (
	defaultQuarantineLimit = 50
	maxQuarantineLimit     = 500
)

// quarantineJSON is one quarantined record as the routers page shows it:
// the decoded fields operators look for first, as the server stored them
// (escaped: `\xNN` for bytes that are not UTF-8 text).
type quarantineJSON struct {
	ID               int64     `json:"id"`
	FirstSeen        time.Time `json:"first_seen"`
	LastSeen         time.Time `json:"last_seen"`
	Repeats          int64     `json:"repeats"`
	RouterID         int64     `json:"router_id"`
	Router           string    `json:"router"`
	Source           string    `json:"source"`
	Status           string    `json:"status"`
	Username         string    `json:"username"`
	AcctSessionID    string    `json:"acct_session_id"`
	AcctUniqueID     string    `json:"acctuniqueid"`
	CallingStationID string    `json:"calling_station_id"`
	EventTime        string    `json:"event_time"`
	SessionTime      any       `json:"session_time"`
	Error            string    `json:"error"`
	SQLState         string    `json:"sqlstate"`
	// RawHex is the packet as received, for admins only: an
	// Accounting-Request holds no password, but its authenticator lets
	// anyone holding it test guesses of the router's secret offline.
	RawHex string `json:"raw_hex,omitempty"`
}

// listQuarantine answers GET /api/quarantine?router=ID-or-name&limit=N
// (1..500, default 50): the quarantined records, newest copy first, with
// "more" set when there are more than limit.
func (s *Server) listQuarantine(w http.ResponseWriter, r *http.Request, u nettportal.User) error {
	src, ok := s.Routers.(QuarantineSource)
	if !ok {
		return httpError(http.StatusServiceUnavailable, "quarantine not available")
	}
	q := r.URL.Query()
	limit := defaultQuarantineLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxQuarantineLimit {
			return fmt.Errorf("limit must be a whole number from 1 to %d, not %q: %w", maxQuarantineLimit, v, nettportal.ErrInvalid)
		}
		limit = n
	}
	var routerID int64
	var routerName *string
	if v := q.Get("router"); v != "" {
		rt, err := s.Routers.Router(r.Context(), v)
		if err != nil {
			return err
		}
		routerID, routerName = rt.ID, &rt.Name
	}
	recs, err := src.Quarantine(r.Context(), routerID, limit+1)
	if err != nil {
		return err
	}
	more := len(recs) > limit
	recs = recs[:min(len(recs), limit)]
	names := map[int64]string{}
	if routers, err := s.Routers.Routers(r.Context()); err == nil {
		for _, rt := range routers {
			names[rt.ID] = rt.Name
		}
	}
	admin := u.Role.AtLeast(nettportal.RoleAdmin)
	out := make([]quarantineJSON, len(recs))
	for i, e := range recs {
		text := func(k string) string { v, _ := e.Fields[k].(string); return v }
		out[i] = quarantineJSON{
			ID: e.ID, FirstSeen: e.At, LastSeen: e.LastSeen, Repeats: e.Repeats, RouterID: e.RouterID, Router: names[e.RouterID],
			Source: e.Source, Status: e.Status.String(), Username: text("username"), AcctSessionID: text("acct_session_id"),
			AcctUniqueID: e.AcctUniqueID, CallingStationID: text("calling_station_id"), EventTime: text("event_time"),
			SessionTime: e.Fields["session_time"], Error: e.Error, SQLState: e.SQLState,
		}
		if admin && len(e.Raw) > 0 {
			out[i].RawHex = hex.EncodeToString(e.Raw[:min(len(e.Raw), rad.MaxPacketLength)])
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"router": routerName, "limit": limit, "more": more, "records": out})
	return nil
}
