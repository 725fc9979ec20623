-- Organizations, products, builds and editions: the documentation catalogue.
-- Times are UTC, stored as TIMESTAMP. Surrogate keys are 32-hex uuid4 strings.

CREATE TABLE organizations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL CONSTRAINT organizations_slug_key UNIQUE
        CONSTRAINT organizations_slug_check CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    title TEXT NOT NULL,
    -- 'subdomain': https://<product>.<root_domain>; 'path': <root_domain><path_prefix>/<product>.
    layout TEXT NOT NULL DEFAULT 'path'
        CONSTRAINT organizations_layout_check CHECK (layout IN ('subdomain', 'path')),
    -- NULL means keeper's own public URL (KEEPER_PUBLIC_URL).
    root_domain TEXT,
    path_prefix TEXT NOT NULL DEFAULT '',
    -- 'local': keeper's own object directory; 's3': an S3-compatible bucket.
    store_kind TEXT NOT NULL DEFAULT 'local'
        CONSTRAINT organizations_store_kind_check CHECK (store_kind IN ('local', 's3')),
    bucket_name TEXT NOT NULL DEFAULT '',
    s3_region TEXT,
    s3_endpoint_url TEXT,
    s3_access_key_id TEXT,
    -- Encrypted at rest (Fernet token); never returned by the API.
    s3_secret_access_key_encrypted TEXT,
    public_read BOOLEAN NOT NULL DEFAULT FALSE,
    cdn_kind TEXT NOT NULL DEFAULT 'none'
        CONSTRAINT organizations_cdn_kind_check CHECK (cdn_kind IN ('none', 'fastly', 'varnish')),
    fastly_service_id TEXT,
    -- Encrypted at rest (Fernet token); never returned by the API.
    fastly_api_key_encrypted TEXT,
    -- Space-separated base URLs of the Varnish hosts to purge.
    varnish_urls TEXT,
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

INSERT INTO organizations (slug, title, layout, root_domain, path_prefix, store_kind, bucket_name)
VALUES ('default', 'Default organization', 'path', NULL, '/docs', 'local', 'keeper');

CREATE TABLE products (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT NOT NULL
        CONSTRAINT products_organization_id_fkey REFERENCES organizations (id) ON DELETE RESTRICT,
    slug TEXT NOT NULL
        CONSTRAINT products_slug_check CHECK (slug ~ '^[a-z]+[-a-z0-9]*[a-z0-9]+$'),
    title TEXT NOT NULL,
    doc_repo TEXT NOT NULL DEFAULT '',
    -- Accepted and returned for v1 compatibility; the organization decides where docs live.
    root_domain TEXT NOT NULL DEFAULT '',
    root_fastly_domain TEXT NOT NULL DEFAULT '',
    bucket_name TEXT NOT NULL DEFAULT '',
    surrogate_key TEXT NOT NULL CONSTRAINT products_surrogate_key_key UNIQUE
        CONSTRAINT products_surrogate_key_check CHECK (surrogate_key ~ '^[0-9a-f]{32}$'),
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    CONSTRAINT products_organization_id_slug_key UNIQUE (organization_id, slug)
);

CREATE TABLE builds (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id BIGINT NOT NULL
        CONSTRAINT builds_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    slug TEXT NOT NULL CONSTRAINT builds_slug_check CHECK (slug ~ '^[a-zA-Z0-9._-]+$'),
    -- JSON array of strings.
    git_refs TEXT NOT NULL DEFAULT '[]',
    github_requester TEXT,
    uploaded BOOLEAN NOT NULL DEFAULT FALSE,
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    -- Set when the build is deprecated; it then no longer counts for tracking.
    date_ended TIMESTAMP,
    surrogate_key TEXT NOT NULL CONSTRAINT builds_surrogate_key_key UNIQUE
        CONSTRAINT builds_surrogate_key_check CHECK (surrogate_key ~ '^[0-9a-f]{32}$'),
    CONSTRAINT builds_product_id_slug_key UNIQUE (product_id, slug)
);

CREATE TABLE editions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id BIGINT NOT NULL
        CONSTRAINT editions_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    slug TEXT NOT NULL CONSTRAINT editions_slug_check CHECK (slug ~ '^[a-zA-Z0-9._-]+$'),
    title TEXT NOT NULL,
    tracking_mode TEXT NOT NULL DEFAULT 'git_refs'
        CONSTRAINT editions_tracking_mode_check CHECK (tracking_mode IN (
            'git_refs', 'git_ref', 'manual', 'lsst_doc',
            'eups_major_release', 'eups_weekly_release', 'eups_daily_release')),
    -- JSON array of strings, or NULL for modes that track no refs.
    tracked_refs TEXT,
    kind TEXT NOT NULL DEFAULT 'draft'
        CONSTRAINT editions_kind_check CHECK (kind IN ('main', 'release', 'minor', 'major', 'draft')),
    -- The build currently published; a build an edition shows cannot be deleted under it.
    build_id BIGINT CONSTRAINT editions_build_id_fkey REFERENCES builds (id) ON DELETE RESTRICT,
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    date_rebuilt TIMESTAMP,
    date_ended TIMESTAMP,
    surrogate_key TEXT NOT NULL CONSTRAINT editions_surrogate_key_key UNIQUE
        CONSTRAINT editions_surrogate_key_check CHECK (surrogate_key ~ '^[0-9a-f]{32}$'),
    CONSTRAINT editions_product_id_slug_key UNIQUE (product_id, slug)
);

CREATE INDEX builds_product_id_idx ON builds (product_id);
CREATE INDEX editions_product_id_idx ON editions (product_id);
CREATE INDEX editions_build_id_idx ON editions (build_id);
