//! Webhook events (README "Webhooks"): [`notify`] records one delivery per subscription, each
//! with a `deliver_webhook` operation, in the transaction of the change it reports; [`run`]
//! sends one.
//!
//! A body is built at each attempt: the event's data as recorded, the delivery's id (the same
//! on every attempt) and the attempt's time, signed with HMAC-SHA256 over the raw body. The
//! workers claim deliveries in a lane of their own (`queue::Lane`), so that a receiver that is
//! slow or hangs holds up only other deliveries, never a rebuild.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::QueryResult;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::db::builds::find_builds;
use crate::db::models::{
    now, Build, Edition, NewWebhookDelivery, Operation, Product, Webhook, WebhookDelivery,
};
use crate::db::organizations::find_settings_of_product;
use crate::db::products::find_product_by_id;
use crate::db::webhooks::{
    find_delivery, insert_delivery, prune_deliveries, record_attempt, set_delivery_operation,
    subscriptions_of_product, Attempt,
};
use crate::db::DbConnection;
use crate::domain::webhooks::{events_of_text, signature, verdict, Verdict};
use crate::domain::{
    build_url, product_url, published_edition_url, BuildSlug, DeliveryState, EditionSlug,
    HistoryReason, OperationKind, ProductSlug, PublishingLayout, WebhookEvent,
};
use crate::ops::{
    enqueue_kind, read_payload, stored, with_db, OpError, Outcome, Services, Targets,
};

/// Finished deliveries kept per subscription, newest first; older ones are removed.
pub const KEPT_DELIVERIES: i64 = 100;
/// How much of a receiver's answer is kept.
const RESPONSE_BYTES: usize = 1024;

/// What the operation carries: the delivery to send.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    delivery: i64,
}

/// A change that subscriptions may be told about.
pub enum Happened<'a> {
    BuildConfirmed {
        product: &'a Product,
        build: &'a Build,
    },
    /// A rebuild made the edition show `build` (it showed `build_before`).
    EditionUpdated {
        product: &'a Product,
        edition: &'a Edition,
        build_before: Option<i64>,
        build: i64,
        reason: HistoryReason,
        operation_id: i64,
    },
    EditionDeleted {
        product: &'a Product,
        edition: &'a Edition,
        reason: HistoryReason,
        operation_id: i64,
    },
    /// `operation` ended FAILED with `message`.
    OperationFailed {
        operation: &'a Operation,
        message: &'a str,
    },
}

impl Happened<'_> {
    fn event(&self) -> WebhookEvent {
        match self {
            Self::BuildConfirmed { .. } => WebhookEvent::BuildConfirmed,
            Self::EditionUpdated { .. } => WebhookEvent::EditionUpdated,
            Self::EditionDeleted { .. } => WebhookEvent::EditionDeleted,
            Self::OperationFailed { .. } => WebhookEvent::OperationFailed,
        }
    }

    fn product_id(&self) -> Option<i64> {
        match self {
            Self::BuildConfirmed { product, .. }
            | Self::EditionUpdated { product, .. }
            | Self::EditionDeleted { product, .. } => Some(product.id),
            // A delivery's own failure is never reported (it would report itself again).
            Self::OperationFailed { operation, .. }
                if operation.kind == OperationKind::DeliverWebhook =>
            {
                None
            }
            Self::OperationFailed { operation, .. } => operation.product_id,
        }
    }
}

/// Queues `happened` for every subscription of its product (and of the product's organization)
/// that names its event, in the caller's transaction; how many were queued. One query when
/// nothing subscribes. `public_base` is keeper's external URL without the trailing `/`.
pub fn notify(
    conn: &mut DbConnection,
    public_base: &str,
    happened: &Happened,
) -> QueryResult<usize> {
    let Some(product_id) = happened.product_id() else {
        return Ok(0);
    };
    let event = happened.event();
    let subscribed: Vec<Webhook> = subscriptions_of_product(conn, product_id)?
        .into_iter()
        .filter(|webhook| events_of_text(&webhook.events).contains(&event))
        .collect();
    if subscribed.is_empty() {
        return Ok(0);
    }
    let data = event_data(conn, public_base, product_id, happened)?.to_string();
    for webhook in &subscribed {
        queue_delivery(conn, webhook, event, &data, Some(product_id))?;
    }
    Ok(subscribed.len())
}

/// Queues the `ping` a new subscription gets, describing it.
pub fn ping(conn: &mut DbConnection, webhook: &Webhook, described: &Value) -> QueryResult<()> {
    let data = json!({ "webhook": described }).to_string();
    queue_delivery(conn, webhook, WebhookEvent::Ping, &data, webhook.product_id)?;
    Ok(())
}

fn queue_delivery(
    conn: &mut DbConnection,
    webhook: &Webhook,
    event: WebhookEvent,
    data: &str,
    product_id: Option<i64>,
) -> QueryResult<WebhookDelivery> {
    let delivery_id = uuid::Uuid::new_v4().to_string();
    let delivery = insert_delivery(
        conn,
        &NewWebhookDelivery {
            webhook_id: webhook.id,
            event,
            delivery_id: &delivery_id,
            data,
            state: DeliveryState::Pending,
            date_created: now(),
        },
    )?;
    let operation = enqueue_kind(
        conn,
        OperationKind::DeliverWebhook,
        Targets {
            product: product_id,
            ..Targets::default()
        },
        &Payload {
            delivery: delivery.id,
        },
    )?;
    set_delivery_operation(conn, delivery.id, operation.id)?;
    prune_deliveries(conn, webhook.id, KEPT_DELIVERIES)?;
    Ok(delivery)
}

/// The `data` of an event: what happened, with the API's and the readers' URLs.
fn event_data(
    conn: &mut DbConnection,
    public_base: &str,
    product_id: i64,
    happened: &Happened,
) -> QueryResult<Value> {
    let failed_operations_product;
    let product: &Product = match happened {
        Happened::BuildConfirmed { product, .. }
        | Happened::EditionUpdated { product, .. }
        | Happened::EditionDeleted { product, .. } => product,
        Happened::OperationFailed { .. } => {
            failed_operations_product = find_product_by_id(conn, product_id)?;
            &failed_operations_product
        }
    };
    let (_, organization) = find_settings_of_product(conn, product_id)?;
    let layout = PublishingLayout::of_organization(
        organization.layout,
        organization.root_domain.as_deref(),
        &organization.path_prefix,
        public_base,
    );
    let urls = Urls {
        api: public_base,
        layout: &layout,
        product: stored(ProductSlug::parse(&product.slug))?,
    };
    let product_json = json!({
        "slug": product.slug,
        "title": product.title,
        "url": urls.api(&format!("products/{}", product.slug)),
        "published_url": product_url(&layout, &urls.product),
    });
    Ok(match happened {
        Happened::BuildConfirmed { build, .. } => json!({
            "product": product_json,
            "build": urls.build(build)?,
        }),
        Happened::EditionUpdated {
            edition,
            build_before,
            build,
            reason,
            operation_id,
            ..
        } => {
            let ids: Vec<i64> = std::iter::once(*build).chain(*build_before).collect();
            let builds = find_builds(conn, &ids)?;
            let described = |id: i64| -> QueryResult<Value> {
                builds
                    .iter()
                    .find(|found| found.id == id)
                    .map(|found| urls.build(found))
                    .transpose()
                    .map(Option::unwrap_or_default)
            };
            json!({
                "product": product_json,
                "edition": urls.edition(edition)?,
                "build": described(*build)?,
                "build_before": build_before.map(described).transpose()?,
                "reason": reason.as_str(),
                "operation_url": urls.api(&format!("operations/{operation_id}")),
            })
        }
        Happened::EditionDeleted {
            edition,
            reason,
            operation_id,
            ..
        } => json!({
            "product": product_json,
            "edition": urls.edition(edition)?,
            "build_url": edition.build_id.map(|id| urls.api(&format!("builds/{id}"))),
            "reason": reason.as_str(),
            "operation_url": urls.api(&format!("operations/{operation_id}")),
        }),
        Happened::OperationFailed { operation, message } => json!({
            "product": product_json,
            "operation": {
                "url": urls.api(&format!("operations/{}", operation.id)),
                "kind": operation.kind.as_str(),
                "attempts": operation.attempts,
                "message": message,
                "caused_by": operation.caused_by,
                "edition_url": operation.edition_id.map(|id| urls.api(&format!("editions/{id}"))),
                "build_url": operation.build_id.map(|id| urls.api(&format!("builds/{id}"))),
            },
        }),
    })
}

/// The URLs of one product's rows.
struct Urls<'a> {
    api: &'a str,
    layout: &'a PublishingLayout,
    product: ProductSlug,
}

impl Urls<'_> {
    fn api(&self, path: &str) -> String {
        format!("{}/{path}", self.api)
    }

    fn build(&self, build: &Build) -> QueryResult<Value> {
        let slug = stored(BuildSlug::parse(&build.slug))?;
        Ok(json!({
            "slug": build.slug,
            "url": self.api(&format!("builds/{}", build.id)),
            "published_url": build_url(self.layout, &self.product, &slug),
            "git_refs": build.git_ref_list(),
            "github_requester": build.github_requester,
        }))
    }

    fn edition(&self, edition: &Edition) -> QueryResult<Value> {
        let slug = stored(EditionSlug::parse(&edition.slug))?;
        Ok(json!({
            "slug": edition.slug,
            "title": edition.title,
            "url": self.api(&format!("editions/{}", edition.id)),
            "published_url": published_edition_url(self.layout, &self.product, &slug, edition.kind),
        }))
    }
}

/// The body of one attempt: the event, the delivery's id, when it is sent, and the data.
pub fn body(
    delivery: &WebhookDelivery,
    attempt: i32,
    sent: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let data: Value = serde_json::from_str(&delivery.data).unwrap_or(Value::Null);
    json!({
        "event": delivery.event.as_str(),
        "delivery": delivery.delivery_id,
        "timestamp": sent.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "attempt": attempt,
        "data": data,
    })
    .to_string()
    .into_bytes()
}

/// One client for every delivery: redirects are not followed (a receiver answering 3xx gets
/// the delivery FAILED, saying so), each request has its own timeout.
fn client() -> anyhow::Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let built = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "ltd-keeper/",
            env!("CARGO_PKG_VERSION"),
            " (webhooks)"
        ))
        .build()
        .context("building the webhook client")?;
    Ok(CLIENT.get_or_init(|| built))
}

/// What a receiver said, or why it said nothing.
struct Answer {
    status: Option<u16>,
    response: Option<String>,
    error: Option<String>,
}

/// Sends one body, waiting at most `timeout` for the status and the start of the answer.
async fn send(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let mut request = client()?
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let exchange = async {
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        let mut start = Vec::new();
        while start.len() < RESPONSE_BYTES {
            match response.chunk().await? {
                Some(chunk) => start.extend_from_slice(&chunk),
                None => break,
            }
        }
        start.truncate(RESPONSE_BYTES);
        // Kept as text: PostgreSQL refuses a NUL in it, so a receiver's NUL is shown replaced.
        let text = String::from_utf8_lossy(&start).replace('\0', "\u{FFFD}");
        Ok::<_, reqwest::Error>((status, text))
    };
    Ok(match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((status, response))) => Answer {
            status: Some(status),
            response: Some(response),
            error: None,
        },
        Ok(Err(err)) => Answer {
            status: None,
            response: None,
            error: Some(describe_error(err)),
        },
        Err(_) => Answer {
            status: None,
            response: None,
            error: Some(format!(
                "no answer within {:.1}s (KEEPER_WEBHOOK_TIMEOUT_MS)",
                timeout.as_secs_f64()
            )),
        },
    })
}

/// The request error with its causes, without the URL's query (which may carry a token).
fn describe_error(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub async fn run(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: Payload = read_payload(operation)?;
    let found = with_db(&services.pool, move |conn| {
        Ok(find_delivery(conn, payload.delivery)?)
    })
    .await?;
    let Some((delivery, webhook)) = found else {
        return Ok(Outcome::with_message(Some(
            "The subscription was deleted; nothing sent.".into(),
        )));
    };
    let secret = services
        .organizations
        .decrypt_stored("webhook's signing secret", &webhook.secret_encrypted)
        .map_err(OpError::Permanent)?;
    let sent = chrono::Utc::now();
    let body = body(&delivery, operation.attempts, sent);
    let headers = [
        ("X-Keeper-Event", delivery.event.as_str().to_owned()),
        ("X-Keeper-Delivery", delivery.delivery_id.clone()),
        (
            "X-Keeper-Timestamp",
            sent.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        (
            "X-Keeper-Signature-256",
            signature(secret.expose_secret(), &body)
                .map_err(|err| OpError::Permanent(err.to_string()))?,
        ),
    ];
    let config = &services.config;
    let started = Instant::now();
    let answer = send(&webhook.url, &headers, body, config.webhook_timeout).await?;
    let took = started.elapsed();
    let judged = answer.status.map(verdict).unwrap_or(Verdict::Retry);
    let last_attempt = operation.attempts >= config.max_attempts;
    let state = match judged {
        Verdict::Delivered => DeliveryState::Delivered,
        Verdict::GiveUp => DeliveryState::Failed,
        Verdict::Retry if last_attempt => DeliveryState::Failed,
        Verdict::Retry => DeliveryState::Retrying,
    };
    let what = match (answer.status, &answer.error) {
        (Some(status), _) => format!("the receiver answered {status}"),
        (None, Some(error)) => format!("no answer: {error}"),
        (None, None) => "no answer".to_owned(),
    };
    let attempt = Attempt {
        state,
        attempts: operation.attempts,
        status_code: answer.status.map(i32::from),
        response: answer.response,
        error: answer.error.clone().or_else(|| match judged {
            Verdict::GiveUp => Some(format!(
                "{what}: only 2xx is accepted, and retrying cannot help with it (408, 425, 429 \
                 and 5xx are retried; redirects are not followed)"
            )),
            _ => None,
        }),
        duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
        date_attempted: now(),
    };
    let (id, attempt_ms) = (delivery.id, attempt.duration_ms);
    with_db(&services.pool, move |conn| {
        Ok(record_attempt(conn, id, &attempt)?)
    })
    .await?;
    tracing::info!(
        operation.id = operation.id,
        webhook.id = webhook.id,
        event = delivery.event.as_str(),
        delivery = %delivery.delivery_id,
        status = answer.status,
        took_ms = attempt_ms,
        "webhook delivery attempted"
    );
    let millis = attempt_ms;
    match judged {
        Verdict::Delivered => Ok(Outcome::with_message(Some(format!(
            "Delivered {} {}: {what} in {millis} ms.",
            delivery.event, delivery.delivery_id
        )))),
        Verdict::Retry => Err(OpError::Transient(anyhow::anyhow!(
            "{what} after {millis} ms (delivery {})",
            delivery.delivery_id
        ))),
        Verdict::GiveUp => Err(OpError::Permanent(format!(
            "{what}, which is not retried: the receiver accepts only with 2xx; fix the receiver \
             or the subscription's URL (delivery {})",
            delivery.delivery_id
        ))),
    }
}
