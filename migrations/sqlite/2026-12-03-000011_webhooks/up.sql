-- Webhooks (README "Webhooks"): subscriptions of a product or of an organization (every product
-- of it) to keeper's events, and one row per event delivered to one subscription, with the last
-- answer its receiver gave. Each delivery is sent by a `deliver_webhook` operation.
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id BIGINT
        CONSTRAINT webhooks_organization_id_fkey REFERENCES organizations (id) ON DELETE CASCADE,
    product_id BIGINT
        CONSTRAINT webhooks_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- The subscribed events' names, comma-separated.
    events TEXT NOT NULL,
    -- The signing secret, encrypted with KEEPER_ENCRYPTION_KEYS (never stored in plain text).
    secret_encrypted TEXT NOT NULL,
    created_by TEXT,
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT webhooks_scope_check CHECK ((organization_id IS NULL) <> (product_id IS NULL))
);
CREATE INDEX webhooks_product_idx ON webhooks (product_id);
CREATE INDEX webhooks_organization_idx ON webhooks (organization_id);
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id BIGINT NOT NULL
        CONSTRAINT webhook_deliveries_webhook_id_fkey REFERENCES webhooks (id) ON DELETE CASCADE,
    -- The deliver_webhook operation that sends it. Operations are never deleted; no foreign
    -- key, so that SQLite can rebuild that table.
    operation_id BIGINT,
    event TEXT NOT NULL CONSTRAINT webhook_deliveries_event_check CHECK (event IN (
        'ping', 'build.confirmed', 'edition.updated', 'edition.deleted', 'operation.failed')),
    -- The id receivers see (X-Keeper-Delivery), the same on every attempt.
    delivery_id TEXT NOT NULL CONSTRAINT webhook_deliveries_delivery_id_key UNIQUE,
    -- The event's data as JSON, written when the event happened.
    data TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT webhook_deliveries_state_check CHECK (state IN (
        'pending', 'retrying', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- The last attempt: the receiver's status and the start of its body, or why there was none.
    status_code INTEGER,
    response TEXT,
    error TEXT,
    duration_ms BIGINT,
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    date_attempted TIMESTAMP
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
-- SQLite cannot change a CHECK constraint: the table is rebuilt under its own name.
ALTER TABLE operations RENAME TO operations_previous;
CREATE TABLE operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CONSTRAINT operations_kind_check CHECK (kind IN (
        'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard',
        'seal_build', 'write_record', 'retention', 'deliver_webhook')),
    state TEXT NOT NULL DEFAULT 'READY' CONSTRAINT operations_state_check CHECK (state IN (
        'READY', 'WORKING', 'OK', 'FAILED', 'SUPERSEDED')),
    product_id BIGINT
        CONSTRAINT operations_product_id_fkey REFERENCES products (id) ON DELETE SET NULL,
    edition_id BIGINT
        CONSTRAINT operations_edition_id_fkey REFERENCES editions (id) ON DELETE SET NULL,
    build_id BIGINT
        CONSTRAINT operations_build_id_fkey REFERENCES builds (id) ON DELETE SET NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0 CONSTRAINT operations_attempts_check CHECK (attempts >= 0),
    not_before TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    lease_until TIMESTAMP,
    worker_id TEXT,
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT,
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    date_updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    caused_by TEXT,
    CONSTRAINT operations_lease_check CHECK (state <> 'WORKING' OR lease_until IS NOT NULL)
);
INSERT INTO operations (id, kind, state, product_id, edition_id, build_id, payload, message,
    attempts, not_before, lease_until, worker_id, progress_done, progress_total, date_created,
    date_updated, caused_by)
SELECT id, kind, state, product_id, edition_id, build_id, payload, message, attempts,
    not_before, lease_until, worker_id, progress_done, progress_total, date_created,
    date_updated, caused_by FROM operations_previous;
-- Keep the id sequence, so that no operation id is issued twice.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'operations', seq FROM sqlite_sequence WHERE name = 'operations_previous'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'operations');
UPDATE sqlite_sequence SET seq = max(seq, coalesce(
    (SELECT seq FROM sqlite_sequence WHERE name = 'operations_previous'), 0))
    WHERE name = 'operations';
DROP TABLE operations_previous;
CREATE UNIQUE INDEX operations_one_working_per_edition
    ON operations (edition_id) WHERE state = 'WORKING' AND edition_id IS NOT NULL;
CREATE INDEX operations_claimable_idx ON operations (state, not_before) WHERE state IN ('READY', 'WORKING');
CREATE INDEX operations_edition_id_idx ON operations (edition_id);
CREATE INDEX operations_build_id_idx ON operations (build_id);
CREATE INDEX operations_product_id_idx ON operations (product_id);
CREATE UNIQUE INDEX operations_one_retention_per_product
    ON operations (product_id) WHERE kind = 'retention' AND state IN ('READY', 'WORKING');
