-- nettportal:no-transaction
-- Migration 0010: substring search by username reads a dictionary of the
-- usernames radacct holds instead of trigram indexes on radacct itself.
-- The two trigram indexes (open rows, closed rows) cost every Start and
-- every Stop about ten GIN entries: measured (BenchmarkApplyByKind), a
-- Stop's database CPU falls by about a quarter without them. A
-- subscriber's username is written once and its sessions come back every
-- reconnect, so the dictionary (one row per username, its own trigram
-- index) takes a write only for a new subscriber. A search matches the
-- dictionary by substring and radacct by the username btrees (open and
-- closed rows), as customer names already did. Usernames are never
-- removed (a stale one costs a search an empty probe). Each statement
-- commits on its own and is idempotent.
CREATE TABLE IF NOT EXISTS acct_usernames (
	username text PRIMARY KEY
);

-- The usernames already there, before any trigger adds to the table: this
-- pass holds what it inserted until it commits, and a live Start adding
-- the same name would wait for it (years of history take a while).
INSERT INTO acct_usernames (username)
	SELECT DISTINCT username FROM radacct WHERE username IS NOT NULL AND username <> ''
	ON CONFLICT DO NOTHING;

-- Every writer of radacct fills the dictionary: this server and
-- FreeRADIUS's rlm_sql alike, so the rows are added by triggers rather than
-- by our upsert. The functions run as their owner: FreeRADIUS's role is
-- granted radacct (its setup.sql), not this table, and its accounting must
-- not fail for it. Their search_path is pinned below, pg_temp last, so a
-- writer's temporary table cannot stand in for the dictionary. Names go in
-- sorted: two statements adding the same new names wait for each other in
-- one order instead of deadlocking (two statements of one transaction
-- still can, rarely: a new name on both sides of an Accounting-On in one
-- batch; the batch is then retried).
CREATE OR REPLACE FUNCTION acct_usernames_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
	INSERT INTO acct_usernames (username)
	SELECT DISTINCT username FROM inserted_rows WHERE username IS NOT NULL AND username <> ''
	ORDER BY username
	ON CONFLICT DO NOTHING;
	RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION acct_username_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
	INSERT INTO acct_usernames (username) VALUES (NEW.username) ON CONFLICT DO NOTHING;
	RETURN NULL;
END $$;

DO $$ BEGIN
	EXECUTE format('ALTER FUNCTION acct_usernames_inserted() SET search_path = pg_catalog, %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION acct_username_changed() SET search_path = pg_catalog, %I, pg_temp', current_schema());
END $$;
REVOKE EXECUTE ON FUNCTION acct_usernames_inserted() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION acct_username_changed() FROM PUBLIC;

-- One call per statement (a batch of Starts is one insert), not per row.
-- A row that gains or changes its username later (an update filling what
-- the row lacked) is caught per row; its condition is checked without
-- calling the function, so updates that keep the username pay next to
-- nothing.
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'radacct_usernames_inserted' AND tgrelid = 'radacct'::regclass) THEN
		CREATE TRIGGER radacct_usernames_inserted AFTER INSERT ON radacct
			REFERENCING NEW TABLE AS inserted_rows
			FOR EACH STATEMENT EXECUTE FUNCTION acct_usernames_inserted();
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'radacct_username_changed' AND tgrelid = 'radacct'::regclass) THEN
		CREATE TRIGGER radacct_username_changed AFTER UPDATE OF username ON radacct
			FOR EACH ROW WHEN (NEW.username IS DISTINCT FROM OLD.username AND NEW.username IS NOT NULL AND NEW.username <> '')
			EXECUTE FUNCTION acct_username_changed();
	END IF;
END $$;

-- The usernames written between the first pass and the triggers. Only the
-- missing ones are inserted, so a live Start waits for this pass only for
-- a brand-new name.
INSERT INTO acct_usernames (username)
	SELECT DISTINCT r.username FROM radacct r
	WHERE r.username IS NOT NULL AND r.username <> ''
		AND NOT EXISTS (SELECT 1 FROM acct_usernames d WHERE d.username = r.username)
	ON CONFLICT DO NOTHING;
ANALYZE acct_usernames;

-- Built after the backfill, from the table in one pass. New usernames
-- go to a short pending list (as radacct's trigram indexes had it): a
-- first-time subscriber's Start costs no more than it did, and the list
-- stays too short to mislead the planner's estimate.
CREATE INDEX CONCURRENTLY IF NOT EXISTS acct_usernames_trgm_idx ON acct_usernames
	USING gin (username gin_trgm_ops) WITH (fastupdate = on, gin_pending_list_limit = 256);

-- An older binary (a rollback) still searches radacct by ILIKE: correct,
-- but without these its username searches scan (README, version notes).
DROP INDEX CONCURRENTLY IF EXISTS radacct_open_user_trgm_idx;
DROP INDEX CONCURRENTLY IF EXISTS radacct_closed_user_trgm_idx;
