-- Upgrade test fixture: schema.sql as git commit 04c3b8e left it (schema_version 1),
-- verbatim, then a few rows of what a database at that version held.
-- Loaded by TestUpgradeFromEveryEarlierSchema.

-- NettPortal sessions schema. Every statement is idempotent: `nettportal
-- migrate` and `serve` apply the whole file under an advisory lock, and a
-- newer file only adds (tables, columns, indexes), so upgrading keeps data.
-- Bump schema_version's value at the end when a change is made.

CREATE TABLE IF NOT EXISTS schema_version (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
);

-- FreeRADIUS 3.2 `nas`, plus CoA and RouterOS API columns.
CREATE TABLE IF NOT EXISTS nas (
	id          serial PRIMARY KEY,
	nasname     text NOT NULL,
	shortname   text NOT NULL,
	type        text NOT NULL DEFAULT 'other',
	ports       integer,
	secret      text NOT NULL,
	server      text,
	community   text,
	description text
);
ALTER TABLE nas ADD COLUMN IF NOT EXISTS coa_port integer NOT NULL DEFAULT 3799;
ALTER TABLE nas ADD COLUMN IF NOT EXISTS api_addr text NOT NULL DEFAULT '';
ALTER TABLE nas ADD COLUMN IF NOT EXISTS api_user text NOT NULL DEFAULT '';
ALTER TABLE nas ADD COLUMN IF NOT EXISTS api_password text NOT NULL DEFAULT '';
ALTER TABLE nas ADD COLUMN IF NOT EXISTS api_tls boolean NOT NULL DEFAULT false;
ALTER TABLE nas ADD COLUMN IF NOT EXISTS interim_seconds integer NOT NULL DEFAULT 300;
ALTER TABLE nas ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX IF NOT EXISTS nas_nasname_key ON nas (nasname);
CREATE UNIQUE INDEX IF NOT EXISTS nas_shortname_key ON nas (shortname);

-- FreeRADIUS 3.2 `radacct`: same names and types, so billing queries and
-- tools written for FreeRADIUS work unchanged. fillfactor leaves room on
-- each page so interim updates stay HOT (no index churn).
CREATE TABLE IF NOT EXISTS radacct (
	radacctid           bigserial PRIMARY KEY,
	acctsessionid       text NOT NULL,
	acctuniqueid        text NOT NULL UNIQUE,
	username            text,
	realm               text,
	nasipaddress        inet NOT NULL,
	nasportid           text,
	nasporttype         text,
	acctstarttime       timestamptz,
	acctupdatetime      timestamptz,
	acctstoptime        timestamptz,
	acctinterval        bigint,
	acctsessiontime     bigint,
	acctauthentic       text,
	connectinfo_start   text,
	connectinfo_stop    text,
	acctinputoctets     bigint,
	acctoutputoctets    bigint,
	calledstationid     text,
	callingstationid    text,
	acctterminatecause  text,
	servicetype         text,
	framedprotocol      text,
	framedipaddress     inet,
	framedipv6address   inet,
	framedipv6prefix    inet,
	framedinterfaceid   text,
	delegatedipv6prefix inet,
	class               text
) WITH (fillfactor = 80);
-- Ours: which router (nas.id), how the row was closed, the packet counters,
-- the profile (Mikrotik-Group), and the previous update for the current rate.
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS nas_id integer;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS nasidentifier text;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS closed_by text;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS acctinputpackets bigint;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS acctoutputpackets bigint;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS profile text;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS has_start boolean NOT NULL DEFAULT false;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS prev_updatetime timestamptz;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS prev_inputoctets bigint;
ALTER TABLE radacct ADD COLUMN IF NOT EXISTS prev_outputoctets bigint;
-- Open sessions are what the live view, the sweeps and Accounting-On/Off
-- read; partial indexes keep them fast however large the history grows.
CREATE INDEX IF NOT EXISTS radacct_open_nas_idx ON radacct (nas_id, acctstarttime) WHERE acctstoptime IS NULL;
CREATE INDEX IF NOT EXISTS radacct_open_user_idx ON radacct (username) WHERE acctstoptime IS NULL;
CREATE INDEX IF NOT EXISTS radacct_open_ip_idx ON radacct (framedipaddress) WHERE acctstoptime IS NULL;
CREATE INDEX IF NOT EXISTS radacct_open_nasip_idx ON radacct (nasipaddress, acctstarttime) WHERE acctstoptime IS NULL;
-- FreeRADIUS's statistics index, for billing queries by period.
CREATE INDEX IF NOT EXISTS radacct_start_user_idx ON radacct (acctstarttime, username);

-- Rate history for the session chart: one sample per interim (or API read).
-- Kept for a configurable number of days, then deleted in bulk.
CREATE TABLE IF NOT EXISTS session_samples (
	acctuniqueid  text NOT NULL,
	at            timestamptz NOT NULL,
	input_octets  bigint NOT NULL,
	output_octets bigint NOT NULL,
	PRIMARY KEY (acctuniqueid, at)
);
CREATE INDEX IF NOT EXISTS session_samples_at_idx ON session_samples USING brin (at);

-- Each router's state for the routers page.
CREATE TABLE IF NOT EXISTS router_status (
	nas_id                integer PRIMARY KEY,
	last_acct_at          timestamptz,
	last_reconcile_at     timestamptz,
	last_reconcile_result text NOT NULL DEFAULT '',
	api_reachable         boolean,
	api_checked_at        timestamptz,
	coa_reachable         boolean,
	coa_checked_at        timestamptz,
	boot_time             timestamptz
);

-- Every Disconnect and CoA attempt: who, when, what, how, result.
CREATE TABLE IF NOT EXISTS control_audit (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT now(),
	actor       text NOT NULL,
	action      text NOT NULL,
	radacctid   bigint,
	username    text NOT NULL DEFAULT '',
	nas_id      integer,
	router      text NOT NULL DEFAULT '',
	method      text NOT NULL DEFAULT '',
	result      text NOT NULL DEFAULT '',
	ok          boolean NOT NULL DEFAULT false,
	detail      text NOT NULL DEFAULT '',
	error_cause integer,
	rate_limit  text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS control_audit_at_idx ON control_audit (at DESC);

-- Operators and API tokens.
CREATE TABLE IF NOT EXISTS users (
	id            serial PRIMARY KEY,
	name          text NOT NULL UNIQUE,
	password_hash text NOT NULL,
	role          text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	created_at    timestamptz NOT NULL DEFAULT now(),
	disabled      boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS api_tokens (
	id           serial PRIMARY KEY,
	name         text NOT NULL UNIQUE,
	token_hash   text NOT NULL UNIQUE,
	role         text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_used_at timestamptz,
	revoked_at   timestamptz
);

-- Customers from the billing system, linked to sessions by PPPoE username.
CREATE TABLE IF NOT EXISTS customers (
	id         serial PRIMARY KEY,
	name       text NOT NULL,
	username   text NOT NULL UNIQUE,
	profile    text NOT NULL DEFAULT '',
	phone      text NOT NULL DEFAULT '',
	address    text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;

-- Rows.
INSERT INTO nas (nasname, shortname, secret, description) VALUES
	('10.0.0.1', 'r1', 'secret1', 'tower 1'),
	('10.0.0.2', 'r2', 'secret2', NULL);
-- Ours (nas_id set) and FreeRADIUS's (nas_id NULL), open and closed.
INSERT INTO radacct (acctsessionid, acctuniqueid, username, realm, nasipaddress, nasportid, nasporttype,
	acctstarttime, acctupdatetime, acctstoptime, acctinterval, acctsessiontime, acctauthentic,
	acctinputoctets, acctoutputoctets, calledstationid, callingstationid, acctterminatecause,
	servicetype, framedprotocol, framedipaddress, nas_id, closed_by, acctinputpackets, acctoutputpackets,
	profile, prev_updatetime, prev_inputoctets, prev_outputoctets) VALUES
	('81a00001', 'c0ffee0000000000000000000000001a', 'alice', NULL, '10.0.0.1', 'pppoe-alice', 'Ethernet',
	 '2026-11-20 08:00+00', '2026-11-20 09:55+00', NULL, 300, 6900, 'RADIUS',
	 1000000, 20000000, 'svc1', 'AA:BB:CC:00:00:01', NULL,
	 'Framed-User', 'PPP', '100.64.0.1', 1, NULL, 1000, 20000, 'gold', '2026-11-20 09:50+00', 900000, 19000000),
	('81a00002', 'c0ffee0000000000000000000000002b', 'bob', NULL, '10.0.0.1', 'pppoe-bob', 'Ethernet',
	 '2026-11-19 10:00+00', '2026-11-19 11:00+00', '2026-11-19 12:00+00', 300, 7200, 'RADIUS',
	 3000, 4000, 'svc1', 'AA:BB:CC:00:00:02', 'User-Request',
	 'Framed-User', 'PPP', '100.64.0.2', 1, 'stop', 30, 40, NULL, NULL, NULL, NULL),
	('fr000003', 'fr0000000000000000000000000003', 'carol', 'isp.example', '10.0.0.2', '15728643', 'Ethernet',
	 '2026-11-20 07:00+00', '2026-11-20 07:00+00', NULL, NULL, 0, 'RADIUS',
	 0, 0, 'svc2', 'AA:BB:CC:00:00:03', NULL,
	 'Framed-User', 'PPP', '100.64.1.3', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	('fr000004', 'fr0000000000000000000000000004', 'dave', NULL, '10.0.0.2', '15728644', 'Ethernet',
	 '2026-11-18 07:00+00', '2026-11-18 08:00+00', '2026-11-18 09:30+00', 600, 9000, 'RADIUS',
	 5555, 66666, 'svc2', 'AA:BB:CC:00:00:04', 'Lost-Carrier',
	 'Framed-User', 'PPP', '100.64.1.4', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO session_samples (acctuniqueid, at, input_octets, output_octets) VALUES
	('c0ffee0000000000000000000000001a', '2026-11-20 09:50+00', 900000, 19000000),
	('c0ffee0000000000000000000000001a', '2026-11-20 09:55+00', 1000000, 20000000);
INSERT INTO router_status (nas_id, last_acct_at, last_reconcile_result, api_reachable, coa_reachable, boot_time) VALUES
	(1, '2026-11-20 09:55+00', 'ok', true, true, '2026-11-01 00:00+00');
INSERT INTO control_audit (at, actor, action, radacctid, username, nas_id, router, method, result, ok, detail) VALUES
	('2026-11-19 12:00+00', 'admin', 'disconnect', 2, 'bob', 1, 'r1', 'coa', 'ack', true, '');
INSERT INTO users (name, password_hash, role) VALUES ('admin', '$2a$10$abcdefghijklmnopqrstuv', 'admin'), ('eve', 'x', 'viewer');
INSERT INTO api_tokens (name, token_hash, role) VALUES ('billing', 'f00d', 'viewer');
INSERT INTO customers (name, username, profile, phone, address) VALUES
	('Alice A', 'alice', 'gold', '+47 1', 'Street 1'), ('Carol C', 'carol', '', '', '');
