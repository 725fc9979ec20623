//! Who is calling: credentials from the `Authorization` header, checked against the database.
//!
//! Handlers authenticate first, then check permissions, then read the body, so that an
//! anonymous or forbidden request is answered 401/403 whatever its body holds.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::api::app::AppState;
use crate::api::database::run_db;
use crate::auth::api_token::{hash_api_token, looks_like_api_token};
use crate::auth::session::SessionError;
use crate::db::models::now;
use crate::db::{tokens, users};
use crate::domain::Permissions;
use crate::error::{ApiError, ApiResult};

/// What the `Authorization` header carried. Extraction never fails; judging comes later.
pub enum Credentials {
    None,
    Basic {
        username: String,
        password: SecretString,
    },
    Bearer(SecretString),
    Malformed,
}

impl FromRequest for Credentials {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(parse_authorization(
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        )))
    }
}

pub fn parse_authorization(header: Option<&str>) -> Credentials {
    let Some(value) = header else {
        return Credentials::None;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
        return Credentials::Bearer(SecretString::from(rest.trim().to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::Malformed;
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|pair| pair.split_once(':')) {
        Some((username, password)) => Credentials::Basic {
            username: username.to_owned(),
            password: SecretString::from(password.to_owned()),
        },
        None => Credentials::Malformed,
    }
}

impl Credentials {
    /// The token of a token-authenticated call: Basic `<token>:` (what the original clients
    /// send), Basic `__token__:<api token>`, or Bearer.
    fn token(&self) -> ApiResult<SecretString> {
        match self {
            Self::None => Err(ApiError::unauthorized(
                "Authentication required: get a token from GET /token and send it as the Basic \
                 user name, or send an API token as a Bearer token.",
            )),
            Self::Malformed => Err(ApiError::unauthorized(
                "The Authorization header is malformed.",
            )),
            Self::Bearer(token) => Ok(token.clone()),
            Self::Basic { username, password } if password.expose_secret().is_empty() => {
                Ok(SecretString::from(username.clone()))
            }
            Self::Basic { username, password } if username == "__token__" => Ok(password.clone()),
            Self::Basic { .. } => Err(ApiError::unauthorized(
                "This route takes a token, not a password: get one from GET /token first.",
            )),
        }
    }
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: i64,
    pub username: String,
    /// The user's permissions, narrowed by the API token's when one is used.
    pub permissions: Permissions,
    /// The products an API token is limited to; `None` means every product.
    pub product_scope: Option<Vec<i64>>,
    pub api_token_id: Option<i64>,
    /// An API token created with a narrower set of permissions than its user's. Such a token
    /// never carries `admin_org`, which is granted apart from the five bits (`/orgs/`).
    pub narrowed: bool,
}

impl Identity {
    /// How operations this caller queues name it: `user alice`, or `user alice (API token 3)`.
    pub fn cause(&self) -> String {
        match self.api_token_id {
            Some(token) => format!("user {} (API token {token})", self.username),
            None => format!("user {}", self.username),
        }
    }

    /// 403 unless every bit of `required` is held.
    pub fn require(&self, required: Permissions) -> ApiResult<()> {
        if self.permissions.contains(required) {
            return Ok(());
        }
        let missing =
            Permissions::from_bits(required.bits() & !self.permissions.bits()).unwrap_or(required);
        Err(ApiError::forbidden(format!(
            "This needs the permission {missing}, which {} does not have.",
            self.username
        )))
    }

    /// As [`Identity::require`], and the token must not be limited to other products.
    pub fn require_for_product(&self, required: Permissions, product_id: i64) -> ApiResult<()> {
        self.require(required)?;
        match &self.product_scope {
            Some(scope) if !scope.contains(&product_id) => Err(ApiError::forbidden(
                "This token is limited to other products.",
            )),
            _ => Ok(()),
        }
    }

    /// 403 for a token limited to some products (it cannot act outside them, e.g. create one).
    pub fn require_unscoped(&self, required: Permissions) -> ApiResult<()> {
        self.require(required)?;
        if self.product_scope.is_some() {
            return Err(ApiError::forbidden(
                "This token is limited to some products.",
            ));
        }
        Ok(())
    }
}

/// Checks the credentials of a token-authenticated call. 401 for anything that is not a valid,
/// unexpired, unrevoked token of an existing user.
pub async fn authenticate(state: &AppState, credentials: &Credentials) -> ApiResult<Identity> {
    let token = credentials.token()?;
    if looks_like_api_token(token.expose_secret()) {
        return api_token_identity(state, token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Unknown API token."));
    }
    let (user_id, claims) = match state.sessions.verify(token.expose_secret()) {
        Ok(verified) => verified,
        Err(SessionError::Expired) => {
            return Err(ApiError::unauthorized(
                "The token has expired: get a new one from GET /token.",
            ))
        }
        // Not one of keeper's session tokens: perhaps one a user brought (`keeper token import`).
        Err(_) => {
            return api_token_identity(state, token)
                .await?
                .ok_or_else(|| ApiError::unauthorized("The token is not valid."))
        }
    };
    run_db(&state.pool, move |conn| match claims.tid {
        Some(token_id) => identity_for_token(conn, token_id, user_id),
        None => {
            let user = users::find_user_by_id(conn, user_id)?
                .ok_or_else(|| ApiError::unauthorized("The token's user no longer exists."))?;
            Ok(Identity {
                user_id: user.id,
                username: user.username,
                permissions: Permissions::from_bits(user.permissions).unwrap_or_default(),
                product_scope: None,
                api_token_id: None,
                narrowed: false,
            })
        }
    })
    .await
}

/// The identity of an API token: keeper's own (`ltdk_`, a fast hash), or an imported one (a fast
/// hash if it was trusted, else the deployment's slow hash, computed in one of the bounded hash
/// slots). `None` when no token matches.
pub async fn api_token_identity(
    state: &AppState,
    token: SecretString,
) -> ApiResult<Option<Identity>> {
    let own = looks_like_api_token(token.expose_secret());
    let fast = hash_api_token(token.expose_secret());
    let (found, salt) = run_db(&state.pool, move |conn| {
        if let Some(api_token) = tokens::find_by_hash(conn, &fast)? {
            return Ok((
                Some(identity_for_token(conn, api_token.id, api_token.user_id)?),
                None,
            ));
        }
        let salt = if own {
            None
        } else {
            crate::auth::imported::salt(conn)?
        };
        Ok((None, salt))
    })
    .await?;
    if found.is_some() {
        return Ok(found);
    }
    let Some(salt) = salt else {
        return Ok(None);
    };
    let Some(slow) = state
        .login
        .run_bounded(move || crate::auth::imported::slow_hash(&token, &salt))
        .await
        .flatten()
    else {
        return Ok(None);
    };
    run_db(&state.pool, move |conn| {
        match tokens::find_by_hash(conn, &slow)? {
            Some(api_token) => Ok(Some(identity_for_token(
                conn,
                api_token.id,
                api_token.user_id,
            )?)),
            None => Ok(None),
        }
    })
    .await
}

/// The identity of API token `token_id` (which must belong to `user_id` and be active).
pub fn identity_for_token(
    conn: &mut crate::db::DbConnection,
    token_id: i64,
    user_id: i64,
) -> ApiResult<Identity> {
    let api_token = tokens::find_token(conn, token_id)
        .map_err(|_| ApiError::unauthorized("Unknown API token."))?;
    if api_token.user_id != user_id || !api_token.is_active(now()) {
        return Err(ApiError::unauthorized(
            "The API token is revoked or expired.",
        ));
    }
    let user = users::find_user_by_id(conn, user_id)?
        .ok_or_else(|| ApiError::unauthorized("The token's user no longer exists."))?;
    let user_permissions = Permissions::from_bits(user.permissions).unwrap_or_default();
    let permissions = match api_token.permissions.and_then(Permissions::from_bits) {
        Some(limit) => user_permissions.intersection(limit),
        None => user_permissions,
    };
    let scope = tokens::token_product_ids(conn, api_token.id)?;
    Ok(Identity {
        user_id: user.id,
        username: user.username,
        permissions,
        product_scope: (!scope.is_empty()).then_some(scope),
        api_token_id: Some(api_token.id),
        narrowed: api_token.permissions.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(pair: &str) -> String {
        format!("Basic {}", STANDARD.encode(pair))
    }

    #[test]
    fn parses_the_header_forms_clients_send() {
        assert!(matches!(parse_authorization(None), Credentials::None));
        let token = parse_authorization(Some(&basic("abc.def:")))
            .token()
            .unwrap();
        assert_eq!(token.expose_secret(), "abc.def");
        let token = parse_authorization(Some("Bearer ltdk_x")).token().unwrap();
        assert_eq!(token.expose_secret(), "ltdk_x");
        let token = parse_authorization(Some(&basic("__token__:ltdk_y")))
            .token()
            .unwrap();
        assert_eq!(token.expose_secret(), "ltdk_y");
        assert!(parse_authorization(Some(&basic("alice:password")))
            .token()
            .is_err());
        assert!(matches!(
            parse_authorization(Some("Basic !!!")),
            Credentials::Malformed
        ));
        assert!(matches!(
            parse_authorization(Some("Digest x")),
            Credentials::Malformed
        ));
    }
}
