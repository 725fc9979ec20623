-- Users, API tokens (only their hashes) and server-wide settings such as the signing key.

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL CONSTRAINT users_username_key UNIQUE
        CONSTRAINT users_username_check CHECK (username ~ '^[A-Za-z0-9_.@+-]{1,64}$'),
    -- argon2 PHC string.
    password_hash TEXT NOT NULL,
    -- Bit flags: admin_user=1, admin_product=2, admin_edition=4, upload_build=8, deprecate_build=16.
    permissions INTEGER NOT NULL DEFAULT 0
        CONSTRAINT users_permissions_check CHECK (permissions BETWEEN 0 AND 31),
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL
        CONSTRAINT api_tokens_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- SHA-256 of the token, hex. The token itself is shown once and never stored.
    token_hash TEXT NOT NULL CONSTRAINT api_tokens_token_hash_key UNIQUE
        CONSTRAINT api_tokens_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    -- A subset of the owner's permission bits; NULL means all of the owner's.
    permissions INTEGER
        CONSTRAINT api_tokens_permissions_check CHECK (permissions BETWEEN 0 AND 31),
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    date_expires TIMESTAMP,
    date_revoked TIMESTAMP,
    date_last_used TIMESTAMP
);

-- Products a token is limited to; a token without rows here may act on every product.
CREATE TABLE api_token_products (
    api_token_id BIGINT NOT NULL
        CONSTRAINT api_token_products_api_token_id_fkey REFERENCES api_tokens (id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL
        CONSTRAINT api_token_products_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    PRIMARY KEY (api_token_id, product_id)
);

CREATE TABLE server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);
CREATE INDEX api_token_products_product_id_idx ON api_token_products (product_id);
