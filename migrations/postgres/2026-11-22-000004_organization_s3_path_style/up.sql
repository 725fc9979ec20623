-- An organization's bucket may sit behind an S3-compatible server that wants path-style
-- requests (host/bucket/key: MinIO, Ceph, Garage), as KEEPER_S3_PATH_STYLE says for the process's.
ALTER TABLE organizations ADD COLUMN s3_path_style BOOLEAN NOT NULL DEFAULT FALSE;
