package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	-- A Start without counters stores 0 as FreeRADIUS does (reports sum
	-- them); later records without counters still keep the last ones.
	u.interim, coalesce(u.sessiontime, CASE WHEN u.status = 1 THEN 0 END), nullif(u.authentic, ''),
	CASE WHEN u.status = 1 THEN nullif(u.connectinfo, '') END,
	CASE WHEN u.status = 2 THEN nullif(u.connectinfo, '') END,
	coalesce(u.inoctets, CASE WHEN u.status = 1 THEN 0 END), coalesce(u.outoctets, CASE WHEN u.status = 1 THEN 0 END),
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
		WHEN ` + reopenFullSQL + ` THEN NULL
		ELSE r.acctstoptime END,
	acctterminatecause = CASE
		WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.acctterminatecause
		WHEN ` + reopenFullSQL + ` THEN NULL
		ELSE r.acctterminatecause END,
	connectinfo_stop = CASE
		WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.connectinfo_stop
		ELSE r.connectinfo_stop END,
	closed_by = CASE
		WHEN EXCLUDED.closed_by = 'stop' THEN 'stop'
		WHEN ` + reopenFullSQL + ` THEN NULL
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
			THEN ` + rateInFullSQL + `
			ELSE 0 END
		ELSE coalesce(r.input_bps, 0) END,
	output_bps = CASE
		WHEN EXCLUDED.closed_by = 'stop' OR r.acctstoptime IS NOT NULL THEN 0
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN
			CASE WHEN EXCLUDED.acctoutputoctets >= r.acctoutputoctets
			THEN ` + rateOutFullSQL + `
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
-- A session belongs to the router that wrote it: another router's record
-- changes nothing (the caller tells it from the RETURNING and refuses it).
-- A row without nas_id (written by FreeRADIUS) belongs to the router whose
-- nasname is its nasipaddress, which claims it (nas_id above).
WHERE r.nas_id = EXCLUDED.nas_id
	OR (r.nas_id IS NULL AND EXISTS (SELECT 1 FROM nas n WHERE n.id = EXCLUDED.nas_id AND n.nasname = host(r.nasipaddress)))
RETURNING r.acctuniqueid, r.username, r.nas_id, r.acctstoptime, r.mark_day, r.acctinputoctets, r.acctoutputoctets,
	r.flush_day, r.flush_inputoctets, r.flush_outputoctets
), marks AS (` + marksOfUpSQL + `), kept AS (` + insertMarksSQL + `)
SELECT acctuniqueid FROM up`

// marksOfUpSQL selects, from an accounting statement's RETURNING (the CTE
// up), the marks that go to usage_days: what the statement flushed off the
// rows, and the last mark of rows that are closed.
const marksOfUpSQL = `
	SELECT acctuniqueid, flush_day AS day, username, nas_id, flush_inputoctets AS inoctets, flush_outputoctets AS outoctets
	FROM up WHERE flush_day IS NOT NULL AND flush_inputoctets IS NOT NULL AND flush_outputoctets IS NOT NULL
	UNION ALL
	-- A closed row keeps no mark of its own: its last one goes to usage_days.
	SELECT acctuniqueid, mark_day, username, nas_id, acctinputoctets, acctoutputoctets
	FROM up WHERE acctstoptime IS NOT NULL AND mark_day IS NOT NULL
		AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL`

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

// inferredCloses are the closed_by values of closes we only inferred; an
// Interim with a later event time proves such a session alive.
const inferredCloses = `('nas-reboot', 'stale', 'reconciler', 'max-age')`

// reopenFullSQL and reopenNarrowSQL say, in the full upsert and the narrow
// update, that the record is an Interim newer than an inferred close of
// its row: the session was alive after all, and is reopened with the
// record's counters. A real Stop is final.
const (
	reopenFullSQL = `(EXCLUDED.acctstoptime IS NULL AND NOT EXCLUDED.has_start AND r.closed_by IN ` + inferredCloses + `
		AND EXCLUDED.acctupdatetime > r.acctstoptime)`
	reopenNarrowSQL = `(e.status = 3 AND r.closed_by IN ` + inferredCloses + ` AND e.eventtime > r.acctstoptime)`
)

// The rates in bits/s between two updates, in numeric and clamped to
// bigint: whatever counters and times are stored, they cannot overflow
// (bigint arithmetic on a counter near 2^63 did, failing the whole batch).
// The caller checks that the times move forward and the counters do not
// go back.
const (
	rateInFullSQL = `least((EXCLUDED.acctinputoctets::numeric - r.acctinputoctets) * 8
		/ extract(epoch FROM EXCLUDED.acctupdatetime - r.acctupdatetime), 9223372036854775807)::bigint`
	rateOutFullSQL = `least((EXCLUDED.acctoutputoctets::numeric - r.acctoutputoctets) * 8
		/ extract(epoch FROM EXCLUDED.acctupdatetime - r.acctupdatetime), 9223372036854775807)::bigint`
	rateInNarrowSQL = `least((e.inoctets::numeric - r.acctinputoctets) * 8
		/ extract(epoch FROM e.eventtime - r.acctupdatetime), 9223372036854775807)::bigint`
	rateOutNarrowSQL = `least((e.outoctets::numeric - r.acctoutputoctets) * 8
		/ extract(epoch FROM e.eventtime - r.acctupdatetime), 9223372036854775807)::bigint`
)

// updateExistingSQL is the common case of upsertAccountingSQL, made cheap:
// an Interim-Update or Stop from a router for a session that has its row.
// It sends and evaluates only what such a record can change, which made
// interims about 1.7 times faster than the full upsert. Every SET expression
// is the full upsert's for a record of that kind, so the rules are the
// same; a record the row would take descriptive fields from (a column the
// row lacks, which the full upsert fills with coalesce) is left out (the
// WHERE), and so is one without a row: the caller sends those through the
// full upsert. It returns the ordinal (1-based) of each record it applied.
const updateExistingSQL = `
WITH up AS (
UPDATE radacct AS r SET
	acctstarttime = CASE WHEN r.has_start THEN r.acctstarttime
		ELSE least(r.acctstarttime, e.eventtime - make_interval(secs => coalesce(e.sessiontime, 0))) END,
	acctupdatetime = greatest(r.acctupdatetime, e.eventtime),
	acctstoptime = CASE WHEN e.stop AND r.closed_by IS DISTINCT FROM 'stop' THEN e.eventtime
		WHEN ` + reopenNarrowSQL + ` THEN NULL ELSE r.acctstoptime END,
	acctterminatecause = CASE WHEN e.stop AND r.closed_by IS DISTINCT FROM 'stop' THEN e.cause
		WHEN ` + reopenNarrowSQL + ` THEN NULL ELSE r.acctterminatecause END,
	connectinfo_stop = CASE WHEN e.stop AND r.closed_by IS DISTINCT FROM 'stop' THEN nullif(e.connectinfo, '') ELSE r.connectinfo_stop END,
	closed_by = CASE WHEN e.stop THEN 'stop' WHEN ` + reopenNarrowSQL + ` THEN NULL ELSE r.closed_by END,
	acctsessiontime = greatest(r.acctsessiontime, e.sessiontime),
	acctinputoctets = greatest(r.acctinputoctets, e.inoctets),
	acctoutputoctets = greatest(r.acctoutputoctets, e.outoctets),
	acctinputpackets = greatest(r.acctinputpackets, e.inpackets),
	acctoutputpackets = greatest(r.acctoutputpackets, e.outpackets),
	prev_updatetime = CASE WHEN e.eventtime > r.acctupdatetime AND e.inoctets IS NOT NULL THEN r.acctupdatetime ELSE r.prev_updatetime END,
	prev_inputoctets = CASE WHEN e.eventtime > r.acctupdatetime AND e.inoctets IS NOT NULL THEN r.acctinputoctets ELSE r.prev_inputoctets END,
	prev_outputoctets = CASE WHEN e.eventtime > r.acctupdatetime AND e.inoctets IS NOT NULL THEN r.acctoutputoctets ELSE r.prev_outputoctets END,
	acctinterval = coalesce(e.interim, r.acctinterval),
	profile = coalesce(nullif(e.profile, ''), r.profile),
	input_bps = CASE
		WHEN e.stop OR r.acctstoptime IS NOT NULL THEN 0
		WHEN e.eventtime > r.acctupdatetime AND e.inoctets IS NOT NULL THEN
			CASE WHEN e.inoctets >= r.acctinputoctets
			THEN ` + rateInNarrowSQL + `
			ELSE 0 END
		ELSE coalesce(r.input_bps, 0) END,
	output_bps = CASE
		WHEN e.stop OR r.acctstoptime IS NOT NULL THEN 0
		WHEN e.eventtime > r.acctupdatetime AND e.inoctets IS NOT NULL THEN
			CASE WHEN e.outoctets >= r.acctoutputoctets
			THEN ` + rateOutNarrowSQL + `
			ELSE 0 END
		ELSE coalesce(r.output_bps, 0) END,
	mark_at = CASE WHEN e.markat > r.mark_at OR (r.mark_at IS NULL AND e.markat IS NOT NULL) THEN e.markat ELSE r.mark_at END,
	mark_day = CASE WHEN e.markat > r.mark_at OR (r.mark_at IS NULL AND e.markat IS NOT NULL) THEN e.day ELSE r.mark_day END,
	flush_day = CASE
		WHEN e.markat > r.mark_at AND e.day <> r.mark_day THEN r.mark_day
		WHEN e.markat < r.mark_at AND e.day <> r.mark_day THEN e.day END,
	flush_inputoctets = CASE
		WHEN e.markat > r.mark_at AND e.day <> r.mark_day THEN r.acctinputoctets
		WHEN e.markat < r.mark_at AND e.day <> r.mark_day THEN e.inoctets END,
	flush_outputoctets = CASE
		WHEN e.markat > r.mark_at AND e.day <> r.mark_day THEN r.acctoutputoctets
		WHEN e.markat < r.mark_at AND e.day <> r.mark_day THEN e.outoctets END
FROM (SELECT u.*, u.status = 2 AS stop,
		CASE WHEN u.inoctets IS NOT NULL AND u.outoctets IS NOT NULL THEN u.eventtime END AS markat
	FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[],
		$7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::date[], $14::int[], $15::bigint[])
		WITH ORDINALITY AS u(uniqueid, status, eventtime, sessiontime, inoctets, outoctets,
		inpackets, outpackets, interim, cause, connectinfo, profile, day, carries, nasid, ord)) AS e
WHERE r.acctuniqueid = e.uniqueid
	-- Only the owner's records (the full upsert refuses the others).
	AND r.nas_id = e.nasid
	AND (e.carries & 1 = 0 OR r.realm IS NOT NULL)
	AND (e.carries & 2 = 0 OR r.nasportid IS NOT NULL)
	AND (e.carries & 4 = 0 OR r.nasporttype IS NOT NULL)
	AND (e.carries & 8 = 0 OR r.acctauthentic IS NOT NULL)
	AND (e.carries & 16 = 0 OR r.calledstationid IS NOT NULL)
	AND (e.carries & 32 = 0 OR r.callingstationid IS NOT NULL)
	AND (e.carries & 64 = 0 OR r.servicetype IS NOT NULL)
	AND (e.carries & 128 = 0 OR r.framedprotocol IS NOT NULL)
	AND (e.carries & 256 = 0 OR r.framedipaddress IS NOT NULL)
	AND (e.carries & 512 = 0 OR r.framedipv6address IS NOT NULL)
	AND (e.carries & 1024 = 0 OR r.framedipv6prefix IS NOT NULL)
	AND (e.carries & 2048 = 0 OR r.framedinterfaceid IS NOT NULL)
	AND (e.carries & 4096 = 0 OR r.delegatedipv6prefix IS NOT NULL)
	AND (e.carries & 8192 = 0 OR r.class IS NOT NULL)
	AND (e.carries & 16384 = 0 OR r.nas_id IS NOT NULL)
	AND (e.carries & 32768 = 0 OR r.nasidentifier IS NOT NULL)
RETURNING e.ord, r.acctuniqueid, r.username, r.nas_id, r.acctstoptime, r.mark_day, r.acctinputoctets, r.acctoutputoctets,
	r.flush_day, r.flush_inputoctets, r.flush_outputoctets
), marks AS (` + marksOfUpSQL + `), kept AS (` + insertMarksSQL + `)
SELECT ord FROM up`

// closeRouterSessionsSQL is Accounting-On/Off: the router restarted (or is
// stopping), so every session it had before that moment is gone. Event
// times have whole seconds, so "before" is decided per second:
//   - a session that started in an earlier second is closed;
//   - one whose row arrives after the Accounting-On is new (arrival order:
//     it is not there yet when this runs, or comes later in the batch);
//   - one already there that started in the reboot's own second (a Start
//     and a retransmitted Accounting-On arriving together) is closed only
//     when its Acct-Session-Id carries the boot digit of the router's last
//     session from before that second: RouterOS ids are 8 hex digits whose
//     first changes at every boot. Without that evidence it stays open (a
//     wrong close would cost a live session; a wrong keep is closed by the
//     reconciler, the sweep or the next Accounting-On).
const closeRouterSessionsSQL = `
WITH cut AS (
	SELECT date_trunc('second', $2::timestamptz) AS sec
), old_boot AS (
	SELECT left(x.acctsessionid, 1) AS digit FROM radacct x, cut
	WHERE x.nas_id = $1 AND x.acctstarttime < cut.sec AND x.acctsessionid ~ '^[0-9a-f]{8}$'
	ORDER BY x.acctstarttime DESC LIMIT 1
), picked AS (
	SELECT radacctid FROM radacct r, cut
	WHERE r.nas_id = $1 AND r.acctstoptime IS NULL AND (r.acctstarttime < cut.sec
		OR (r.acctstarttime < cut.sec + interval '1 second' AND r.acctsessionid ~ '^[0-9a-f]{8}$'
			AND left(r.acctsessionid, 1) = (SELECT digit FROM old_boot)))
	ORDER BY r.acctuniqueid FOR UPDATE OF r -- the order batches lock in: no deadlock
), closed AS (
	UPDATE radacct r SET
		acctstoptime = greatest($2, r.acctstarttime),
		acctterminatecause = 'NAS-Reboot',
		closed_by = 'nas-reboot',
		input_bps = 0, output_bps = 0,
		acctsessiontime = greatest(r.acctsessiontime, floor(extract(epoch FROM greatest($2, r.acctstarttime) - r.acctstarttime))::bigint)
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

// lockRoundSQL locks a round's existing rows in acctuniqueid order and
// says who owns each, and when an inferred close ended it.
const lockRoundSQL = `SELECT acctuniqueid, nas_id, CASE WHEN closed_by IN ` + inferredCloses + ` THEN acctstoptime END
	FROM radacct WHERE acctuniqueid = ANY($1::text[]) ORDER BY acctuniqueid FOR NO KEY UPDATE`

// pinPlansSQL leaves the batch's statements one plan each: a probe of an
// index per record. Postgres caches a prepared statement's generic plan per
// connection and replans it only when statistics change; planned against a
// new, small radacct, the narrow update joined it by seq scan and hash,
// and on a server without autovacuum (so without new statistics) kept doing
// that at 50,000 sessions: 40 seq scans a second and 150 ms at p99 in the
// soak. Every statement here is driven by the batch's records, so the
// index path is always the right one.
const pinPlansSQL = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true)`

// ApplyAccounting makes a batch durable in one transaction, applying records
// in the order given. It returns after COMMIT. Its callers (the spool
// replay) cannot refuse a record, so one for another router's session (see
// ApplyAccountingOutcomes) goes to the quarantine, with the owner in its
// error, rather than being lost after it was acknowledged.
func (db *DB) ApplyAccounting(ctx context.Context, batch []nettportal.AccountingRecord) error {
	_, err := db.ApplyAcknowledgedResults(ctx, batch)
	return err
}

// ApplyAcknowledgedResults applies records that were acknowledged already
// (the spool replay's): like ApplyAccounting, with each record's result
// (nil: all OutcomeOK). A record for another router's session cannot be
// refused any more, so it is quarantined (OutcomeQuarantined).
func (db *DB) ApplyAcknowledgedResults(ctx context.Context, batch []nettportal.AccountingRecord) ([]nettportal.Outcome, error) {
	out := make([]nettportal.RecordOutcome, len(batch))
	if err := db.ApplyAccountingOutcomes(ctx, batch, out); err != nil {
		return nil, err
	}
	results := recordResults(out)
	for i, o := range results {
		if o != nettportal.OutcomeForeignSession {
			continue
		}
		results[i] = nettportal.OutcomeQuarantined
		if _, err := db.acct.Exec(ctx, insertQuarantineSQL, quarantineArgs(&batch[i], errForeign)...); err != nil {
			return nil, fmt.Errorf("quarantine a record for another router's session: %w", err)
		}
		db.Stats.Quarantined.Add(1)
	}
	return results, nil
}

// errForeign is the quarantine's error for a record of another router's
// session that could not be refused (it was acknowledged from the spool).
var errForeign = errors.New("the session belongs to another router (nas_id): refused")

// ApplyAccountingOutcomes is ApplyAccounting that says per record what it
// did (out, when not nil, must have len(batch)):
//   - a batch that fails with a data error (SQLSTATE class 22 or 23: a
//     value PostgreSQL cannot store or compute with) is applied again in
//     one transaction, split in halves under savepoints until every good
//     record is in; a record that fails alone goes to accounting_quarantine
//     in the same transaction (RecordQuarantined). So one bad record costs
//     its batch-mates one extra commit, and never fails them;
//   - a record for a session whose row belongs to another router changes
//     nothing (RecordForeignSession).
func (db *DB) ApplyAccountingOutcomes(ctx context.Context, batch []nettportal.AccountingRecord, out []nettportal.RecordOutcome) error {
	if len(batch) == 0 {
		return nil
	}
	if out != nil && len(out) != len(batch) {
		return fmt.Errorf("apply accounting batch of %d: %d outcome slots", len(batch), len(out))
	}
	loc := db.usageLocation()
	// Records that cannot be stored as they are (checkStorable) skip the
	// attempt: they go to the quarantine in the batch's own transaction, so
	// the usual hostile input costs its batch-mates no extra commit at all.
	var refused []refusedRecord
	apply := batch
	for i := range batch {
		if err := checkStorable(&batch[i]); err != nil {
			if refused == nil {
				apply = make([]nettportal.AccountingRecord, 0, len(batch))
				apply = append(apply, batch[:i]...)
			}
			refused = append(refused, refusedRecord{&batch[i], err})
			continue
		}
		if refused != nil {
			apply = append(apply, batch[i])
		}
	}
	var res *applyResult
	err := retryRaces(func() error {
		res = newApplyResult()
		return db.applySteps(ctx, planBatch(apply), loc, res, refused)
	})
	if isDataError(err) {
		err = retryRaces(func() error {
			res = newApplyResult()
			return db.applyIsolated(ctx, apply, loc, res, refused)
		})
	}
	if err != nil {
		return fmt.Errorf("apply accounting batch of %d: %w", len(batch), err)
	}
	if refused != nil {
		// res is keyed by the records applied: a copy when some were refused.
		byIndex := newApplyResult()
		byIndex.reopened, byIndex.narrowed = res.reopened, res.narrowed
		j := 0
		for i := range batch {
			rec := &batch[i]
			if k := slices.IndexFunc(refused, func(r refusedRecord) bool { return r.rec == rec }); k >= 0 {
				byIndex.outcome[rec] = nettportal.RecordQuarantined
				byIndex.errs[rec] = refused[k].err
				continue
			}
			if o, ok := res.outcome[&apply[j]]; ok {
				byIndex.outcome[rec] = o
				byIndex.errs[rec] = res.errs[&apply[j]]
				byIndex.owner[rec] = res.owner[&apply[j]]
			}
			j++
		}
		res = byIndex
	}
	db.afterCommit(batch, res, out)
	return nil
}

// applyResult is what a transaction did beyond storing records, keyed by
// the record (a pointer into the batch): almost every record is simply
// stored, so only the exceptions are kept.
type applyResult struct {
	outcome  map[*nettportal.AccountingRecord]nettportal.RecordOutcome
	errs     map[*nettportal.AccountingRecord]error // why a record was quarantined
	owner    map[*nettportal.AccountingRecord]int64 // the router owning a foreign record's row
	reopened int
	narrowed int
}

func newApplyResult() *applyResult {
	return &applyResult{outcome: map[*nettportal.AccountingRecord]nettportal.RecordOutcome{},
		errs: map[*nettportal.AccountingRecord]error{}, owner: map[*nettportal.AccountingRecord]int64{}}
}

func (r *applyResult) merge(o *applyResult) {
	maps.Copy(r.outcome, o.outcome)
	maps.Copy(r.errs, o.errs)
	maps.Copy(r.owner, o.owner)
	r.reopened += o.reopened
	r.narrowed += o.narrowed
}

// afterCommit counts, logs and reports what a committed batch did, and
// notes the routers seen sending interims.
func (db *DB) afterCommit(batch []nettportal.AccountingRecord, res *applyResult, out []nettportal.RecordOutcome) {
	db.narrowApplied.Add(int64(res.narrowed))
	db.Stats.Reopened.Add(uint64(res.reopened))
	var interimRouters []int64
	for i := range batch {
		rec := &batch[i]
		o := res.outcome[rec]
		if out != nil {
			out[i] = o
		}
		switch o {
		case nettportal.RecordQuarantined:
			db.Stats.Quarantined.Add(1)
			db.log.Error().Err(res.errs[rec]).Int64("router_id", rec.RouterID).Str("source", rec.Source.String()).
				Str("status", rec.Status.String()).Str("acct_session_id", escapeText(rec.SessionID)).
				Msg("accounting record refused by PostgreSQL: kept in accounting_quarantine and answered")
		case nettportal.RecordForeignSession:
			db.Stats.ForeignSession.Add(1)
			if !db.foreignLog.allow(time.Now()) {
				continue
			}
			db.log.Warn().Int64("router_id", rec.RouterID).Str("source", rec.Source.String()).
				Int64("owner_router_id", res.owner[rec]).Str("acct_session_id", escapeText(rec.SessionID)).
				Str("acctuniqueid", escapeText(rec.UniqueID)).
				Msg("refused accounting for a session another router owns")
		case nettportal.RecordStored:
			if rec.Status == nettportal.StatusInterimUpdate && !rec.FromAPI && !slices.Contains(interimRouters, rec.RouterID) {
				interimRouters = append(interimRouters, rec.RouterID)
			}
		}
	}
	for _, id := range interimRouters {
		db.noteInterims(id)
	}
}

// noteInterims records that a router sends Interim-Updates, about once a
// minute per router, outside the batch's transaction: it only enables the
// stale sweep for the router, so it need not be atomic with the records.
func (db *DB) noteInterims(routerID int64) {
	now := time.Now()
	if last, ok := db.interimsSeen.Load(routerID); ok && now.Unix()-last.(int64) < 60 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := db.acct.Exec(ctx, `INSERT INTO router_status (nas_id, interims_seen_at) SELECT $1, $2 WHERE $1 BETWEEN 1 AND 2147483647
		ON CONFLICT (nas_id) DO UPDATE SET interims_seen_at = greatest(router_status.interims_seen_at, EXCLUDED.interims_seen_at)`,
		routerID, now)
	if err != nil {
		db.log.Warn().Err(err).Int64("router_id", routerID).Msg("record that the router sends interims")
		return
	}
	db.interimsSeen.Store(routerID, now.Unix())
}

// isDataError says whether PostgreSQL refused a value (SQLSTATE class 22,
// data exception, or 23, integrity constraint violation): the same records
// would fail again, so retrying the batch as a whole cannot help.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// applySteps runs a planned batch as one transaction in as few round trips
// as its data allows: BEGIN goes with the first statements and COMMIT with
// the last, so a batch of interims and Starts takes two (the full upsert
// needs to know what the narrow update applied). At 20,000 packets/s
// batches are a few dozen records, and the six round trips they took one
// by one were most of a commit's time.
func (db *DB) applySteps(ctx context.Context, steps []step, loc *time.Location, res *applyResult, refused []refusedRecord) error {
	return db.inPipelinedTx(ctx, func(p *pipeline) error {
		queueRefused(p, refused)
		return db.queueSteps(ctx, p, steps, loc, res)
	})
}

// refusedRecord is a record checkStorable refused, and why.
type refusedRecord struct {
	rec *nettportal.AccountingRecord
	err error
}

func queueRefused(p *pipeline, refused []refusedRecord) {
	for _, r := range refused {
		p.exec("quarantine a record", insertQuarantineSQL, quarantineArgs(r.rec, r.err)...)
	}
}

// inPipelinedTx runs fill between BEGIN and COMMIT on one connection.
func (db *DB) inPipelinedTx(ctx context.Context, fill func(p *pipeline) error) error {
	conn, err := db.acct.Acquire(ctx)
	if err != nil {
		if st := db.acct.Stat(); ctx.Err() != nil && st.AcquiredConns() >= st.MaxConns() {
			// Every connection is committing: the database answers, it is
			// only slower than the load; not an outage to spool for.
			return fmt.Errorf("acquire connection: all %d accounting connections busy: %w: %w", st.MaxConns(), nettportal.ErrBusy, err)
		}
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	p := &pipeline{conn: conn.Conn(), batch: &pgx.Batch{}}
	err = func() error {
		p.exec("begin", "begin")
		p.exec("pin plans", pinPlansSQL)
		if err := fill(p); err != nil {
			return err
		}
		p.queue("commit", "commit").Exec(func(tag pgconn.CommandTag) error {
			if tag.String() != "COMMIT" {
				return errors.New("the transaction was rolled back")
			}
			return nil
		})
		return p.flush(ctx)
	}()
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// Left in the failed transaction: end it here rather than make the
		// pool close the connection.
		rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, rbErr := conn.Exec(rbCtx, "rollback"); rbErr != nil {
			_ = conn.Conn().Close(rbCtx)
		}
		cancel()
	}
	return err
}

func (db *DB) queueSteps(ctx context.Context, p *pipeline, steps []step, loc *time.Location, res *applyResult) error {
	for _, s := range steps {
		if s.closeRouter != nil {
			p.exec(fmt.Sprintf("adopt open sessions of router %d", s.closeRouter.RouterID),
				adoptRouterSessionsSQL, s.closeRouter.RouterID)
			p.exec(fmt.Sprintf("close sessions of router %d", s.closeRouter.RouterID),
				closeRouterSessionsSQL, s.closeRouter.RouterID, s.closeRouter.EventTime)
			continue
		}
		if err := applyRound(ctx, p, s.round, loc, !db.fullUpsertOnly, res); err != nil {
			return err
		}
	}
	return nil
}

// applyIsolated applies a batch that failed with a data error: in one
// transaction, each part under a savepoint, halving a failing part until
// the record that fails is alone; that record goes to the quarantine. The
// parts are applied in batch order, so arrival order holds.
func (db *DB) applyIsolated(ctx context.Context, batch []nettportal.AccountingRecord, loc *time.Location, res *applyResult, refused []refusedRecord) error {
	return db.inPipelinedTx(ctx, func(p *pipeline) error {
		queueRefused(p, refused)
		var part func(recs []nettportal.AccountingRecord, depth int) error
		part = func(recs []nettportal.AccountingRecord, depth int) error {
			sp := fmt.Sprintf("part%d", depth)
			try := newApplyResult()
			p.exec("savepoint", "SAVEPOINT "+sp)
			err := db.queueSteps(ctx, p, planBatch(recs), loc, try)
			if err == nil {
				p.exec("release savepoint", "RELEASE SAVEPOINT "+sp)
				err = p.flush(ctx)
			}
			if err == nil {
				res.merge(try)
				return nil
			}
			if !isDataError(err) {
				return err
			}
			p.batch, p.labels, p.done = &pgx.Batch{}, nil, 0 // what was queued after the failure is gone
			// In the simple protocol: pgx would prepare a new statement
			// first, which the aborted transaction refuses.
			if _, rbErr := p.conn.PgConn().Exec(ctx, "ROLLBACK TO SAVEPOINT "+sp).ReadAll(); rbErr != nil {
				return fmt.Errorf("rollback to savepoint: %w", rbErr)
			}
			if len(recs) == 1 {
				rec := &recs[0]
				p.exec("quarantine a record", insertQuarantineSQL, quarantineArgs(rec, err)...)
				if err := p.flush(ctx); err != nil {
					return fmt.Errorf("quarantine: %w", err)
				}
				res.outcome[rec] = nettportal.RecordQuarantined
				res.errs[rec] = err
				return nil
			}
			mid := len(recs) / 2
			if err := part(recs[:mid], depth+1); err != nil {
				return err
			}
			return part(recs[mid:], depth+1)
		}
		return part(batch, 0)
	})
}

// pipeline queues a transaction's statements and sends them together when
// a result is needed (flush). A failed statement makes Postgres skip the
// rest of what was sent with it, COMMIT included; the error names the
// statement.
type pipeline struct {
	conn   *pgx.Conn
	batch  *pgx.Batch
	labels []string // per queued statement, for errors
	done   int      // statements of batch that succeeded
}

func (p *pipeline) queue(label, sql string, args ...any) *pgx.QueuedQuery {
	p.labels = append(p.labels, label)
	return p.batch.Queue(sql, args...)
}

// exec queues a statement whose result is only success or failure.
func (p *pipeline) exec(label, sql string, args ...any) {
	p.queue(label, sql, args...).Exec(func(pgconn.CommandTag) error { return nil })
}

func (p *pipeline) flush(ctx context.Context) error {
	if p.batch.Len() == 0 {
		return nil
	}
	for _, q := range p.batch.QueuedQueries {
		fn := q.Fn
		q.Fn = func(br pgx.BatchResults) error {
			if err := fn(br); err != nil {
				return err
			}
			p.done++
			return nil
		}
	}
	err := p.conn.SendBatch(ctx, p.batch).Close()
	if err != nil && p.done < len(p.labels) {
		err = fmt.Errorf("%s: %w", p.labels[p.done], err)
	}
	p.batch, p.labels, p.done = &pgx.Batch{}, nil, 0
	return err
}

// applyRound queues a round of records with distinct acctuniqueids, sorted
// by it: interims and Stops of sessions that have their row go through the
// narrow update, everything else (Starts, new sessions, rows missing
// descriptive fields, the reconciler's records, other routers' records)
// through the full upsert. It sends what is queued when it must learn what
// the narrow update applied. What it learns of foreign records and
// reopened sessions goes to res as the results come in.
func applyRound(ctx context.Context, p *pipeline, round []*nettportal.AccountingRecord, loc *time.Location, narrow bool, res *applyResult) error {
	applied := make([]bool, len(round))
	narrowed := 0
	var n narrowColumns
	for i, r := range round {
		if narrow && !r.FromAPI && (r.Status == nettportal.StatusInterimUpdate || r.Status == nettportal.StatusStop) {
			n.add(i, r, loc)
		}
	}
	// The round's existing rows: who owns each, and when a close we only
	// inferred ended it.
	type existing struct {
		owner        pgtype.Int8
		inferredStop pgtype.Timestamptz
	}
	rows := map[string]existing{}
	// The narrow update and the full upsert are two passes over the
	// round; taking the round's existing rows first, in one pass in
	// acctuniqueid order, keeps concurrent batches from locking rows in
	// crossing orders (a deadlock costs a second before Postgres
	// breaks it: seen replaying the spool while live traffic went on).
	ids := make([]string, len(round))
	for i, r := range round {
		ids[i] = r.UniqueID
	}
	p.queue("lock sessions", lockRoundSQL, ids).Query(func(qr pgx.Rows) error {
		var uid string
		var e existing
		_, err := pgx.ForEachRow(qr, []any{&uid, &e.owner, &e.inferredStop}, func() error {
			rows[uid] = e
			return nil
		})
		return err
	})
	if len(n.uniqueID) > 0 {
		p.queue("update sessions", updateExistingSQL, n.args()...).Query(func(qr pgx.Rows) error {
			var ord int64
			_, err := pgx.ForEachRow(qr, []any{&ord}, func() error {
				if ord < 1 || int(ord) > len(n.index) {
					return fmt.Errorf("ordinal %d out of range", ord)
				}
				applied[n.index[ord-1]] = true
				narrowed++
				return nil
			})
			return err
		})
		if err := p.flush(ctx); err != nil {
			return err
		}
	}
	// finish learns, once the full upsert said which records it applied
	// (upserted), which were refused as another router's and which
	// reopened a session.
	finish := func(upserted map[string]bool) {
		res.narrowed += narrowed
		for i, r := range round {
			if !applied[i] && !upserted[r.UniqueID] {
				// Not applied: a reconciler record standing back for
				// accounting's row (by design), or another router's session.
				if row, ok := rows[r.UniqueID]; ok && !r.FromAPI {
					res.outcome[r] = nettportal.RecordForeignSession
					res.owner[r] = row.owner.Int64
				}
				continue
			}
			if row, ok := rows[r.UniqueID]; ok && r.Status == nettportal.StatusInterimUpdate &&
				row.inferredStop.Valid && r.EventTime.After(row.inferredStop.Time) {
				res.reopened++
			}
		}
	}
	c := newColumns(len(round) - narrowed)
	for i, r := range round {
		if !applied[i] {
			c.add(r, loc)
		}
	}
	var radiusNAS []int64
	var radiusSID []string
	for _, r := range round {
		if !r.FromAPI {
			radiusNAS = append(radiusNAS, r.RouterID)
			radiusSID = append(radiusSID, r.SessionID)
		}
	}
	if len(c.uniqueID) > 0 {
		p.queue("upsert sessions", upsertAccountingSQL, c.args()...).Query(func(qr pgx.Rows) error {
			upserted := map[string]bool{}
			var uid string
			_, err := pgx.ForEachRow(qr, []any{&uid}, func() error {
				upserted[uid] = true
				return nil
			})
			if err == nil {
				finish(upserted)
			}
			return err
		})
	} else {
		finish(nil)
	}
	if len(radiusNAS) > 0 {
		p.exec("retire the reconciler's rows", retireAPIRowsSQL, radiusNAS, radiusSID)
	}
	return nil
}

// step is one part of a batch: an Accounting-On/Off, or a round of records
// with distinct acctuniqueids (one statement cannot touch a row twice).
type step struct {
	closeRouter *nettportal.AccountingRecord
	round       []*nettportal.AccountingRecord
}

// planBatch splits a batch into steps that keep arrival order: records of
// one session go to successive rounds, and an Accounting-On/Off is a
// barrier. Records in each round are sorted by acctuniqueid so concurrent
// batches lock in the same order and rarely deadlock.
func planBatch(batch []nettportal.AccountingRecord) []step {
	var steps []step
	var rounds [][]*nettportal.AccountingRecord
	lastRound := map[string]int{} // acctuniqueid -> round of its latest record
	flush := func() {
		for _, recs := range rounds {
			// A round holds each acctuniqueid once, so the order is total.
			slices.SortFunc(recs, func(a, b *nettportal.AccountingRecord) int { return strings.Compare(a.UniqueID, b.UniqueID) })
			steps = append(steps, step{round: recs})
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

// narrowColumns are the arrays of updateExistingSQL.
type narrowColumns struct {
	index                       []int // position in the round
	uniqueID                    []string
	status                      []int32
	eventTime, day              []time.Time
	sessionTime, inOctets       []pgtype.Int8
	outOctets, inPackets        []pgtype.Int8
	outPackets, interim         []pgtype.Int8
	cause, connectInfo, profile []string
	carries                     []int32
	nasID                       []int64
}

// Bits of narrowColumns.carries: the descriptive fields a record has, in
// the order of updateExistingSQL's WHERE.
const (
	carriesRealm = 1 << iota
	carriesNASPortID
	carriesNASPortType
	carriesAuthentic
	carriesCalled
	carriesCalling
	carriesServiceType
	carriesFramedProtocol
	carriesFramedIP
	carriesFramedIPv6
	carriesFramedIPv6Prefix
	carriesIfaceID
	carriesDelegated
	carriesClass
	carriesRouter
	carriesNASIdent
)

func (n *narrowColumns) add(i int, r *nettportal.AccountingRecord, loc *time.Location) {
	var carries int32
	for _, f := range [...]struct {
		has bool
		bit int32
	}{
		{r.Realm != "", carriesRealm}, {r.NASPortID != "", carriesNASPortID}, {r.NASPortTyp != "", carriesNASPortType},
		{r.Authentic != "", carriesAuthentic}, {r.CalledStation != "", carriesCalled}, {r.CallingStation != "", carriesCalling},
		{r.ServiceType != "", carriesServiceType}, {r.FramedProtocol != "", carriesFramedProtocol},
		{r.FramedIP.IsValid(), carriesFramedIP}, {r.FramedIPv6Addr.IsValid(), carriesFramedIPv6},
		{r.FramedIPv6Pfx != "", carriesFramedIPv6Prefix}, {r.FramedIfaceID != "", carriesIfaceID},
		{r.DelegatedPfx != "", carriesDelegated}, {r.Class != "", carriesClass},
		{true, carriesRouter}, {r.NASIdent != "", carriesNASIdent},
	} {
		if f.has {
			carries |= f.bit
		}
	}
	n.index = append(n.index, i)
	n.uniqueID = append(n.uniqueID, r.UniqueID)
	n.status = append(n.status, int32(r.Status))
	n.eventTime = append(n.eventTime, r.EventTime)
	y, m, d := r.EventTime.In(loc).Date()
	n.day = append(n.day, time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
	n.sessionTime = append(n.sessionTime, optU32(r.SessionTime))
	n.inOctets = append(n.inOctets, optU64(r.InputOctets))
	n.outOctets = append(n.outOctets, optU64(r.OutputOctets))
	n.inPackets = append(n.inPackets, optU32(r.InputPackets))
	n.outPackets = append(n.outPackets, optU32(r.OutputPackets))
	n.interim = append(n.interim, optU32(r.InterimSeconds))
	n.cause = append(n.cause, r.TerminateCause)
	n.connectInfo = append(n.connectInfo, r.ConnectInfo)
	n.profile = append(n.profile, r.Profile)
	n.carries = append(n.carries, carries)
	n.nasID = append(n.nasID, r.RouterID)
}

func (n *narrowColumns) args() []any {
	return []any{n.uniqueID, n.status, n.eventTime, n.sessionTime, n.inOctets, n.outOctets,
		n.inPackets, n.outPackets, n.interim, n.cause, n.connectInfo, n.profile, n.day, n.carries, n.nasID}
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
	if *v > math.MaxInt64 {
		// No real session total gets here (decode refuses them); clamped
		// rather than stored as a negative bigint.
		return pgtype.Int8{Int64: math.MaxInt64, Valid: true}
	}
	return pgtype.Int8{Int64: int64(*v), Valid: true}
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

// logLimiter lets a few lines a second through: a router with a valid
// secret sending (and retransmitting) packets for other routers' sessions
// must not fill the disk with logs.
type logLimiter struct {
	mu     sync.Mutex
	window time.Time
	n      int
}

func (l *logLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	l.n++
	return l.n <= 5
}
