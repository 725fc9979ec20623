DROP INDEX operations_one_retention_per_product;
DELETE FROM operations WHERE kind = 'retention';
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN (
    'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard',
    'seal_build', 'write_record'));
ALTER TABLE editions DROP COLUMN auto_created;
ALTER TABLE products DROP COLUMN retention;
