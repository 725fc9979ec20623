-- Users, API tokens (only their hashes) and server-wide settings such as the signing key.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL CONSTRAINT users_username_key UNIQUE
        CONSTRAINT users_username_check CHECK (
            length(username) BETWEEN 1 AND 64 AND username NOT GLOB '*[^-A-Za-z0-9_.@+]*'),
    password_hash TEXT NOT NULL,
    permissions INTEGER NOT NULL DEFAULT 0
        CONSTRAINT users_permissions_check CHECK (permissions BETWEEN 0 AND 31),
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL
        CONSTRAINT api_tokens_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL CONSTRAINT api_tokens_token_hash_key UNIQUE
        CONSTRAINT api_tokens_token_hash_check CHECK (
            length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
    permissions INTEGER
        CONSTRAINT api_tokens_permissions_check CHECK (permissions BETWEEN 0 AND 31),
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    date_expires TIMESTAMP,
    date_revoked TIMESTAMP,
    date_last_used TIMESTAMP
);

CREATE TABLE api_token_products (
    api_token_id BIGINT NOT NULL
        CONSTRAINT api_token_products_api_token_id_fkey REFERENCES api_tokens (id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL
        CONSTRAINT api_token_products_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    PRIMARY KEY (api_token_id, product_id)
);

CREATE TABLE server_settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    date_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);
CREATE INDEX api_token_products_product_id_idx ON api_token_products (product_id);
