//! User rows: creation and the bootstrap administrator.

use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::DbConnection;
use crate::domain::Permissions;
use crate::domain::Username;
use crate::with_connection;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub permissions: i32,
    pub date_created: chrono::NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub permissions: i32,
}

/// Inserts a user; a taken name is a `UniqueViolation` from the database.
pub fn create_user(
    conn: &mut DbConnection,
    username: &Username,
    password_hash: &str,
    permissions: Permissions,
) -> QueryResult<User> {
    let new_user = NewUser {
        username: username.as_str(),
        password_hash,
        permissions: permissions.bits(),
    };
    with_connection!(conn, c => diesel::insert_into(users::table)
        .values(&new_user)
        .returning(User::as_returning())
        .get_result(c))
}

pub fn find_user(conn: &mut DbConnection, username: &Username) -> QueryResult<Option<User>> {
    with_connection!(conn, c => users::table
        .filter(users::username.eq(username.as_str()))
        .select(User::as_select())
        .first(c)
        .optional())
}

/// What [`ensure_bootstrap_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapOutcome {
    Created,
    /// A user of that name exists; it is left as it is (its password is not reset).
    AlreadyExists,
}

/// Creates the bootstrap administrator, with every permission, unless a user of that name exists.
/// Safe when several replicas start at once: the insert does nothing if the name is taken.
pub fn ensure_bootstrap_user(
    conn: &mut DbConnection,
    username: &Username,
    password_hash: &str,
) -> QueryResult<BootstrapOutcome> {
    let new_user = NewUser {
        username: username.as_str(),
        password_hash,
        permissions: Permissions::ALL.bits(),
    };
    let inserted = with_connection!(conn, c => diesel::insert_into(users::table)
        .values(&new_user)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(if inserted == 1 {
        BootstrapOutcome::Created
    } else {
        BootstrapOutcome::AlreadyExists
    })
}

pub fn find_user_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
    with_connection!(conn, c => users::table
        .find(id)
        .select(User::as_select())
        .first(c)
        .optional())
}

pub fn list_users(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    with_connection!(conn, c => users::table
        .order(users::username)
        .select(User::as_select())
        .load(c))
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub password_hash: Option<&'a str>,
    pub permissions: Option<i32>,
}

pub fn update_user(conn: &mut DbConnection, id: i64, changes: &UserChanges) -> QueryResult<User> {
    if changes.password_hash.is_none() && changes.permissions.is_none() {
        return find_user_by_id(conn, id)?.ok_or(diesel::result::Error::NotFound);
    }
    with_connection!(conn, c => diesel::update(users::table.find(id))
        .set(changes)
        .returning(User::as_returning())
        .get_result(c))
}

/// Replaces user `id`'s password hash with `new_hash` if it is still `old_hash` (a password
/// changed meanwhile wins). Returns whether it was replaced.
pub fn replace_password_hash(
    conn: &mut DbConnection,
    id: i64,
    old_hash: &str,
    new_hash: &str,
) -> QueryResult<bool> {
    with_connection!(conn, c => diesel::update(
        users::table
            .find(id)
            .filter(users::password_hash.eq(old_hash)),
    )
    .set(users::password_hash.eq(new_hash))
    .execute(c))
    .map(|rows| rows == 1)
}

pub fn delete_user(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
    with_connection!(conn, c => diesel::delete(users::table.find(id)).execute(c))
}
