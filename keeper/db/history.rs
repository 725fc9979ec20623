//! Edition history rows: one per change of the build an edition shows, one per deletion.
//! Written in the transaction that makes the change (a rebuild's outcome, a delete request).

use diesel::prelude::*;

use crate::db::models::{now, Edition, HistoryEntry, NewHistoryEntry};
use crate::db::operations::current_cause;
use crate::db::schema::edition_history;
use crate::db::DbConnection;
use crate::domain::HistoryReason;
use crate::with_connection;

/// How far back a rollback looks for the build to return to.
const ROLLBACK_LOOKBACK: i64 = 10_000;

pub fn record(conn: &mut DbConnection, entry: &NewHistoryEntry) -> QueryResult<()> {
    with_connection!(conn, c => diesel::insert_into(edition_history::table)
        .values(entry)
        .execute(c))?;
    Ok(())
}

/// The edition's entries older than `before` (all when `None`), newest first, at most `limit`.
pub fn page(
    conn: &mut DbConnection,
    edition_id: i64,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<HistoryEntry>> {
    with_connection!(conn, c => {
        let mut query = edition_history::table
            .filter(edition_history::edition_id.eq(edition_id))
            .order(edition_history::id.desc())
            .limit(limit)
            .select(HistoryEntry::as_select())
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(edition_history::id.lt(before));
        }
        query.load(c)
    })
}

/// The edition's newest entries as `(build_before, reason)`, newest first: what
/// `domain::rollback_target` chooses from.
pub fn builds_before(
    conn: &mut DbConnection,
    edition_id: i64,
) -> QueryResult<Vec<(Option<i64>, HistoryReason)>> {
    with_connection!(conn, c => edition_history::table
        .filter(edition_history::edition_id.eq(edition_id))
        .order(edition_history::id.desc())
        .limit(ROLLBACK_LOOKBACK)
        .select((edition_history::build_before, edition_history::reason))
        .load(c))
}

/// Records that `edition` ended (deleted by a request or by retention) through operation
/// `operation_id`, caused by whoever the thread's work is for (`db::operations::with_cause`).
pub fn record_end(
    conn: &mut DbConnection,
    edition: &Edition,
    reason: HistoryReason,
    operation_id: i64,
) -> QueryResult<()> {
    let cause = current_cause();
    record(
        conn,
        &NewHistoryEntry {
            product_id: edition.product_id,
            edition_id: edition.id,
            edition_slug: &edition.slug,
            build_before: edition.build_id,
            build_after: None,
            reason,
            caused_by: cause.as_deref(),
            operation_id: Some(operation_id),
            date_created: now(),
        },
    )
}
