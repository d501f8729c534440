-- Migration 0004: routeros api tls.
-- How the RouterOS API certificate of a router is verified: a pinned
-- SHA-256 fingerprint, a CA file, or (explicitly) not at all.
ALTER TABLE nas ADD COLUMN IF NOT EXISTS api_tls_fingerprint text NOT NULL DEFAULT '';
ALTER TABLE nas ADD COLUMN IF NOT EXISTS api_tls_ca_file text NOT NULL DEFAULT '';
ALTER TABLE nas ADD COLUMN IF NOT EXISTS api_tls_insecure boolean NOT NULL DEFAULT false;
