//! Edition rows. A deleted edition keeps its row (with `date_ended`): `GET /editions/<id>` still
//! answers it, as the original did. Its slug is released when a new edition takes it, and only
//! once the delete operation has finished with its prefix.

use diesel::prelude::*;

use crate::db::models::{Edition, EditionChanges, NewEdition};
use crate::db::schema::editions;
use crate::db::DbConnection;
use crate::domain::EditionKind;
use crate::with_connection;

pub fn find_edition(conn: &mut DbConnection, id: i64) -> QueryResult<Edition> {
    with_connection!(conn, c => editions::table
        .find(id)
        .filter(editions::date_ended.is_null())
        .select(Edition::as_select())
        .first(c))
}

/// The edition's row, deleted (ended) or not; `None` once the row itself is gone.
pub fn find_edition_row(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Edition>> {
    with_connection!(conn, c => editions::table
        .find(id)
        .select(Edition::as_select())
        .first(c)
        .optional())
}

/// Live (not deleted) editions of a product, oldest first.
pub fn list_editions(conn: &mut DbConnection, product_id: i64) -> QueryResult<Vec<Edition>> {
    with_connection!(conn, c => editions::table
        .filter(editions::product_id.eq(product_id))
        .filter(editions::date_ended.is_null())
        .order(editions::id)
        .select(Edition::as_select())
        .load(c))
}

/// How many live editions each product has, by product id (products without any are absent).
pub fn live_edition_counts(conn: &mut DbConnection) -> QueryResult<Vec<(i64, i64)>> {
    with_connection!(conn, c => editions::table
        .filter(editions::date_ended.is_null())
        .group_by(editions::product_id)
        .select((editions::product_id, diesel::dsl::count_star()))
        .load(c))
}

/// Every product's live default edition (kind `main`).
pub fn live_default_editions(conn: &mut DbConnection) -> QueryResult<Vec<Edition>> {
    with_connection!(conn, c => editions::table
        .filter(editions::date_ended.is_null())
        .filter(editions::kind.eq(EditionKind::Main))
        .select(Edition::as_select())
        .load(c))
}

/// Every slug the product's editions use, deleted-but-not-yet-removed ones included.
pub fn edition_slugs(conn: &mut DbConnection, product_id: i64) -> QueryResult<Vec<String>> {
    with_connection!(conn, c => editions::table
        .filter(editions::product_id.eq(product_id))
        .select(editions::slug)
        .load(c))
}

/// Removes the row of a deleted edition of `product_id` named `slug` whose delete operation is
/// done, so that a new edition can take the slug. Returns the rows removed (0 or 1).
pub fn release_ended_slug(
    conn: &mut DbConnection,
    product_id: i64,
    slug: &str,
) -> QueryResult<usize> {
    use crate::db::schema::operations;
    with_connection!(conn, c => diesel::delete(
        editions::table
            .filter(editions::product_id.eq(product_id))
            .filter(editions::slug.eq(slug))
            .filter(editions::date_ended.is_not_null())
            .filter(diesel::dsl::not(diesel::dsl::exists(
                operations::table
                    .filter(operations::edition_id.eq(editions::id.nullable()))
                    .filter(operations::state.eq_any(["READY", "WORKING"])),
            ))),
    )
    .execute(c))
}

pub fn insert_edition(conn: &mut DbConnection, new: &NewEdition) -> QueryResult<Edition> {
    release_ended_slug(conn, new.product_id, new.slug)?;
    with_connection!(conn, c => diesel::insert_into(editions::table)
        .values(new)
        .returning(Edition::as_returning())
        .get_result(c))
}

pub fn update_edition(
    conn: &mut DbConnection,
    id: i64,
    changes: &EditionChanges,
) -> QueryResult<Edition> {
    let nothing = changes.title.is_none()
        && changes.slug.is_none()
        && changes.tracking_mode.is_none()
        && changes.tracked_refs.is_none()
        && changes.kind.is_none()
        && changes.date_ended.is_none();
    if nothing {
        return find_edition(conn, id);
    }
    if let Some(slug) = changes.slug {
        let product_id: i64 = with_connection!(conn, c => editions::table
            .find(id)
            .select(editions::product_id)
            .first(c))?;
        release_ended_slug(conn, product_id, slug)?;
    }
    with_connection!(conn, c => diesel::update(editions::table.find(id))
        .set(changes)
        .returning(Edition::as_returning())
        .get_result(c))
}

/// Inserts unless the product already has an edition with that slug (no error, no abort of the
/// surrounding transaction). Returns the edition if a row was inserted.
pub fn insert_edition_if_absent(
    conn: &mut DbConnection,
    new: &NewEdition,
) -> QueryResult<Option<Edition>> {
    release_ended_slug(conn, new.product_id, new.slug)?;
    with_connection!(conn, c => diesel::insert_into(editions::table)
        .values(new)
        .on_conflict_do_nothing()
        .returning(Edition::as_returning())
        .get_result(c)
        .optional())
}

/// Records whether the edition's prefix holds exactly its build's manifest.
pub fn set_prefix_matches_build(
    conn: &mut DbConnection,
    id: i64,
    matches: bool,
) -> QueryResult<usize> {
    with_connection!(conn, c => diesel::update(editions::table.find(id))
        .set(editions::prefix_matches_build.eq(matches))
        .execute(c))
}

/// `(product slug, edition slug)` of every live default edition whose slug is not `__main`
/// (the `main` editions of products adopted from LTD Keeper 1.x).
pub fn default_editions_not_main(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    use crate::db::schema::products;
    use crate::domain::{EditionKind, EditionSlug};
    with_connection!(conn, c => editions::table
        .inner_join(products::table)
        .filter(editions::kind.eq(EditionKind::Main))
        .filter(editions::slug.ne(EditionSlug::MAIN))
        .filter(editions::date_ended.is_null())
        .select((products::slug, editions::slug))
        .load(c))
}
