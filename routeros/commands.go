package routeros

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nettportal/nettportal"
)

// ActiveSessions reads /ppp/active and joins each session with the
// counters of its <pppoe-NAME> interface.
func (c *Client) ActiveSessions(ctx context.Context) ([]ActiveSession, error) {
	active, err := c.run(ctx, "/ppp/active/print",
		"=.proplist=.id,name,service,caller-id,address,uptime,session-id,radius")
	if err != nil {
		return nil, fmt.Errorf("read active sessions: %w", err)
	}
	ifaces, err := c.run(ctx, "/interface/print", "?type=pppoe-in", "=.proplist=name,rx-byte,tx-byte")
	if err != nil {
		return nil, fmt.Errorf("read pppoe interfaces: %w", err)
	}
	type counters struct{ rx, tx uint64 }
	byName := make(map[string]counters, len(ifaces))
	for _, m := range ifaces {
		rx, err1 := strconv.ParseUint(m["rx-byte"], 10, 64)
		tx, err2 := strconv.ParseUint(m["tx-byte"], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		byName[m["name"]] = counters{rx, tx}
	}
	out := make([]ActiveSession, 0, len(active))
	for _, m := range active {
		s := ActiveSession{
			ID:        m[".id"],
			Name:      m["name"],
			Service:   m["service"],
			CallerID:  m["caller-id"],
			Address:   m["address"],
			SessionID: NormalizeSessionID(m["session-id"]),
			Radius:    parseBool(m["radius"]),
		}
		if up, ok := m["uptime"]; ok {
			d, err := ParseUptime(up)
			if err != nil {
				// One odd row must not blind the reconciler to the rest.
				c.log.Warn().Err(err).Str("user", s.Name).Msg("routeros session uptime")
			}
			s.Uptime = d
		}
		if ct, ok := byName["<pppoe-"+s.Name+">"]; ok {
			s.InputOctets, s.OutputOctets, s.HasCounters = ct.rx, ct.tx, true
		}
		out = append(out, s)
	}
	return out, nil
}

// RemoveActive removes the /ppp/active entry whose name and session id
// both match, so a reconnect of the same user with a new session is never
// hit. It reports false, nil when there is no such entry (already gone).
func (c *Client) RemoveActive(ctx context.Context, name, sessionID string) (removed bool, err error) {
	want := NormalizeSessionID(sessionID)
	if name == "" || want == "" {
		return false, fmt.Errorf("remove active session %q/%q: name and session id required: %w", name, sessionID, nettportal.ErrInvalid)
	}
	rows, err := c.run(ctx, "/ppp/active/print", "?name="+name, "=.proplist=.id,name,session-id")
	if err != nil {
		return false, fmt.Errorf("find active session %q: %w", name, err)
	}
	id := ""
	for _, m := range rows {
		if m["name"] == name && NormalizeSessionID(m["session-id"]) == want {
			id = m[".id"]
			break
		}
	}
	if id == "" {
		return false, nil
	}
	if _, err := c.exec(ctx, false, "/ppp/active/remove", "=.id="+id); err != nil {
		if de, ok := isTrap(err); ok && strings.Contains(de.Sentence.Map["message"], "no such item") {
			// It ended between the print and the remove.
			return false, nil
		}
		return false, fmt.Errorf("remove active session %q (%s): %w", name, id, err)
	}
	c.log.Info().Str("user", name).Str("acct_session_id", want).Msg("routeros removed active session")
	return true, nil
}

// Secrets reads /ppp/secret (without passwords).
func (c *Client) Secrets(ctx context.Context) ([]Secret, error) {
	rows, err := c.run(ctx, "/ppp/secret/print", "=.proplist=name,profile,service")
	if err != nil {
		return nil, fmt.Errorf("read secrets: %w", err)
	}
	out := make([]Secret, 0, len(rows))
	for _, m := range rows {
		out = append(out, Secret{Name: m["name"], Profile: m["profile"], Service: m["service"]})
	}
	return out, nil
}

// Identity reads the router's /system/identity name (what it sends as
// NAS-Identifier).
func (c *Client) Identity(ctx context.Context) (string, error) {
	rows, err := c.run(ctx, "/system/identity/print")
	if err != nil {
		return "", fmt.Errorf("read identity: %w", err)
	}
	if len(rows) == 0 {
		return "", errors.New("read identity: empty reply")
	}
	return rows[0]["name"], nil
}

// Resource reads uptime, version and board name from /system/resource.
func (c *Client) Resource(ctx context.Context) (Resource, error) {
	rows, err := c.run(ctx, "/system/resource/print", "=.proplist=uptime,version,board-name")
	if err != nil {
		return Resource{}, fmt.Errorf("read resource: %w", err)
	}
	if len(rows) == 0 {
		return Resource{}, errors.New("read resource: empty reply")
	}
	up, err := ParseUptime(rows[0]["uptime"])
	if err != nil {
		return Resource{}, fmt.Errorf("read resource: %w", err)
	}
	return Resource{Uptime: up, Version: rows[0]["version"], BoardName: rows[0]["board-name"]}, nil
}

// NormalizeSessionID turns RouterOS's "0x8100000C" and an Acct-Session-Id
// like "8100000c" into the same 8 lowercase hex digits. Anything that is
// not hex is returned lower-cased, so it still compares equal to itself.
func NormalizeSessionID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "0x")
	if _, err := strconv.ParseUint(s, 16, 32); err == nil && len(s) < 8 {
		s = strings.Repeat("0", 8-len(s)) + s
	}
	return s
}

// parseBool accepts RouterOS 7's "true"/"false" and RouterOS 6's "yes"/"no".
func parseBool(s string) bool { return s == "true" || s == "yes" }
