//! Server-wide settings kept in the database, such as the generated token-signing key.
//!
//! The signing key lives in the database, not in a file beside it, because API replicas and
//! workers share the database but not a file system: every replica must verify tokens that any
//! other replica signed. `KEEPER_SECRET_KEY` overrides it (recommended in production, so that a
//! database dump alone cannot forge tokens).

use diesel::prelude::*;
use rand::RngCore;
use secrecy::SecretString;

use crate::db::schema::server_settings;
use crate::db::DbConnection;
use crate::with_connection;

pub const SECRET_KEY_SETTING: &str = "secret_key";

/// Where the signing key came from (for the start-up log; never the key itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKeySource {
    Environment,
    Database,
}

/// Returns the stored signing key, generating and storing a random one first if none exists.
/// Safe against concurrent first starts: the insert does nothing if another replica won.
pub fn load_or_create_secret_key(conn: &mut DbConnection) -> QueryResult<SecretString> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let candidate = hex::encode(bytes);
    with_connection!(conn, c => {
        diesel::insert_into(server_settings::table)
            .values((
                server_settings::name.eq(SECRET_KEY_SETTING),
                server_settings::value.eq(&candidate),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        server_settings::table
            .find(SECRET_KEY_SETTING)
            .select(server_settings::value)
            .first::<String>(c)
            .map(SecretString::from)
    })
}

/// The configured key if there is one, else the database's.
pub fn resolve_secret_key(
    configured: Option<&SecretString>,
    conn: &mut DbConnection,
) -> QueryResult<(SecretString, SecretKeySource)> {
    match configured {
        Some(key) => Ok((key.clone(), SecretKeySource::Environment)),
        None => Ok((load_or_create_secret_key(conn)?, SecretKeySource::Database)),
    }
}

/// The name of this deployment's identity, which its bucket holds too (`startup`'s check that
/// a database and a store belong together).
pub const DEPLOYMENT_SETTING: &str = "deployment_id";

/// The name of the salt of imported tokens' slow hashes (`auth::imported`): random, made at the
/// first import of a token that is not declared trusted.
pub const IMPORTED_TOKEN_SALT_SETTING: &str = "imported_token_salt";

/// This deployment's identity, if it has one yet.
pub fn deployment_id(conn: &mut DbConnection) -> QueryResult<Option<String>> {
    setting(conn, DEPLOYMENT_SETTING)
}

/// Stores `candidate` as the deployment's identity unless it has one, and returns the one it has
/// (a concurrent first start's, if that one won).
pub fn claim_deployment_id(conn: &mut DbConnection, candidate: &str) -> QueryResult<String> {
    claim_setting(conn, DEPLOYMENT_SETTING, candidate)
}

/// The value of setting `name`, if it is set.
pub fn setting(conn: &mut DbConnection, name: &str) -> QueryResult<Option<String>> {
    with_connection!(conn, c => server_settings::table
        .find(name)
        .select(server_settings::value)
        .first::<String>(c)
        .optional())
}

/// Sets `name` to `candidate` unless it is set, and returns its value (a concurrent writer's, if
/// that one won).
pub fn claim_setting(conn: &mut DbConnection, name: &str, candidate: &str) -> QueryResult<String> {
    with_connection!(conn, c => {
        diesel::insert_into(server_settings::table)
            .values((
                server_settings::name.eq(name),
                server_settings::value.eq(candidate),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        server_settings::table
            .find(name)
            .select(server_settings::value)
            .first::<String>(c)
    })
}
