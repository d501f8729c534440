-- Migration 0006: quarantine dedupe.
-- A quarantined record is kept once per identity: a router retransmits a
-- refused record (it was answered, but the answer may be lost) after the
-- listener's 10 s dedupe window, or with a new Identifier and
-- Acct-Delay-Time, and each copy used to add a row. record_key is the
-- record's identity within its router, computed by the server (store's
-- quarantineKey): status and acctuniqueid, plus Acct-Session-Time for an
-- Interim (or the event second without one) and the event second for
-- Accounting-On/Off. repeats counts the copies, last_seen the newest.
-- The table holds only refused records, so a plain index build is short.
ALTER TABLE accounting_quarantine ADD COLUMN IF NOT EXISTS record_key text;
ALTER TABLE accounting_quarantine ADD COLUMN IF NOT EXISTS repeats bigint NOT NULL DEFAULT 1;
ALTER TABLE accounting_quarantine ADD COLUMN IF NOT EXISTS last_seen timestamptz;
UPDATE accounting_quarantine SET last_seen = at WHERE last_seen IS NULL;
ALTER TABLE accounting_quarantine ALTER COLUMN last_seen SET DEFAULT now();
ALTER TABLE accounting_quarantine ALTER COLUMN last_seen SET NOT NULL;

-- The rows from before get their key from the decoded fields, the same
-- way the server computes it (the event second is the text of the
-- RFC 3339 event_time without fraction and zone); a row whose fields lack
-- them keeps a NULL key and is never merged.
UPDATE accounting_quarantine q SET record_key = k.key
FROM (
	SELECT id, CASE
		WHEN status IN (1, 2) AND coalesce(acctuniqueid, '') <> '' THEN status || '|' || acctuniqueid
		WHEN status = 3 AND fields->>'session_time' IS NOT NULL THEN status || '|' || coalesce(acctuniqueid, '') || '|t=' || (fields->>'session_time')
		WHEN fields->>'event_time' IS NOT NULL THEN
			status || '|' || coalesce(acctuniqueid, '') || '|e=' || regexp_replace(fields->>'event_time', '(\.[0-9]+)?Z$', '')
	END AS key
	FROM accounting_quarantine WHERE record_key IS NULL AND status IS NOT NULL
) k
WHERE q.id = k.id AND k.key IS NOT NULL;

-- Copies kept before this migration become one row: the first, with the
-- number of copies and the newest time.
WITH groups AS (
	SELECT nas_id, record_key, min(id) AS keep, count(*) AS n, max(last_seen) AS seen
	FROM accounting_quarantine WHERE record_key IS NOT NULL AND nas_id IS NOT NULL
	GROUP BY nas_id, record_key HAVING count(*) > 1
), merged AS (
	UPDATE accounting_quarantine q SET repeats = g.n, last_seen = g.seen
	FROM groups g WHERE q.id = g.keep
	RETURNING q.id
)
DELETE FROM accounting_quarantine q USING groups g
WHERE q.nas_id = g.nas_id AND q.record_key = g.record_key AND q.id <> g.keep;

CREATE UNIQUE INDEX IF NOT EXISTS accounting_quarantine_record_idx ON accounting_quarantine (nas_id, record_key);
CREATE INDEX IF NOT EXISTS accounting_quarantine_seen_idx ON accounting_quarantine (last_seen);
