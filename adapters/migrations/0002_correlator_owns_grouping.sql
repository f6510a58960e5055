-- 0002: the correlator (core/correlation.py) decides grouping, including merges and
-- reopen-within-cooldown, so the database no longer enforces one active incident per key.
DROP INDEX IF EXISTS incidents_active_group_key;
CREATE INDEX IF NOT EXISTS incidents_group_key_idx ON incidents (group_key);
-- Incident events are written idempotently: a replayed effect does not add a second row.
ALTER TABLE incident_events ADD COLUMN IF NOT EXISTS effect_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS incident_events_effect_key ON incident_events (effect_key);
