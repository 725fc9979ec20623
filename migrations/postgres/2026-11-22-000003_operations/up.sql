-- Durable background operations (rebuild, rename, delete, purge), claimed by workers.

CREATE TABLE operations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL CONSTRAINT operations_kind_check CHECK (kind IN (
        'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard')),
    state TEXT NOT NULL DEFAULT 'READY' CONSTRAINT operations_state_check CHECK (state IN (
        'READY', 'WORKING', 'OK', 'FAILED', 'SUPERSEDED')),
    -- Targets. They survive the target's deletion as NULL: the payload carries what the work needs.
    product_id BIGINT
        CONSTRAINT operations_product_id_fkey REFERENCES products (id) ON DELETE SET NULL,
    edition_id BIGINT
        CONSTRAINT operations_edition_id_fkey REFERENCES editions (id) ON DELETE SET NULL,
    build_id BIGINT
        CONSTRAINT operations_build_id_fkey REFERENCES builds (id) ON DELETE SET NULL,
    -- JSON object with the kind's parameters.
    payload TEXT NOT NULL DEFAULT '{}',
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0 CONSTRAINT operations_attempts_check CHECK (attempts >= 0),
    -- Not claimable before this time (retry backoff).
    not_before TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    -- While WORKING: the claim expires at this time unless renewed.
    lease_until TIMESTAMP,
    worker_id TEXT,
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT,
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    date_updated TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    CONSTRAINT operations_lease_check CHECK (state <> 'WORKING' OR lease_until IS NOT NULL)
);

-- At most one operation works on an edition at a time, enforced by the database.
CREATE UNIQUE INDEX operations_one_working_per_edition
    ON operations (edition_id) WHERE state = 'WORKING' AND edition_id IS NOT NULL;
CREATE INDEX operations_claimable_idx ON operations (state, not_before) WHERE state IN ('READY', 'WORKING');
CREATE INDEX operations_edition_id_idx ON operations (edition_id);
CREATE INDEX operations_build_id_idx ON operations (build_id);
CREATE INDEX operations_product_id_idx ON operations (product_id);
