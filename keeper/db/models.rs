//! Rows as they come out of the database, and what goes in. Wire shapes live in `api/`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{
    api_tokens, builds, edition_history, editions, operations, organizations, products,
    webhook_deliveries, webhooks,
};
use crate::domain::{
    CdnKind, DeliveryState, EditionKind, HistoryReason, OperationKind, OperationState, StoreKind,
    TrackingMode, UrlLayout, WebhookEvent,
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = organizations)]
pub struct Organization {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub layout: UrlLayout,
    pub root_domain: Option<String>,
    pub path_prefix: String,
    pub store_kind: StoreKind,
    pub bucket_name: String,
    pub cdn_kind: CdnKind,
}

/// An organization's whole row: where it publishes, and the store and CDN it publishes with
/// (secrets as stored: encrypted). Also what goes in, whole, when one is created or changed.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = organizations, treat_none_as_null = true)]
pub struct OrganizationSettings {
    pub slug: String,
    pub title: String,
    pub layout: UrlLayout,
    pub root_domain: Option<String>,
    pub path_prefix: String,
    pub store_kind: StoreKind,
    pub bucket_name: String,
    pub s3_region: Option<String>,
    pub s3_endpoint_url: Option<String>,
    pub s3_path_style: bool,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key_encrypted: Option<String>,
    pub public_read: bool,
    pub cdn_kind: CdnKind,
    pub fastly_service_id: Option<String>,
    pub fastly_api_key_encrypted: Option<String>,
    pub varnish_urls: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    pub organization_id: i64,
    pub slug: String,
    pub title: String,
    pub doc_repo: String,
    pub root_domain: String,
    pub root_fastly_domain: String,
    pub bucket_name: String,
    pub surrogate_key: String,
    pub date_created: NaiveDateTime,
    /// The product's own retention policy (JSON, `domain::PolicyOverride`); NULL: the
    /// deployment's.
    pub retention: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = products)]
pub struct NewProduct<'a> {
    pub organization_id: i64,
    pub slug: &'a str,
    pub title: &'a str,
    pub doc_repo: &'a str,
    pub root_domain: &'a str,
    pub root_fastly_domain: &'a str,
    pub bucket_name: &'a str,
    pub surrogate_key: &'a str,
    pub date_created: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = products)]
pub struct ProductChanges<'a> {
    pub title: Option<&'a str>,
    pub doc_repo: Option<&'a str>,
    /// `Some(None)` goes back to the deployment's policy.
    pub retention: Option<Option<&'a str>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = builds)]
pub struct Build {
    pub id: i64,
    pub product_id: i64,
    pub slug: String,
    /// JSON array of strings.
    pub git_refs: String,
    pub github_requester: Option<String>,
    pub uploaded: bool,
    pub date_created: NaiveDateTime,
    pub date_ended: Option<NaiveDateTime>,
    pub surrogate_key: String,
    /// SHA-256 (hex) of the build's manifest once it is sealed (`ops::seal`).
    pub manifest_digest: Option<String>,
}

impl Build {
    pub fn git_ref_list(&self) -> Vec<String> {
        serde_json::from_str(&self.git_refs).unwrap_or_default()
    }

    /// Uploaded and not deprecated: the only builds an edition may show.
    pub fn is_publishable(&self) -> bool {
        self.uploaded && self.date_ended.is_none()
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = builds)]
pub struct NewBuild<'a> {
    pub product_id: i64,
    pub slug: &'a str,
    pub git_refs: &'a str,
    pub github_requester: Option<&'a str>,
    pub uploaded: bool,
    pub date_created: NaiveDateTime,
    pub surrogate_key: &'a str,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = editions)]
pub struct Edition {
    pub id: i64,
    pub product_id: i64,
    pub slug: String,
    pub title: String,
    pub tracking_mode: TrackingMode,
    /// JSON array of strings, or NULL.
    pub tracked_refs: Option<String>,
    pub kind: EditionKind,
    pub build_id: Option<i64>,
    pub date_created: NaiveDateTime,
    pub date_rebuilt: Option<NaiveDateTime>,
    pub date_ended: Option<NaiveDateTime>,
    pub surrogate_key: String,
    /// The edition's prefix holds exactly its build's manifest (set by a finished rebuild from a
    /// sealed build, cleared while one copies): its leftovers are known without a listing.
    pub prefix_matches_build: bool,
    /// Created by keeper for a branch or ticket a build named (not by a request): retention
    /// may delete it once its ref has had no build for a while.
    pub auto_created: bool,
}

impl Edition {
    pub fn tracked_ref_list(&self) -> Option<Vec<String>> {
        self.tracked_refs
            .as_deref()
            .and_then(|refs| serde_json::from_str(refs).ok())
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = editions)]
pub struct NewEdition<'a> {
    pub product_id: i64,
    pub slug: &'a str,
    pub title: &'a str,
    pub tracking_mode: TrackingMode,
    pub tracked_refs: Option<&'a str>,
    pub kind: EditionKind,
    pub build_id: Option<i64>,
    pub date_created: NaiveDateTime,
    pub surrogate_key: &'a str,
    pub auto_created: bool,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = editions)]
pub struct EditionChanges<'a> {
    pub title: Option<&'a str>,
    pub slug: Option<&'a str>,
    pub tracking_mode: Option<TrackingMode>,
    pub tracked_refs: Option<Option<&'a str>>,
    pub kind: Option<EditionKind>,
    pub date_ended: Option<Option<NaiveDateTime>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operations)]
pub struct Operation {
    pub id: i64,
    pub kind: OperationKind,
    pub state: OperationState,
    pub product_id: Option<i64>,
    pub edition_id: Option<i64>,
    pub build_id: Option<i64>,
    pub payload: String,
    pub message: Option<String>,
    pub attempts: i32,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub date_created: NaiveDateTime,
    pub date_updated: NaiveDateTime,
    pub caused_by: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = operations)]
pub struct NewOperation<'a> {
    pub kind: OperationKind,
    pub product_id: Option<i64>,
    pub edition_id: Option<i64>,
    pub build_id: Option<i64>,
    pub payload: &'a str,
    pub not_before: NaiveDateTime,
    pub date_created: NaiveDateTime,
    pub date_updated: NaiveDateTime,
    pub caused_by: Option<&'a str>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub permissions: Option<i32>,
    pub date_created: NaiveDateTime,
    pub date_expires: Option<NaiveDateTime>,
    pub date_revoked: Option<NaiveDateTime>,
}

impl ApiToken {
    pub fn is_active(&self, now: NaiveDateTime) -> bool {
        self.date_revoked.is_none() && self.date_expires.is_none_or(|expires| expires > now)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub permissions: Option<i32>,
    pub date_created: NaiveDateTime,
    pub date_expires: Option<NaiveDateTime>,
}

/// The current time as stored: UTC, microsecond precision.
pub fn now() -> NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::microseconds(1)).unwrap_or(now)
}

/// One change of what an edition shows, or its end (`edition_history`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = edition_history)]
pub struct HistoryEntry {
    pub id: i64,
    pub product_id: i64,
    pub edition_id: i64,
    pub edition_slug: String,
    pub build_before: Option<i64>,
    pub build_after: Option<i64>,
    pub reason: HistoryReason,
    pub caused_by: Option<String>,
    pub operation_id: Option<i64>,
    pub date_created: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = edition_history)]
pub struct NewHistoryEntry<'a> {
    pub product_id: i64,
    pub edition_id: i64,
    pub edition_slug: &'a str,
    pub build_before: Option<i64>,
    pub build_after: Option<i64>,
    pub reason: HistoryReason,
    pub caused_by: Option<&'a str>,
    pub operation_id: Option<i64>,
    pub date_created: NaiveDateTime,
}

/// A subscription of a product or an organization to keeper's events (`webhooks`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhooks)]
pub struct Webhook {
    pub id: i64,
    pub organization_id: Option<i64>,
    pub product_id: Option<i64>,
    pub url: String,
    /// The events' names, comma-separated (`domain::webhooks::events_of_text`).
    pub events: String,
    pub secret_encrypted: String,
    pub created_by: Option<String>,
    pub date_created: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = webhooks)]
pub struct NewWebhook<'a> {
    pub organization_id: Option<i64>,
    pub product_id: Option<i64>,
    pub url: &'a str,
    pub events: &'a str,
    pub secret_encrypted: &'a str,
    pub created_by: Option<&'a str>,
    pub date_created: NaiveDateTime,
}

/// One event for one subscription, with its receiver's last answer (`webhook_deliveries`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook_id: i64,
    pub operation_id: Option<i64>,
    pub event: WebhookEvent,
    pub delivery_id: String,
    /// The event's data as JSON.
    pub data: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub status_code: Option<i32>,
    pub response: Option<String>,
    pub error: Option<String>,
    pub duration_ms: Option<i64>,
    pub date_created: NaiveDateTime,
    pub date_attempted: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewWebhookDelivery<'a> {
    pub webhook_id: i64,
    pub event: WebhookEvent,
    pub delivery_id: &'a str,
    pub data: &'a str,
    pub state: DeliveryState,
    pub date_created: NaiveDateTime,
}
