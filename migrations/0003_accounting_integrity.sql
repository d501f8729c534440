-- Migration 0003: accounting integrity (quarantine, interims seen, overflow-safe usage sums).
-- Records PostgreSQL refused (a data error: SQLSTATE class 22 or 23) even
-- alone in their own savepoint. They are answered once durable here, so an
-- operator sees every record the server could not take, and nothing of it
-- is lost: raw holds the packet as received (when the record came from one),
-- fields the decoded record with every string escaped to valid UTF-8.
CREATE TABLE IF NOT EXISTS accounting_quarantine (
	id           bigserial PRIMARY KEY,
	at           timestamptz NOT NULL DEFAULT now(),
	nas_id       bigint,
	source       text NOT NULL DEFAULT '',
	status       bigint,
	acctuniqueid text,
	raw          bytea,
	fields       jsonb NOT NULL,
	error        text NOT NULL,
	sqlstate     text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS accounting_quarantine_nas_idx ON accounting_quarantine (nas_id, at);
-- When the router was last seen sending an Interim-Update: the stale sweep
-- closes sessions only of routers that send them (RouterOS's default is
-- `/ppp aaa interim-update=0`).
ALTER TABLE router_status ADD COLUMN IF NOT EXISTS interims_seen_at timestamptz;

-- The usage functions again, with sums that cannot overflow bigint whatever
-- is stored (a sum is clamped to the largest bigint rather than failing).
CREATE OR REPLACE FUNCTION usage_by_day(from_day date, to_day date)
RETURNS TABLE (username text, day date, input_octets bigint, output_octets bigint, sessions bigint)
LANGUAGE sql STABLE AS $$
	WITH touched AS (
		SELECT acctuniqueid FROM usage_days WHERE day BETWEEN from_day AND to_day
		UNION
		SELECT acctuniqueid FROM radacct
		WHERE acctstoptime IS NULL AND mark_day BETWEEN from_day AND to_day
	), all_marks AS (
		SELECT u.acctuniqueid, u.username, u.day, u.input_octets, u.output_octets
		FROM usage_days u JOIN touched t USING (acctuniqueid)
		UNION ALL
		SELECT r.acctuniqueid, coalesce(r.username, ''), r.mark_day, r.acctinputoctets, r.acctoutputoctets
		FROM radacct r JOIN touched t USING (acctuniqueid)
		WHERE r.acctstoptime IS NULL AND r.mark_day IS NOT NULL
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

CREATE OR REPLACE FUNCTION usage_by_month(from_day date, to_day date)
RETURNS TABLE (username text, month date, input_octets bigint, output_octets bigint)
LANGUAGE sql STABLE AS $$
	SELECT d.username, date_trunc('month', d.day)::date,
		least(sum(d.input_octets), 9223372036854775807)::bigint, least(sum(d.output_octets), 9223372036854775807)::bigint
	FROM usage_by_day(from_day, to_day) d GROUP BY 1, 2 ORDER BY 2, 1
$$;
