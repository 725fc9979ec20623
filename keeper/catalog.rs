//! Catalogue rules that touch the database: which editions a confirmed build updates, and
//! recording rebuild requests. Called inside the transaction of the change that needs them.

/// Why a rebuild was not recorded; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "Build {build} is {state}; an edition can only show an uploaded, non-deprecated build."
    )]
    Unpublishable { build: String, state: &'static str },
    #[error("The build belongs to another product.")]
    ForeignBuild,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

pub type CatalogResult<T> = Result<T, CatalogError>;

use crate::db::builds::{find_build, lock_for_rebuild};
use crate::db::editions::list_editions;
use crate::db::models::{Build, Edition, Operation, Product};
use crate::db::operations::active_operation_for_edition;
use crate::db::DbConnection;
use crate::domain::{edition_accepts, HistoryReason, OperationKind};

/// Records a rebuild of `edition` from `build` for `reason` (superseding a queued older
/// request).
pub fn request_rebuild(
    conn: &mut DbConnection,
    product: &Product,
    edition: &Edition,
    build: &Build,
    reason: HistoryReason,
) -> CatalogResult<Operation> {
    // The row as it is now, locked: retention may have deprecated the build since it was read.
    let build = &lock_for_rebuild(conn, build.id)?;
    if !build.is_publishable() {
        return Err(CatalogError::Unpublishable {
            build: build.slug.clone(),
            state: if build.uploaded {
                "deprecated"
            } else {
                "not uploaded yet"
            },
        });
    }
    if build.product_id != edition.product_id {
        return Err(CatalogError::ForeignBuild);
    }
    Ok(crate::ops::rebuild::enqueue(
        conn, product, edition, build, reason,
    )?)
}

/// The build an edition is on or about to be on: the target of its newest queued or working
/// rebuild, else its current build. Tracking decisions compare against this, so that a late,
/// older version cannot supersede a queued newer one.
pub fn effective_build(conn: &mut DbConnection, edition: &Edition) -> CatalogResult<Option<Build>> {
    let pending_target = active_operation_for_edition(conn, edition.id)?
        .filter(|op| op.kind == OperationKind::RebuildEdition)
        .and_then(|op| op.build_id);
    match pending_target.or(edition.build_id) {
        Some(id) => Ok(Some(find_build(conn, id)?)),
        None => Ok(None),
    }
}

/// Records a rebuild for every live edition of `product` whose tracking mode accepts `build`.
pub fn rebuild_tracking_editions(
    conn: &mut DbConnection,
    product: &Product,
    build: &Build,
) -> CatalogResult<Vec<Operation>> {
    let candidate_refs = build.git_ref_list();
    let mut operations = Vec::new();
    for edition in list_editions(conn, product.id)? {
        let mode = edition.tracking_mode;
        let tracked = edition.tracked_ref_list().unwrap_or_default();
        let current = effective_build(conn, &edition)?;
        let current_refs = current.as_ref().map(Build::git_ref_list);
        if current
            .as_ref()
            .is_some_and(|current| current.id == build.id)
        {
            continue;
        }
        if edition_accepts(mode, &tracked, current_refs.as_deref(), &candidate_refs) {
            operations.push(request_rebuild(
                conn,
                product,
                &edition,
                build,
                HistoryReason::Tracking,
            )?);
        }
    }
    Ok(operations)
}
