-- nettportal:no-transaction
-- Migration freeradius_usage (issue 13, after 0007): usage also counts the
-- rows FreeRADIUS wrote that this server closed. A FreeRADIUS session
-- carries no marks of ours; when this server ends it (an Accounting-On
-- through serve, the stale sweep, a disconnect here) the close sets
-- closed_by, so 0007's "closed_by IS NULL" no longer finds it and its
-- traffic left usage. The functions are 0007's with that case added; each
-- statement commits on its own and is idempotent.

-- 0007's index (the same definition, so either migration may create it).
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_foreign_closed_idx ON radacct (acctstoptime)
	WHERE closed_by IS NULL AND acctstoptime IS NOT NULL;

-- Rows closed here that never had a Start of ours (FreeRADIUS's sessions
-- among them), by stop time. Its condition names only columns that an
-- interim never changes: with mark_day in it, the first interim of every
-- session (the one that sets the mark) was a non-HOT update. Rows with a
-- Start of ours and no mark carry only the Start's 0 counters, so usage
-- loses nothing without them.
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_unmarked_closed_idx ON radacct (acctstoptime)
	WHERE closed_by IS NOT NULL AND NOT has_start AND acctstoptime IS NOT NULL;

-- Usage with the billing day's time zone, and the traffic of rows this
-- server has no marks for: a row FreeRADIUS wrote counts its counters on
-- the day of its last update (open) or of its stop (closed, by FreeRADIUS
-- or here), and a session this server started and FreeRADIUS stopped
-- counts its final counters on the stop's day (less what earlier days'
-- marks already hold).
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
		UNION
		SELECT acctuniqueid FROM radacct
		WHERE closed_by IS NOT NULL AND NOT has_start AND mark_day IS NULL AND acctstoptime IS NOT NULL
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
		WHERE r.acctstoptime IS NOT NULL
			AND (r.closed_by IS NULL
				-- Closed here but never marked (FreeRADIUS's session ended by an
				-- Accounting-On, the sweep or a disconnect here), once it
				-- carries traffic: sessions of ours that never reported
				-- counters stay uncounted.
				OR (r.mark_day IS NULL AND (r.acctinputoctets > 0 OR r.acctoutputoctets > 0)))
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
