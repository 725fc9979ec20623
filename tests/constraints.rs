//! Every database-level constraint rejects the duplicate, missing, dangling or out-of-range row it
//! exists to reject, on both backends; every foreign key behaves as its `ON DELETE` says.

mod common;

use common::{TestBackend, TestDatabase};
use diesel::result::Error as DieselError;
use diesel::sql_types::BigInt;
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use keeper::db::migrations;
use keeper::db::violation::{violation, Violation};
use keeper::db::DbConnection;
use keeper::with_connection;

const KEY_A: &str = "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'";
const KEY_B: &str = "'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'";
const KEY_C: &str = "'cccccccccccccccccccccccccccccccc'";
const KEY_D: &str = "'dddddddddddddddddddddddddddddddd'";
const HASH_A: &str = "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'";

/// A database at head with one product (id 1), build (1), edition (1 on build 1), user (1),
/// token (1) scoped to the product, and one READY operation on the edition.
fn seeded(backend: TestBackend) -> (TestDatabase, DbConnection) {
    let db = TestDatabase::new(backend);
    let mut conn = db.connect();
    migrations::guard(&mut conn, false).unwrap();
    for sql in [
        format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'pipelines', 'P', {KEY_A})"),
        format!("INSERT INTO builds (product_id, slug, surrogate_key) VALUES (1, '1', {KEY_B})"),
        format!("INSERT INTO editions (product_id, slug, title, build_id, surrogate_key) VALUES (1, '__main', 'Latest', 1, {KEY_C})"),
        "INSERT INTO users (username, password_hash, permissions) VALUES ('alice', 'x', 31)".to_owned(),
        format!("INSERT INTO api_tokens (user_id, name, token_hash) VALUES (1, 'ci', {HASH_A})"),
        "INSERT INTO api_token_products (api_token_id, product_id) VALUES (1, 1)".to_owned(),
        "INSERT INTO operations (kind, product_id, edition_id, build_id) VALUES ('rebuild_edition', 1, 1, 1)".to_owned(),
    ] {
        execute(&mut conn, &sql).unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
    (db, conn)
}

fn execute(conn: &mut DbConnection, sql: &str) -> Result<usize, DieselError> {
    with_connection!(conn, c => sql_query(sql).execute(c))
}

fn count(conn: &mut DbConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = with_connection!(conn, c => sql_query(sql).get_result(c)).expect(sql);
    row.n
}

fn assert_rejected(conn: &mut DbConnection, sql: &str, expected: Violation) {
    match execute(conn, sql) {
        Err(err) => assert_eq!(violation(&err), Some(expected), "{sql}: {err:?}"),
        Ok(_) => panic!("{sql}: accepted, expected {expected:?}"),
    }
}

fn duplicates_are_rejected(backend: TestBackend) {
    let (_db, mut conn) = seeded(backend);
    use Violation::Unique;
    for sql in [
        "INSERT INTO organizations (slug, title) VALUES ('default', 'Again')".to_owned(),
        format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'pipelines', 'Again', {KEY_D})"),
        format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'other', 'Same key', {KEY_A})"),
        format!("INSERT INTO builds (product_id, slug, surrogate_key) VALUES (1, '1', {KEY_D})"),
        format!("INSERT INTO builds (product_id, slug, surrogate_key) VALUES (1, '2', {KEY_B})"),
        format!("INSERT INTO editions (product_id, slug, title, surrogate_key) VALUES (1, '__main', 'Again', {KEY_D})"),
        format!("INSERT INTO editions (product_id, slug, title, surrogate_key) VALUES (1, 'v1', 'Same key', {KEY_C})"),
        "INSERT INTO users (username, password_hash) VALUES ('alice', 'y')".to_owned(),
        format!("INSERT INTO api_tokens (user_id, name, token_hash) VALUES (1, 'again', {HASH_A})"),
        "INSERT INTO api_token_products (api_token_id, product_id) VALUES (1, 1)".to_owned(),
        "INSERT INTO server_settings (name, value) VALUES ('secret_key', 'a')".to_owned(),
    ] {
        if sql.contains("server_settings") {
            execute(&mut conn, "INSERT INTO server_settings (name, value) VALUES ('secret_key', 'b')").unwrap();
        }
        assert_rejected(&mut conn, &sql, Unique);
    }
    // Uniqueness is per parent: the same slugs under another organization or product are fine.
    execute(
        &mut conn,
        "INSERT INTO organizations (slug, title) VALUES ('rubin', 'Rubin')",
    )
    .unwrap();
    execute(&mut conn, &format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES ((SELECT id FROM organizations WHERE slug = 'rubin'), 'pipelines', 'Same slug elsewhere', {KEY_D})")).unwrap();
    let rubin_product =
        "(SELECT id FROM products WHERE surrogate_key = 'dddddddddddddddddddddddddddddddd')";
    execute(&mut conn, &format!("INSERT INTO builds (product_id, slug, surrogate_key) VALUES ({rubin_product}, '1', 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee')")).unwrap();
    execute(&mut conn, &format!("INSERT INTO editions (product_id, slug, title, surrogate_key) VALUES ({rubin_product}, '__main', 'L', 'ffffffffffffffffffffffffffffffff')")).unwrap();
}

fn one_working_operation_per_edition(backend: TestBackend) {
    let (_db, mut conn) = seeded(backend);
    let working = "INSERT INTO operations (kind, state, edition_id, lease_until) VALUES ('rebuild_edition', 'WORKING', 1, CURRENT_TIMESTAMP)";
    execute(&mut conn, working).unwrap();
    assert_rejected(&mut conn, working, Violation::Unique);
    // Queued ones and finished ones may be many.
    execute(
        &mut conn,
        "INSERT INTO operations (kind, edition_id) VALUES ('rebuild_edition', 1)",
    )
    .unwrap();
    execute(
        &mut conn,
        "INSERT INTO operations (kind, state, edition_id) VALUES ('rebuild_edition', 'OK', 1)",
    )
    .unwrap();
    execute(
        &mut conn,
        "INSERT INTO operations (kind, state, edition_id) VALUES ('rebuild_edition', 'OK', 1)",
    )
    .unwrap();
}

fn missing_surrogate_keys_are_rejected(backend: TestBackend) {
    let (_db, mut conn) = seeded(backend);
    for sql in [
        "INSERT INTO products (organization_id, slug, title) VALUES (1, 'nokey', 'No key')",
        "INSERT INTO builds (product_id, slug) VALUES (1, '2')",
        "INSERT INTO editions (product_id, slug, title) VALUES (1, 'v2', 'No key')",
        "INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'nullkey', 'Null', NULL)",
    ] {
        assert_rejected(&mut conn, sql, Violation::NotNull);
    }
}

fn dangling_references_are_rejected(backend: TestBackend) {
    let (_db, mut conn) = seeded(backend);
    for sql in [
        format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (999, 'orphan', 'O', {KEY_D})"),
        format!("INSERT INTO builds (product_id, slug, surrogate_key) VALUES (999, '1', {KEY_D})"),
        format!("INSERT INTO editions (product_id, slug, title, surrogate_key) VALUES (999, 'x', 'O', {KEY_D})"),
        format!("INSERT INTO editions (product_id, slug, title, build_id, surrogate_key) VALUES (1, 'x', 'O', 999, {KEY_D})"),
        "INSERT INTO api_tokens (user_id, name, token_hash) VALUES (999, 'x', 'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc')".to_owned(),
        "INSERT INTO api_token_products (api_token_id, product_id) VALUES (1, 999)".to_owned(),
        "INSERT INTO api_token_products (api_token_id, product_id) VALUES (999, 1)".to_owned(),
        "INSERT INTO operations (kind, edition_id) VALUES ('rebuild_edition', 999)".to_owned(),
        "INSERT INTO operations (kind, build_id) VALUES ('delete_build', 999)".to_owned(),
        "INSERT INTO operations (kind, product_id) VALUES ('purge', 999)".to_owned(),
        "UPDATE editions SET build_id = 999 WHERE id = 1".to_owned(),
    ] {
        assert_rejected(&mut conn, &sql, Violation::ForeignKey);
    }
}

fn out_of_range_values_are_rejected(backend: TestBackend) {
    let (_db, mut conn) = seeded(backend);
    for sql in [
        format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'Bad_Slug', 'B', {KEY_D})"),
        format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'x', 'too short', {KEY_D})"),
        format!("INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'trailing-', 'B', {KEY_D})"),
        "INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'good', 'B', 'not-a-hex-key')".to_owned(),
        "INSERT INTO products (organization_id, slug, title, surrogate_key) VALUES (1, 'good', 'B', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')".to_owned(),
        format!("INSERT INTO builds (product_id, slug, surrogate_key) VALUES (1, 'a/b', {KEY_D})"),
        format!("INSERT INTO builds (product_id, slug, surrogate_key) VALUES (1, '', {KEY_D})"),
        format!("INSERT INTO editions (product_id, slug, title, surrogate_key) VALUES (1, 'v 1', 'T', {KEY_D})"),
        format!("INSERT INTO editions (product_id, slug, title, tracking_mode, surrogate_key) VALUES (1, 'v1', 'T', 'bogus', {KEY_D})"),
        format!("INSERT INTO editions (product_id, slug, title, kind, surrogate_key) VALUES (1, 'v1', 'T', 'bogus', {KEY_D})"),
        "INSERT INTO organizations (slug, title) VALUES ('Not Valid', 'x')".to_owned(),
        "INSERT INTO organizations (slug, title, layout) VALUES ('weird', 'x', 'weird')".to_owned(),
        "INSERT INTO organizations (slug, title, cdn_kind) VALUES ('cdn', 'x', 'akamai')".to_owned(),
        "INSERT INTO organizations (slug, title, store_kind) VALUES ('store', 'x', 'ftp')".to_owned(),
        "INSERT INTO users (username, password_hash, permissions) VALUES ('bob', 'x', 32)".to_owned(),
        "INSERT INTO users (username, password_hash) VALUES ('bad name', 'x')".to_owned(),
        "INSERT INTO api_tokens (user_id, name, token_hash) VALUES (1, 'x', 'short')".to_owned(),
        "INSERT INTO api_tokens (user_id, name, token_hash, permissions) VALUES (1, 'x', 'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd', 64)".to_owned(),
        "INSERT INTO operations (kind) VALUES ('make_coffee')".to_owned(),
        "INSERT INTO operations (kind, state) VALUES ('purge', 'DONE')".to_owned(),
        "INSERT INTO operations (kind, state) VALUES ('purge', 'WORKING')".to_owned(),
        "INSERT INTO operations (kind, attempts) VALUES ('purge', -1)".to_owned(),
    ] {
        assert_rejected(&mut conn, &sql, Violation::Check);
    }
}

fn deletes_follow_the_stated_on_delete(backend: TestBackend) {
    let (_db, mut conn) = seeded(backend);
    // RESTRICT: an organization with products, and a build an edition publishes, stay.
    assert_rejected(
        &mut conn,
        "DELETE FROM organizations WHERE id = 1",
        Violation::ForeignKey,
    );
    assert_rejected(
        &mut conn,
        "DELETE FROM builds WHERE id = 1",
        Violation::ForeignKey,
    );

    // CASCADE: a product takes its builds, editions and token scopes along; operations keep
    // their history with the target set to NULL.
    execute(&mut conn, "DELETE FROM products WHERE id = 1").unwrap();
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM builds"), 0);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM editions"), 0);
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) AS n FROM api_token_products"),
        0
    );
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) AS n FROM operations WHERE product_id IS NULL AND edition_id IS NULL AND build_id IS NULL"),
        1
    );

    // CASCADE: a user takes their tokens along.
    execute(&mut conn, "DELETE FROM users WHERE id = 1").unwrap();
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM api_tokens"), 0);
}

on_both_backends!(
    duplicates_are_rejected,
    one_working_operation_per_edition,
    missing_surrogate_keys_are_rejected,
    dangling_references_are_rejected,
    out_of_range_values_are_rejected,
    deletes_follow_the_stated_on_delete,
);
