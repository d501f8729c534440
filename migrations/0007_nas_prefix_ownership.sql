-- nettportal:no-transaction
-- Migration 0007: rows without nas_id (FreeRADIUS's, a migrated database's
-- history) belong to the nas row whose address or CIDR range holds their
-- nasipaddress, the most specific one winning; their traffic is in usage.
-- Each statement commits on its own (the radacct indexes are built
-- CONCURRENTLY), so each is idempotent.

-- What a nas row's nasname covers: an address is its /32 (or /128), a CIDR
-- its network ('10.1.0.5/24' is 10.1.0.0/24, as FreeRADIUS reads it), a
-- hostname or anything else nothing (spaces around it ignored, as the
-- routers list ignores them). Parsed once per nas write (a stored
-- generated column), never per radacct row.
CREATE OR REPLACE FUNCTION nas_prefix(nasname text) RETURNS cidr
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RETURN network(btrim(nasname)::inet);
EXCEPTION WHEN OTHERS THEN
	RETURN NULL;
END $$;

ALTER TABLE nas ADD COLUMN IF NOT EXISTS nasname_prefix cidr GENERATED ALWAYS AS (nas_prefix(nasname)) STORED;

-- The nas row an address belongs to: of the rows whose nasname covers it,
-- the one with the longest prefix (an exact address beats a range, a /25
-- a /24). None when two rows tie for it (two rows with one address or one
-- range: which one is meant is unknown). The nas_id trigger of 0002 calls
-- it for rows written without nas_id, so FreeRADIUS rows from a range's
-- NAS are owned now too; this server's ingest never calls it.
CREATE OR REPLACE FUNCTION nas_router_id(addr inet) RETURNS integer
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN count(*) = 1 THEN min(id) END FROM nas
	WHERE nasname_prefix >>= addr
		AND masklen(nasname_prefix) = (SELECT max(masklen(nasname_prefix)) FROM nas WHERE nasname_prefix >>= addr)
$$;

-- Open rows of a range's NAS get their router as 0002 gave the others
-- theirs (through radacct_open_unowned_idx; closed history is not
-- rewritten: readers resolve it, below).
UPDATE radacct SET nas_id = nas_router_id(nasipaddress)
	WHERE acctstoptime IS NULL AND nas_id IS NULL AND nas_router_id(nasipaddress) IS NOT NULL;

-- Rows without nas_id by address and start: a router's sessions and
-- history (?router=) include them without a scan. This server's rows
-- never enter it, so its ingest does not pay for it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_unowned_idx ON radacct (nasipaddress, acctstarttime)
	WHERE nas_id IS NULL;

-- Rows another writer closed (FreeRADIUS's Stop sets no closed_by; this
-- server's closes always do), by stop time: usage reads their counters,
-- which no usage_days mark holds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_foreign_closed_idx ON radacct (acctstoptime)
	WHERE closed_by IS NULL AND acctstoptime IS NOT NULL;

-- Usage with the billing day's time zone, and the traffic of rows this
-- server has no marks for: a row FreeRADIUS wrote counts its counters on
-- the day of its last update (open) or of its stop (closed), and a session
-- this server started and FreeRADIUS stopped counts its final counters on
-- the stop's day (less what earlier days' marks already hold).
CREATE OR REPLACE FUNCTION usage_by_day(from_day date, to_day date, tz text)
RETURNS TABLE (username text, day date, input_octets bigint, output_octets bigint, sessions bigint)
LANGUAGE sql STABLE AS $$
	WITH touched AS (
		SELECT acctuniqueid FROM usage_days WHERE day BETWEEN from_day AND to_day
		UNION
		SELECT acctuniqueid FROM radacct
		WHERE acctstoptime IS NULL
			AND coalesce(mark_day, (coalesce(acctupdatetime, acctstarttime) AT TIME ZONE tz)::date) BETWEEN from_day AND to_day
		UNION
		SELECT acctuniqueid FROM radacct
		WHERE closed_by IS NULL AND acctstoptime IS NOT NULL
			AND acctstoptime >= (from_day::timestamp AT TIME ZONE tz)
			AND acctstoptime < ((to_day + 1)::timestamp AT TIME ZONE tz)
	), all_marks AS (
		SELECT u.acctuniqueid, u.username, u.day, u.input_octets, u.output_octets
		FROM usage_days u JOIN touched t USING (acctuniqueid)
		UNION ALL
		SELECT r.acctuniqueid, coalesce(r.username, ''),
			coalesce(r.mark_day, (coalesce(r.acctupdatetime, r.acctstarttime) AT TIME ZONE tz)::date),
			r.acctinputoctets, r.acctoutputoctets
		FROM radacct r JOIN touched t USING (acctuniqueid)
		-- Without a mark (a row FreeRADIUS writes), once it carries traffic:
		-- a Start's 0 counters are not usage yet, as for this server's rows.
		WHERE r.acctstoptime IS NULL AND r.acctinputoctets IS NOT NULL AND r.acctoutputoctets IS NOT NULL
			AND (r.mark_day IS NOT NULL OR (coalesce(r.acctupdatetime, r.acctstarttime) IS NOT NULL
				AND (r.acctinputoctets > 0 OR r.acctoutputoctets > 0)))
		UNION ALL
		SELECT r.acctuniqueid, coalesce(r.username, ''), (r.acctstoptime AT TIME ZONE tz)::date,
			r.acctinputoctets, r.acctoutputoctets
		FROM radacct r JOIN touched t USING (acctuniqueid)
		WHERE r.acctstoptime IS NOT NULL AND r.closed_by IS NULL
			AND r.acctinputoctets IS NOT NULL AND r.acctoutputoctets IS NOT NULL
	), day_marks AS (
		SELECT acctuniqueid, max(username) AS username, day,
			max(input_octets) AS input_octets, max(output_octets) AS output_octets
		FROM all_marks GROUP BY acctuniqueid, day
	), marks AS (
		SELECT m.acctuniqueid, m.username, m.day,
			greatest(m.input_octets::numeric - coalesce(lag(m.input_octets) OVER w, 0), 0) AS din,
			greatest(m.output_octets::numeric - coalesce(lag(m.output_octets) OVER w, 0), 0) AS dout
		FROM day_marks m
		WINDOW w AS (PARTITION BY m.acctuniqueid ORDER BY m.day)
	)
	SELECT m.username, m.day, least(sum(m.din), 9223372036854775807)::bigint,
		least(sum(m.dout), 9223372036854775807)::bigint, count(DISTINCT m.acctuniqueid)
	FROM marks m WHERE m.day BETWEEN from_day AND to_day
	GROUP BY m.username, m.day ORDER BY m.day, m.username
$$;

CREATE OR REPLACE FUNCTION usage_by_month(from_day date, to_day date, tz text)
RETURNS TABLE (username text, month date, input_octets bigint, output_octets bigint)
LANGUAGE sql STABLE AS $$
	SELECT d.username, date_trunc('month', d.day)::date,
		least(sum(d.input_octets), 9223372036854775807)::bigint, least(sum(d.output_octets), 9223372036854775807)::bigint
	FROM usage_by_day(from_day, to_day, tz) d GROUP BY 1, 2 ORDER BY 2, 1
$$;

-- The two-argument forms (and usage_daily) that billing SQL calls read
-- billing days in the session's TimeZone setting.
CREATE OR REPLACE FUNCTION usage_by_day(from_day date, to_day date)
RETURNS TABLE (username text, day date, input_octets bigint, output_octets bigint, sessions bigint)
LANGUAGE sql STABLE AS $$
	SELECT * FROM usage_by_day(from_day, to_day, current_setting('TimeZone'))
$$;

CREATE OR REPLACE FUNCTION usage_by_month(from_day date, to_day date)
RETURNS TABLE (username text, month date, input_octets bigint, output_octets bigint)
LANGUAGE sql STABLE AS $$
	SELECT * FROM usage_by_month(from_day, to_day, current_setting('TimeZone'))
$$;
