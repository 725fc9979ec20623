//! Edition history rows: one per change of the build an edition shows, one per deletion.
//! Written in the transaction that makes the change (a rebuild's outcome, a delete request).

use diesel::prelude::*;

use crate::db::models::{HistoryEntry, NewHistoryEntry};
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
