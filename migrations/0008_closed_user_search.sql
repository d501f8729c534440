-- nettportal:no-transaction
-- Migration 0008: closed sessions by username. A history search matches
-- customers by name and then their usernames (username = ANY(...)); closed
-- rows had only the trigram index for that, and a trigram equality lookup
-- of a username like "customer001234" reads the long posting lists of its
-- common trigrams: 2,500 matching customers over 20,000 closed rows took
-- 4 s, 50,000 over 400,000 did not finish in a minute. A btree on the
-- closed rows makes each username a probe. Only Stops pay for it (they are
-- non-HOT updates already); Starts and interims do not touch it. Built
-- CONCURRENTLY: radacct may hold years of history.
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_closed_user_idx ON radacct (username, acctstarttime)
	WHERE acctstoptime IS NOT NULL;
