//! Build rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{Build, NewBuild};
use crate::db::schema::builds;
use crate::db::DbConnection;
use crate::with_connection;

pub fn find_build(conn: &mut DbConnection, id: i64) -> QueryResult<Build> {
    with_connection!(conn, c => builds::table.find(id).select(Build::as_select()).first(c))
}

/// The build of `product_id` named `slug`, deprecated or not.
pub fn find_build_by_slug(
    conn: &mut DbConnection,
    product_id: i64,
    slug: &str,
) -> QueryResult<Option<Build>> {
    with_connection!(conn, c => builds::table
        .filter(builds::product_id.eq(product_id))
        .filter(builds::slug.eq(slug))
        .select(Build::as_select())
        .first(c)
        .optional())
}

/// Non-deprecated builds of a product, oldest first.
pub fn list_active_builds(conn: &mut DbConnection, product_id: i64) -> QueryResult<Vec<Build>> {
    with_connection!(conn, c => builds::table
        .filter(builds::product_id.eq(product_id))
        .filter(builds::date_ended.is_null())
        .order(builds::id)
        .select(Build::as_select())
        .load(c))
}

/// The product's newest `limit` confirmed builds (deprecated ones included), newest first, and
/// how many confirmed builds it has in all.
pub fn newest_confirmed_builds(
    conn: &mut DbConnection,
    product_id: i64,
    limit: i64,
) -> QueryResult<(Vec<Build>, i64)> {
    with_connection!(conn, c => {
        let confirmed = builds::table
            .filter(builds::product_id.eq(product_id))
            .filter(builds::uploaded.eq(true));
        let newest = confirmed
            .order(builds::id.desc())
            .limit(limit)
            .select(Build::as_select())
            .load(c)?;
        let total = confirmed.count().get_result(c)?;
        Ok((newest, total))
    })
}

/// The builds with these ids.
pub fn find_builds(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<Build>> {
    with_connection!(conn, c => builds::table
        .filter(builds::id.eq_any(ids))
        .select(Build::as_select())
        .load(c))
}

pub fn insert_build(conn: &mut DbConnection, new: &NewBuild) -> QueryResult<Build> {
    with_connection!(conn, c => diesel::insert_into(builds::table)
        .values(new)
        .returning(Build::as_returning())
        .get_result(c))
}

pub fn mark_uploaded(conn: &mut DbConnection, id: i64) -> QueryResult<Build> {
    with_connection!(conn, c => diesel::update(builds::table.find(id))
        .set(builds::uploaded.eq(true))
        .returning(Build::as_returning())
        .get_result(c))
}

pub fn deprecate_build(
    conn: &mut DbConnection,
    id: i64,
    when: NaiveDateTime,
) -> QueryResult<Build> {
    with_connection!(conn, c => diesel::update(builds::table.find(id))
        .set(builds::date_ended.eq(when))
        .returning(Build::as_returning())
        .get_result(c))
}

/// The build's row, locked until the transaction ends (PostgreSQL; SQLite's write transaction
/// holds the whole database): a rebuild request reads the build through it, so that retention,
/// which deprecates under the same row locks, and the request never both go ahead on one build.
pub fn lock_for_rebuild(conn: &mut DbConnection, id: i64) -> QueryResult<Build> {
    match conn {
        DbConnection::Postgres(c) => builds::table
            .find(id)
            .select(Build::as_select())
            // Conflicts with retention's UPDATE, not with the key-share locks that inserting
            // rows which reference the build takes.
            .for_no_key_update()
            .first(c),
        DbConnection::Sqlite(c) => builds::table.find(id).select(Build::as_select()).first(c),
    }
}

/// Records the digest of the build's manifest unless the build is sealed already, and returns
/// the digest it is sealed with (a concurrent sealer's, if it was first).
pub fn seal_build(conn: &mut DbConnection, id: i64, digest: &str) -> QueryResult<String> {
    with_connection!(conn, c => {
        diesel::update(builds::table.find(id).filter(builds::manifest_digest.is_null()))
            .set(builds::manifest_digest.eq(digest))
            .execute(c)?;
        builds::table
            .find(id)
            .select(builds::manifest_digest.assume_not_null())
            .first(c)
    })
}

/// The build's row, if it still exists.
pub fn find_build_row(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Build>> {
    with_connection!(conn, c => builds::table
        .find(id)
        .select(Build::as_select())
        .first(c)
        .optional())
}
