//! Issuing API tokens: the rules the API (`POST /tokens/`) and the CLI (`keeper token create`)
//! share. The token is returned once; only its hash is stored.

use secrecy::{ExposeSecret, SecretString};

use crate::auth::api_token::generate_api_token;
use crate::auth::imported::{self, Trust};
use crate::db::models::{now, ApiToken, NewApiToken};
use crate::db::products::find_product_by_slug;
use crate::db::{tokens, DbConnection};
use crate::domain::Permissions;

/// The longest lifetime a token may be given: ten years.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// What the token should be.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// What the token is for, e.g. `github-actions`.
    pub name: String,
    /// Permission names, a subset of the owner's; `None`: all of the owner's.
    pub permissions: Option<Vec<String>>,
    /// Product slugs the token is limited to; empty: every product.
    pub products: Vec<String>,
    /// Days until the token expires; `None`: never.
    pub expires_in_days: Option<u32>,
}

/// Why a token was not issued; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("name must not be empty.")]
    EmptyName,
    #[error("{0}")]
    UnknownPermission(String),
    #[error("A token cannot have permissions its owner lacks.")]
    BeyondOwner,
    #[error("expires_in_days must be between 1 and {MAX_TOKEN_DAYS}.")]
    Lifetime,
    #[error("No product named {0:?}.")]
    UnknownProduct(String),
    #[error("{0}")]
    Import(#[from] crate::auth::imported::ImportError),
    #[error("This token is already imported (or is another API token's value).")]
    Duplicate,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Creates a token for user `user_id`, who holds `owner_permissions`; returns the row and the
/// token to show once.
pub fn issue_token(
    conn: &mut DbConnection,
    user_id: i64,
    owner_permissions: Permissions,
    request: &TokenRequest,
) -> Result<(ApiToken, String), TokenError> {
    let (secret, hash) = generate_api_token();
    let token = store_token(conn, user_id, owner_permissions, request, |_| Ok(hash))?;
    Ok((token, secret.expose_secret().to_owned()))
}

/// Stores `secret`, a token user `user_id` brings (`keeper token import`), hashed as `trust`
/// says ([`crate::auth::imported`]).
pub fn import_token(
    conn: &mut DbConnection,
    user_id: i64,
    owner_permissions: Permissions,
    request: &TokenRequest,
    secret: &SecretString,
    trust: Trust,
) -> Result<ApiToken, TokenError> {
    imported::check(secret.expose_secret(), trust)?;
    let fast = imported::stored_hash(conn, secret, Trust::Trusted)?;
    // A trusted import makes no salt: the slow lookup stays off until a token needs it.
    let slow = match trust {
        Trust::Untrusted => Some(imported::stored_hash(conn, secret, Trust::Untrusted)?),
        Trust::Trusted => imported::salt(conn)?.and_then(|salt| imported::slow_hash(secret, &salt)),
    };
    // The same secret imported before, under either hash, would make two tokens of one value.
    for hash in std::iter::once(&fast).chain(slow.as_ref()) {
        if tokens::find_by_hash(conn, hash)?.is_some() {
            return Err(TokenError::Duplicate);
        }
    }
    let hash = match (trust, slow) {
        (Trust::Untrusted, Some(slow)) => slow,
        _ => fast,
    };
    store_token(conn, user_id, owner_permissions, request, |_| Ok(hash))
}

/// The rules both share, and the row, with the hash `hash` gives inside the transaction.
fn store_token(
    conn: &mut DbConnection,
    user_id: i64,
    owner_permissions: Permissions,
    request: &TokenRequest,
    hash: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<String>,
) -> Result<ApiToken, TokenError> {
    if request.name.trim().is_empty() {
        return Err(TokenError::EmptyName);
    }
    let permissions = request
        .permissions
        .as_ref()
        .map(|names| {
            Permissions::parse_list(&names.join(",")).map_err(TokenError::UnknownPermission)
        })
        .transpose()?;
    if let Some(wanted) = permissions {
        if !owner_permissions.contains(wanted) {
            return Err(TokenError::BeyondOwner);
        }
    }
    let expires = match request.expires_in_days {
        None => None,
        Some(days @ 1..=MAX_TOKEN_DAYS) => {
            now().checked_add_signed(chrono::TimeDelta::days(i64::from(days)))
        }
        Some(_) => return Err(TokenError::Lifetime),
    };
    conn.write_transaction(|conn| {
        let mut product_ids = Vec::with_capacity(request.products.len());
        for slug in &request.products {
            let product = find_product_by_slug(conn, slug)
                .map_err(|_| TokenError::UnknownProduct(slug.clone()))?;
            product_ids.push(product.id);
        }
        let hash = hash(conn)?;
        let token = tokens::insert_token(
            conn,
            &NewApiToken {
                user_id,
                name: request.name.trim(),
                token_hash: &hash,
                permissions: permissions.map(Permissions::bits),
                date_created: now(),
                date_expires: expires,
            },
            &product_ids,
        )?;
        Ok(token)
    })
}
