-- nettportal:no-transaction
-- Migration 0002: what a FreeRADIUS 3.2 pointed at this database expects,
-- and ownership of the rows it writes. Each statement commits on its own
-- (indexes on tables that may be large are built CONCURRENTLY), so each
-- is idempotent.

-- FreeRADIUS 3.2's PostgreSQL tables that its stock queries.conf reads and
-- writes besides radacct and nas: authorization (radcheck, radreply and
-- the group tables), post-auth logging, and nasreload, without which the
-- stock simul_count_query fails and FreeRADIUS then lets users past
-- Simultaneous-Use. Same names, types and indexes as its schema.sql; a
-- database that has them already keeps them untouched.
CREATE TABLE IF NOT EXISTS radcheck (
	id        serial PRIMARY KEY,
	username  text NOT NULL DEFAULT '',
	attribute text NOT NULL DEFAULT '',
	op        varchar(2) NOT NULL DEFAULT '==',
	value     text NOT NULL DEFAULT ''
);
CREATE INDEX CONCURRENTLY IF NOT EXISTS radcheck_username ON radcheck (username, attribute);

CREATE TABLE IF NOT EXISTS radgroupcheck (
	id        serial PRIMARY KEY,
	groupname text NOT NULL DEFAULT '',
	attribute text NOT NULL DEFAULT '',
	op        varchar(2) NOT NULL DEFAULT '==',
	value     text NOT NULL DEFAULT ''
);
CREATE INDEX CONCURRENTLY IF NOT EXISTS radgroupcheck_groupname ON radgroupcheck (groupname, attribute);

CREATE TABLE IF NOT EXISTS radgroupreply (
	id        serial PRIMARY KEY,
	groupname text NOT NULL DEFAULT '',
	attribute text NOT NULL DEFAULT '',
	op        varchar(2) NOT NULL DEFAULT '=',
	value     text NOT NULL DEFAULT ''
);
CREATE INDEX CONCURRENTLY IF NOT EXISTS radgroupreply_groupname ON radgroupreply (groupname, attribute);

CREATE TABLE IF NOT EXISTS radreply (
	id        serial PRIMARY KEY,
	username  text NOT NULL DEFAULT '',
	attribute text NOT NULL DEFAULT '',
	op        varchar(2) NOT NULL DEFAULT '=',
	value     text NOT NULL DEFAULT ''
);
CREATE INDEX CONCURRENTLY IF NOT EXISTS radreply_username ON radreply (username, attribute);

CREATE TABLE IF NOT EXISTS radusergroup (
	id        serial PRIMARY KEY,
	username  text NOT NULL DEFAULT '',
	groupname text NOT NULL DEFAULT '',
	priority  integer NOT NULL DEFAULT 0
);
CREATE INDEX CONCURRENTLY IF NOT EXISTS radusergroup_username ON radusergroup (username);

CREATE TABLE IF NOT EXISTS radpostauth (
	id               bigserial PRIMARY KEY,
	username         text NOT NULL,
	pass             text,
	reply            text,
	calledstationid  text,
	callingstationid text,
	authdate         timestamptz NOT NULL DEFAULT now(),
	class            text
);
CREATE INDEX CONCURRENTLY IF NOT EXISTS radpostauth_username_idx ON radpostauth (username);
CREATE INDEX CONCURRENTLY IF NOT EXISTS radpostauth_class_idx ON radpostauth (class);

CREATE TABLE IF NOT EXISTS nasreload (
	nasipaddress inet PRIMARY KEY,
	reloadtime   timestamptz NOT NULL
);

-- Rows FreeRADIUS writes carry no nas_id. The router they belong to is the
-- one `nas` row whose nasname is their nasipaddress (none when two rows
-- share the address: which router is meant is then unknown). Resolved at
-- write time, by a trigger that fires only when a row would be stored
-- without nas_id: this server always sets it, so its ingest pays only the
-- trigger's WHEN test, and every reader (live view, filters, disconnect,
-- Accounting-On, the stale sweep, the reconciler, the routers page) keeps
-- its plain nas_id index probes.
CREATE OR REPLACE FUNCTION nas_router_id(addr inet) RETURNS integer
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN count(*) = 1 THEN min(id) END FROM nas WHERE nasname = host(addr)
$$;

CREATE OR REPLACE FUNCTION radacct_set_nas_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.nas_id := nas_router_id(NEW.nasipaddress);
	RETURN NEW;
END $$;

DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'radacct_nas_id' AND tgrelid = 'radacct'::regclass) THEN
		CREATE TRIGGER radacct_nas_id BEFORE INSERT OR UPDATE ON radacct
			FOR EACH ROW WHEN (NEW.nas_id IS NULL) EXECUTE FUNCTION radacct_set_nas_id();
	END IF;
END $$;

-- Open rows without a router: the ones a router added later (router add
-- with that address) takes over. This server's rows never enter it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS radacct_open_unowned_idx ON radacct (nasipaddress)
	WHERE acctstoptime IS NULL AND nas_id IS NULL;

-- Open rows already there (FreeRADIUS's, or a migrated database's) get
-- their router now; closed history is left as it is (rewriting years of
-- radacct would be a long, heavy write on a live database).
UPDATE radacct SET nas_id = nas_router_id(nasipaddress)
	WHERE acctstoptime IS NULL AND nas_id IS NULL AND nas_router_id(nasipaddress) IS NOT NULL;
