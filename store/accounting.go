package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nettportal/nettportal"
)

// upsertAccountingSQL implements the accounting rules of DESIGN.md in one
// statement. r is the stored row, e the incoming record (EXCLUDED); every SET
// expression reads the old row, so the rules compose:
//   - counters and times only move forward (GREATEST ignores NULL, so a Stop
//     without counters keeps the last counters, and a replay changes nothing);
//   - a stopped row stays stopped, but a real Stop replaces a close we only
//     inferred (Accounting-On, stale sweep, reconciler);
//   - the previous counters are kept for the current rate only when the
//     record is newer than what we have.
const upsertAccountingSQL = `
WITH up AS (
INSERT INTO radacct AS r (
	acctsessionid, acctuniqueid, username, realm, nasipaddress, nasportid, nasporttype,
	acctstarttime, acctupdatetime, acctstoptime, acctinterval, acctsessiontime, acctauthentic,
	connectinfo_start, connectinfo_stop, acctinputoctets, acctoutputoctets,
	calledstationid, callingstationid, acctterminatecause, servicetype, framedprotocol,
	framedipaddress, framedipv6address, framedipv6prefix, framedinterfaceid, delegatedipv6prefix,
	class, nas_id, nasidentifier, closed_by, acctinputpackets, acctoutputpackets, profile, has_start, source,
	mark_at, mark_day, input_bps, output_bps)
SELECT
	u.sessionid, u.uniqueid, u.username, nullif(u.realm, ''), u.nasip::inet, nullif(u.nasportid, ''), nullif(u.nasporttype, ''),
	CASE WHEN u.status = 1 THEN u.eventtime ELSE u.eventtime - make_interval(secs => coalesce(u.sessiontime, 0)) END,
	u.eventtime,
	CASE WHEN u.status = 2 THEN u.eventtime END,
	u.interim, u.sessiontime, nullif(u.authentic, ''),
	CASE WHEN u.status = 1 THEN nullif(u.connectinfo, '') END,
	CASE WHEN u.status = 2 THEN nullif(u.connectinfo, '') END,
	u.inoctets, u.outoctets,
	nullif(u.called, ''), nullif(u.calling, ''),
	CASE WHEN u.status = 2 THEN coalesce(u.cause, '') END,
	nullif(u.servicetype, ''), nullif(u.framedprotocol, ''),
	nullif(u.framedip, '')::inet, nullif(u.framedipv6, '')::inet, nullif(u.framedipv6prefix, '')::inet,
	nullif(u.ifaceid, ''), nullif(u.delegated, '')::inet,
	nullif(u.class, ''), u.nasid, nullif(u.nasident, ''),
	CASE WHEN u.status = 2 THEN 'stop' END,
	u.inpackets, u.outpackets, nullif(u.profile, ''), u.status = 1,
	CASE WHEN u.fromapi THEN 'api' ELSE 'radius' END,
	CASE WHEN u.inoctets IS NOT NULL AND u.outoctets IS NOT NULL THEN u.eventtime END,
	CASE WHEN u.inoctets IS NOT NULL AND u.outoctets IS NOT NULL THEN u.day END,
	0, 0
FROM unnest(
	$1::int[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[],
	$15::bigint[], $16::bigint[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[],
	$22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[],
	$29::text[], $30::bigint[], $31::text[], $32::bool[], $33::date[]
) AS u(status, nasid, eventtime, uniqueid, sessionid, username, realm,
	nasip, nasident, nasportid, nasporttype, sessiontime, inoctets, outoctets,
	inpackets, outpackets, authentic, connectinfo, called, calling, cause,
	servicetype, framedprotocol, framedip, framedipv6, framedipv6prefix, delegated, ifaceid,
	class, interim, profile, fromapi, day)
-- A record the reconciler built never stands in for a session that
-- accounting already has a row for: billing must see each session once.
WHERE NOT (u.fromapi AND EXISTS (SELECT 1 FROM radacct x
	WHERE x.nas_id = u.nasid AND x.acctsessionid = u.sessionid AND x.source = 'radius'))
ON CONFLICT (acctuniqueid) DO UPDATE SET
	acctstarttime = CASE
		WHEN EXCLUDED.has_start AND NOT r.has_start THEN EXCLUDED.acctstarttime
		WHEN r.has_start THEN r.acctstarttime
		ELSE least(r.acctstarttime, EXCLUDED.acctstarttime) END,
	has_start = r.has_start OR EXCLUDED.has_start,
	acctupdatetime = greatest(r.acctupdatetime, EXCLUDED.acctupdatetime),
	acctstoptime = CASE
		WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.acctstoptime
		ELSE r.acctstoptime END,
	acctterminatecause = CASE
		WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.acctterminatecause
		ELSE r.acctterminatecause END,
	connectinfo_stop = CASE
		WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.connectinfo_stop
		ELSE r.connectinfo_stop END,
	closed_by = CASE
		WHEN EXCLUDED.closed_by = 'stop' THEN 'stop'
		ELSE r.closed_by END,
	acctsessiontime = greatest(r.acctsessiontime, EXCLUDED.acctsessiontime),
	acctinputoctets = greatest(r.acctinputoctets, EXCLUDED.acctinputoctets),
	acctoutputoctets = greatest(r.acctoutputoctets, EXCLUDED.acctoutputoctets),
	acctinputpackets = greatest(r.acctinputpackets, EXCLUDED.acctinputpackets),
	acctoutputpackets = greatest(r.acctoutputpackets, EXCLUDED.acctoutputpackets),
	prev_updatetime = CASE
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN r.acctupdatetime
		ELSE r.prev_updatetime END,
	prev_inputoctets = CASE
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN r.acctinputoctets
		ELSE r.prev_inputoctets END,
	prev_outputoctets = CASE
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN r.acctoutputoctets
		ELSE r.prev_outputoctets END,
	acctinterval = coalesce(EXCLUDED.acctinterval, r.acctinterval),
	realm = coalesce(r.realm, EXCLUDED.realm),
	nasportid = coalesce(r.nasportid, EXCLUDED.nasportid),
	nasporttype = coalesce(r.nasporttype, EXCLUDED.nasporttype),
	acctauthentic = coalesce(r.acctauthentic, EXCLUDED.acctauthentic),
	connectinfo_start = coalesce(r.connectinfo_start, EXCLUDED.connectinfo_start),
	calledstationid = coalesce(r.calledstationid, EXCLUDED.calledstationid),
	callingstationid = coalesce(r.callingstationid, EXCLUDED.callingstationid),
	servicetype = coalesce(r.servicetype, EXCLUDED.servicetype),
	framedprotocol = coalesce(r.framedprotocol, EXCLUDED.framedprotocol),
	framedipaddress = coalesce(r.framedipaddress, EXCLUDED.framedipaddress),
	framedipv6address = coalesce(r.framedipv6address, EXCLUDED.framedipv6address),
	framedipv6prefix = coalesce(r.framedipv6prefix, EXCLUDED.framedipv6prefix),
	framedinterfaceid = coalesce(r.framedinterfaceid, EXCLUDED.framedinterfaceid),
	delegatedipv6prefix = coalesce(r.delegatedipv6prefix, EXCLUDED.delegatedipv6prefix),
	class = coalesce(r.class, EXCLUDED.class),
	nas_id = coalesce(r.nas_id, EXCLUDED.nas_id),
	nasidentifier = coalesce(r.nasidentifier, EXCLUDED.nasidentifier),
	profile = coalesce(EXCLUDED.profile, r.profile),
	-- The current rate, from the previous update to this one (see prev_*):
	-- none once stopped, and counters that went backwards are not a rate.
	input_bps = CASE
		WHEN EXCLUDED.closed_by = 'stop' OR r.acctstoptime IS NOT NULL THEN 0
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN
			CASE WHEN EXCLUDED.acctinputoctets >= r.acctinputoctets
			THEN ((EXCLUDED.acctinputoctets - r.acctinputoctets) * 8 / date_part('epoch', EXCLUDED.acctupdatetime - r.acctupdatetime))::bigint
			ELSE 0 END
		ELSE coalesce(r.input_bps, 0) END,
	output_bps = CASE
		WHEN EXCLUDED.closed_by = 'stop' OR r.acctstoptime IS NOT NULL THEN 0
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN
			CASE WHEN EXCLUDED.acctoutputoctets >= r.acctoutputoctets
			THEN ((EXCLUDED.acctoutputoctets - r.acctoutputoctets) * 8 / date_part('epoch', EXCLUDED.acctupdatetime - r.acctupdatetime))::bigint
			ELSE 0 END
		ELSE coalesce(r.output_bps, 0) END,
	-- The usage mark (see usage_days in schema.sql). A newer record with
	-- counters takes the row's mark over; when that changes the day, the
	-- previous day's mark (the counters so far) is flushed. An older record
	-- from another day than the row's mark is flushed itself.
	mark_at = CASE WHEN EXCLUDED.mark_at > r.mark_at OR (r.mark_at IS NULL AND EXCLUDED.mark_at IS NOT NULL)
		THEN EXCLUDED.mark_at ELSE r.mark_at END,
	mark_day = CASE WHEN EXCLUDED.mark_at > r.mark_at OR (r.mark_at IS NULL AND EXCLUDED.mark_at IS NOT NULL)
		THEN EXCLUDED.mark_day ELSE r.mark_day END,
	flush_day = CASE
		WHEN EXCLUDED.mark_at > r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN r.mark_day
		WHEN EXCLUDED.mark_at < r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN EXCLUDED.mark_day END,
	flush_inputoctets = CASE
		WHEN EXCLUDED.mark_at > r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN r.acctinputoctets
		WHEN EXCLUDED.mark_at < r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN EXCLUDED.acctinputoctets END,
	flush_outputoctets = CASE
		WHEN EXCLUDED.mark_at > r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN r.acctoutputoctets
		WHEN EXCLUDED.mark_at < r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN EXCLUDED.acctoutputoctets END
RETURNING r.acctuniqueid, r.username, r.nas_id, r.acctstoptime, r.mark_day, r.acctinputoctets, r.acctoutputoctets,
	r.flush_day, r.flush_inputoctets, r.flush_outputoctets
), marks AS (
	SELECT acctuniqueid, flush_day AS day, username, nas_id, flush_inputoctets AS inoctets, flush_outputoctets AS outoctets
	FROM up WHERE flush_day IS NOT NULL AND flush_inputoctets IS NOT NULL AND flush_outputoctets IS NOT NULL
	UNION ALL
	-- A closed row keeps no mark of its own: its last one goes to usage_days.
	SELECT acctuniqueid, mark_day, username, nas_id, acctinputoctets, acctoutputoctets
	FROM up WHERE acctstoptime IS NOT NULL AND mark_day IS NOT NULL
		AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL
)
` + insertMarksSQL

// insertMarksSQL raises usage_days marks from a CTE named marks. Two marks
// of one statement never share a (session, day): a flushed mark is from
// another day than the row's.
const insertMarksSQL = `
INSERT INTO usage_days AS d (acctuniqueid, day, username, nas_id, input_octets, output_octets)
SELECT acctuniqueid, day, coalesce(username, ''), nas_id, inoctets, outoctets FROM marks
ON CONFLICT (acctuniqueid, day) DO UPDATE SET
	input_octets = greatest(d.input_octets, EXCLUDED.input_octets),
	output_octets = greatest(d.output_octets, EXCLUDED.output_octets)`

// closedMarksSQL ends a close statement whose UPDATE is the CTE closed
// (RETURNING *): the closed rows' last marks go to usage_days, where closed
// sessions keep theirs. It returns how many rows were closed.
const closedMarksSQL = `, marks AS (
	SELECT acctuniqueid, mark_day AS day, username, nas_id, acctinputoctets AS inoctets, acctoutputoctets AS outoctets
	FROM closed WHERE mark_day IS NOT NULL AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL
), kept AS (` + insertMarksSQL + `)
SELECT count(*) FROM closed`

// closeRouterSessionsSQL is Accounting-On/Off: the router restarted (or is
// stopping), so every session it had before that moment is gone. Sessions
// that started after the event (a reordered Start) stay open.
const closeRouterSessionsSQL = `
WITH picked AS (
	SELECT radacctid FROM radacct
	WHERE nas_id = $1 AND acctstoptime IS NULL AND acctstarttime <= $2
	ORDER BY acctuniqueid FOR UPDATE -- the order batches lock in: no deadlock
), closed AS (
	UPDATE radacct r SET
		acctstoptime = $2,
		acctterminatecause = 'NAS-Reboot',
		closed_by = 'nas-reboot',
		input_bps = 0, output_bps = 0,
		acctsessiontime = greatest(r.acctsessiontime, floor(extract(epoch FROM $2 - r.acctstarttime))::bigint)
	FROM picked WHERE r.radacctid = picked.radacctid
	RETURNING r.*
)` + closedMarksSQL

// retireAPIRowsSQL deletes the stand-in rows the reconciler made for
// sessions whose accounting has now arrived: the accounting row carries the
// same session totals, and billing must not count the session twice. The
// partial index on api rows makes this a few probes of a tiny index.
const retireAPIRowsSQL = `
WITH gone AS (
	DELETE FROM radacct r USING unnest($1::bigint[], $2::text[]) AS u(nasid, sessionid)
	WHERE r.source = 'api' AND r.nas_id = u.nasid AND r.acctsessionid = u.sessionid
		AND EXISTS (SELECT 1 FROM radacct WHERE source = 'api') -- evaluated once: skips the join when there are none
	RETURNING r.acctuniqueid
)
DELETE FROM usage_days WHERE acctuniqueid IN (SELECT acctuniqueid FROM gone)`

// ApplyAccounting makes a batch durable in one transaction, applying records
// in the order given. It returns after COMMIT.
func (db *DB) ApplyAccounting(ctx context.Context, batch []nettportal.AccountingRecord) error {
	if len(batch) == 0 {
		return nil
	}
	steps := planBatch(batch, db.usageLocation())
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, s := range steps {
			if s.closeRouter != nil {
				b.Queue(closeRouterSessionsSQL, s.closeRouter.RouterID, s.closeRouter.EventTime)
				continue
			}
			b.Queue(upsertAccountingSQL, s.upsert.args()...)
			if len(s.upsert.radiusNAS) > 0 {
				b.Queue(retireAPIRowsSQL, s.upsert.radiusNAS, s.upsert.radiusSID)
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("apply accounting batch of %d: %w", len(batch), err)
	}
	return nil
}

// step is one statement of a batch: an Accounting-On/Off, or an upsert of
// records with distinct acctuniqueids (ON CONFLICT cannot touch a row twice).
type step struct {
	closeRouter *nettportal.AccountingRecord
	upsert      *columns
}

// planBatch splits a batch into statements that keep arrival order: records
// of one session go to successive upserts, and an Accounting-On/Off is a
// barrier. Rows in each upsert are sorted by acctuniqueid so concurrent
// batches lock in the same order and rarely deadlock.
func planBatch(batch []nettportal.AccountingRecord, loc *time.Location) []step {
	var steps []step
	var rounds [][]*nettportal.AccountingRecord
	lastRound := map[string]int{} // acctuniqueid -> round of its latest record
	flush := func() {
		for _, recs := range rounds {
			// A round holds each acctuniqueid once, so the order is total.
			slices.SortFunc(recs, func(a, b *nettportal.AccountingRecord) int { return strings.Compare(a.UniqueID, b.UniqueID) })
			c := newColumns(len(recs))
			for _, r := range recs {
				c.add(r, loc)
			}
			steps = append(steps, step{upsert: c})
		}
		rounds = nil
		clear(lastRound)
	}
	for i := range batch {
		rec := &batch[i]
		if rec.Status == nettportal.StatusAccountingOn || rec.Status == nettportal.StatusAccountingOff {
			flush()
			steps = append(steps, step{closeRouter: rec})
			continue
		}
		k := 0
		if prev, ok := lastRound[rec.UniqueID]; ok {
			k = prev + 1
		}
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], rec)
		lastRound[rec.UniqueID] = k
	}
	flush()
	return steps
}

// columns holds one upsert's records as arrays, the fastest way to send many
// rows through pgx in one statement.
type columns struct {
	status                                  []int32
	nasID                                   []int64
	eventTime                               []time.Time
	uniqueID, sessionID, username, realm    []string
	nasIP, nasIdent, nasPortID, nasPortType []string
	sessionTime, inOctets, outOctets        []pgtype.Int8
	inPackets, outPackets                   []pgtype.Int8
	authentic, connectInfo, called, calling []string
	cause, serviceType, framedProtocol      []string
	framedIP, framedIPv6, framedIPv6Prefix  []string
	delegated, ifaceID, class               []string
	interim                                 []pgtype.Int8
	profile                                 []string
	fromAPI                                 []bool
	day                                     []time.Time // billing day of the event
	// radiusNAS and radiusSID hold (router, session id) of accounting
	// records, to retire rows the reconciler made for the same sessions.
	radiusNAS []int64
	radiusSID []string

	routerText map[netip.Addr]string
}

func newColumns(n int) *columns {
	strs := func() []string { return make([]string, 0, n) }
	ints := func() []pgtype.Int8 { return make([]pgtype.Int8, 0, n) }
	return &columns{
		status: make([]int32, 0, n), nasID: make([]int64, 0, n), eventTime: make([]time.Time, 0, n),
		uniqueID: strs(), sessionID: strs(), username: strs(), realm: strs(),
		nasIP: strs(), nasIdent: strs(), nasPortID: strs(), nasPortType: strs(),
		sessionTime: ints(), inOctets: ints(), outOctets: ints(), inPackets: ints(), outPackets: ints(),
		authentic: strs(), connectInfo: strs(), called: strs(), calling: strs(),
		cause: strs(), serviceType: strs(), framedProtocol: strs(),
		framedIP: strs(), framedIPv6: strs(), framedIPv6Prefix: strs(),
		delegated: strs(), ifaceID: strs(), class: strs(),
		interim: ints(), profile: strs(), fromAPI: make([]bool, 0, n), day: make([]time.Time, 0, n),
		radiusNAS: make([]int64, 0, n), radiusSID: strs(),
		routerText: map[netip.Addr]string{},
	}
}

// optU32 and optU64 are values, not pointers: a pointer per counter was
// eight allocations per record.
func optU32(v *uint32) pgtype.Int8 {
	if v == nil {
		return pgtype.Int8{}
	}
	return pgtype.Int8{Int64: int64(*v), Valid: true}
}

func optU64(v *uint64) pgtype.Int8 {
	if v == nil {
		return pgtype.Int8{}
	}
	return pgtype.Int8{Int64: int64(*v), Valid: true} // octet totals stay far below 2^63
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (c *columns) add(r *nettportal.AccountingRecord, loc *time.Location) {
	c.status = append(c.status, int32(r.Status))
	c.nasID = append(c.nasID, r.RouterID)
	c.eventTime = append(c.eventTime, r.EventTime)
	c.uniqueID = append(c.uniqueID, r.UniqueID)
	c.sessionID = append(c.sessionID, r.SessionID)
	c.username = append(c.username, r.Username)
	c.realm = append(c.realm, r.Realm)
	nasIP, ok := c.routerText[r.NASIP] // a batch has few routers and many records
	if !ok {
		nasIP = addrString(r.NASIP)
		c.routerText[r.NASIP] = nasIP
	}
	c.nasIP = append(c.nasIP, nasIP)
	c.nasIdent = append(c.nasIdent, r.NASIdent)
	c.nasPortID = append(c.nasPortID, r.NASPortID)
	c.nasPortType = append(c.nasPortType, r.NASPortTyp)
	c.sessionTime = append(c.sessionTime, optU32(r.SessionTime))
	c.inOctets = append(c.inOctets, optU64(r.InputOctets))
	c.outOctets = append(c.outOctets, optU64(r.OutputOctets))
	c.inPackets = append(c.inPackets, optU32(r.InputPackets))
	c.outPackets = append(c.outPackets, optU32(r.OutputPackets))
	c.authentic = append(c.authentic, r.Authentic)
	c.connectInfo = append(c.connectInfo, r.ConnectInfo)
	c.called = append(c.called, r.CalledStation)
	c.calling = append(c.calling, r.CallingStation)
	c.cause = append(c.cause, r.TerminateCause)
	c.serviceType = append(c.serviceType, r.ServiceType)
	c.framedProtocol = append(c.framedProtocol, r.FramedProtocol)
	c.framedIP = append(c.framedIP, addrString(r.FramedIP))
	c.framedIPv6 = append(c.framedIPv6, addrString(r.FramedIPv6Addr))
	c.framedIPv6Prefix = append(c.framedIPv6Prefix, r.FramedIPv6Pfx)
	c.delegated = append(c.delegated, r.DelegatedPfx)
	c.ifaceID = append(c.ifaceID, r.FramedIfaceID)
	c.class = append(c.class, r.Class)
	c.interim = append(c.interim, optU32(r.InterimSeconds))
	c.profile = append(c.profile, r.Profile)
	c.fromAPI = append(c.fromAPI, r.FromAPI)
	y, m, d := r.EventTime.In(loc).Date()
	c.day = append(c.day, time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
	if !r.FromAPI {
		c.radiusNAS = append(c.radiusNAS, r.RouterID)
		c.radiusSID = append(c.radiusSID, r.SessionID)
	}
}

func (c *columns) args() []any {
	return []any{
		c.status, c.nasID, c.eventTime, c.uniqueID, c.sessionID, c.username, c.realm,
		c.nasIP, c.nasIdent, c.nasPortID, c.nasPortType, c.sessionTime, c.inOctets, c.outOctets,
		c.inPackets, c.outPackets, c.authentic, c.connectInfo, c.called, c.calling, c.cause,
		c.serviceType, c.framedProtocol, c.framedIP, c.framedIPv6, c.framedIPv6Prefix, c.delegated, c.ifaceID,
		c.class, c.interim, c.profile, c.fromAPI, c.day,
	}
}
