//! `GET /editions/<id>/history`: what an edition showed, newest first, a page at a time: each
//! change of its build (with the build before and after, why, who, and the operation that made
//! it) and its deletion. Rollback itself is `POST /editions/<id>/rollback` (`api::editions`).

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::app::AppState;
use crate::api::database::run_db_read;
use crate::api::identity::Credentials;
use crate::api::json::format_datetime;
use crate::api::operations::sees_causes;
use crate::db::editions::find_edition_row;
use crate::db::history;
use crate::db::models::HistoryEntry;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryResponse {
    pub edition_url: String,
    /// The edition's slug when the change was made.
    pub edition_slug: String,
    /// `shown` (the edition started showing `build_url`) or `ended` (it was deleted).
    pub event: String,
    /// `requested` (a `build_url` in a request), `tracking` (its tracking mode accepted a new
    /// build), `rollback`, `repair` (`keeper verify --repair`), `adopted` (`keeper adopt`),
    /// `deleted` or `retention` (the product's retention policy).
    pub reason: String,
    /// The build shown before; null before the edition's first build.
    pub build_before_url: Option<String>,
    /// The build shown after; null once the edition ended.
    pub build_url: Option<String>,
    /// Who or what asked (as an operation's `caused_by`); null for anonymous callers.
    pub caused_by: Option<String>,
    /// The operation that made the change.
    pub operation_url: Option<String>,
    pub date_created: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    /// Newest first.
    pub history: Vec<HistoryEntryResponse>,
    /// The next (older) page, if there is one.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Entries per page: 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Only entries older than this id: the `next` URL of the previous page sets it.
    pub before: Option<i64>,
}

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[utoipa::path(get, path = "/editions/{id}/history", tag = "editions", params(
        ("id" = i64, Path, description = "Edition id"), HistoryQuery),
    responses((status = 200, body = HistoryResponse), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
/// What the edition showed, newest first.
pub async fn list(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
    query: web::Query<HistoryQuery>,
) -> ApiResult<web::Json<HistoryResponse>> {
    let shows_causes = sees_causes(&state, &credentials).await?;
    let id = id.into_inner();
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::unprocessable(format!(
            "limit must be between 1 and {MAX_LIMIT}."
        )));
    }
    let before = query.before;
    let mut entries = run_db_read(&state.pool, move |conn| {
        let entries = history::page(conn, id, before, limit + 1)?;
        if entries.is_empty() && find_edition_row(conn, id)?.is_none() {
            return Err(ApiError::not_found(format!("No edition {id}.")));
        }
        Ok(entries)
    })
    .await?;
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = entries.len() > page;
    entries.truncate(page);
    let next = match (more, entries.last()) {
        (true, Some(last)) => Some(state.url_for(&format!(
            "editions/{id}/history?limit={limit}&before={}",
            last.id
        ))),
        _ => None,
    };
    Ok(web::Json(HistoryResponse {
        history: entries
            .into_iter()
            .map(|entry| entry_response(&state, entry, shows_causes))
            .collect(),
        next,
    }))
}

fn entry_response(
    state: &AppState,
    entry: HistoryEntry,
    shows_causes: bool,
) -> HistoryEntryResponse {
    let build_url = |id: i64| state.url_for(&format!("builds/{id}"));
    HistoryEntryResponse {
        edition_url: state.url_for(&format!("editions/{}", entry.edition_id)),
        edition_slug: entry.edition_slug,
        event: if entry.reason.ends_edition() {
            "ended"
        } else {
            "shown"
        }
        .to_owned(),
        reason: entry.reason.to_string(),
        build_before_url: entry.build_before.map(build_url),
        build_url: entry.build_after.map(build_url),
        caused_by: entry.caused_by.filter(|_| shows_causes),
        operation_url: entry
            .operation_id
            .map(|id| state.url_for(&format!("operations/{id}"))),
        date_created: format_datetime(entry.date_created),
    }
}
