-- Retention (README "Retention"): a product's own policy, over the deployment's default; the
-- editions keeper created for a branch or ticket, which retention may delete once their ref has
-- had no build for a while; and the operation that applies a policy, at most one unfinished per
-- product, so that several workers scheduling it queue it once.
ALTER TABLE products ADD COLUMN retention TEXT;
ALTER TABLE editions ADD COLUMN auto_created BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN (
    'rebuild_edition', 'rename_edition', 'delete_edition', 'delete_build', 'purge', 'dashboard',
    'seal_build', 'write_record', 'retention'));
CREATE UNIQUE INDEX operations_one_retention_per_product
    ON operations (product_id) WHERE kind = 'retention' AND state IN ('READY', 'WORKING');
