//! What retention reads and writes. The facts of a product (`gather`) feed
//! `domain::retention_plan`; `end_editions` and `deprecate_builds` carry a plan out, race-safe:
//!
//! A rebuild request locks its build's row (`db::builds::lock_for_rebuild`) and refuses a
//! deprecated one. Deprecating takes the same row locks, then looks again, with a statement of
//! its own, for unfinished operations on those builds and editions that show them: whatever a
//! request committed meanwhile is found and put back, within the same transaction. A request
//! that comes later waits for the lock and then sees the build deprecated. (SQLite's write
//! transactions do not interleave at all.) Editions are ended in a transaction of their own,
//! before the builds, so no transaction holds both kinds of lock.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{Build, Edition};
use crate::db::schema::{builds, edition_history, editions, operations};
use crate::db::DbConnection;
use crate::domain::{BuildFacts, EditionFacts, OperationKind, OperationState, TrackingMode};
use crate::with_connection;

/// Every not-deprecated build and live edition of the product, as retention sees them.
pub fn gather(
    conn: &mut DbConnection,
    product_id: i64,
) -> QueryResult<(Vec<BuildFacts>, Vec<EditionFacts>)> {
    let all_builds: Vec<Build> = with_connection!(conn, c => builds::table
        .filter(builds::product_id.eq(product_id))
        .select(Build::as_select())
        .load(c))?;
    let live_editions: Vec<Edition> = with_connection!(conn, c => editions::table
        .filter(editions::product_id.eq(product_id))
        .filter(editions::date_ended.is_null())
        .select(Edition::as_select())
        .load(c))?;
    let unfinished: Vec<(OperationKind, Option<i64>, Option<i64>)> = with_connection!(conn, c => operations::table
            .filter(operations::product_id.eq(product_id))
            .filter(operations::state.eq_any(OperationState::UNFINISHED))
            .select((operations::kind, operations::edition_id, operations::build_id))
            .load(c))?;
    let mentions: Vec<(Option<i64>, Option<i64>, NaiveDateTime)> = with_connection!(conn, c => edition_history::table
            .filter(edition_history::product_id.eq(product_id))
            .select((
                edition_history::build_before,
                edition_history::build_after,
                edition_history::date_created,
            ))
            .load(c))?;
    let mut in_use: HashSet<i64> = live_editions.iter().filter_map(|e| e.build_id).collect();
    let mut busy: HashSet<i64> = HashSet::new();
    for (kind, edition, build) in &unfinished {
        if let (Some(build), true) = (build, *kind != OperationKind::DeleteBuild) {
            in_use.insert(*build);
        }
        if let Some(edition) = edition {
            busy.insert(*edition);
        }
    }
    let mut last_shown: HashMap<i64, NaiveDateTime> = HashMap::new();
    for (before, after, when) in mentions {
        for build in [before, after].into_iter().flatten() {
            let seen = last_shown.entry(build).or_insert(when);
            *seen = (*seen).max(when);
        }
    }
    // The newest build naming each ref, deprecated ones included: a ref with recent builds is
    // active even if they were deleted since.
    let mut newest_of_ref: HashMap<String, NaiveDateTime> = HashMap::new();
    for build in &all_builds {
        for git_ref in build.git_ref_list() {
            let newest = newest_of_ref.entry(git_ref).or_insert(build.date_created);
            *newest = (*newest).max(build.date_created);
        }
    }
    let builds = all_builds
        .iter()
        .filter(|build| build.date_ended.is_none())
        .map(|build| BuildFacts {
            id: build.id,
            slug: build.slug.clone(),
            uploaded: build.uploaded,
            date_created: build.date_created,
            in_use: in_use.contains(&build.id),
            last_shown: last_shown.get(&build.id).copied(),
        })
        .collect();
    let editions = live_editions
        .iter()
        .map(|edition| EditionFacts {
            id: edition.id,
            slug: edition.slug.clone(),
            kind: edition.kind,
            auto_created: edition.auto_created && edition.tracking_mode == TrackingMode::GitRefs,
            busy: busy.contains(&edition.id),
            date_created: edition.date_created,
            last_build_of_ref: edition
                .tracked_ref_list()
                .unwrap_or_default()
                .iter()
                .filter_map(|git_ref| newest_of_ref.get(git_ref).copied())
                .max(),
        })
        .collect();
    Ok((builds, editions))
}

/// Ends the live editions among `ids` on which no operation is pending, and returns them.
pub fn end_editions(
    conn: &mut DbConnection,
    ids: &[i64],
    when: NaiveDateTime,
) -> QueryResult<Vec<Edition>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ended: Vec<Edition> = with_connection!(conn, c => diesel::update(
        editions::table
            .filter(editions::id.eq_any(ids))
            .filter(editions::date_ended.is_null()),
    )
    .set(editions::date_ended.eq(Some(when)))
    .returning(Edition::as_returning())
    .get_results(c))?;
    let ended_ids: Vec<i64> = ended.iter().map(|edition| edition.id).collect();
    let busy: HashSet<i64> = with_connection!(conn, c => operations::table
        .filter(operations::edition_id.eq_any(&ended_ids))
        .filter(operations::state.eq_any(OperationState::UNFINISHED))
        .select(operations::edition_id)
        .load::<Option<i64>>(c))?
    .into_iter()
    .flatten()
    .collect();
    put_back_editions(conn, &busy)?;
    Ok(ended
        .into_iter()
        .filter(|edition| !busy.contains(&edition.id))
        .collect())
}

/// Deprecates the builds among `ids` that nothing uses (no live edition shows one, no
/// unfinished operation but a deletion targets one), and returns them.
pub fn deprecate_builds(
    conn: &mut DbConnection,
    ids: &[i64],
    when: NaiveDateTime,
) -> QueryResult<Vec<Build>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let deprecated: Vec<Build> = with_connection!(conn, c => diesel::update(
        builds::table
            .filter(builds::id.eq_any(ids))
            .filter(builds::date_ended.is_null()),
    )
    .set(builds::date_ended.eq(Some(when)))
    .returning(Build::as_returning())
    .get_results(c))?;
    let deprecated_ids: Vec<i64> = deprecated.iter().map(|build| build.id).collect();
    let mut used: HashSet<i64> = with_connection!(conn, c => operations::table
        .filter(operations::build_id.eq_any(&deprecated_ids))
        .filter(operations::state.eq_any(OperationState::UNFINISHED))
        .filter(operations::kind.ne(OperationKind::DeleteBuild))
        .select(operations::build_id)
        .load::<Option<i64>>(c))?
    .into_iter()
    .flatten()
    .collect();
    used.extend(
        with_connection!(conn, c => editions::table
            .filter(editions::build_id.eq_any(&deprecated_ids))
            .filter(editions::date_ended.is_null())
            .select(editions::build_id)
            .load::<Option<i64>>(c))?
        .into_iter()
        .flatten(),
    );
    put_back_builds(conn, &used)?;
    Ok(deprecated
        .into_iter()
        .filter(|build| !used.contains(&build.id))
        .collect())
}

fn put_back_editions(conn: &mut DbConnection, ids: &HashSet<i64>) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = ids.iter().copied().collect();
    with_connection!(conn, c => diesel::update(editions::table.filter(editions::id.eq_any(&ids)))
        .set(editions::date_ended.eq(None::<NaiveDateTime>))
        .execute(c))?;
    Ok(())
}

fn put_back_builds(conn: &mut DbConnection, ids: &HashSet<i64>) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = ids.iter().copied().collect();
    with_connection!(conn, c => diesel::update(builds::table.filter(builds::id.eq_any(&ids)))
        .set(builds::date_ended.eq(None::<NaiveDateTime>))
        .execute(c))?;
    Ok(())
}
