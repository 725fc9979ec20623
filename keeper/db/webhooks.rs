//! Webhook subscriptions and their deliveries (README "Webhooks"). Deliveries are written in
//! the transaction of the event they report, and their answers by the operation that sends
//! them (`ops::webhook`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{NewWebhook, NewWebhookDelivery, Webhook, WebhookDelivery};
use crate::db::schema::{products, webhook_deliveries, webhooks};
use crate::db::DbConnection;
use crate::domain::DeliveryState;
use crate::with_connection;

/// Whose events a subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Product(i64),
    /// Every product of the organization.
    Organization(i64),
}

impl Webhook {
    pub fn scope(&self) -> Option<Scope> {
        match (self.product_id, self.organization_id) {
            (Some(product), _) => Some(Scope::Product(product)),
            (None, Some(organization)) => Some(Scope::Organization(organization)),
            (None, None) => None,
        }
    }
}

pub fn insert_webhook(conn: &mut DbConnection, new: &NewWebhook) -> QueryResult<Webhook> {
    with_connection!(conn, c => diesel::insert_into(webhooks::table)
        .values(new)
        .returning(Webhook::as_returning())
        .get_result(c))
}

/// How many subscriptions `scope` has (each is bounded, so that one event's fan-out is).
pub fn count_in_scope(conn: &mut DbConnection, scope: Scope) -> QueryResult<i64> {
    with_connection!(conn, c => {
        let query = webhooks::table.count().into_boxed();
        let query = match scope {
            Scope::Product(id) => query.filter(webhooks::product_id.eq(id)),
            Scope::Organization(id) => query.filter(webhooks::organization_id.eq(id)),
        };
        query.get_result(c)
    })
}

pub fn find_webhook(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Webhook>> {
    with_connection!(conn, c => webhooks::table
        .find(id)
        .select(Webhook::as_select())
        .first(c)
        .optional())
}

/// Stores a subscription's secret encrypted anew (`keeper secrets rotate`).
pub fn set_secret(conn: &mut DbConnection, id: i64, encrypted: &str) -> QueryResult<()> {
    with_connection!(conn, c => diesel::update(webhooks::table.find(id))
        .set(webhooks::secret_encrypted.eq(encrypted))
        .execute(c))?;
    Ok(())
}

/// Every subscription, oldest first.
pub fn list_webhooks(conn: &mut DbConnection) -> QueryResult<Vec<Webhook>> {
    with_connection!(conn, c => webhooks::table
        .order(webhooks::id)
        .select(Webhook::as_select())
        .load(c))
}

/// Deletes a subscription and its deliveries; `false` when there was none. Deliveries still
/// queued then find nothing to send.
pub fn delete_webhook(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    with_connection!(conn, c => diesel::delete(webhooks::table.find(id)).execute(c))
        .map(|deleted| deleted == 1)
}

/// The subscriptions that receive the events of `product_id`: its own and its organization's.
pub fn subscriptions_of_product(
    conn: &mut DbConnection,
    product_id: i64,
) -> QueryResult<Vec<Webhook>> {
    with_connection!(conn, c => {
        let organization = products::table
            .filter(products::id.eq(product_id))
            .select(products::organization_id)
            .single_value();
        webhooks::table
            .filter(
                webhooks::product_id
                    .eq(product_id)
                    .or(webhooks::organization_id.eq(organization)),
            )
            .order(webhooks::id)
            .select(Webhook::as_select())
            .load(c)
    })
}

pub fn insert_delivery(
    conn: &mut DbConnection,
    new: &NewWebhookDelivery,
) -> QueryResult<WebhookDelivery> {
    with_connection!(conn, c => diesel::insert_into(webhook_deliveries::table)
        .values(new)
        .returning(WebhookDelivery::as_returning())
        .get_result(c))
}

pub fn set_delivery_operation(
    conn: &mut DbConnection,
    delivery: i64,
    operation: i64,
) -> QueryResult<()> {
    with_connection!(conn, c => diesel::update(webhook_deliveries::table.find(delivery))
        .set(webhook_deliveries::operation_id.eq(Some(operation)))
        .execute(c))?;
    Ok(())
}

/// Removes the subscription's finished deliveries beyond its newest `keep`: the log of answers
/// stays bounded. Deliveries still to be sent are never removed.
pub fn prune_deliveries(conn: &mut DbConnection, webhook_id: i64, keep: i64) -> QueryResult<()> {
    let finished = [DeliveryState::Delivered, DeliveryState::Failed];
    let newest_kept: Option<i64> = with_connection!(conn, c => webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .filter(webhook_deliveries::state.eq_any(finished))
        .order(webhook_deliveries::id.desc())
        .offset(keep)
        .select(webhook_deliveries::id)
        .first(c)
        .optional())?;
    if let Some(oldest_removed) = newest_kept {
        with_connection!(conn, c => diesel::delete(
            webhook_deliveries::table
                .filter(webhook_deliveries::webhook_id.eq(webhook_id))
                .filter(webhook_deliveries::state.eq_any(finished))
                .filter(webhook_deliveries::id.le(oldest_removed)),
        )
        .execute(c))?;
    }
    Ok(())
}

/// A delivery with its subscription; `None` when either is gone.
pub fn find_delivery(
    conn: &mut DbConnection,
    id: i64,
) -> QueryResult<Option<(WebhookDelivery, Webhook)>> {
    with_connection!(conn, c => webhook_deliveries::table
        .inner_join(webhooks::table)
        .filter(webhook_deliveries::id.eq(id))
        .select((WebhookDelivery::as_select(), Webhook::as_select()))
        .first(c)
        .optional())
}

/// What one attempt got.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub state: DeliveryState,
    pub attempts: i32,
    pub status_code: Option<i32>,
    /// The start of the receiver's body.
    pub response: Option<String>,
    /// Why there was no answer, or why it was not accepted.
    pub error: Option<String>,
    pub duration_ms: i64,
    pub date_attempted: NaiveDateTime,
}

pub fn record_attempt(conn: &mut DbConnection, id: i64, attempt: &Attempt) -> QueryResult<()> {
    with_connection!(conn, c => diesel::update(webhook_deliveries::table.find(id))
        .set((
            webhook_deliveries::state.eq(attempt.state),
            webhook_deliveries::attempts.eq(attempt.attempts),
            webhook_deliveries::status_code.eq(attempt.status_code),
            webhook_deliveries::response.eq(attempt.response.as_deref()),
            webhook_deliveries::error.eq(attempt.error.as_deref()),
            webhook_deliveries::duration_ms.eq(Some(attempt.duration_ms)),
            webhook_deliveries::date_attempted.eq(Some(attempt.date_attempted)),
        ))
        .execute(c))?;
    Ok(())
}

/// The subscription's deliveries, newest first, at most `limit`.
pub fn recent_deliveries(
    conn: &mut DbConnection,
    webhook_id: i64,
    limit: i64,
) -> QueryResult<Vec<WebhookDelivery>> {
    with_connection!(conn, c => webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .order(webhook_deliveries::id.desc())
        .limit(limit)
        .select(WebhookDelivery::as_select())
        .load(c))
}
