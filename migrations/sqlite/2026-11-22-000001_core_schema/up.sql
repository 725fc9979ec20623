-- Organizations, products, builds and editions: the documentation catalogue.
-- The same change as migrations/postgres; SQLite has no regular expressions, so slug rules are
-- written with GLOB. Ids use AUTOINCREMENT so that a deleted row's id is never handed out again.
-- Times are UTC text ('YYYY-MM-DD HH:MM:SS').

CREATE TABLE organizations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL CONSTRAINT organizations_slug_key UNIQUE
        CONSTRAINT organizations_slug_check CHECK (
            slug <> '' AND slug NOT GLOB '*[^-a-z0-9]*'
            AND slug NOT GLOB '-*' AND slug NOT GLOB '*-' AND slug NOT GLOB '*--*'),
    title TEXT NOT NULL,
    layout TEXT NOT NULL DEFAULT 'path'
        CONSTRAINT organizations_layout_check CHECK (layout IN ('subdomain', 'path')),
    root_domain TEXT,
    path_prefix TEXT NOT NULL DEFAULT '',
    store_kind TEXT NOT NULL DEFAULT 'local'
        CONSTRAINT organizations_store_kind_check CHECK (store_kind IN ('local', 's3')),
    bucket_name TEXT NOT NULL DEFAULT '',
    s3_region TEXT,
    s3_endpoint_url TEXT,
    s3_access_key_id TEXT,
    s3_secret_access_key_encrypted TEXT,
    public_read BOOLEAN NOT NULL DEFAULT FALSE CHECK (public_read IN (0, 1)),
    cdn_kind TEXT NOT NULL DEFAULT 'none'
        CONSTRAINT organizations_cdn_kind_check CHECK (cdn_kind IN ('none', 'fastly', 'varnish')),
    fastly_service_id TEXT,
    fastly_api_key_encrypted TEXT,
    varnish_urls TEXT,
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO organizations (slug, title, layout, root_domain, path_prefix, store_kind, bucket_name)
VALUES ('default', 'Default organization', 'path', NULL, '/docs', 'local', 'keeper');

CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id BIGINT NOT NULL
        CONSTRAINT products_organization_id_fkey REFERENCES organizations (id) ON DELETE RESTRICT,
    slug TEXT NOT NULL
        CONSTRAINT products_slug_check CHECK (
            slug GLOB '[a-z]*[a-z0-9]' AND slug NOT GLOB '*[^-a-z0-9]*'),
    title TEXT NOT NULL,
    doc_repo TEXT NOT NULL DEFAULT '',
    root_domain TEXT NOT NULL DEFAULT '',
    root_fastly_domain TEXT NOT NULL DEFAULT '',
    bucket_name TEXT NOT NULL DEFAULT '',
    surrogate_key TEXT NOT NULL CONSTRAINT products_surrogate_key_key UNIQUE
        CONSTRAINT products_surrogate_key_check CHECK (
            length(surrogate_key) = 32 AND surrogate_key NOT GLOB '*[^0-9a-f]*'),
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT products_organization_id_slug_key UNIQUE (organization_id, slug)
);

CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id BIGINT NOT NULL
        CONSTRAINT builds_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    slug TEXT NOT NULL
        CONSTRAINT builds_slug_check CHECK (slug <> '' AND slug NOT GLOB '*[^-a-zA-Z0-9._]*'),
    git_refs TEXT NOT NULL DEFAULT '[]',
    github_requester TEXT,
    uploaded BOOLEAN NOT NULL DEFAULT FALSE CHECK (uploaded IN (0, 1)),
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    date_ended TIMESTAMP,
    surrogate_key TEXT NOT NULL CONSTRAINT builds_surrogate_key_key UNIQUE
        CONSTRAINT builds_surrogate_key_check CHECK (
            length(surrogate_key) = 32 AND surrogate_key NOT GLOB '*[^0-9a-f]*'),
    CONSTRAINT builds_product_id_slug_key UNIQUE (product_id, slug)
);

CREATE TABLE editions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id BIGINT NOT NULL
        CONSTRAINT editions_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    slug TEXT NOT NULL
        CONSTRAINT editions_slug_check CHECK (slug <> '' AND slug NOT GLOB '*[^-a-zA-Z0-9._]*'),
    title TEXT NOT NULL,
    tracking_mode TEXT NOT NULL DEFAULT 'git_refs'
        CONSTRAINT editions_tracking_mode_check CHECK (tracking_mode IN (
            'git_refs', 'git_ref', 'manual', 'lsst_doc',
            'eups_major_release', 'eups_weekly_release', 'eups_daily_release')),
    tracked_refs TEXT,
    kind TEXT NOT NULL DEFAULT 'draft'
        CONSTRAINT editions_kind_check CHECK (kind IN ('main', 'release', 'minor', 'major', 'draft')),
    build_id BIGINT CONSTRAINT editions_build_id_fkey REFERENCES builds (id) ON DELETE RESTRICT,
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    date_rebuilt TIMESTAMP,
    date_ended TIMESTAMP,
    surrogate_key TEXT NOT NULL CONSTRAINT editions_surrogate_key_key UNIQUE
        CONSTRAINT editions_surrogate_key_check CHECK (
            length(surrogate_key) = 32 AND surrogate_key NOT GLOB '*[^0-9a-f]*'),
    CONSTRAINT editions_product_id_slug_key UNIQUE (product_id, slug)
);

CREATE INDEX builds_product_id_idx ON builds (product_id);
CREATE INDEX editions_product_id_idx ON editions (product_id);
CREATE INDEX editions_build_id_idx ON editions (build_id);
