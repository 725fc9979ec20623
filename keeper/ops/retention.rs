//! `retention`: applies a product's retention policy (`domain::retention_plan`): ends the
//! stale branch editions keeper created and deprecates the builds the policy no longer keeps,
//! queuing their deletions (`delete_edition`, `delete_build`) as the API's `DELETE` routes do,
//! with every ended edition in its history. The operation itself touches only the database.
//!
//! Scheduled by every worker ([`schedule`]): one operation per product per period; the partial
//! unique index `operations_one_retention_per_product` keeps several workers from queuing two.
//! `keeper gc` applies or prints ([`plan_now`]) the same plan at once.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::RetentionConfig;
use crate::db::history;
use crate::db::models::{now, Operation, Product};
use crate::db::operations::with_cause;
use crate::db::products::find_product_by_id;
use crate::db::retention::{deprecate_builds, end_editions, gather};
use crate::db::schema::{operations, products};
use crate::db::violation::{violation, Violation};
use crate::db::DbConnection;
use crate::domain::{
    retention_plan, Doomed, HistoryReason, OperationKind, PolicyOverride, ProductSlug,
    RetentionPlan, RetentionPolicy,
};
use crate::ops::records::{self, Subject};
use crate::ops::webhook::{self, Happened};
use crate::ops::{dashboard, delete};
use crate::ops::{enqueue_kind, stored, with_db, OpError, Outcome, Services, Targets};
use crate::with_connection;

/// Deletions the operation's message lists one by one.
const MESSAGE_LINES: usize = 50;

/// Which product (the slug is for the logs; the row is read by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub product: ProductSlug,
}

/// The deployment's policy (`KEEPER_RETENTION*`).
pub fn deployment_policy(config: &RetentionConfig) -> RetentionPolicy {
    RetentionPolicy {
        enabled: config.enabled,
        keep_newest: config.keep_newest,
        keep_days: config.keep_days,
        rollback_days: config.rollback_days,
        edition_days: config.edition_days,
    }
}

/// The product's own settings, if it has any. A stored value that no longer parses counts as
/// none (it was checked when it was set).
pub fn product_override(product: &Product) -> Option<PolicyOverride> {
    product
        .retention
        .as_deref()
        .and_then(|raw| serde_json::from_str(raw).ok())
}

/// The policy that applies to `product`.
pub fn effective_policy(deployment: RetentionPolicy, product: &Product) -> RetentionPolicy {
    match product_override(product) {
        Some(own) => deployment.with(&own),
        None => deployment,
    }
}

/// Queues a retention run of `product` unless one is queued or working; in a transaction of
/// its own, since on PostgreSQL the unique violation that tells a concurrent worker queued it
/// first ends the transaction. Returns the run queued by this call.
pub fn enqueue(conn: &mut DbConnection, product: &Product) -> QueryResult<Option<Operation>> {
    let payload = Payload {
        product: stored(ProductSlug::parse(&product.slug))?,
    };
    let targets = Targets {
        product: Some(product.id),
        ..Targets::default()
    };
    match conn
        .write_transaction(|conn| enqueue_kind(conn, OperationKind::Retention, targets, &payload))
    {
        Ok(operation) => Ok(Some(operation)),
        Err(err) if violation(&err) == Some(Violation::Unique) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Queues a run for every product whose policy is on and whose last run was queued more than a
/// period ago. Returns how many were queued.
pub fn schedule(
    conn: &mut DbConnection,
    config: &RetentionConfig,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let deployment = deployment_policy(config);
    let all: Vec<Product> = with_connection!(conn, c => products::table
        .order(products::id)
        .select(Product::as_select())
        .load(c))?;
    let due_before = at
        - chrono::Duration::from_std(config.period).unwrap_or_else(|_| chrono::Duration::days(1));
    let mut queued = 0;
    for product in all {
        if !effective_policy(deployment, &product).enabled {
            continue;
        }
        let last: Option<NaiveDateTime> = with_connection!(conn, c => operations::table
            .filter(operations::product_id.eq(product.id))
            .filter(operations::kind.eq(OperationKind::Retention))
            .select(diesel::dsl::max(operations::date_created))
            .first(c))?;
        if last.is_some_and(|last| last > due_before) {
            continue;
        }
        if enqueue(conn, &product)?.is_some() {
            queued += 1;
        }
    }
    Ok(queued)
}

/// What `policy` would delete of `product` now.
pub fn plan_now(
    conn: &mut DbConnection,
    product: &Product,
    policy: &RetentionPolicy,
) -> QueryResult<RetentionPlan> {
    let (builds, editions) = gather(conn, product.id)?;
    Ok(retention_plan(policy, now(), &builds, &editions))
}

/// Applies `policy` to `product`: what it deleted, each with why. Editions go first, in a
/// transaction of their own (see `db::retention`).
pub fn apply(
    conn: &mut DbConnection,
    product: &Product,
    policy: &RetentionPolicy,
    public_base: &str,
) -> QueryResult<RetentionPlan> {
    let editions = conn.write_transaction(|conn| {
        let plan = plan_now(conn, product, policy)?;
        let ids: Vec<i64> = plan.editions.iter().map(|doomed| doomed.id).collect();
        let ended = end_editions(conn, &ids, now())?;
        for edition in &ended {
            let operation = delete::enqueue_edition(conn, product, edition)?;
            history::record_end(conn, edition, HistoryReason::Retention, operation.id)?;
            let happened = Happened::EditionDeleted {
                product,
                edition,
                reason: HistoryReason::Retention,
                operation_id: operation.id,
            };
            webhook::notify(conn, public_base, &happened)?;
            records::enqueue(conn, product, Subject::Edition(edition.id))?;
        }
        Ok::<_, diesel::result::Error>(kept(plan.editions, ended.iter().map(|e| e.id)))
    })?;
    let builds = conn.write_transaction(|conn| {
        let plan = plan_now(conn, product, policy)?;
        let ids: Vec<i64> = plan.builds.iter().map(|doomed| doomed.id).collect();
        let deprecated = deprecate_builds(conn, &ids, now())?;
        for build in &deprecated {
            delete::enqueue_build(conn, product, build)?;
            records::enqueue(conn, product, Subject::Build(build.id))?;
        }
        if !deprecated.is_empty() || !editions.is_empty() {
            dashboard::enqueue(conn, product)?;
        }
        Ok::<_, diesel::result::Error>(kept(plan.builds, deprecated.iter().map(|b| b.id)))
    })?;
    Ok(RetentionPlan { editions, builds })
}

/// The planned deletions that were made.
fn kept(planned: Vec<Doomed>, made: impl Iterator<Item = i64>) -> Vec<Doomed> {
    let made: Vec<i64> = made.collect();
    planned
        .into_iter()
        .filter(|doomed| made.contains(&doomed.id))
        .collect()
}

/// One line per deletion, for the operation's message and `keeper gc`.
pub fn describe(plan: &RetentionPlan) -> String {
    let mut lines: Vec<String> = plan
        .editions
        .iter()
        .map(|doomed| format!("edition {} (id {}): {}", doomed.slug, doomed.id, doomed.why))
        .collect();
    lines.extend(
        plan.builds
            .iter()
            .map(|doomed| format!("build {} (id {}): {}", doomed.slug, doomed.id, doomed.why)),
    );
    lines.join("\n")
}

pub async fn run(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let Some(product_id) = operation.product_id else {
        return Ok(Outcome::with_message(Some(
            "The product no longer exists; nothing to collect.".into(),
        )));
    };
    let deployment = deployment_policy(&services.config.retention);
    let cause = format!("operation {} (retention)", operation.id);
    let public_base = services.public_base.clone();
    let deleted = with_db(&services.pool, move |conn| {
        let product = find_product_by_id(conn, product_id).context("loading the product")?;
        let policy = effective_policy(deployment, &product);
        with_cause(&cause, || apply(conn, &product, &policy, &public_base))
            .context("applying the policy")
    })
    .await?;
    let message = if deleted.is_empty() {
        "Nothing to delete.".to_owned()
    } else {
        // The first lines say what went; the queued deletions name every one.
        let described = describe(&deleted);
        let mut lines: Vec<&str> = described.lines().take(MESSAGE_LINES).collect();
        let more = described.lines().count().saturating_sub(MESSAGE_LINES);
        let tail = format!("... and {more} more");
        if more > 0 {
            lines.push(&tail);
        }
        format!(
            "Deleted {} editions and {} builds:\n{}",
            deleted.editions.len(),
            deleted.builds.len(),
            lines.join("\n")
        )
    };
    tracing::info!(
        operation.id = operation.id,
        editions = deleted.editions.len(),
        builds = deleted.builds.len(),
        "retention applied"
    );
    Ok(Outcome::with_message(Some(message)))
}

/// `keeper gc [--product <slug>] [--dry-run]`: applies (or, dry, plans) each product's policy
/// and reports every deletion with why. A product named explicitly is reported even when its
/// policy is off. `public_base` is keeper's external URL, for the webhooks' events.
pub fn gc(
    conn: &mut DbConnection,
    config: &RetentionConfig,
    only: Option<&str>,
    dry_run: bool,
    public_base: &str,
) -> anyhow::Result<String> {
    let deployment = deployment_policy(config);
    let all: Vec<Product> = with_connection!(conn, c => products::table
        .order(products::slug)
        .select(Product::as_select())
        .load(c))?;
    let chosen: Vec<Product> = match only {
        Some(slug) => {
            let found: Vec<Product> = all.into_iter().filter(|p| p.slug == slug).collect();
            if found.is_empty() {
                anyhow::bail!("there is no product named {slug}");
            }
            found
        }
        None => all,
    };
    let mut report = String::new();
    let (mut editions, mut builds, mut applied) = (0, 0, 0);
    for product in chosen {
        let policy = effective_policy(deployment, &product);
        if policy.enabled {
            applied += 1;
        }
        if !policy.enabled {
            if only.is_some() {
                report.push_str(&format!(
                    "product {}: retention is off (KEEPER_RETENTION, or the product's own \
                     retention.enabled)\n",
                    product.slug
                ));
            }
            continue;
        }
        let done = if dry_run {
            plan_now(conn, &product, &policy)?
        } else {
            with_cause("keeper gc", || apply(conn, &product, &policy, public_base))?
        };
        report.push_str(&format!(
            "product {}: keep the newest {} builds, builds younger than {} days, builds shown \
             within {} days; branch editions idle for {} days go\n",
            product.slug,
            policy.keep_newest,
            policy.keep_days,
            policy.rollback_days,
            policy.edition_days
        ));
        for line in describe(&done).lines() {
            report.push_str(&format!(
                "  {} {line}\n",
                if dry_run { "would delete" } else { "deleted" }
            ));
        }
        editions += done.editions.len();
        builds += done.builds.len();
    }
    if applied == 0 && only.is_none() {
        report.push_str(
            "retention is off for every product (KEEPER_RETENTION is not true and no product \
             turns it on with retention.enabled)\n",
        );
    }
    report.push_str(&format!(
        "{} {editions} editions and {builds} builds\n",
        if dry_run { "would delete" } else { "deleted" }
    ));
    Ok(report)
}
