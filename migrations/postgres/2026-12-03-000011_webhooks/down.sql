DELETE FROM operations WHERE kind = 'deliver_webhook';
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN (
    'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard',
    'seal_build', 'write_record', 'retention'));
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
