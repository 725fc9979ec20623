//! Table definitions, identical for both backends (see `migrations/postgres` and `migrations/sqlite`).

diesel::table! {
    organizations (id) {
        id -> BigInt,
        slug -> Text,
        title -> Text,
        layout -> Text,
        root_domain -> Nullable<Text>,
        path_prefix -> Text,
        store_kind -> Text,
        bucket_name -> Text,
        s3_region -> Nullable<Text>,
        s3_endpoint_url -> Nullable<Text>,
        s3_access_key_id -> Nullable<Text>,
        s3_secret_access_key_encrypted -> Nullable<Text>,
        public_read -> Bool,
        cdn_kind -> Text,
        fastly_service_id -> Nullable<Text>,
        fastly_api_key_encrypted -> Nullable<Text>,
        varnish_urls -> Nullable<Text>,
        date_created -> Timestamp,
        s3_path_style -> Bool,
    }
}

diesel::table! {
    products (id) {
        id -> BigInt,
        organization_id -> BigInt,
        slug -> Text,
        title -> Text,
        doc_repo -> Text,
        root_domain -> Text,
        root_fastly_domain -> Text,
        bucket_name -> Text,
        surrogate_key -> Text,
        date_created -> Timestamp,
        build_slug_floor -> Nullable<BigInt>,
        retention -> Nullable<Text>,
    }
}

diesel::table! {
    builds (id) {
        id -> BigInt,
        product_id -> BigInt,
        slug -> Text,
        git_refs -> Text,
        github_requester -> Nullable<Text>,
        uploaded -> Bool,
        date_created -> Timestamp,
        date_ended -> Nullable<Timestamp>,
        surrogate_key -> Text,
        manifest_digest -> Nullable<Text>,
    }
}

diesel::table! {
    editions (id) {
        id -> BigInt,
        product_id -> BigInt,
        slug -> Text,
        title -> Text,
        tracking_mode -> Text,
        tracked_refs -> Nullable<Text>,
        kind -> Text,
        build_id -> Nullable<BigInt>,
        date_created -> Timestamp,
        date_rebuilt -> Nullable<Timestamp>,
        date_ended -> Nullable<Timestamp>,
        surrogate_key -> Text,
        prefix_matches_build -> Bool,
        auto_created -> Bool,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        permissions -> Integer,
        date_created -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        permissions -> Nullable<Integer>,
        date_created -> Timestamp,
        date_expires -> Nullable<Timestamp>,
        date_revoked -> Nullable<Timestamp>,
        date_last_used -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_token_products (api_token_id, product_id) {
        api_token_id -> BigInt,
        product_id -> BigInt,
    }
}

diesel::table! {
    server_settings (name) {
        name -> Text,
        value -> Text,
        date_created -> Timestamp,
    }
}

diesel::table! {
    operations (id) {
        id -> BigInt,
        kind -> Text,
        state -> Text,
        product_id -> Nullable<BigInt>,
        edition_id -> Nullable<BigInt>,
        build_id -> Nullable<BigInt>,
        payload -> Text,
        message -> Nullable<Text>,
        attempts -> Integer,
        not_before -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        worker_id -> Nullable<Text>,
        progress_done -> BigInt,
        progress_total -> Nullable<BigInt>,
        date_created -> Timestamp,
        date_updated -> Timestamp,
        caused_by -> Nullable<Text>,
    }
}

diesel::table! {
    edition_history (id) {
        id -> BigInt,
        product_id -> BigInt,
        edition_id -> BigInt,
        edition_slug -> Text,
        build_before -> Nullable<BigInt>,
        build_after -> Nullable<BigInt>,
        reason -> Text,
        caused_by -> Nullable<Text>,
        operation_id -> Nullable<BigInt>,
        date_created -> Timestamp,
    }
}

diesel::table! {
    organization_admins (id) {
        id -> BigInt,
        user_id -> BigInt,
        organization_id -> Nullable<BigInt>,
        date_created -> Timestamp,
    }
}

diesel::table! {
    webhooks (id) {
        id -> BigInt,
        organization_id -> Nullable<BigInt>,
        product_id -> Nullable<BigInt>,
        url -> Text,
        events -> Text,
        secret_encrypted -> Text,
        created_by -> Nullable<Text>,
        date_created -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        webhook_id -> BigInt,
        operation_id -> Nullable<BigInt>,
        event -> Text,
        delivery_id -> Text,
        data -> Text,
        state -> Text,
        attempts -> Integer,
        status_code -> Nullable<Integer>,
        response -> Nullable<Text>,
        error -> Nullable<Text>,
        duration_ms -> Nullable<BigInt>,
        date_created -> Timestamp,
        date_attempted -> Nullable<Timestamp>,
    }
}

diesel::joinable!(products -> organizations (organization_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(builds -> products (product_id));
diesel::joinable!(editions -> products (product_id));
diesel::joinable!(editions -> builds (build_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(organization_admins -> users (user_id));
diesel::joinable!(api_token_products -> api_tokens (api_token_id));
diesel::joinable!(api_token_products -> products (product_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    products,
    builds,
    editions,
    users,
    api_tokens,
    api_token_products,
    server_settings,
    operations,
    edition_history,
    organization_admins,
    webhooks,
    webhook_deliveries,
);
