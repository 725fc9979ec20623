//! Organizations over HTTP: `GET/POST /orgs/`, `GET/PATCH /orgs/<slug>`, and who administers
//! one: `PUT/DELETE /orgs/<slug>/admins/<username>`. What `keeper org` does, by the same rules
//! (`org_settings`).
//!
//! Every route needs the permission `admin_org` (granted per organization, or for every one:
//! `db::organization_admins`); creating an organization needs it for every one. It comes with a
//! session or an API token that carries its user's own permissions, never with a token narrowed
//! to some permissions or products. Secrets are write-only: a string sets one, `null` or `""`
//! clears it, and an answer shows only `"set"` (sending `"set"` back keeps it).

use actix_web::{web, HttpResponse};
use diesel::OptionalExtension;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::body::Body;
use crate::api::database::{run_db, run_db_as};
use crate::api::identity::{authenticate, Credentials, Identity};
use crate::api::json::{created, parse_keeper_json};
use crate::backends::OrgBackends;
use crate::db::models::OrganizationSettings;
use crate::db::organization_admins::{self, grant_of, OrgAdminGrant};
use crate::db::organizations::{
    find_organization_settings_by_slug, insert_organization, list_organization_settings,
    update_organization,
};
use crate::db::users::find_user;
use crate::db::DbConnection;
use crate::domain::Username;
use crate::error::{ApiError, ApiResult};
use crate::org_settings::{
    apply, blank_settings, check_prefix_free, OrgSecrets, OrgSettingsArgs, SecretChange, Surface,
};

/// What an answer shows for a secret that is stored.
const SET: &str = "set";

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgResponse {
    pub self_url: String,
    pub slug: String,
    pub title: String,
    /// `path` (`<root>/<path_prefix>/<product>`) or `subdomain` (`<product>.<root>`).
    pub layout: String,
    /// The published sites' domain; null: keeper's own URL (its site server answers them).
    pub root_domain: Option<String>,
    pub path_prefix: String,
    /// True for the default organization, which publishes with the process's store and CDN
    /// (`KEEPER_STORAGE_*`, `KEEPER_CDN*`): the store and CDN fields do not apply to it.
    pub uses_process_store_and_cdn: bool,
    pub bucket_name: String,
    pub s3_region: Option<String>,
    pub s3_endpoint_url: Option<String>,
    pub s3_path_style: bool,
    pub s3_access_key_id: Option<String>,
    /// `"set"` when stored (encrypted); never the secret.
    pub s3_secret_access_key: Option<String>,
    pub public_read: bool,
    /// `none`, `fastly` or `varnish`.
    pub cdn: String,
    pub fastly_service_id: Option<String>,
    /// `"set"` when stored (encrypted); never the key.
    pub fastly_api_key: Option<String>,
    pub varnish_urls: Option<String>,
    /// The users granted `admin_org` on this organization itself (those granted every
    /// organization are not listed).
    pub admins: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgListResponse {
    /// The organizations the caller administers, by slug.
    pub organizations: Vec<OrgResponse>,
}

/// `POST /orgs/` and `PATCH /orgs/<slug>`. Absent fields stay as they are; `null` clears an
/// optional one. The read-only fields of an answer may be sent back and are ignored.
// No `Debug`: it holds secrets in plain text.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgRequest {
    /// Required to create; cannot change.
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub layout: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub root_domain: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub path_prefix: Option<Option<String>>,
    #[serde(default)]
    pub bucket_name: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub s3_region: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub s3_endpoint_url: Option<Option<String>>,
    #[serde(default)]
    pub s3_path_style: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub s3_access_key_id: Option<Option<String>>,
    /// Write-only: a value sets it, `null` or `""` clears it, `"set"` keeps it.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub s3_secret_access_key: Option<Option<String>>,
    #[serde(default)]
    pub public_read: Option<bool>,
    #[serde(default)]
    pub cdn: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub fastly_service_id: Option<Option<String>>,
    /// Write-only, as `s3_secret_access_key`.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub fastly_api_key: Option<Option<String>>,
    /// Comma- or space-separated Varnish base URLs that accept `PURGE` with an `xkey` header.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<String>)]
    pub varnish_urls: Option<Option<String>>,
    // Read-only fields of an answer, ignored.
    #[serde(default, rename = "self_url")]
    #[schema(ignore)]
    _self_url: Option<serde_json::Value>,
    #[serde(default, rename = "uses_process_store_and_cdn")]
    #[schema(ignore)]
    _uses_process_store_and_cdn: Option<serde_json::Value>,
    #[serde(default, rename = "admins")]
    #[schema(ignore)]
    _admins: Option<serde_json::Value>,
}

impl OrgRequest {
    /// The change as `keeper org` options: `null` is the CLI's empty value (clear).
    fn args(&self) -> OrgSettingsArgs {
        let optional = |value: &Option<Option<String>>| {
            value
                .as_ref()
                .map(|inner| inner.clone().unwrap_or_default())
        };
        OrgSettingsArgs {
            title: self.title.clone(),
            layout: self.layout.clone(),
            root_domain: optional(&self.root_domain),
            path_prefix: optional(&self.path_prefix),
            bucket: self.bucket_name.clone(),
            s3_region: optional(&self.s3_region),
            s3_endpoint_url: optional(&self.s3_endpoint_url),
            s3_path_style: self.s3_path_style,
            s3_access_key_id: optional(&self.s3_access_key_id),
            public_read: self.public_read,
            cdn: self.cdn.clone(),
            fastly_service_id: optional(&self.fastly_service_id),
            varnish_urls: optional(&self.varnish_urls),
        }
    }

    fn secrets(&self) -> OrgSecrets {
        let change = |value: &Option<Option<String>>| match value {
            None => SecretChange::Keep,
            Some(Some(value)) if value == SET => SecretChange::Keep,
            Some(Some(value)) if !value.trim().is_empty() => {
                SecretChange::Set(secrecy::SecretString::from(value.trim().to_owned()))
            }
            Some(_) => SecretChange::Clear,
        };
        OrgSecrets {
            s3_secret_access_key: change(&self.s3_secret_access_key),
            fastly_api_key: change(&self.fastly_api_key),
        }
    }
}

/// What `identity` administers; 403, saying why, when that is nothing or the token is narrowed
/// (such a token never carries admin_org).
fn org_grant(conn: &mut DbConnection, identity: &Identity) -> ApiResult<OrgAdminGrant> {
    if identity.product_scope.is_some() || identity.narrowed {
        return Err(ApiError::forbidden(
            "This token is narrowed to some permissions or products, so it carries no \
             admin_org: use a session (GET /token) or a token with your own permissions.",
        ));
    }
    let grant = grant_of(conn, identity.user_id)?;
    if grant == OrgAdminGrant::Nothing {
        let name = &identity.username;
        return Err(ApiError::forbidden(format!(
            "This needs the permission admin_org, which {name} does not have (an operator \
             grants it with `keeper org grant {name} <organization>` or `keeper org grant {name} \
             --all`)."
        )));
    }
    Ok(grant)
}

/// 403 unless `grant` covers `organization` (`None`: every organization, which creating one
/// needs).
fn require_covers(
    grant: &OrgAdminGrant,
    identity: &Identity,
    organization: Option<(i64, &str)>,
) -> ApiResult<()> {
    let allowed = match organization {
        Some((id, _)) => grant.covers(id),
        None => *grant == OrgAdminGrant::Every,
    };
    if allowed {
        return Ok(());
    }
    let name = &identity.username;
    let (what, grant_it) = match organization {
        Some((_, slug)) => (format!("organization {slug}"), slug),
        None => ("every organization".to_owned(), "--all"),
    };
    Err(ApiError::forbidden(format!(
        "This needs the permission admin_org on {what}, which {name} does not have (an operator \
         grants it with `keeper org grant {name} {grant_it}`)."
    )))
}

fn org_response(
    state: &AppState,
    settings: OrganizationSettings,
    admins: Vec<String>,
) -> OrgResponse {
    let shown = |secret: &Option<String>| secret.as_ref().map(|_| SET.to_owned());
    OrgResponse {
        self_url: state.url_for(&format!("orgs/{}", settings.slug)),
        uses_process_store_and_cdn: OrgBackends::is_default(&settings),
        s3_secret_access_key: shown(&settings.s3_secret_access_key_encrypted),
        fastly_api_key: shown(&settings.fastly_api_key_encrypted),
        layout: settings.layout.to_string(),
        cdn: settings.cdn_kind.to_string(),
        slug: settings.slug,
        title: settings.title,
        root_domain: settings.root_domain,
        path_prefix: settings.path_prefix,
        bucket_name: settings.bucket_name,
        s3_region: settings.s3_region,
        s3_endpoint_url: settings.s3_endpoint_url,
        s3_path_style: settings.s3_path_style,
        s3_access_key_id: settings.s3_access_key_id,
        public_read: settings.public_read,
        fastly_service_id: settings.fastly_service_id,
        varnish_urls: settings.varnish_urls,
        admins,
    }
}

pub(crate) fn find_org(
    conn: &mut DbConnection,
    slug: &str,
) -> ApiResult<(i64, OrganizationSettings)> {
    // A name that cannot be an organization slug is not looked up (PostgreSQL refuses a NUL in
    // text with an error, not an empty result).
    let possible = !slug.is_empty()
        && slug.len() <= 64
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !possible {
        return Err(ApiError::not_found(format!("No organization {slug:?}.")));
    }
    find_organization_settings_by_slug(conn, slug)
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("No organization {slug}.")))
}

/// The organization `slug` (404 when there is none) once `identity` may administer it.
fn load_administered(
    conn: &mut DbConnection,
    identity: &Identity,
    slug: &str,
) -> ApiResult<(i64, OrganizationSettings)> {
    // Who may not administer any organization learns nothing about which ones exist.
    let grant = org_grant(conn, identity)?;
    let (id, settings) = find_org(conn, slug)?;
    require_covers(&grant, identity, Some((id, slug)))?;
    Ok((id, settings))
}

#[utoipa::path(get, path = "/orgs/", tag = "organizations",
    responses((status = 200, body = OrgListResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// The organizations the caller administers.
pub async fn list(
    state: web::Data<AppState>,
    credentials: Credentials,
) -> ApiResult<web::Json<OrgListResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    let rows = run_db(&state.pool, move |conn| {
        let grant = org_grant(conn, &identity)?;
        let mut rows = Vec::new();
        for (id, settings) in list_organization_settings(conn)? {
            if grant.covers(id) {
                let admins = organization_admins::admins_of(conn, id)?;
                rows.push((settings, admins));
            }
        }
        Ok(rows)
    })
    .await?;
    Ok(web::Json(OrgListResponse {
        organizations: rows
            .into_iter()
            .map(|(settings, admins)| org_response(&state, settings, admins))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/orgs/{slug}", tag = "organizations",
    params(("slug" = String, Path, description = "Organization slug")),
    responses((status = 200, body = OrgResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    credentials: Credentials,
    slug: web::Path<String>,
) -> ApiResult<web::Json<OrgResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    let slug = slug.into_inner();
    let (settings, admins) = run_db(&state.pool, move |conn| {
        let (id, settings) = load_administered(conn, &identity, &slug)?;
        Ok((settings, organization_admins::admins_of(conn, id)?))
    })
    .await?;
    Ok(web::Json(org_response(&state, settings, admins)))
}

#[utoipa::path(post, path = "/orgs/", tag = "organizations", request_body = OrgRequest,
    responses((status = 201, body = OrgResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// Creates an organization (needs `admin_org` on every organization). It needs its own bucket
/// (`bucket_name`); secrets are stored encrypted with `KEEPER_ENCRYPTION_KEYS`.
pub async fn create(
    state: web::Data<AppState>,
    credentials: Credentials,
    body: Body,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    let keys = state.encryption_keys.clone();
    let body = body.read().await?;
    let settings = run_db_as(&state.pool, identity.cause(), move |conn| {
        require_covers(&org_grant(conn, &identity)?, &identity, None)?;
        let request: OrgRequest = parse_keeper_json(&body)?;
        let slug = request
            .slug
            .clone()
            .ok_or_else(|| ApiError::unprocessable("slug is required."))?;
        let settings = apply(
            blank_settings(&slug),
            &request.args(),
            &request.secrets(),
            keys.as_ref(),
            Surface::Http,
        )
        .map_err(|err| ApiError::unprocessable(format!("{err:#}.")))?;
        conn.write_transaction(|conn| {
            refuse_shared_prefix(conn, None, &settings)?;
            insert_organization(conn, &settings).map_err(|err| {
                match crate::db::violation::violation(&err) {
                    Some(crate::db::violation::Violation::Unique) => {
                        ApiError::conflict(format!("An organization named {slug} already exists."))
                    }
                    _ => err.into(),
                }
            })?;
            Ok::<_, ApiError>(())
        })?;
        Ok(settings)
    })
    .await?;
    tracing::info!(organization.slug = %settings.slug, "organization created");
    reload_sites(&state).await;
    let response = org_response(&state, settings, Vec::new());
    Ok(created(&response.self_url.clone(), &response))
}

#[utoipa::path(patch, path = "/orgs/{slug}", tag = "organizations", request_body = OrgRequest,
    params(("slug" = String, Path, description = "Organization slug")),
    responses((status = 200, body = OrgResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// Changes an organization's settings (needs `admin_org` on it); what is not sent stays.
pub async fn patch(
    state: web::Data<AppState>,
    credentials: Credentials,
    slug: web::Path<String>,
    body: Body,
) -> ApiResult<web::Json<OrgResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    let slug = slug.into_inner();
    let keys = state.encryption_keys.clone();
    let body = body.read().await?;
    let (settings, admins) = run_db_as(&state.pool, identity.cause(), move |conn| {
        load_administered(conn, &identity, &slug)?;
        let request: OrgRequest = parse_keeper_json(&body)?;
        if request.slug.as_deref().is_some_and(|given| given != slug) {
            return Err(ApiError::unprocessable(
                "slug cannot change: it names the organization.",
            ));
        }
        let settings = conn.write_transaction(|conn| {
            let (id, current) = find_org(conn, &slug)?;
            let changed = apply(
                current,
                &request.args(),
                &request.secrets(),
                keys.as_ref(),
                Surface::Http,
            )
            .map_err(|err| ApiError::unprocessable(format!("{err:#}.")))?;
            refuse_shared_prefix(conn, Some(id), &changed)?;
            update_organization(conn, id, &changed)?;
            Ok::<_, ApiError>((id, changed))
        })?;
        let (id, settings) = settings;
        Ok((settings, organization_admins::admins_of(conn, id)?))
    })
    .await?;
    tracing::info!(organization.slug = %settings.slug, "organization updated");
    reload_sites(&state).await;
    Ok(web::Json(org_response(&state, settings, admins)))
}

/// This replica's site server serves the organizations as they now are (the others reload
/// within their refresh period). A failed reload keeps the last map; the change is stored.
async fn reload_sites(state: &AppState) {
    if let Some(sites) = &state.sites {
        if let Err(err) = sites.reload_organizations(&state.pool).await {
            tracing::warn!(error = %format!("{err:#}"), "reloading the served organizations failed");
        }
    }
}

/// 409 when another organization already publishes at the same path on keeper's own URL.
fn refuse_shared_prefix(
    conn: &mut DbConnection,
    own_id: Option<i64>,
    settings: &OrganizationSettings,
) -> ApiResult<()> {
    let others: Vec<OrganizationSettings> = list_organization_settings(conn)?
        .into_iter()
        .filter(|(id, _)| Some(*id) != own_id)
        .map(|(_, other)| other)
        .collect();
    check_prefix_free(settings, &others, Surface::Http).map_err(ApiError::conflict)
}

#[utoipa::path(put, path = "/orgs/{slug}/admins/{username}", tag = "organizations",
    params(("slug" = String, Path, description = "Organization slug"),
        ("username" = String, Path, description = "The user to grant admin_org on it")),
    responses((status = 200, body = OrgResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// Grants a user `admin_org` on this organization (needs `admin_org` on it).
pub async fn grant(
    state: web::Data<AppState>,
    credentials: Credentials,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<OrgResponse>> {
    change_admins(state, credentials, path.into_inner(), true).await
}

#[utoipa::path(delete, path = "/orgs/{slug}/admins/{username}", tag = "organizations",
    params(("slug" = String, Path, description = "Organization slug"),
        ("username" = String, Path, description = "The user whose grant on it is taken back")),
    responses((status = 200, body = OrgResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// Takes a user's `admin_org` on this organization back (needs `admin_org` on it). A grant on
/// every organization is changed only with `keeper org revoke --all`.
pub async fn revoke(
    state: web::Data<AppState>,
    credentials: Credentials,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<OrgResponse>> {
    change_admins(state, credentials, path.into_inner(), false).await
}

async fn change_admins(
    state: web::Data<AppState>,
    credentials: Credentials,
    (slug, username): (String, String),
    granted: bool,
) -> ApiResult<web::Json<OrgResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    let (settings, admins) = run_db_as(&state.pool, identity.cause(), move |conn| {
        let (id, settings) = load_administered(conn, &identity, &slug)?;
        let user = Username::parse(&username)
            .ok()
            .map(|name| find_user(conn, &name))
            .transpose()?
            .flatten()
            .ok_or_else(|| ApiError::not_found(format!("No user {username}.")))?;
        let changed = if granted {
            organization_admins::grant(conn, user.id, Some(id))?
        } else {
            organization_admins::revoke(conn, user.id, Some(id))?
        };
        if changed {
            tracing::info!(
                organization.slug = %settings.slug,
                user = %user.username,
                granted,
                "admin_org changed"
            );
        }
        Ok((settings, organization_admins::admins_of(conn, id)?))
    })
    .await?;
    Ok(web::Json(org_response(&state, settings, admins)))
}
