//! Operation rows: background work recorded in the same transaction as the change that needs it.

use std::collections::HashSet;

use chrono::NaiveDateTime;

use diesel::prelude::*;

use crate::db::models::{now, NewOperation, Operation};
use crate::db::schema::{editions, operations};
use crate::db::DbConnection;
use crate::domain::{OperationKind, OperationState};
use crate::with_connection;

thread_local! {
    /// Who or what the database work running on this thread does its work for.
    static CAUSE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `work` with every operation it enqueues recorded as caused by `cause` (`user alice`,
/// `operation 12`, `keeper adopt`): the request or run that queues work names itself once,
/// instead of every enqueue taking it as an argument. Database work runs on one thread from
/// start to end (the blocking pool), so the cause is that thread's while `work` runs.
pub fn with_cause<T>(cause: &str, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CAUSE.with(|cause| *cause.borrow_mut() = previous);
        }
    }
    let previous = CAUSE.with(|current| current.borrow_mut().replace(cause.to_owned()));
    let _restore = Restore(previous);
    work()
}

pub(crate) fn current_cause() -> Option<String> {
    CAUSE.with(|cause| cause.borrow().clone())
}

/// What to enqueue; the payload carries everything the work needs even if the targets go away.
/// Each kind in `ops/` builds its own (`ops::rebuild::enqueue`, ...) from its payload type.
pub struct Enqueue {
    pub kind: OperationKind,
    pub product_id: Option<i64>,
    pub edition_id: Option<i64>,
    pub build_id: Option<i64>,
    /// The kind's payload, as JSON.
    pub payload: String,
}

/// Records a READY operation. A rebuild supersedes the edition's queued (not yet working)
/// rebuilds: only the newest request matters.
pub fn enqueue(conn: &mut DbConnection, request: &Enqueue) -> QueryResult<Operation> {
    if let (DbConnection::Postgres(c), Some(edition_id)) = (&mut *conn, request.edition_id) {
        // Serializes concurrent requests on one edition (SQLite's immediate transactions already
        // do), so that each one supersedes the previous and operation ids follow commit order.
        editions::table
            .find(edition_id)
            .select(editions::id)
            .for_update()
            .first::<i64>(c)
            .optional()?;
    }
    let now = now();
    if let (OperationKind::RebuildEdition, Some(edition_id)) = (request.kind, request.edition_id) {
        with_connection!(conn, c => diesel::update(
            operations::table
                .filter(operations::edition_id.eq(edition_id))
                .filter(operations::kind.eq(OperationKind::RebuildEdition))
                .filter(operations::state.eq(OperationState::Ready)),
        )
        .set((
            operations::state.eq(OperationState::Superseded),
            operations::message.eq("Superseded by a newer rebuild request."),
            operations::date_updated.eq(now),
        ))
        .execute(c))?;
    }
    let cause = current_cause();
    let new = NewOperation {
        kind: request.kind,
        product_id: request.product_id,
        edition_id: request.edition_id,
        build_id: request.build_id,
        payload: &request.payload,
        not_before: now,
        date_created: now,
        date_updated: now,
        caused_by: cause.as_deref(),
    };
    with_connection!(conn, c => diesel::insert_into(operations::table)
        .values(&new)
        .returning(Operation::as_returning())
        .get_result(c))
}

/// Marks the product's FAILED operations of `kind` SUPERSEDED with `message`: for work that
/// reads the rows when it runs (a dashboard render), a newer request does all a failed one
/// would have done, so the failure no longer needs an operator.
pub fn supersede_failed_for_product(
    conn: &mut DbConnection,
    kind: OperationKind,
    product_id: i64,
    message: &str,
) -> QueryResult<usize> {
    with_connection!(conn, c => diesel::update(
        operations::table
            .filter(operations::product_id.eq(product_id))
            .filter(operations::kind.eq(kind))
            .filter(operations::state.eq(OperationState::Failed)),
    )
    .set((
        operations::state.eq(OperationState::Superseded),
        operations::message.eq(message),
        operations::date_updated.eq(now()),
    ))
    .execute(c))
}

/// The product's oldest queued (READY) operation of `kind`, if any.
pub fn find_ready_for_product(
    conn: &mut DbConnection,
    kind: OperationKind,
    product_id: i64,
) -> QueryResult<Option<Operation>> {
    with_connection!(conn, c => operations::table
        .filter(operations::product_id.eq(product_id))
        .filter(operations::kind.eq(kind))
        .filter(operations::state.eq(OperationState::Ready))
        .order(operations::id)
        .select(Operation::as_select())
        .first(c)
        .optional())
}

/// A build's queued or running rebuilds, oldest first.
pub fn unfinished_rebuilds_of_build(
    conn: &mut DbConnection,
    build_id: i64,
) -> QueryResult<Vec<Operation>> {
    with_connection!(conn, c => operations::table
        .filter(operations::build_id.eq(build_id))
        .filter(operations::kind.eq(OperationKind::RebuildEdition))
        .filter(operations::state.eq_any(OperationState::UNFINISHED))
        .order(operations::id)
        .select(Operation::as_select())
        .load(c))
}

/// Which operations a listing wants; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct OperationFilter {
    pub state: Option<OperationState>,
    pub kind: Option<OperationKind>,
    pub product_id: Option<i64>,
    /// Only operations older than this id (the next page of a newest-first listing).
    pub before: Option<i64>,
}

/// At most `limit` operations that `filter` selects, newest first.
pub fn list_operations(
    conn: &mut DbConnection,
    filter: &OperationFilter,
    limit: i64,
) -> QueryResult<Vec<Operation>> {
    with_connection!(conn, c => {
        let mut query = operations::table.into_boxed();
        if let Some(state) = filter.state {
            query = query.filter(operations::state.eq(state));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(operations::kind.eq(kind));
        }
        if let Some(product_id) = filter.product_id {
            query = query.filter(operations::product_id.eq(product_id));
        }
        if let Some(before) = filter.before {
            query = query.filter(operations::id.lt(before));
        }
        query
            .order(operations::id.desc())
            .limit(limit)
            .select(Operation::as_select())
            .load(c)
    })
}

/// The newest operation on the edition `edition_id`, or on the build `build_id`: what the
/// edition's or build's answer links.
pub fn latest_operation_on(
    conn: &mut DbConnection,
    edition_id: Option<i64>,
    build_id: Option<i64>,
) -> QueryResult<Option<i64>> {
    with_connection!(conn, c => {
        let mut query = operations::table.into_boxed();
        match (edition_id, build_id) {
            (Some(edition), _) => query = query.filter(operations::edition_id.eq(edition)),
            (None, Some(build)) => query = query.filter(operations::build_id.eq(build)),
            (None, None) => return Ok(None),
        }
        query
            .order(operations::id.desc())
            .select(operations::id)
            .first(c)
            .optional()
    })
}

/// How many operations there are of each kind in each state.
pub fn counts_by_kind_and_state(
    conn: &mut DbConnection,
) -> QueryResult<Vec<(OperationKind, OperationState, i64)>> {
    with_connection!(conn, c => operations::table
        .group_by((operations::kind, operations::state))
        .select((operations::kind, operations::state, diesel::dsl::count_star()))
        .load(c))
}

/// When the oldest READY operation was queued, if any is.
pub fn oldest_ready_created(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    with_connection!(conn, c => operations::table
        .filter(operations::state.eq(OperationState::Ready))
        .select(diesel::dsl::min(operations::date_created))
        .first(c))
}

pub fn find_operation(conn: &mut DbConnection, id: i64) -> QueryResult<Operation> {
    with_connection!(conn, c => operations::table.find(id).select(Operation::as_select()).first(c))
}

/// The editions among `edition_ids` with a rebuild or rename READY or WORKING.
pub fn editions_pending_rebuild(
    conn: &mut DbConnection,
    edition_ids: &[i64],
) -> QueryResult<HashSet<i64>> {
    let ids: Vec<Option<i64>> = with_connection!(conn, c => operations::table
        .filter(operations::edition_id.eq_any(edition_ids))
        .filter(operations::state.eq_any(OperationState::UNFINISHED))
        .filter(operations::kind.eq_any([
            OperationKind::RebuildEdition,
            OperationKind::RenameEdition,
        ]))
        .select(operations::edition_id)
        .distinct()
        .load(c))?;
    Ok(ids.into_iter().flatten().collect())
}

/// The newest READY or WORKING operation on an edition, if any.
pub fn active_operation_for_edition(
    conn: &mut DbConnection,
    edition_id: i64,
) -> QueryResult<Option<Operation>> {
    with_connection!(conn, c => operations::table
        .filter(operations::edition_id.eq(edition_id))
        .filter(operations::state.eq_any(OperationState::UNFINISHED))
        .order(operations::id.desc())
        .select(Operation::as_select())
        .first(c)
        .optional())
}

/// The payloads of the edition's queued (READY) rebuilds: the ones a new rebuild request
/// supersedes.
pub fn ready_rebuild_payloads(
    conn: &mut DbConnection,
    edition_id: i64,
) -> QueryResult<Vec<String>> {
    with_connection!(conn, c => operations::table
        .filter(operations::edition_id.eq(edition_id))
        .filter(operations::kind.eq(OperationKind::RebuildEdition))
        .filter(operations::state.eq(OperationState::Ready))
        .select(operations::payload)
        .load(c))
}
