//! `/users/`: user management (`admin_user`), which the original service did not have.

use actix_web::{web, HttpResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::body::Body;
use crate::api::database::run_db;
use crate::api::identity::{authenticate, Credentials};
use crate::api::json::{created, format_datetime, parse_keeper_json};
use crate::api::products::conflict_or;
use crate::auth::password::hash_password;
use crate::db::users::{
    create_user, delete_user, find_user, list_users, update_user, User, UserChanges,
};
use crate::db::DbConnection;
use crate::domain::Permissions;
use crate::domain::Username;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub self_url: String,
    pub username: String,
    /// Permission names: admin_user, admin_product, admin_edition, upload_build, deprecate_build.
    pub permissions: Vec<String>,
    pub date_created: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListResponse {
    pub users: Vec<UserResponse>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.@+-]{1,64}$")]
    pub username: String,
    /// At least 8 characters.
    pub password: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchRequest {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

fn user_response(state: &AppState, user: &User) -> UserResponse {
    UserResponse {
        self_url: state.url_for(&format!("users/{}", user.username)),
        username: user.username.clone(),
        permissions: Permissions::from_bits(user.permissions)
            .unwrap_or_default()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        date_created: format_datetime(user.date_created),
    }
}

fn parse_permissions(names: &[String]) -> ApiResult<Permissions> {
    Permissions::parse_list(&names.join(",")).map_err(ApiError::unprocessable)
}

fn hash(password: String) -> ApiResult<String> {
    hash_password(&SecretString::from(password)).map_err(|err| match err {
        crate::auth::password::PasswordError::TooShort => ApiError::unprocessable(err.to_string()),
        other => ApiError::internal(other),
    })
}

fn load_user(conn: &mut DbConnection, username: &str) -> ApiResult<User> {
    let name = Username::parse(username)
        .map_err(|_| ApiError::not_found(format!("No user {username:?}.")))?;
    find_user(conn, &name)?.ok_or_else(|| ApiError::not_found(format!("No user {username:?}.")))
}

#[utoipa::path(get, path = "/users/", tag = "users",
    responses((status = 200, body = UserListResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    credentials: Credentials,
) -> ApiResult<web::Json<UserListResponse>> {
    authenticate(&state, &credentials)
        .await?
        .require_unscoped(Permissions::ADMIN_USER)?;
    let users = run_db(&state.pool, |conn| Ok(list_users(conn)?)).await?;
    Ok(web::Json(UserListResponse {
        users: users
            .iter()
            .map(|user| user_response(&state, user))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/users/{username}", tag = "users",
    params(("username" = String, Path, description = "User name")),
    responses((status = 200, body = UserResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    credentials: Credentials,
    username: web::Path<String>,
) -> ApiResult<web::Json<UserResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    let username = username.into_inner();
    if identity.username != username {
        identity.require_unscoped(Permissions::ADMIN_USER)?;
    }
    let user = run_db(&state.pool, move |conn| load_user(conn, &username)).await?;
    Ok(web::Json(user_response(&state, &user)))
}

#[utoipa::path(post, path = "/users/", tag = "users", request_body = NewUserRequest,
    responses((status = 201, body = UserResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    credentials: Credentials,
    body: Body,
) -> ApiResult<HttpResponse> {
    authenticate(&state, &credentials)
        .await?
        .require_unscoped(Permissions::ADMIN_USER)?;
    let request: NewUserRequest = parse_keeper_json(&body.read().await?)?;
    let username = Username::parse(&request.username).map_err(ApiError::unprocessable)?;
    let permissions = parse_permissions(&request.permissions)?;
    let password_hash = web::block(move || hash(request.password)).await??;
    let user = run_db(&state.pool, move |conn| {
        create_user(conn, &username, &password_hash, permissions)
            .map_err(|err| conflict_or(err, format!("A user named {username} already exists.")))
    })
    .await?;
    tracing::info!(user = %user.username, "user created");
    let response = user_response(&state, &user);
    Ok(created(&response.self_url.clone(), &response))
}

#[utoipa::path(patch, path = "/users/{username}", tag = "users", request_body = UserPatchRequest,
    params(("username" = String, Path, description = "User name")),
    responses((status = 200, body = UserResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn patch(
    state: web::Data<AppState>,
    credentials: Credentials,
    username: web::Path<String>,
    body: Body,
) -> ApiResult<web::Json<UserResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    let username = username.into_inner();
    let own = identity.username == username;
    if !own || identity.api_token_id.is_some() {
        identity.require_unscoped(Permissions::ADMIN_USER)?;
    }
    let request: UserPatchRequest = parse_keeper_json(&body.read().await?)?;
    if own && request.permissions.is_some() {
        // Nobody changes their own permissions: no accidental lock-out of the last admin.
        return Err(ApiError::forbidden(
            "You cannot change your own permissions; ask another administrator.",
        ));
    }
    let permissions = request
        .permissions
        .as_deref()
        .map(parse_permissions)
        .transpose()?;
    let password_hash = match request.password {
        Some(password) => Some(web::block(move || hash(password)).await??),
        None => None,
    };
    let user = run_db(&state.pool, move |conn| {
        let user = load_user(conn, &username)?;
        let changes = UserChanges {
            password_hash: password_hash.as_deref(),
            permissions: permissions.map(Permissions::bits),
        };
        Ok(update_user(conn, user.id, &changes)?)
    })
    .await?;
    Ok(web::Json(user_response(&state, &user)))
}

#[utoipa::path(delete, path = "/users/{username}", tag = "users",
    params(("username" = String, Path, description = "User name")),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    credentials: Credentials,
    username: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require_unscoped(Permissions::ADMIN_USER)?;
    let username = username.into_inner();
    if identity.username == username {
        return Err(ApiError::conflict(
            "You cannot delete yourself; ask another administrator.",
        ));
    }
    run_db(&state.pool, move |conn| {
        let user = load_user(conn, &username)?;
        delete_user(conn, user.id)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
