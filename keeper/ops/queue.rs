//! The operations queue: claiming, lease renewal, progress and the final state transitions.
//!
//! A claim commits at once. Every later transition names the worker that claimed the row and
//! changes nothing if the claim was lost (the lease expired and another worker took the row), so
//! a slow worker can never overwrite the outcome of the one that replaced it. Transitions run in
//! SERIALIZABLE transactions (SQLite: immediate ones) and are retried a bounded number of times,
//! with jitter, on a serialization failure or a busy database.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Text, Timestamp};

use crate::db::models::{now, Operation};
use crate::db::schema::operations;
use crate::db::DbConnection;
use crate::domain::OperationState;
use crate::retry::{Backoff, Jitter};
use crate::with_connection;

/// Transitions are retried this many times in all on a serialization failure or busy database.
const TRANSITION_ATTEMPTS: u32 = 8;
/// The wait between those tries: 10 ms doubling to 320 ms, plus up to as much again.
const CONTENTION_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(10), Duration::from_millis(320))
        .with_jitter(Jitter::UpTo(1.0));

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Claimable: READY and due, or WORKING with an expired lease; and no older unfinished
/// operation on the same edition (so an edition's operations run one at a time, in order); and,
/// for a catalogue record or a dashboard, no older unfinished one of the same kind and product
/// (so neither is ever written over by an older read of its rows); and of the claiming lane.
const CLAIM_POSTGRES: &str = "UPDATE operations SET state = 'WORKING', lease_until = $1, \
    worker_id = $2, attempts = attempts + 1, date_updated = $3 \
    WHERE id = (SELECT o.id FROM operations o \
        WHERE ((o.state = 'READY' AND o.not_before <= $3) \
            OR (o.state = 'WORKING' AND o.lease_until < $3)) \
        AND ($4 = 'any' OR ((o.kind = 'deliver_webhook') = ($4 = 'webhooks'))) \
        AND NOT EXISTS (SELECT 1 FROM operations p WHERE p.edition_id = o.edition_id \
            AND p.id < o.id AND p.state IN ('READY', 'WORKING')) \
        AND NOT (o.kind IN ('write_record', 'dashboard') AND EXISTS (SELECT 1 FROM operations r \
            WHERE r.kind = o.kind AND r.product_id = o.product_id \
            AND r.id < o.id AND r.state IN ('READY', 'WORKING'))) \
        ORDER BY o.id LIMIT 1 FOR UPDATE SKIP LOCKED) \
    RETURNING id";

const CLAIM_SQLITE: &str = "UPDATE operations SET state = 'WORKING', lease_until = ?1, \
    worker_id = ?2, attempts = attempts + 1, date_updated = ?3 \
    WHERE id = (SELECT o.id FROM operations o \
        WHERE ((o.state = 'READY' AND o.not_before <= ?3) \
            OR (o.state = 'WORKING' AND o.lease_until < ?3)) \
        AND (?4 = 'any' OR ((o.kind = 'deliver_webhook') = (?4 = 'webhooks'))) \
        AND NOT EXISTS (SELECT 1 FROM operations p WHERE p.edition_id = o.edition_id \
            AND p.id < o.id AND p.state IN ('READY', 'WORKING')) \
        AND NOT (o.kind IN ('write_record', 'dashboard') AND EXISTS (SELECT 1 FROM operations r \
            WHERE r.kind = o.kind AND r.product_id = o.product_id \
            AND r.id < o.id AND r.state IN ('READY', 'WORKING'))) \
        ORDER BY o.id LIMIT 1) \
    RETURNING id";

/// Which operations a claim takes. A worker claims in two lanes, each with its own slots, so
/// that webhook deliveries (which wait on receivers outside keeper's control) and the other
/// kinds never wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Every kind but `deliver_webhook`.
    Main,
    /// `deliver_webhook` only.
    Webhooks,
    /// Every kind (the tests' drain).
    Any,
}

impl Lane {
    fn as_str(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Webhooks => "webhooks",
            Self::Any => "any",
        }
    }
}

/// Claims the oldest claimable operation of `lane` for `worker_id` until `now + lease`,
/// committed at once. `None` when there is nothing to do.
pub fn claim(
    conn: &mut DbConnection,
    worker_id: &str,
    lease: Duration,
    lane: Lane,
) -> QueryResult<Option<Operation>> {
    with_retries(conn, |conn| {
        conn.write_transaction(|conn| {
            let now = now();
            let until = lease_end(now, lease);
            let claimed: QueryResult<Option<ClaimedId>> = match conn {
                DbConnection::Postgres(c) => diesel::sql_query(CLAIM_POSTGRES)
                    .bind::<Timestamp, _>(until)
                    .bind::<Text, _>(worker_id)
                    .bind::<Timestamp, _>(now)
                    .bind::<Text, _>(lane.as_str())
                    .get_result(c)
                    .optional(),
                DbConnection::Sqlite(c) => diesel::sql_query(CLAIM_SQLITE)
                    .bind::<Timestamp, _>(until)
                    .bind::<Text, _>(worker_id)
                    .bind::<Timestamp, _>(now)
                    .bind::<Text, _>(lane.as_str())
                    .get_result(c)
                    .optional(),
            };
            match claimed {
                Ok(Some(row)) => with_connection!(conn, c => operations::table
                    .find(row.id)
                    .select(Operation::as_select())
                    .first(c)
                    .optional()),
                Ok(None) => Ok(None),
                // Another worker is working on that edition: the database refused a second
                // WORKING row. Nothing claimed this time.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
                Err(err) => Err(err),
            }
        })
    })
}

/// Extends the claim and records progress. `false` when the claim was lost.
pub fn renew(
    conn: &mut DbConnection,
    id: i64,
    worker_id: &str,
    lease: Duration,
    progress: Progress,
) -> QueryResult<bool> {
    transition(conn, |conn| {
        let now = now();
        let changed = with_connection!(conn, c => diesel::update(owned(id, worker_id))
            .set((
                operations::lease_until.eq(lease_end(now, lease)),
                operations::progress_done.eq(progress.done),
                operations::progress_total.eq(progress.total),
                operations::date_updated.eq(now),
            ))
            .execute(c))?;
        Ok(changed == 1)
    })
}

/// Objects done, and in all once known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: i64,
    pub total: Option<i64>,
}

/// Ends the operation OK after running `effects` (e.g. recording the edition's new build) in the
/// same transaction. `false` (and no effects) when the claim was lost.
pub fn finish_ok(
    conn: &mut DbConnection,
    id: i64,
    worker_id: &str,
    message: Option<&str>,
    progress: Progress,
    effects: &dyn Fn(&mut DbConnection) -> QueryResult<()>,
) -> QueryResult<bool> {
    transition(conn, |conn| {
        let now = now();
        let changed = with_connection!(conn, c => diesel::update(owned(id, worker_id))
            .set((
                operations::state.eq(OperationState::Ok),
                operations::message.eq(message),
                operations::lease_until.eq(None::<NaiveDateTime>),
                operations::progress_done.eq(progress.done),
                operations::progress_total.eq(progress.total),
                operations::date_updated.eq(now),
            ))
            .execute(c))?;
        if changed == 1 {
            effects(conn)?;
        }
        Ok(changed == 1)
    })
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back to READY, not before the backoff has passed.
    Retry { after: Duration },
    /// FAILED for good (the cap was reached, or retrying cannot help).
    Fail,
}

/// Records a failed attempt: READY again after `after`, or FAILED, in which case `on_failed`
/// runs in the same transaction (it tells the webhooks). The message says what went wrong and
/// what to do. `false` (and nothing run) when the claim was lost.
pub fn record_failure(
    conn: &mut DbConnection,
    id: i64,
    worker_id: &str,
    message: &str,
    next: AfterFailure,
    on_failed: &dyn Fn(&mut DbConnection) -> QueryResult<()>,
) -> QueryResult<bool> {
    transition(conn, |conn| {
        let now = now();
        let changed = match next {
            AfterFailure::Retry { after } => {
                with_connection!(conn, c => diesel::update(owned(id, worker_id))
                    .set((
                        operations::state.eq(OperationState::Ready),
                        operations::message.eq(message),
                        operations::not_before.eq(lease_end(now, after)),
                        operations::lease_until.eq(None::<NaiveDateTime>),
                        operations::worker_id.eq(None::<String>),
                        operations::date_updated.eq(now),
                    ))
                    .execute(c))?
            }
            AfterFailure::Fail => {
                let changed = with_connection!(conn, c => diesel::update(owned(id, worker_id))
                    .set((
                        operations::state.eq(OperationState::Failed),
                        operations::message.eq(message),
                        operations::lease_until.eq(None::<NaiveDateTime>),
                        operations::date_updated.eq(now),
                    ))
                    .execute(c))?;
                if changed == 1 {
                    on_failed(conn)?;
                }
                changed
            }
        };
        Ok(changed == 1)
    })
}

/// Gives a claim back untouched (graceful shutdown): READY at once, the attempt not counted.
pub fn release(conn: &mut DbConnection, id: i64, worker_id: &str) -> QueryResult<bool> {
    transition(conn, |conn| {
        let now = now();
        let changed = with_connection!(conn, c => diesel::update(owned(id, worker_id))
            .set((
                operations::state.eq(OperationState::Ready),
                operations::not_before.eq(now),
                operations::attempts.eq(operations::attempts - 1),
                operations::lease_until.eq(None::<NaiveDateTime>),
                operations::worker_id.eq(None::<String>),
                operations::date_updated.eq(now),
            ))
            .execute(c))?;
        Ok(changed == 1)
    })
}

/// Why an operator's retry was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryRefusal {
    NotFound,
    NotFailed(OperationState),
}

/// Puts a FAILED operation back to READY with a fresh attempt count (`POST /operations/<id>/retry`).
pub fn retry_failed(
    conn: &mut DbConnection,
    id: i64,
) -> QueryResult<Result<Operation, RetryRefusal>> {
    transition(conn, |conn| {
        let now = now();
        let Some(current) = with_connection!(conn, c => operations::table
            .find(id)
            .select(Operation::as_select())
            .first(c)
            .optional())?
        else {
            return Ok(Err(RetryRefusal::NotFound));
        };
        if current.state != OperationState::Failed {
            return Ok(Err(RetryRefusal::NotFailed(current.state)));
        }
        let updated = with_connection!(conn, c => diesel::update(operations::table.find(id))
            .set((
                operations::state.eq(OperationState::Ready),
                operations::attempts.eq(0),
                operations::not_before.eq(now),
                operations::worker_id.eq(None::<String>),
                operations::message.eq("Retry requested by an operator."),
                operations::date_updated.eq(now),
            ))
            .returning(Operation::as_returning())
            .get_result(c))?;
        Ok(Ok(updated))
    })
}

/// Counts of unfinished and failed operations (the test helper's and the drain's view).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub unfinished: i64,
    pub failed: i64,
}

pub fn counts(conn: &mut DbConnection) -> QueryResult<QueueCounts> {
    let unfinished = with_connection!(conn, c => operations::table
        .filter(operations::state.eq_any(OperationState::UNFINISHED))
        .count()
        .get_result(c))?;
    let failed = with_connection!(conn, c => operations::table
        .filter(operations::state.eq(OperationState::Failed))
        .count()
        .get_result(c))?;
    Ok(QueueCounts { unfinished, failed })
}

/// The exponential backoff before attempt `attempts + 1`.
pub fn backoff(attempts: i32, initial: Duration, max: Duration) -> Duration {
    Backoff::new(initial, max).delay(u32::try_from(attempts).unwrap_or(0))
}

type ClaimedRow = diesel::dsl::Filter<
    diesel::dsl::Find<operations::table, i64>,
    diesel::dsl::Eq<operations::state, OperationState>,
>;
type OwnedRow = diesel::dsl::Filter<ClaimedRow, diesel::dsl::Eq<operations::worker_id, String>>;

/// The row, if `worker_id` still holds its claim.
fn owned(id: i64, worker_id: &str) -> OwnedRow {
    operations::table
        .find(id)
        .filter(operations::state.eq(OperationState::Working))
        .filter(operations::worker_id.eq(worker_id.to_owned()))
}

fn lease_end(now: NaiveDateTime, lease: Duration) -> NaiveDateTime {
    now + chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::MAX)
}

/// Runs `work` in a serializable transaction, retried on serialization failure or busy database.
fn transition<T>(
    conn: &mut DbConnection,
    mut work: impl FnMut(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    with_retries(conn, |conn| conn.serializable_transaction(&mut work))
}

fn with_retries<T>(
    conn: &mut DbConnection,
    mut attempt: impl FnMut(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt(conn) {
            Err(err) if tries < TRANSITION_ATTEMPTS && is_contention(&err) => {
                tracing::debug!(error = %err, tries, "operations transition retried");
                std::thread::sleep(CONTENTION_BACKOFF.delay(tries));
            }
            other => return other,
        }
    }
}

/// A serialization failure (PostgreSQL) or a busy database (SQLite): worth another try.
pub fn is_contention(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("could not serialize")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let initial = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, initial, max), Duration::from_secs(2));
        assert_eq!(backoff(2, initial, max), Duration::from_secs(4));
        assert_eq!(backoff(4, initial, max), Duration::from_secs(16));
        assert_eq!(backoff(10, initial, max), max);
        assert_eq!(backoff(i32::MAX, initial, max), max);
    }
}
