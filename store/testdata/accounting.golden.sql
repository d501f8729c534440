-- upsertAccountingSQL: the full upsert ($n are recordColumns with full)
WITH up AS (
INSERT INTO radacct AS r (acctsessionid, acctuniqueid, username, realm, nasipaddress, nasportid, nasporttype, acctstarttime, acctupdatetime, acctstoptime, acctinterval, acctsessiontime, acctauthentic, connectinfo_start, connectinfo_stop, acctinputoctets, acctoutputoctets, calledstationid, callingstationid, acctterminatecause, servicetype, framedprotocol, framedipaddress, framedipv6address, framedipv6prefix, framedinterfaceid, delegatedipv6prefix, class, nas_id, nasidentifier, closed_by, acctinputpackets, acctoutputpackets, profile, has_start, source, mark_at, mark_day, input_bps, output_bps)
SELECT
	u.sessionid,
	u.uniqueid,
	u.username,
	nullif(u.realm, ''),
	u.nasip::inet,
	nullif(u.nasportid, ''),
	nullif(u.nasporttype, ''),
	CASE WHEN u.status = 1 THEN u.eventtime ELSE u.eventtime - make_interval(secs => coalesce(u.sessiontime, 0)) END,
	u.eventtime,
	CASE WHEN u.status = 2 THEN u.eventtime END,
	u.interim,
	coalesce(u.sessiontime, CASE WHEN u.status = 1 THEN 0 END),
	nullif(u.authentic, ''),
	CASE WHEN u.status = 1 THEN nullif(u.connectinfo, '') END,
	CASE WHEN u.status = 2 THEN nullif(u.connectinfo, '') END,
	coalesce(u.inoctets, CASE WHEN u.status = 1 THEN 0 END),
	coalesce(u.outoctets, CASE WHEN u.status = 1 THEN 0 END),
	nullif(u.called, ''),
	nullif(u.calling, ''),
	CASE WHEN u.status = 2 THEN coalesce(u.cause, '') END,
	nullif(u.servicetype, ''),
	nullif(u.framedprotocol, ''),
	nullif(u.framedip, '')::inet,
	nullif(u.framedipv6, '')::inet,
	nullif(u.framedipv6prefix, '')::inet,
	nullif(u.ifaceid, ''),
	nullif(u.delegated, '')::inet,
	nullif(u.class, ''),
	u.nasid,
	nullif(u.nasident, ''),
	CASE WHEN u.status = 2 THEN 'stop' END,
	u.inpackets,
	u.outpackets,
	nullif(u.profile, ''),
	u.status = 1,
	CASE WHEN u.fromapi THEN 'api' ELSE 'radius' END,
	CASE WHEN u.inoctets IS NOT NULL AND u.outoctets IS NOT NULL THEN u.eventtime END,
	CASE WHEN u.inoctets IS NOT NULL AND u.outoctets IS NOT NULL THEN u.day END,
	0,
	0
FROM unnest($1::int[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[], $29::text[], $30::bigint[], $31::text[], $32::bool[], $33::date[]) AS u(status, nasid, eventtime, uniqueid, sessionid, username, realm, nasip, nasident, nasportid, nasporttype, sessiontime, inoctets, outoctets, inpackets, outpackets, authentic, connectinfo, called, calling, cause, servicetype, framedprotocol, framedip, framedipv6, framedipv6prefix, delegated, ifaceid, class, interim, profile, fromapi, day)
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
	acctstoptime = CASE WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.acctstoptime WHEN (EXCLUDED.acctstoptime IS NULL AND NOT EXCLUDED.has_start AND r.closed_by IN ('nas-reboot', 'stale', 'reconciler', 'max-age')
		AND EXCLUDED.acctupdatetime > r.acctstoptime) THEN NULL ELSE r.acctstoptime END,
	acctterminatecause = CASE WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.acctterminatecause WHEN (EXCLUDED.acctstoptime IS NULL AND NOT EXCLUDED.has_start AND r.closed_by IN ('nas-reboot', 'stale', 'reconciler', 'max-age')
		AND EXCLUDED.acctupdatetime > r.acctstoptime) THEN NULL ELSE r.acctterminatecause END,
	connectinfo_stop = CASE WHEN EXCLUDED.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN EXCLUDED.connectinfo_stop ELSE r.connectinfo_stop END,
	closed_by = CASE WHEN EXCLUDED.closed_by = 'stop' THEN 'stop' WHEN (EXCLUDED.acctstoptime IS NULL AND NOT EXCLUDED.has_start AND r.closed_by IN ('nas-reboot', 'stale', 'reconciler', 'max-age')
		AND EXCLUDED.acctupdatetime > r.acctstoptime) THEN NULL ELSE r.closed_by END,
	acctsessiontime = greatest(r.acctsessiontime, EXCLUDED.acctsessiontime),
	acctinputoctets = greatest(r.acctinputoctets, EXCLUDED.acctinputoctets),
	acctoutputoctets = greatest(r.acctoutputoctets, EXCLUDED.acctoutputoctets),
	acctinputpackets = greatest(r.acctinputpackets, EXCLUDED.acctinputpackets),
	acctoutputpackets = greatest(r.acctoutputpackets, EXCLUDED.acctoutputpackets),
	prev_updatetime = CASE WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN r.acctupdatetime ELSE r.prev_updatetime END,
	prev_inputoctets = CASE WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN r.acctinputoctets ELSE r.prev_inputoctets END,
	prev_outputoctets = CASE WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN r.acctoutputoctets ELSE r.prev_outputoctets END,
	acctinterval = coalesce(EXCLUDED.acctinterval, r.acctinterval),
	profile = coalesce(EXCLUDED.profile, r.profile),
	input_bps = CASE
		WHEN EXCLUDED.closed_by = 'stop' OR r.acctstoptime IS NOT NULL THEN 0
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN
			CASE WHEN EXCLUDED.acctinputoctets >= r.acctinputoctets
			THEN least((EXCLUDED.acctinputoctets::numeric - r.acctinputoctets) * 8
				/ extract(epoch FROM EXCLUDED.acctupdatetime - r.acctupdatetime), 9223372036854775807)::bigint
			ELSE 0 END
		ELSE coalesce(r.input_bps, 0) END,
	output_bps = CASE
		WHEN EXCLUDED.closed_by = 'stop' OR r.acctstoptime IS NOT NULL THEN 0
		WHEN EXCLUDED.acctupdatetime > r.acctupdatetime AND EXCLUDED.acctinputoctets IS NOT NULL THEN
			CASE WHEN EXCLUDED.acctoutputoctets >= r.acctoutputoctets
			THEN least((EXCLUDED.acctoutputoctets::numeric - r.acctoutputoctets) * 8
				/ extract(epoch FROM EXCLUDED.acctupdatetime - r.acctupdatetime), 9223372036854775807)::bigint
			ELSE 0 END
		ELSE coalesce(r.output_bps, 0) END,
	mark_at = CASE WHEN EXCLUDED.mark_at > r.mark_at OR (r.mark_at IS NULL AND EXCLUDED.mark_at IS NOT NULL) THEN EXCLUDED.mark_at ELSE r.mark_at END,
	mark_day = CASE WHEN EXCLUDED.mark_at > r.mark_at OR (r.mark_at IS NULL AND EXCLUDED.mark_at IS NOT NULL) THEN EXCLUDED.mark_day ELSE r.mark_day END,
	flush_day = CASE WHEN EXCLUDED.mark_at > r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN r.mark_day WHEN EXCLUDED.mark_at < r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN EXCLUDED.mark_day END,
	flush_inputoctets = CASE WHEN EXCLUDED.mark_at > r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN r.acctinputoctets WHEN EXCLUDED.mark_at < r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN EXCLUDED.acctinputoctets END,
	flush_outputoctets = CASE WHEN EXCLUDED.mark_at > r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN r.acctoutputoctets WHEN EXCLUDED.mark_at < r.mark_at AND EXCLUDED.mark_day <> r.mark_day THEN EXCLUDED.acctoutputoctets END,
	connectinfo_start = coalesce(r.connectinfo_start, EXCLUDED.connectinfo_start),
	realm = coalesce(r.realm, EXCLUDED.realm),
	nasportid = coalesce(r.nasportid, EXCLUDED.nasportid),
	nasporttype = coalesce(r.nasporttype, EXCLUDED.nasporttype),
	acctauthentic = coalesce(r.acctauthentic, EXCLUDED.acctauthentic),
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
	nasidentifier = coalesce(r.nasidentifier, EXCLUDED.nasidentifier)
-- A session belongs to the router that wrote it: another router's record
-- changes nothing (the caller tells it from the RETURNING and refuses it).
-- A row without nas_id (written by FreeRADIUS) belongs to the router whose
-- nasname is its nasipaddress, which claims it (nas_id above). Its
-- nasipaddress may instead be an address the packet named that no nas row
-- covers (a NAS-IPv6-Address, or a NAS-IP-Address behind NAT, while the
-- router is registered by the address it sends from): then the router
-- whose packet names that same address claims it, as FreeRADIUS would
-- update it; an address a nas row covers stays that row's.
WHERE r.nas_id = EXCLUDED.nas_id
	OR (r.nas_id IS NULL AND (EXISTS (SELECT 1 FROM nas n WHERE n.id = EXCLUDED.nas_id AND n.nasname = host(r.nasipaddress))
		OR (r.nasipaddress = EXCLUDED.nasipaddress
			AND NOT EXISTS (SELECT 1 FROM nas n WHERE n.nasname_prefix >>= r.nasipaddress))))
RETURNING r.acctuniqueid, r.username, r.nas_id, r.acctstoptime, r.mark_day, r.acctinputoctets, r.acctoutputoctets,
	r.flush_day, r.flush_inputoctets, r.flush_outputoctets
), marks AS (
	SELECT acctuniqueid, flush_day AS day, username, nas_id, flush_inputoctets AS inoctets, flush_outputoctets AS outoctets
	FROM up WHERE flush_day IS NOT NULL AND flush_inputoctets IS NOT NULL AND flush_outputoctets IS NOT NULL
	UNION ALL
	-- A closed row keeps no mark of its own: its last one goes to usage_days.
	SELECT acctuniqueid, mark_day, username, nas_id, acctinputoctets, acctoutputoctets
	FROM up WHERE acctstoptime IS NOT NULL AND mark_day IS NOT NULL
		AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL), kept AS (
INSERT INTO usage_days AS d (acctuniqueid, day, username, nas_id, input_octets, output_octets)
SELECT acctuniqueid, day, coalesce(username, ''), nas_id, inoctets, outoctets FROM marks
ON CONFLICT (acctuniqueid, day) DO UPDATE SET
	input_octets = greatest(d.input_octets, EXCLUDED.input_octets),
	output_octets = greatest(d.output_octets, EXCLUDED.output_octets))
SELECT acctuniqueid FROM up;

-- updateExistingSQL: the narrow update ($n are recordColumns with narrow)
WITH up AS (
UPDATE radacct AS r SET
	acctstarttime = CASE
		WHEN e.has_start AND NOT r.has_start THEN e.acctstarttime
		WHEN r.has_start THEN r.acctstarttime
		ELSE least(r.acctstarttime, e.acctstarttime) END,
	has_start = r.has_start OR e.has_start,
	acctupdatetime = greatest(r.acctupdatetime, e.acctupdatetime),
	acctstoptime = CASE WHEN e.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN e.acctstoptime WHEN (e.acctstoptime IS NULL AND NOT e.has_start AND r.closed_by IN ('nas-reboot', 'stale', 'reconciler', 'max-age')
		AND e.acctupdatetime > r.acctstoptime) THEN NULL ELSE r.acctstoptime END,
	acctterminatecause = CASE WHEN e.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN e.acctterminatecause WHEN (e.acctstoptime IS NULL AND NOT e.has_start AND r.closed_by IN ('nas-reboot', 'stale', 'reconciler', 'max-age')
		AND e.acctupdatetime > r.acctstoptime) THEN NULL ELSE r.acctterminatecause END,
	connectinfo_stop = CASE WHEN e.closed_by = 'stop' AND r.closed_by IS DISTINCT FROM 'stop' THEN e.connectinfo_stop ELSE r.connectinfo_stop END,
	closed_by = CASE WHEN e.closed_by = 'stop' THEN 'stop' WHEN (e.acctstoptime IS NULL AND NOT e.has_start AND r.closed_by IN ('nas-reboot', 'stale', 'reconciler', 'max-age')
		AND e.acctupdatetime > r.acctstoptime) THEN NULL ELSE r.closed_by END,
	acctsessiontime = greatest(r.acctsessiontime, e.acctsessiontime),
	acctinputoctets = greatest(r.acctinputoctets, e.acctinputoctets),
	acctoutputoctets = greatest(r.acctoutputoctets, e.acctoutputoctets),
	acctinputpackets = greatest(r.acctinputpackets, e.acctinputpackets),
	acctoutputpackets = greatest(r.acctoutputpackets, e.acctoutputpackets),
	prev_updatetime = CASE WHEN e.acctupdatetime > r.acctupdatetime AND e.acctinputoctets IS NOT NULL THEN r.acctupdatetime ELSE r.prev_updatetime END,
	prev_inputoctets = CASE WHEN e.acctupdatetime > r.acctupdatetime AND e.acctinputoctets IS NOT NULL THEN r.acctinputoctets ELSE r.prev_inputoctets END,
	prev_outputoctets = CASE WHEN e.acctupdatetime > r.acctupdatetime AND e.acctinputoctets IS NOT NULL THEN r.acctoutputoctets ELSE r.prev_outputoctets END,
	acctinterval = coalesce(e.acctinterval, r.acctinterval),
	profile = coalesce(e.profile, r.profile),
	input_bps = CASE
		WHEN e.closed_by = 'stop' OR r.acctstoptime IS NOT NULL THEN 0
		WHEN e.acctupdatetime > r.acctupdatetime AND e.acctinputoctets IS NOT NULL THEN
			CASE WHEN e.acctinputoctets >= r.acctinputoctets
			THEN least((e.acctinputoctets::numeric - r.acctinputoctets) * 8
				/ extract(epoch FROM e.acctupdatetime - r.acctupdatetime), 9223372036854775807)::bigint
			ELSE 0 END
		ELSE coalesce(r.input_bps, 0) END,
	output_bps = CASE
		WHEN e.closed_by = 'stop' OR r.acctstoptime IS NOT NULL THEN 0
		WHEN e.acctupdatetime > r.acctupdatetime AND e.acctinputoctets IS NOT NULL THEN
			CASE WHEN e.acctoutputoctets >= r.acctoutputoctets
			THEN least((e.acctoutputoctets::numeric - r.acctoutputoctets) * 8
				/ extract(epoch FROM e.acctupdatetime - r.acctupdatetime), 9223372036854775807)::bigint
			ELSE 0 END
		ELSE coalesce(r.output_bps, 0) END,
	mark_at = CASE WHEN e.mark_at > r.mark_at OR (r.mark_at IS NULL AND e.mark_at IS NOT NULL) THEN e.mark_at ELSE r.mark_at END,
	mark_day = CASE WHEN e.mark_at > r.mark_at OR (r.mark_at IS NULL AND e.mark_at IS NOT NULL) THEN e.mark_day ELSE r.mark_day END,
	flush_day = CASE WHEN e.mark_at > r.mark_at AND e.mark_day <> r.mark_day THEN r.mark_day WHEN e.mark_at < r.mark_at AND e.mark_day <> r.mark_day THEN e.mark_day END,
	flush_inputoctets = CASE WHEN e.mark_at > r.mark_at AND e.mark_day <> r.mark_day THEN r.acctinputoctets WHEN e.mark_at < r.mark_at AND e.mark_day <> r.mark_day THEN e.acctinputoctets END,
	flush_outputoctets = CASE WHEN e.mark_at > r.mark_at AND e.mark_day <> r.mark_day THEN r.acctoutputoctets WHEN e.mark_at < r.mark_at AND e.mark_day <> r.mark_day THEN e.acctoutputoctets END
FROM (SELECT u.uniqueid AS acctuniqueid,
		CASE WHEN u.status = 1 THEN u.eventtime ELSE u.eventtime - make_interval(secs => coalesce(u.sessiontime, 0)) END AS acctstarttime,
		u.eventtime AS acctupdatetime,
		CASE WHEN u.status = 2 THEN u.eventtime END AS acctstoptime,
		u.interim AS acctinterval,
		coalesce(u.sessiontime, CASE WHEN u.status = 1 THEN 0 END) AS acctsessiontime,
		CASE WHEN u.status = 2 THEN nullif(u.connectinfo, '') END AS connectinfo_stop,
		coalesce(u.inoctets, CASE WHEN u.status = 1 THEN 0 END) AS acctinputoctets,
		coalesce(u.outoctets, CASE WHEN u.status = 1 THEN 0 END) AS acctoutputoctets,
		CASE WHEN u.status = 2 THEN coalesce(u.cause, '') END AS acctterminatecause,
		u.nasid AS nas_id,
		CASE WHEN u.status = 2 THEN 'stop' END AS closed_by,
		u.inpackets AS acctinputpackets,
		u.outpackets AS acctoutputpackets,
		nullif(u.profile, '') AS profile,
		u.status = 1 AS has_start,
		CASE WHEN u.inoctets IS NOT NULL AND u.outoctets IS NOT NULL THEN u.eventtime END AS mark_at,
		CASE WHEN u.inoctets IS NOT NULL AND u.outoctets IS NOT NULL THEN u.day END AS mark_day,
		u.carries, u.ord
	FROM unnest($1::int[], $2::bigint[], $3::timestamptz[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::date[], $15::int[]) WITH ORDINALITY AS u(status, nasid, eventtime, uniqueid, sessiontime, inoctets, outoctets, inpackets, outpackets, connectinfo, cause, interim, profile, day, carries, ord)) AS e
WHERE r.acctuniqueid = e.acctuniqueid
	-- Only the owner's records (the full upsert refuses the others).
	AND r.nas_id = e.nas_id
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
), marks AS (
	SELECT acctuniqueid, flush_day AS day, username, nas_id, flush_inputoctets AS inoctets, flush_outputoctets AS outoctets
	FROM up WHERE flush_day IS NOT NULL AND flush_inputoctets IS NOT NULL AND flush_outputoctets IS NOT NULL
	UNION ALL
	-- A closed row keeps no mark of its own: its last one goes to usage_days.
	SELECT acctuniqueid, mark_day, username, nas_id, acctinputoctets, acctoutputoctets
	FROM up WHERE acctstoptime IS NOT NULL AND mark_day IS NOT NULL
		AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL), kept AS (
INSERT INTO usage_days AS d (acctuniqueid, day, username, nas_id, input_octets, output_octets)
SELECT acctuniqueid, day, coalesce(username, ''), nas_id, inoctets, outoctets FROM marks
ON CONFLICT (acctuniqueid, day) DO UPDATE SET
	input_octets = greatest(d.input_octets, EXCLUDED.input_octets),
	output_octets = greatest(d.output_octets, EXCLUDED.output_octets))
SELECT ord FROM up;

-- lockRoundSQL
SELECT acctuniqueid, nas_id, CASE WHEN closed_by IN ('nas-reboot', 'stale', 'reconciler', 'max-age') THEN acctstoptime END
	FROM radacct WHERE acctuniqueid = ANY($1::text[]) ORDER BY acctuniqueid FOR NO KEY UPDATE;

-- closeRouterSessionsSQL: Accounting-On/Off
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
), marks AS (
	SELECT acctuniqueid, mark_day AS day, username, nas_id, acctinputoctets AS inoctets, acctoutputoctets AS outoctets
	FROM closed WHERE mark_day IS NOT NULL AND acctinputoctets IS NOT NULL AND acctoutputoctets IS NOT NULL
), kept AS (
INSERT INTO usage_days AS d (acctuniqueid, day, username, nas_id, input_octets, output_octets)
SELECT acctuniqueid, day, coalesce(username, ''), nas_id, inoctets, outoctets FROM marks
ON CONFLICT (acctuniqueid, day) DO UPDATE SET
	input_octets = greatest(d.input_octets, EXCLUDED.input_octets),
	output_octets = greatest(d.output_octets, EXCLUDED.output_octets))
SELECT count(*) FROM closed;

-- retireAPIRowsSQL
WITH gone AS (
	DELETE FROM radacct r USING unnest($1::bigint[], $2::text[]) AS u(nasid, sessionid)
	WHERE r.source = 'api' AND r.nas_id = u.nasid AND r.acctsessionid = u.sessionid
		AND EXISTS (SELECT 1 FROM radacct WHERE source = 'api') -- evaluated once: skips the join when there are none
	RETURNING r.acctuniqueid
)
DELETE FROM usage_days WHERE acctuniqueid IN (SELECT acctuniqueid FROM gone);

