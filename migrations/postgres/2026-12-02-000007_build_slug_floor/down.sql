ALTER TABLE products DROP COLUMN build_slug_floor;
