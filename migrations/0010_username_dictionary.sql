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
-- closed rows), as customer names already did. Each statement commits on
-- its own and is idempotent; CREATE OR REPLACE TRIGGER needs PostgreSQL 14.
CREATE TABLE IF NOT EXISTS acct_usernames (
	username text PRIMARY KEY
);

-- Every writer of radacct fills the dictionary: this server and
-- FreeRADIUS's rlm_sql alike, so the rows are added by triggers rather than
-- by our upsert. The functions run as their owner: FreeRADIUS's role is
-- granted radacct (its setup.sql), not this table, and its accounting must
-- not fail for it. Names go in sorted: two batches adding the same new
-- names then wait for each other in one order instead of deadlocking.
CREATE OR REPLACE FUNCTION acct_usernames_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
	INSERT INTO acct_usernames (username)
	SELECT DISTINCT username FROM inserted_rows WHERE username IS NOT NULL AND username <> ''
	ORDER BY username
	ON CONFLICT DO NOTHING;
	RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION acct_username_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
	INSERT INTO acct_usernames (username) VALUES (NEW.username) ON CONFLICT DO NOTHING;
	RETURN NULL;
END $$;

-- One call per statement (a batch of Starts is one insert), not per row.
CREATE OR REPLACE TRIGGER radacct_usernames_inserted AFTER INSERT ON radacct
	REFERENCING NEW TABLE AS inserted_rows
	FOR EACH STATEMENT EXECUTE FUNCTION acct_usernames_inserted();

-- A row that gains or changes its username later (an update filling what
-- the row lacked). The condition is checked without calling the function,
-- so updates that keep the username (every interim) pay next to nothing.
CREATE OR REPLACE TRIGGER radacct_username_changed AFTER UPDATE OF username ON radacct
	FOR EACH ROW WHEN (NEW.username IS DISTINCT FROM OLD.username AND NEW.username IS NOT NULL AND NEW.username <> '')
	EXECUTE FUNCTION acct_username_changed();

-- The usernames already there, after the triggers exist so that none
-- written meanwhile is missed. One pass over radacct, in the migration
-- (years of history take a while; accounting goes on meanwhile).
INSERT INTO acct_usernames (username)
	SELECT DISTINCT username FROM radacct WHERE username IS NOT NULL AND username <> ''
	ON CONFLICT DO NOTHING;
ANALYZE acct_usernames;

-- Built after the backfill, from the table in one pass. New usernames
-- go to a short pending list (as radacct's trigram indexes had it): a
-- first-time subscriber's Start costs no more than it did, and the list
-- stays too short to mislead the planner's estimate.
CREATE INDEX CONCURRENTLY IF NOT EXISTS acct_usernames_trgm_idx ON acct_usernames
	USING gin (username gin_trgm_ops) WITH (fastupdate = on, gin_pending_list_limit = 256);

DROP INDEX CONCURRENTLY IF EXISTS radacct_open_user_trgm_idx;
DROP INDEX CONCURRENTLY IF EXISTS radacct_closed_user_trgm_idx;
