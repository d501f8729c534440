-- nettportal:no-transaction
-- Migration 0005: substring search over closed sessions and customers.
-- Trigram indexes on the closed rows (partial, so Starts, the hot insert
-- path, do not pay for them; a Stop is a non-HOT update already) and on
-- customers' usernames, built CONCURRENTLY: radacct may hold years of
-- history, and a plain CREATE INDEX would block accounting while it runs.
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_closed_user_trgm_idx ON radacct
	USING gin (username gin_trgm_ops) WITH (fastupdate = on, gin_pending_list_limit = 256)
	WHERE acctstoptime IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS customers_username_trgm_idx ON customers USING gin (username gin_trgm_ops);
