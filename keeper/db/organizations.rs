//! Organization rows.

use diesel::prelude::*;

use crate::db::models::{Organization, OrganizationSettings};
use crate::db::schema::{organizations, products};
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

/// An organization's whole row.
pub fn find_organization_settings(
    conn: &mut DbConnection,
    id: i64,
) -> QueryResult<OrganizationSettings> {
    with_connection!(conn, c => organizations::table
        .find(id)
        .select(OrganizationSettings::as_select())
        .first(c))
}

/// The settings of the organization a product belongs to, with the organization's id.
pub fn find_settings_of_product(
    conn: &mut DbConnection,
    product_id: i64,
) -> QueryResult<(i64, OrganizationSettings)> {
    with_connection!(conn, c => organizations::table
        .inner_join(products::table)
        .filter(products::id.eq(product_id))
        .select((organizations::id, OrganizationSettings::as_select()))
        .first(c))
}

/// Every organization with its id, by slug.
pub fn list_organization_settings(
    conn: &mut DbConnection,
) -> QueryResult<Vec<(i64, OrganizationSettings)>> {
    with_connection!(conn, c => organizations::table
        .order(organizations::slug)
        .select((organizations::id, OrganizationSettings::as_select()))
        .load(c))
}

pub fn find_organization_settings_by_slug(
    conn: &mut DbConnection,
    slug: &str,
) -> QueryResult<(i64, OrganizationSettings)> {
    with_connection!(conn, c => organizations::table
        .filter(organizations::slug.eq(slug))
        .select((organizations::id, OrganizationSettings::as_select()))
        .first(c))
}

pub fn insert_organization(
    conn: &mut DbConnection,
    settings: &OrganizationSettings,
) -> QueryResult<i64> {
    with_connection!(conn, c => diesel::insert_into(organizations::table)
        .values(settings)
        .returning(organizations::id)
        .get_result(c))
}

pub fn update_organization(
    conn: &mut DbConnection,
    id: i64,
    settings: &OrganizationSettings,
) -> QueryResult<()> {
    with_connection!(conn, c => diesel::update(organizations::table.find(id))
        .set(settings)
        .execute(c))?;
    Ok(())
}

/// Stores re-encrypted secrets of one organization (`keeper secrets rotate`).
pub fn update_organization_secrets(
    conn: &mut DbConnection,
    id: i64,
    s3_secret_access_key_encrypted: Option<&str>,
    fastly_api_key_encrypted: Option<&str>,
) -> QueryResult<()> {
    with_connection!(conn, c => diesel::update(organizations::table.find(id))
        .set((
            organizations::s3_secret_access_key_encrypted.eq(s3_secret_access_key_encrypted),
            organizations::fastly_api_key_encrypted.eq(fastly_api_key_encrypted),
        ))
        .execute(c))?;
    Ok(())
}
