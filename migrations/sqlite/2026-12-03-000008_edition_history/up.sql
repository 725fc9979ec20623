-- What each edition showed, and when it stopped: one row per change of the build an edition
-- shows (written when the rebuild that made the change is OK) and one per deletion. The edition
-- is named by id and slug without a foreign key: a deleted edition's row is removed when a new
-- edition takes its slug, and its history stays.
CREATE TABLE edition_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id BIGINT NOT NULL
        CONSTRAINT edition_history_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    edition_id BIGINT NOT NULL,
    edition_slug TEXT NOT NULL,
    -- The build shown before and after; NULL before an edition's first build, and after a
    -- deletion. Builds' rows are never deleted (only deprecated).
    build_before BIGINT CONSTRAINT edition_history_build_before_fkey REFERENCES builds (id),
    build_after BIGINT CONSTRAINT edition_history_build_after_fkey REFERENCES builds (id),
    -- Which rule or request made the change.
    reason TEXT NOT NULL CONSTRAINT edition_history_reason_check CHECK (reason IN (
        'requested', 'tracking', 'rollback', 'repair', 'adopted', 'deleted', 'retention')),
    -- Who: the `caused_by` of the operation (or request) that made it.
    caused_by TEXT,
    -- Operations are never deleted; no foreign key, so that SQLite can rebuild that table.
    operation_id BIGINT,
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX edition_history_edition_idx ON edition_history (edition_id, id);
CREATE INDEX edition_history_product_idx ON edition_history (product_id, date_created);
