-- Webhooks (README "Webhooks"): subscriptions of a product or of an organization (every product
-- of it) to keeper's events, and one row per event delivered to one subscription, with the last
-- answer its receiver gave. Each delivery is sent by a `deliver_webhook` operation.
CREATE TABLE webhooks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    CONSTRAINT webhooks_scope_check CHECK ((organization_id IS NULL) <> (product_id IS NULL))
);
CREATE INDEX webhooks_product_idx ON webhooks (product_id);
CREATE INDEX webhooks_organization_idx ON webhooks (organization_id);
CREATE TABLE webhook_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    date_attempted TIMESTAMP
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN (
    'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard',
    'seal_build', 'write_record', 'retention', 'deliver_webhook'));
