//! Organization rows.

use diesel::prelude::*;

use crate::db::models::Organization;
use crate::db::schema::organizations;
use crate::db::DbConnection;
use crate::with_connection;

/// The organization the v1 API publishes into.
pub const DEFAULT_ORGANIZATION: &str = "default";

pub fn find_organization_by_slug(conn: &mut DbConnection, slug: &str) -> QueryResult<Organization> {
    with_connection!(conn, c => organizations::table
        .filter(organizations::slug.eq(slug))
        .select(Organization::as_select())
        .first(c))
}

pub fn find_organization(conn: &mut DbConnection, id: i64) -> QueryResult<Organization> {
    with_connection!(conn, c => organizations::table
        .find(id)
        .select(Organization::as_select())
        .first(c))
}
