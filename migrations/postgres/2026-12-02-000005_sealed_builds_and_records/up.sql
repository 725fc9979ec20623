-- Sealed builds and the bucket's catalogue records (DESIGN.md section 6).
-- A confirmed build is sealed: its object list is written as a manifest under the bucket's
-- reserved `__keeper/` prefix, and the manifest's SHA-256 is kept here.
ALTER TABLE builds ADD COLUMN manifest_digest TEXT
    CONSTRAINT builds_manifest_digest_check CHECK (manifest_digest ~ '^[0-9a-f]{64}$');
-- True once a rebuild from a sealed build finished: the edition's prefix then holds exactly
-- its build's manifest, so the next rebuild knows the leftovers without listing the prefix.
-- Cleared while a rebuild is copying.
ALTER TABLE editions ADD COLUMN prefix_matches_build BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN (
    'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard',
    'seal_build', 'write_record'));
