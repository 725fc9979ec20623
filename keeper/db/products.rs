//! Product rows.

use diesel::prelude::*;

use crate::db::models::{NewProduct, Organization, Product, ProductChanges};
use crate::db::schema::{organizations, products};
use crate::db::DbConnection;
use crate::with_connection;

pub fn find_product_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Product> {
    with_connection!(conn, c => products::table.find(id).select(Product::as_select()).first(c))
}

/// Every product with its organization, by title.
pub fn list_products_with_organizations(
    conn: &mut DbConnection,
) -> QueryResult<Vec<(Product, Organization)>> {
    with_connection!(conn, c => products::table
        .inner_join(organizations::table)
        .order((products::title, products::slug, products::id))
        .select((Product::as_select(), Organization::as_select()))
        .load(c))
}

/// The slugs of the products with these ids.
pub fn product_slugs_by_id(
    conn: &mut DbConnection,
    ids: &[i64],
) -> QueryResult<Vec<(i64, String)>> {
    with_connection!(conn, c => products::table
        .filter(products::id.eq_any(ids))
        .select((products::id, products::slug))
        .load(c))
}

/// How many products there are, in every organization.
pub fn count_products(conn: &mut DbConnection) -> QueryResult<i64> {
    with_connection!(conn, c => products::table.count().get_result(c))
}

/// A product by slug in any organization (the v1 API's namespace); should two organizations
/// use one slug, the older organization's (the default organization is the first).
pub fn find_product_by_slug(conn: &mut DbConnection, slug: &str) -> QueryResult<Product> {
    with_connection!(conn, c => products::table
        .filter(products::slug.eq(slug))
        .order((products::organization_id, products::id))
        .select(Product::as_select())
        .first(c))
}

pub fn insert_product(conn: &mut DbConnection, new: &NewProduct) -> QueryResult<Product> {
    with_connection!(conn, c => diesel::insert_into(products::table)
        .values(new)
        .returning(Product::as_returning())
        .get_result(c))
}

pub fn update_product(
    conn: &mut DbConnection,
    id: i64,
    changes: &ProductChanges,
) -> QueryResult<Product> {
    if changes.title.is_none() && changes.doc_repo.is_none() && changes.retention.is_none() {
        return find_product_by_id(conn, id);
    }
    with_connection!(conn, c => diesel::update(products::table.find(id))
        .set(changes)
        .returning(Product::as_returning())
        .get_result(c))
}
