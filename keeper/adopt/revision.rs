//! Which schema an LTD Keeper database has: its Alembic revision, read from `alembic_version`
//! or, for a database from before the original tagged its schema, recognised from the tables and
//! columns it has (the way JupyterHub treats databases from before its own tagging: the oldest
//! revision the layout fits). Pure: the caller reads the tables and columns.

use std::collections::{BTreeMap, BTreeSet};

/// One revision of the original's Alembic chain (`migrations/versions/*.py` of
/// `lsst-sqre/ltd-keeper`), oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    pub id: &'static str,
    /// What it changed, as its migration's docstring says.
    pub change: &'static str,
    /// The first release line that shipped it.
    pub line: &'static str,
    /// Columns it added, as `table.column` (a new table: `table.*` plus its columns).
    pub adds: &'static [&'static str],
}

/// The original's chain: 1.x ends at `4ace74bc8168` (1.23.0), the 2.0 alphas at `8fa19dcad1d1`.
pub const CHAIN: &[Revision] = &[
    Revision {
        id: "aa9e2d2736c8",
        change: "initial",
        line: "1.x",
        adds: &[
            "users.id",
            "users.username",
            "users.password_hash",
            "users.permissions",
            "products.id",
            "products.slug",
            "products.doc_repo",
            "products.title",
            "products.root_domain",
            "products.root_fastly_domain",
            "products.bucket_name",
            "builds.id",
            "builds.product_id",
            "builds.slug",
            "builds.date_created",
            "builds.date_ended",
            "builds.git_refs",
            "builds.github_requester",
            "builds.uploaded",
            "builds.surrogate_key",
            "editions.id",
            "editions.product_id",
            "editions.build_id",
            "editions.tracked_refs",
            "editions.slug",
            "editions.title",
            "editions.date_created",
            "editions.date_rebuilt",
            "editions.date_ended",
        ],
    },
    Revision {
        id: "d9a390ebdf1e",
        change: "unique usernames",
        line: "1.x",
        adds: &[],
    },
    Revision {
        id: "1ba709663f26",
        change: "edition surrogate key",
        line: "1.x",
        adds: &["editions.surrogate_key"],
    },
    Revision {
        id: "0c0c70d73d4b",
        change: "length 255 unicode columns",
        line: "1.x",
        adds: &[],
    },
    Revision {
        id: "ffdd80058eed",
        change: "add surrogate key to product",
        line: "1.x",
        adds: &["products.surrogate_key"],
    },
    Revision {
        id: "aae44dcdaf52",
        change: "add edition mode column",
        line: "1.x",
        adds: &["editions.mode"],
    },
    Revision {
        id: "4ace74bc8168",
        change: "add edition pending rebuild",
        line: "1.x",
        adds: &["editions.pending_rebuild"],
    },
    Revision {
        id: "8c431c5e70a8",
        change: "v2 tables",
        line: "2.0 alpha",
        adds: &[
            "organizations.id",
            "organizations.slug",
            "organizations.title",
            "organizations.layout",
            "organizations.root_domain",
            "organizations.root_path_prefix",
            "products.organization_id",
            "editions.kind",
            "builds.git_ref",
        ],
    },
    Revision {
        id: "febbe2d7e47b",
        change: "use LargeBinary for Fernet key columns",
        line: "2.0 alpha",
        adds: &[],
    },
    Revision {
        id: "f8eeb27a49e7",
        change: "add edition tracked_ref column",
        line: "2.0 alpha",
        adds: &["editions.tracked_ref"],
    },
    Revision {
        id: "8fa19dcad1d1",
        change: "add organization aws_region and public read",
        line: "2.0 alpha",
        adds: &[
            "organizations.aws_region",
            "organizations.bucket_public_read",
        ],
    },
];

/// The tables adoption reads, and so the ones whose columns identify a layout.
pub const TABLES: &[&str] = &["users", "products", "builds", "editions", "organizations"];

/// What a database holds: table name -> column names (only the tables of [`TABLES`] matter).
pub type Layout = BTreeMap<String, BTreeSet<String>>;

/// How the revision was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// `alembic_version` named it.
    Tagged,
    /// No `alembic_version`: the oldest revision whose layout the tables and columns fit.
    Recognised,
}

/// Why a database is not adopted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionError {
    #[error(
        "the database is at Alembic revision {found:?}, which is not one of LTD Keeper's ({known}): \
         it is a newer or a modified LTD Keeper, or not LTD Keeper at all; adopt refuses what \
         it does not know"
    )]
    Unknown { found: String, known: String },
    #[error("alembic_version holds {0} rows ({1}); an LTD Keeper database holds exactly one")]
    Ambiguous(usize, String),
    #[error(
        "the database says it is at revision {revision} ({change}), but {missing} is missing: \
         its schema is not what that revision wrote"
    )]
    Inconsistent {
        revision: &'static str,
        change: &'static str,
        missing: String,
    },
    #[error(
        "the database has no alembic_version and its layout matches no LTD Keeper revision: \
         {reason}"
    )]
    Unrecognised { reason: String },
}

fn has(layout: &Layout, column: &str) -> bool {
    let (table, name) = column.split_once('.').unwrap_or((column, ""));
    layout
        .get(table)
        .is_some_and(|columns| columns.contains(name))
}

/// Every column the chain up to and including `index` added.
fn required(index: usize) -> impl Iterator<Item = &'static str> {
    CHAIN[..=index]
        .iter()
        .flat_map(|revision| revision.adds.iter().copied())
}

/// The revision of a database whose `alembic_version` holds `tags` (`None`: no such table) and
/// whose tables have `layout`.
pub fn detect(
    tags: Option<&[String]>,
    layout: &Layout,
) -> Result<(Revision, Detection), RevisionError> {
    match tags {
        Some([tag]) => {
            let index = CHAIN
                .iter()
                .position(|revision| revision.id == tag.trim())
                .ok_or_else(|| RevisionError::Unknown {
                    found: tag.clone(),
                    known: CHAIN.iter().map(|r| r.id).collect::<Vec<_>>().join(", "),
                })?;
            if let Some(missing) = required(index).find(|column| !has(layout, column)) {
                return Err(RevisionError::Inconsistent {
                    revision: CHAIN[index].id,
                    change: CHAIN[index].change,
                    missing: missing.to_owned(),
                });
            }
            Ok((CHAIN[index], Detection::Tagged))
        }
        Some(tags) => Err(RevisionError::Ambiguous(tags.len(), tags.join(", "))),
        None => recognise(layout).map(|revision| (revision, Detection::Recognised)),
    }
}

/// The oldest revision whose columns the layout has, and that no later revision's columns
/// contradict: a layout is the chain up to some revision, never a later column without an
/// earlier one.
fn recognise(layout: &Layout) -> Result<Revision, RevisionError> {
    if let Some(missing) = required(0).find(|column| !has(layout, column)) {
        return Err(RevisionError::Unrecognised {
            reason: format!(
                "even the first revision's {missing} is missing (tables found: {})",
                if layout.is_empty() {
                    "none".to_owned()
                } else {
                    layout.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ),
        });
    }
    // The last revision whose added columns are all present; revisions that add nothing (an
    // index, a type) cannot be told from their predecessor, so the oldest of them stands.
    let mut reached = 0;
    for (index, revision) in CHAIN.iter().enumerate().skip(1) {
        if revision.adds.is_empty() {
            continue;
        }
        if revision.adds.iter().all(|column| has(layout, column)) {
            if reached + 1 < index
                && CHAIN[reached + 1..index]
                    .iter()
                    .any(|between| !between.adds.is_empty())
            {
                let skipped = CHAIN[reached + 1..index]
                    .iter()
                    .find(|between| !between.adds.is_empty())
                    .map(|between| between.adds.join(", "))
                    .unwrap_or_default();
                return Err(RevisionError::Unrecognised {
                    reason: format!(
                        "it has {} (revision {}) but not {skipped}, which an earlier revision added",
                        revision.adds.join(", "),
                        revision.id
                    ),
                });
            }
            reached = index;
        } else if let Some(present) = revision.adds.iter().find(|column| has(layout, column)) {
            return Err(RevisionError::Unrecognised {
                reason: format!(
                    "it has {present} but not all of {} (revision {} added them together)",
                    revision.adds.join(", "),
                    revision.id
                ),
            });
        }
    }
    Ok(CHAIN[reached])
}

/// Whether `revision` has the 2.0 tables (organizations, edition kinds).
pub fn is_v2(revision: &Revision) -> bool {
    revision.line == "2.0 alpha"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_at(id: &str) -> Layout {
        let index = CHAIN.iter().position(|r| r.id == id).unwrap();
        let mut layout = Layout::new();
        for column in required(index) {
            let (table, name) = column.split_once('.').unwrap();
            layout
                .entry(table.to_owned())
                .or_default()
                .insert(name.to_owned());
        }
        layout
    }

    #[test]
    fn a_tagged_database_is_its_tag() {
        for revision in CHAIN {
            let tags = [revision.id.to_owned()];
            let (found, how) = detect(Some(&tags), &layout_at(revision.id)).unwrap();
            assert_eq!((found.id, how), (revision.id, Detection::Tagged));
        }
    }

    #[test]
    fn an_unknown_tag_is_refused_by_name() {
        let tags = ["0123456789ab".to_owned()];
        let err = detect(Some(&tags), &layout_at("4ace74bc8168")).unwrap_err();
        assert!(err.to_string().contains("\"0123456789ab\""), "{err}");
        assert!(err.to_string().contains("4ace74bc8168"), "{err}");
    }

    #[test]
    fn a_tag_its_columns_contradict_is_refused() {
        let tags = ["4ace74bc8168".to_owned()];
        let err = detect(Some(&tags), &layout_at("aae44dcdaf52")).unwrap_err();
        assert!(
            err.to_string().contains("editions.pending_rebuild"),
            "{err}"
        );
        let two = ["4ace74bc8168".to_owned(), "aae44dcdaf52".to_owned()];
        assert!(matches!(
            detect(Some(&two), &layout_at("4ace74bc8168")),
            Err(RevisionError::Ambiguous(2, _))
        ));
    }

    #[test]
    fn an_untagged_database_is_the_oldest_revision_its_layout_fits() {
        for (layout, expected) in [
            ("aa9e2d2736c8", "aa9e2d2736c8"),
            ("d9a390ebdf1e", "aa9e2d2736c8"),
            ("1ba709663f26", "1ba709663f26"),
            ("0c0c70d73d4b", "1ba709663f26"),
            ("ffdd80058eed", "ffdd80058eed"),
            ("aae44dcdaf52", "aae44dcdaf52"),
            ("4ace74bc8168", "4ace74bc8168"),
            ("8c431c5e70a8", "8c431c5e70a8"),
            ("febbe2d7e47b", "8c431c5e70a8"),
            ("f8eeb27a49e7", "f8eeb27a49e7"),
            ("8fa19dcad1d1", "8fa19dcad1d1"),
        ] {
            let (found, how) = detect(None, &layout_at(layout)).unwrap();
            assert_eq!(
                (found.id, how),
                (expected, Detection::Recognised),
                "{layout}"
            );
        }
    }

    #[test]
    fn layouts_outside_the_chain_are_refused() {
        assert!(detect(None, &Layout::new()).is_err());
        // A later column without an earlier one.
        let mut skipped = layout_at("aa9e2d2736c8");
        skipped
            .get_mut("editions")
            .unwrap()
            .insert("mode".to_owned());
        let err = detect(None, &skipped).unwrap_err();
        assert!(err.to_string().contains("editions.surrogate_key"), "{err}");
        // Half of a revision's columns.
        let mut half = layout_at("4ace74bc8168");
        half.entry("organizations".into())
            .or_default()
            .insert("id".into());
        assert!(detect(None, &half).is_err());
        // Not LTD Keeper at all.
        let mut other = Layout::new();
        other.entry("users".into()).or_default().insert("id".into());
        let err = detect(None, &other).unwrap_err();
        assert!(err.to_string().contains("users.username"), "{err}");
    }
}
