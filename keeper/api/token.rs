//! `GET /token`: trades a user name and password (HTTP Basic), or an API token, for a session
//! token that later calls send as the Basic user name.

use actix_web::{web, HttpRequest};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::database::run_db;
use crate::api::identity::{api_token_identity, Credentials};
use crate::auth::api_token::looks_like_api_token;
use crate::db::users;
use crate::domain::Username;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub token: String,
}

/// Verified against when the user does not exist, so that both cases take as long.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1b2nM1W7rE5ZXoyT/t0ZHpVI5PYC/2wwzuhAxwEOUZQ";

/// A user name and password to the user's id. Throttled per user name and per client before
/// anything is looked up; the hash is checked in one of the bounded slots, with no database
/// connection held; a user that does not exist costs the same as one that does.
async fn password_login(
    state: &AppState,
    request: &HttpRequest,
    username: String,
    password: SecretString,
) -> ApiResult<i64> {
    let client = state.client_address(request);
    if let Err(throttled) = state.login.admit(&username, &client) {
        let seconds = throttled.retry_after.as_secs().max(1);
        tracing::warn!(client = %client, retry_after = seconds, "login throttled");
        return Err(ApiError::too_many_requests(
            format!("Too many failed logins; retry in {seconds} s."),
            seconds,
        ));
    }
    let name = username.clone();
    let user = run_db(&state.pool, move |conn| match Username::parse(&name) {
        Ok(name) => Ok(users::find_user(conn, &name)?),
        Err(_) => Ok(None),
    })
    .await?;
    let hash = user
        .as_ref()
        .map_or_else(|| DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
    let legacy = crate::auth::werkzeug::is_legacy_hash(&hash);
    let kept = legacy.then(|| password.clone());
    let matches = state.login.verify(password, hash.clone()).await;
    let user_id = user.filter(|_| matches).map(|user| user.id);
    state.login.record(&username, &client, user_id.is_some());
    let user_id = user_id.ok_or_else(|| ApiError::unauthorized("Wrong user name or password."))?;
    if let Some(password) = kept {
        upgrade_legacy_hash(state, user_id, hash, password).await;
    }
    Ok(user_id)
}

/// Replaces an adopted user's werkzeug hash with an argon2 one once its password is proven.
/// A failure costs the login nothing: the old hash keeps working and the next login retries.
async fn upgrade_legacy_hash(state: &AppState, user_id: i64, old: String, password: SecretString) {
    // In one of the bounded hash slots, as every password hash: memory stays bounded.
    let rehashed = state
        .login
        .run_bounded(move || crate::auth::password::rehash_password(&password))
        .await;
    let Some(Ok(new)) = rehashed else {
        tracing::warn!(
            user.id = user_id,
            "rehashing an adopted user's password failed"
        );
        return;
    };
    let replaced = run_db(&state.pool, move |conn| {
        conn.write_transaction(|conn| Ok(users::replace_password_hash(conn, user_id, &old, &new)?))
    })
    .await;
    match replaced {
        Ok(true) => tracing::info!(
            user.id = user_id,
            "adopted user's password rehashed with argon2"
        ),
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(user.id = user_id, error = %err, "storing a rehashed password failed")
        }
    }
}

#[utoipa::path(get, path = "/token", tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)),
    security(("basic" = [])))]
pub async fn get_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    credentials: Credentials,
) -> ApiResult<web::Json<TokenResponse>> {
    let api_token = match &credentials {
        Credentials::Bearer(token) => Some(token.clone()),
        // `<token>:` (an empty password) is how LTD clients send a token: keeper's own, or one
        // imported with `keeper token import`.
        Credentials::Basic { username, password } if password.expose_secret().is_empty() => {
            Some(SecretString::from(username.clone()))
        }
        Credentials::Basic { username, password } if username == "__token__" => {
            Some(password.clone())
        }
        _ => None,
    };
    let (user_id, token_id) =
        match (api_token, credentials) {
            (Some(token), credentials) => {
                match api_token_identity(&state, token).await? {
                    Some(identity) => (identity.user_id, identity.api_token_id),
                    // A user name with an empty password: a login that fails as any wrong password.
                    None => match credentials {
                        Credentials::Basic { username, password }
                            if !looks_like_api_token(&username) && username != "__token__" =>
                        {
                            (
                                password_login(&state, &request, username, password).await?,
                                None,
                            )
                        }
                        _ => return Err(ApiError::unauthorized("Unknown API token.")),
                    },
                }
            }
            (None, Credentials::Basic { username, password }) => (
                password_login(&state, &request, username, password).await?,
                None,
            ),
            _ => return Err(ApiError::unauthorized(
                "Send a user name and password with HTTP Basic authentication, or an API token.",
            )),
        };
    let token = state
        .sessions
        .issue(user_id, token_id, chrono::Utc::now().timestamp())
        .map_err(ApiError::internal)?;
    Ok(web::Json(TokenResponse { token }))
}
