//! `/tokens/`: long-lived API tokens for CI. The token is shown once, in the creation response;
//! keeper keeps only its hash. A token may be narrowed to some permissions and products.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::body::Body;
use crate::api::database::run_db;
use crate::api::identity::{authenticate, Credentials, Identity};
use crate::api::json::{created, format_datetime, format_optional_datetime, parse_keeper_json};
use crate::auth::issue::{issue_token, TokenError, TokenRequest};
use crate::db::models::{now, ApiToken};
use crate::db::tokens;
use crate::domain::Permissions;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// What the token is for, e.g. `github-actions`.
    pub name: String,
    /// A subset of your own permissions; default all of them.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// Product slugs the token is limited to; default every product.
    #[serde(default)]
    pub products: Vec<String>,
    /// Days until the token expires (at most ten years); default never.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub self_url: String,
    pub id: i64,
    pub name: String,
    /// Permission names, or null for all of the owner's.
    pub permissions: Option<Vec<String>>,
    pub date_created: String,
    pub date_expires: Option<String>,
    pub date_revoked: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The token itself. Shown only here, once.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenListResponse {
    pub tokens: Vec<TokenInfo>,
}

fn token_info(state: &AppState, token: &ApiToken) -> TokenInfo {
    TokenInfo {
        self_url: state.url_for(&format!("tokens/{}", token.id)),
        id: token.id,
        name: token.name.clone(),
        permissions: token
            .permissions
            .and_then(Permissions::from_bits)
            .map(|p| p.names().into_iter().map(str::to_owned).collect()),
        date_created: format_datetime(token.date_created),
        date_expires: format_optional_datetime(token.date_expires),
        date_revoked: format_optional_datetime(token.date_revoked),
    }
}

/// Only a user's own session (not another API token) may mint tokens.
fn require_session(identity: &Identity) -> ApiResult<()> {
    if identity.api_token_id.is_some() {
        return Err(ApiError::forbidden(
            "API tokens cannot manage tokens; log in as the user.",
        ));
    }
    Ok(())
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::BeyondOwner => ApiError::forbidden(err.to_string()),
            TokenError::Database(err) => err.into(),
            other => ApiError::unprocessable(other.to_string()),
        }
    }
}

impl From<NewTokenRequest> for TokenRequest {
    fn from(request: NewTokenRequest) -> Self {
        Self {
            name: request.name,
            permissions: request.permissions,
            products: request.products,
            expires_in_days: request.expires_in_days,
        }
    }
}

#[utoipa::path(post, path = "/tokens/", tag = "auth", request_body = NewTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    credentials: Credentials,
    body: Body,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    require_session(&identity)?;
    let request: NewTokenRequest = parse_keeper_json(&body.read().await?)?;
    let (token, secret) = run_db(&state.pool, move |conn| {
        Ok(issue_token(
            conn,
            identity.user_id,
            identity.permissions,
            &request.into(),
        )?)
    })
    .await?;
    tracing::info!(token.id = token.id, "API token created");
    let body = CreatedToken {
        info: token_info(&state, &token),
        token: secret,
    };
    Ok(created(&body.info.self_url.clone(), &body))
}

#[utoipa::path(get, path = "/tokens/", tag = "auth",
    responses((status = 200, body = TokenListResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    credentials: Credentials,
) -> ApiResult<web::Json<TokenListResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    require_session(&identity)?;
    let found = run_db(&state.pool, move |conn| {
        Ok(tokens::list_tokens(conn, identity.user_id)?)
    })
    .await?;
    Ok(web::Json(TokenListResponse {
        tokens: found
            .iter()
            .map(|token| token_info(&state, token))
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "auth",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, body = TokenInfo), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn revoke(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
) -> ApiResult<web::Json<TokenInfo>> {
    let identity = authenticate(&state, &credentials).await?;
    require_session(&identity)?;
    let id = id.into_inner();
    let token = run_db(&state.pool, move |conn| {
        let token = tokens::find_token(conn, id)
            .map_err(|_| ApiError::not_found(format!("No token {id}.")))?;
        let own = token.user_id == identity.user_id;
        if !own {
            identity.require_unscoped(Permissions::ADMIN_USER)?;
        }
        if token.date_revoked.is_some() {
            return Ok(token);
        }
        Ok(tokens::revoke_token(conn, id, now())?)
    })
    .await?;
    tracing::info!(token.id = token.id, "API token revoked");
    Ok(web::Json(token_info(&state, &token)))
}
