package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nettportal/nettportal"
)

// insertQuarantineSQL keeps a record PostgreSQL refused. Every value is
// made storable first (escapeText, range checks): the quarantine must take
// whatever radacct could not. A record already there (same router and
// quarantineKey: the router sent it again, after the listener's dedupe
// window or with a new Identifier and Acct-Delay-Time) is one row: the
// first copy's packet, fields and error, with the copies counted in
// repeats and the newest in last_seen.
const insertQuarantineSQL = `INSERT INTO accounting_quarantine AS q
	(nas_id, source, status, acctuniqueid, raw, fields, error, sqlstate, record_key)
	VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
	ON CONFLICT (nas_id, record_key) DO UPDATE SET repeats = q.repeats + 1, last_seen = greatest(q.last_seen, now())`

// quarantineKey is a record's identity within its router, for the
// quarantine's dedupe. Not the raw bytes: a NAS's retransmission may carry
// a new Identifier and Acct-Delay-Time. A session has one Start and one
// Stop; its Interims differ by Acct-Session-Time (by the event second when
// they carry none); Accounting-On/Off by the event second. An event time
// without Event-Timestamp is receive time - Acct-Delay-Time, the same
// second for each copy but when the delays round apart: then the copy is a
// second row, never a lost one. Migration 0006 computes the same key for
// the rows kept before it.
func quarantineKey(r *nettportal.AccountingRecord) string {
	uid := escapeText(r.UniqueID)
	event := "|e=" + r.EventTime.UTC().Format("2006-01-02T15:04:05")
	st := strconv.FormatInt(int64(r.Status), 10)
	switch {
	case (r.Status == nettportal.StatusStart || r.Status == nettportal.StatusStop) && uid != "":
		return st + "|" + uid
	case r.Status == nettportal.StatusInterimUpdate && r.SessionTime != nil:
		return st + "|" + uid + "|t=" + strconv.FormatUint(uint64(*r.SessionTime), 10)
	default:
		return st + "|" + uid + event
	}
}

// escapeText makes s valid UTF-8 without NUL, losslessly for text that has
// neither: a backslash becomes `\\`, NUL `\x00` and each byte that is not
// part of valid UTF-8 `\xNN`.
func escapeText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.ContainsRune(s, '\\') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == 0:
			b.WriteString(`\x00`)
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// quarantineFields is the decoded record as JSON with every string escaped
// and times as text (json.Marshal refuses years past 9999).
func quarantineFields(r *nettportal.AccountingRecord) string {
	opt32 := func(v *uint32) any {
		if v == nil {
			return nil
		}
		return *v
	}
	opt64 := func(v *uint64) any {
		if v == nil {
			return nil
		}
		return strconv.FormatUint(*v, 10) // text: JSON numbers lose precision past 2^53
	}
	addr := func(s string) string { return escapeText(s) }
	m := map[string]any{
		"status": uint32(r.Status), "router_id": r.RouterID,
		"event_time": r.EventTime.UTC().Format(time.RFC3339Nano), "acctuniqueid": escapeText(r.UniqueID),
		"acct_session_id": escapeText(r.SessionID), "username": escapeText(r.Username), "realm": escapeText(r.Realm),
		"nas_ip": addr(r.NASIP.String()), "nas_identifier": escapeText(r.NASIdent), "nas_port_id": escapeText(r.NASPortID),
		"nas_port": opt32(r.NASPort), "nas_port_type": escapeText(r.NASPortTyp), "session_time": opt32(r.SessionTime),
		"input_octets": opt64(r.InputOctets), "output_octets": opt64(r.OutputOctets),
		"input_packets": opt32(r.InputPackets), "output_packets": opt32(r.OutputPackets),
		"authentic": escapeText(r.Authentic), "connect_info": escapeText(r.ConnectInfo),
		"called_station_id": escapeText(r.CalledStation), "calling_station_id": escapeText(r.CallingStation),
		"terminate_cause": escapeText(r.TerminateCause), "service_type": escapeText(r.ServiceType),
		"framed_protocol": escapeText(r.FramedProtocol), "framed_ip": addr(r.FramedIP.String()),
		"framed_ipv6": addr(r.FramedIPv6Addr.String()), "framed_ipv6_prefix": escapeText(r.FramedIPv6Pfx),
		"delegated_prefix": escapeText(r.DelegatedPfx), "framed_interface_id": escapeText(r.FramedIfaceID),
		"class": escapeText(r.Class), "interim_seconds": opt32(r.InterimSeconds), "profile": escapeText(r.Profile),
		"from_api": r.FromAPI,
	}
	b, err := json.Marshal(m)
	if err != nil {
		// Only strings and numbers above: cannot happen, but a record must
		// never be lost for it.
		return `{"error": "fields not encodable"}`
	}
	return string(b)
}

func quarantineArgs(r *nettportal.AccountingRecord, cause error) []any {
	var sqlstate string
	var pgErr *pgconn.PgError
	var unstorable *unstorableError
	switch {
	case errors.As(cause, &pgErr):
		sqlstate = pgErr.Code
	case errors.As(cause, &unstorable):
		sqlstate = unstorable.code
	}
	var source string
	if r.Source.IsValid() {
		source = r.Source.String()
	}
	var raw []byte
	if len(r.Raw) > 0 {
		raw = r.Raw
	}
	routerID := r.RouterID
	if routerID < 0 || routerID > math.MaxInt32 {
		routerID = 0 // no such router; the id is in fields
	}
	return []any{routerID, source, int64(r.Status), escapeText(r.UniqueID), raw, quarantineFields(r),
		escapeText(cause.Error()), sqlstate, quarantineKey(r)}
}

// unstorableError is a record checkStorable refused, with the SQLSTATE
// PostgreSQL would have answered.
type unstorableError struct {
	code, msg string
}

func (e *unstorableError) Error() string { return e.msg + " (SQLSTATE " + e.code + ")" }

// checkStorable refuses, before any round trip, what PostgreSQL certainly
// cannot store: text that is not UTF-8 or holds NUL (22021), a time out
// of timestamptz's range (22008), a router id out of integer (22003).
// What it misses, the savepoint split still catches.
func checkStorable(r *nettportal.AccountingRecord) error {
	for _, f := range [...]struct{ name, v string }{
		{"acctuniqueid", r.UniqueID}, {"Acct-Session-Id", r.SessionID}, {"User-Name", r.Username}, {"realm", r.Realm},
		{"NAS-Identifier", r.NASIdent}, {"NAS-Port-Id", r.NASPortID}, {"NAS-Port-Type", r.NASPortTyp},
		{"Acct-Authentic", r.Authentic}, {"Connect-Info", r.ConnectInfo}, {"Called-Station-Id", r.CalledStation},
		{"Calling-Station-Id", r.CallingStation}, {"Acct-Terminate-Cause", r.TerminateCause},
		{"Service-Type", r.ServiceType}, {"Framed-Protocol", r.FramedProtocol}, {"Framed-IPv6-Prefix", r.FramedIPv6Pfx},
		{"Delegated-IPv6-Prefix", r.DelegatedPfx}, {"Framed-Interface-Id", r.FramedIfaceID}, {"Class", r.Class},
		{"Mikrotik-Group", r.Profile},
	} {
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, 0) {
			return &unstorableError{"22021", fmt.Sprintf("%s %q is not UTF-8 text without NUL", f.name, f.v)}
		}
	}
	// timestamptz spans 4713 BC to 294276 AD; pgx's microseconds since
	// 2000 overflow a little past that. Session-Time is subtracted from it.
	if y := r.EventTime.Year(); y < -4000 || y > 290000 {
		return &unstorableError{"22008", fmt.Sprintf("event time %s is out of range", r.EventTime.UTC().Format(time.RFC3339))}
	}
	if r.RouterID < 0 || r.RouterID > math.MaxInt32 {
		return &unstorableError{"22003", fmt.Sprintf("router id %d is out of range", r.RouterID)}
	}
	return nil
}

// Quarantine lists the quarantined records of a router (routerID 0: of
// all routers), newest copy first, at most limit.
func (db *DB) Quarantine(ctx context.Context, routerID int64, limit int) ([]nettportal.QuarantinedRecord, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id, at, last_seen, repeats, coalesce(nas_id, 0), source, coalesce(status, 0),
			coalesce(acctuniqueid, ''), raw, fields, error, sqlstate
		FROM accounting_quarantine WHERE $1 = 0 OR nas_id = $1 ORDER BY last_seen DESC, id DESC LIMIT $2`, routerID, limit)
	if err != nil {
		return nil, fmt.Errorf("list quarantined accounting: %w", err)
	}
	defer rows.Close()
	var out []nettportal.QuarantinedRecord
	for rows.Next() {
		var e nettportal.QuarantinedRecord
		var status int64
		if err := rows.Scan(&e.ID, &e.At, &e.LastSeen, &e.Repeats, &e.RouterID, &e.Source, &status, &e.AcctUniqueID,
			&e.Raw, &e.Fields, &e.Error, &e.SQLState); err != nil {
			return nil, fmt.Errorf("list quarantined accounting: %w", err)
		}
		if status >= 0 && status <= math.MaxUint32 {
			e.Status = nettportal.StatusType(status)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list quarantined accounting: %w", err)
	}
	return out, nil
}

// ApplyAccountingResults applies batch like ApplyAccountingOutcomes and
// says per record what became of it, in the listener's and the spool
// replay's terms (nettportal.AccountingResultStore).
func (db *DB) ApplyAccountingResults(ctx context.Context, batch []nettportal.AccountingRecord) ([]nettportal.Outcome, error) {
	outs := make([]nettportal.RecordOutcome, len(batch))
	if err := db.ApplyAccountingOutcomes(ctx, batch, outs); err != nil {
		return nil, err
	}
	return recordResults(outs), nil
}

// recordResults turns what the store did per record into the listener's
// outcomes: nil when every record was stored (all OutcomeOK).
func recordResults(outs []nettportal.RecordOutcome) []nettportal.Outcome {
	var results []nettportal.Outcome
	for i, o := range outs {
		if o == nettportal.RecordStored {
			continue
		}
		if results == nil {
			results = make([]nettportal.Outcome, len(outs)) // OutcomeOK is zero
		}
		switch o {
		case nettportal.RecordQuarantined:
			results[i] = nettportal.OutcomeQuarantined
		case nettportal.RecordForeignSession:
			results[i] = nettportal.OutcomeForeignSession
		}
	}
	return results
}
