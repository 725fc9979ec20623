DELETE FROM operations WHERE kind IN ('seal_build', 'write_record');
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN (
        'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard'));
ALTER TABLE editions DROP COLUMN prefix_matches_build;
ALTER TABLE builds DROP COLUMN manifest_digest;
