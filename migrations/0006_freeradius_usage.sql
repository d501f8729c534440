-- nettportal:no-transaction
-- Migration (freeradius_usage): usage counts the counters FreeRADIUS wrote. This server
-- keeps billing marks (usage_days, and the open row's mark_*) as it writes;
-- FreeRADIUS's stock queries write only the row. So usage_by_day also
-- reads, at query time, the rows no mark of ours covers:
--   - open rows without a mark (FreeRADIUS's sessions): their counters, on
--     the billing day of their last update;
--   - closed rows this server did not close (closed_by NULL: closed by
--     FreeRADIUS, including a session this server started and FreeRADIUS
--     stopped, and every row of a migrated FreeRADIUS history), and rows
--     without a mark that this server closed (FreeRADIUS's sessions ended
--     by an Accounting-On, the stale sweep or a disconnect here): their
--     final counters, on the billing day of acctstoptime. Marks of ours for
--     the same session (earlier days) still count, so only what is new
--     since is added to that day.
-- Each statement commits on its own and is idempotent.

-- serve records its --usage-timezone here, so SQL gives those rows the
-- billing day this server would. The table is otherwise created by the
-- store (secret key check); same definition.
CREATE TABLE IF NOT EXISTS settings (
	name       text PRIMARY KEY,
	value      text NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- Those closed rows, by stop time. This server's own closes always set
-- closed_by, and its rows have a mark once a record carried counters, so
-- its ingest writes this index only for sessions that never reported any.
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_foreign_closed_idx ON radacct (acctstoptime)
	WHERE acctstoptime IS NOT NULL AND (closed_by IS NULL OR mark_day IS NULL);

CREATE OR REPLACE FUNCTION usage_by_day(from_day date, to_day date)
RETURNS TABLE (username text, day date, input_octets bigint, output_octets bigint, sessions bigint)
LANGUAGE sql STABLE AS $$
	WITH tz AS (
		SELECT coalesce((SELECT value FROM settings WHERE name = 'usage_timezone'), 'UTC') AS name
	), foreign_rows AS (
		-- FreeRADIUS's open sessions.
		SELECT r.acctuniqueid, coalesce(r.username, '') AS username,
			(coalesce(r.acctupdatetime, r.acctstarttime) AT TIME ZONE tz.name)::date AS day,
			r.acctinputoctets AS input_octets, r.acctoutputoctets AS output_octets
		FROM radacct r, tz
		WHERE r.acctstoptime IS NULL AND r.mark_day IS NULL
			AND (coalesce(r.acctupdatetime, r.acctstarttime) AT TIME ZONE tz.name)::date BETWEEN from_day AND to_day
		UNION ALL
		-- Sessions closed by FreeRADIUS, or without a mark.
		SELECT r.acctuniqueid, coalesce(r.username, ''), (r.acctstoptime AT TIME ZONE tz.name)::date,
			r.acctinputoctets, r.acctoutputoctets
		FROM radacct r, tz
		WHERE r.acctstoptime IS NOT NULL AND (r.closed_by IS NULL OR r.mark_day IS NULL)
			-- Sessions of ours that never reported counters stay uncounted.
			AND (r.closed_by IS NULL OR r.acctinputoctets > 0 OR r.acctoutputoctets > 0)
			AND r.acctstoptime >= (from_day::timestamp AT TIME ZONE tz.name)
			AND r.acctstoptime < ((to_day + 1)::timestamp AT TIME ZONE tz.name)
	), touched AS (
		SELECT acctuniqueid FROM usage_days WHERE day BETWEEN from_day AND to_day
		UNION
		SELECT acctuniqueid FROM radacct
		WHERE acctstoptime IS NULL AND mark_day BETWEEN from_day AND to_day
		UNION
		SELECT acctuniqueid FROM foreign_rows
	), all_marks AS (
		SELECT u.acctuniqueid, u.username, u.day, u.input_octets, u.output_octets
		FROM usage_days u JOIN touched t USING (acctuniqueid)
		UNION ALL
		SELECT r.acctuniqueid, coalesce(r.username, ''), r.mark_day, r.acctinputoctets, r.acctoutputoctets
		FROM radacct r JOIN touched t USING (acctuniqueid)
		WHERE r.acctstoptime IS NULL AND r.mark_day IS NOT NULL
			AND r.acctinputoctets IS NOT NULL AND r.acctoutputoctets IS NOT NULL
		UNION ALL
		SELECT f.acctuniqueid, f.username, f.day, f.input_octets, f.output_octets
		FROM foreign_rows f
		WHERE f.input_octets IS NOT NULL AND f.output_octets IS NOT NULL
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
