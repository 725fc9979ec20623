//! Grants of the permission `admin_org`: a user may read and change one organization's
//! settings, or (with no organization) every organization's, and create new ones.

use diesel::prelude::*;

use crate::db::models::now;
use crate::db::schema::{organization_admins, organizations, users};
use crate::db::DbConnection;
use crate::with_connection;

/// Which organizations a user administers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgAdminGrant {
    /// None.
    Nothing,
    /// These (by id).
    Some(Vec<i64>),
    /// Every organization, and the creation of new ones.
    Every,
}

impl OrgAdminGrant {
    pub fn covers(&self, organization_id: i64) -> bool {
        match self {
            Self::Nothing => false,
            Self::Some(ids) => ids.contains(&organization_id),
            Self::Every => true,
        }
    }
}

/// What `user_id` was granted.
pub fn grant_of(conn: &mut DbConnection, user_id: i64) -> QueryResult<OrgAdminGrant> {
    let rows: Vec<Option<i64>> = with_connection!(conn, c => organization_admins::table
        .filter(organization_admins::user_id.eq(user_id))
        .select(organization_admins::organization_id)
        .load(c))?;
    if rows.iter().any(Option::is_none) {
        return Ok(OrgAdminGrant::Every);
    }
    let ids: Vec<i64> = rows.into_iter().flatten().collect();
    Ok(if ids.is_empty() {
        OrgAdminGrant::Nothing
    } else {
        OrgAdminGrant::Some(ids)
    })
}

/// Grants `user_id` the organization (`None`: every one). Returns false if it already had it.
pub fn grant(
    conn: &mut DbConnection,
    user_id: i64,
    organization_id: Option<i64>,
) -> QueryResult<bool> {
    if has_row(conn, user_id, organization_id)? {
        return Ok(false);
    }
    with_connection!(conn, c => diesel::insert_into(organization_admins::table)
        .values((
            organization_admins::user_id.eq(user_id),
            organization_admins::organization_id.eq(organization_id),
            organization_admins::date_created.eq(now()),
        ))
        .execute(c))?;
    Ok(true)
}

/// Takes the grant back. Returns false if there was none.
pub fn revoke(
    conn: &mut DbConnection,
    user_id: i64,
    organization_id: Option<i64>,
) -> QueryResult<bool> {
    let ids = grant_rows(conn, user_id, organization_id)?;
    let removed = with_connection!(conn, c => diesel::delete(
        organization_admins::table.filter(organization_admins::id.eq_any(&ids)),
    )
    .execute(c))?;
    Ok(removed > 0)
}

fn has_row(
    conn: &mut DbConnection,
    user_id: i64,
    organization_id: Option<i64>,
) -> QueryResult<bool> {
    Ok(!grant_rows(conn, user_id, organization_id)?.is_empty())
}

/// The ids of the rows granting `user_id` the organization (`None`: every one).
fn grant_rows(
    conn: &mut DbConnection,
    user_id: i64,
    organization_id: Option<i64>,
) -> QueryResult<Vec<i64>> {
    with_connection!(conn, c => {
        let rows = organization_admins::table
            .filter(organization_admins::user_id.eq(user_id))
            .into_boxed();
        let rows = match organization_id {
            Some(id) => rows.filter(organization_admins::organization_id.eq(id)),
            None => rows.filter(organization_admins::organization_id.is_null()),
        };
        rows.select(organization_admins::id).load(c)
    })
}

/// The user names granted `organization_id` itself (not those granted every organization),
/// sorted.
pub fn admins_of(conn: &mut DbConnection, organization_id: i64) -> QueryResult<Vec<String>> {
    with_connection!(conn, c => organization_admins::table
        .inner_join(users::table)
        .filter(organization_admins::organization_id.eq(organization_id))
        .order(users::username)
        .select(users::username)
        .load(c))
}

/// Every grant as `(user name, organization slug or None for every one)`, sorted.
pub fn every_grant(conn: &mut DbConnection) -> QueryResult<Vec<(String, Option<String>)>> {
    with_connection!(conn, c => organization_admins::table
        .inner_join(users::table)
        .left_join(organizations::table.on(
            organizations::id.nullable().eq(organization_admins::organization_id),
        ))
        .order((users::username, organizations::slug))
        .select((users::username, organizations::slug.nullable()))
        .load(c))
}
