ALTER TABLE operations DROP COLUMN caused_by;
