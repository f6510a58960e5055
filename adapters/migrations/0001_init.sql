-- 0001: the durable state of ray-aiops. Every table has a natural idempotency key so
-- at-least-once delivery never doubles a row.

CREATE TABLE IF NOT EXISTS incidents (
    id            TEXT PRIMARY KEY,
    group_key     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity      TEXT NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    title         TEXT NOT NULL,
    rule          TEXT NOT NULL,
    namespace     TEXT,
    object_kind   TEXT,
    object_name   TEXT,
    labels        JSONB NOT NULL DEFAULT '{}'::jsonb,
    signal_count  INTEGER NOT NULL DEFAULT 0,
    playbook      TEXT,
    opened_at     TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    resolved_at   TIMESTAMPTZ
);
-- One open (or acknowledged) incident per group key; resolved ones stay as history.
CREATE UNIQUE INDEX IF NOT EXISTS incidents_active_group_key
    ON incidents (group_key) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS incidents_status_idx ON incidents (status, updated_at DESC);
CREATE INDEX IF NOT EXISTS incidents_namespace_idx ON incidents (namespace);

CREATE TABLE IF NOT EXISTS signals (
    dedup_key     TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    incident_id   TEXT REFERENCES incidents (id),
    source        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    severity      TEXT NOT NULL,
    status        TEXT NOT NULL,
    namespace     TEXT,
    labels        JSONB NOT NULL DEFAULT '{}'::jsonb,
    body          JSONB NOT NULL,
    observed_at   TIMESTAMPTZ NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS signals_fingerprint_idx ON signals (fingerprint);
CREATE INDEX IF NOT EXISTS signals_incident_idx ON signals (incident_id, observed_at);

CREATE TABLE IF NOT EXISTS incident_events (
    id            BIGSERIAL PRIMARY KEY,
    incident_id   TEXT NOT NULL REFERENCES incidents (id),
    kind          TEXT NOT NULL,
    detail        JSONB NOT NULL DEFAULT '{}'::jsonb,
    at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_events_incident_idx ON incident_events (incident_id, at);

CREATE TABLE IF NOT EXISTS rca_reports (
    id            TEXT PRIMARY KEY,
    incident_id   TEXT NOT NULL REFERENCES incidents (id),
    mode          TEXT NOT NULL,
    category      TEXT NOT NULL,
    confidence    DOUBLE PRECISION NOT NULL,
    summary       TEXT NOT NULL,
    body          JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS rca_reports_incident_idx ON rca_reports (incident_id, created_at DESC);

CREATE TABLE IF NOT EXISTS playbook_runs (
    id            TEXT PRIMARY KEY,
    incident_id   TEXT NOT NULL REFERENCES incidents (id),
    playbook      TEXT NOT NULL,
    state         TEXT NOT NULL,
    body          JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS playbook_runs_incident_idx ON playbook_runs (incident_id);

CREATE TABLE IF NOT EXISTS approvals (
    id            TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES playbook_runs (id),
    step          TEXT NOT NULL,
    risk          TEXT NOT NULL,
    state         TEXT NOT NULL,
    body          JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    decided_at    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS approvals_state_idx ON approvals (state, expires_at);

CREATE TABLE IF NOT EXISTS audit_log (
    id            BIGSERIAL PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    actor         TEXT NOT NULL,
    channel       TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    detail        JSONB NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at DESC);

CREATE TABLE IF NOT EXISTS conversations (
    id            TEXT PRIMARY KEY,
    channel       TEXT NOT NULL,
    chat_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    role            TEXT NOT NULL,
    text            TEXT NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    external_id     TEXT,
    UNIQUE (conversation_id, external_id)
);
