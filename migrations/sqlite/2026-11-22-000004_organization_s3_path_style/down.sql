ALTER TABLE organizations DROP COLUMN s3_path_style;
