//! Retention: which builds and editions of a product a policy deletes, and why. Pure: the facts
//! come from the database (`db::retention`), the deletions are made by `ops::retention`, and
//! `keeper gc --dry-run` prints the same plan.
//!
//! A build is kept when any of these holds; otherwise it is deleted (deprecated, its objects
//! removed):
//! - a live edition shows it, or an unfinished rebuild is copying or about to copy it;
//! - an edition showed it within the rollback window (its history mentions it since then);
//! - it is among the newest `keep_newest` uploaded builds;
//! - it is younger than `keep_days`.
//!
//! An edition is deleted only when keeper created it for a branch or ticket (never a release, a
//! requested one or the default edition), no operation is pending on it, and its tracked ref
//! has had no build for `edition_days`.

use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::tracking::EditionKind;

/// A product's effective policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Off: nothing is ever deleted.
    pub enabled: bool,
    /// The newest uploaded builds kept whatever their age.
    pub keep_newest: u32,
    /// Builds younger than this many days are kept.
    pub keep_days: u32,
    /// Builds an edition showed within this many days are kept (what a rollback may return to).
    pub rollback_days: u32,
    /// Branch and ticket editions keeper created are deleted once their ref has had no build
    /// for this many days.
    pub edition_days: u32,
}

/// What a product sets of its own, over the deployment's policy (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_newest: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition_days: Option<u32>,
}

/// The most days a policy may name (about 270 years): keeps date arithmetic in range.
pub const MAX_DAYS: u32 = 100_000;

impl PolicyOverride {
    /// The override's values are within range; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        for (name, days) in [
            ("keep_days", self.keep_days),
            ("rollback_days", self.rollback_days),
            ("edition_days", self.edition_days),
        ] {
            if days.is_some_and(|days| days > MAX_DAYS) {
                return Err(format!("retention.{name} must be at most {MAX_DAYS}"));
            }
        }
        Ok(())
    }
}

impl RetentionPolicy {
    /// This policy with `product`'s own settings over it.
    pub fn with(self, product: &PolicyOverride) -> Self {
        Self {
            enabled: product.enabled.unwrap_or(self.enabled),
            keep_newest: product.keep_newest.unwrap_or(self.keep_newest),
            keep_days: product.keep_days.unwrap_or(self.keep_days),
            rollback_days: product.rollback_days.unwrap_or(self.rollback_days),
            edition_days: product.edition_days.unwrap_or(self.edition_days),
        }
    }
}

/// What retention needs to know of a build that is not deprecated yet.
#[derive(Debug, Clone)]
pub struct BuildFacts {
    pub id: i64,
    pub slug: String,
    pub uploaded: bool,
    pub date_created: NaiveDateTime,
    /// A live edition shows it, or an unfinished rebuild targets it.
    pub in_use: bool,
    /// The newest history entry that mentions it (shown before or after a change).
    pub last_shown: Option<NaiveDateTime>,
}

/// What retention needs to know of a live edition.
#[derive(Debug, Clone)]
pub struct EditionFacts {
    pub id: i64,
    pub slug: String,
    pub kind: EditionKind,
    pub auto_created: bool,
    /// An operation on it is READY or WORKING.
    pub busy: bool,
    pub date_created: NaiveDateTime,
    /// The newest build (of any state) naming the edition's tracked ref.
    pub last_build_of_ref: Option<NaiveDateTime>,
}

/// One thing to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub id: i64,
    pub slug: String,
    /// Why, in words an operator reads in `keeper gc --dry-run` and in the operation's message.
    pub why: String,
}

/// What a policy deletes, editions first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    pub editions: Vec<Doomed>,
    pub builds: Vec<Doomed>,
}

impl RetentionPlan {
    pub fn is_empty(&self) -> bool {
        self.editions.is_empty() && self.builds.is_empty()
    }
}

fn days_ago(now: NaiveDateTime, days: u32) -> NaiveDateTime {
    now - Duration::days(i64::from(days))
}

/// What `policy` deletes of `builds` and `editions` at `now`.
pub fn plan(
    policy: &RetentionPolicy,
    now: NaiveDateTime,
    builds: &[BuildFacts],
    editions: &[EditionFacts],
) -> RetentionPlan {
    if !policy.enabled {
        return RetentionPlan::default();
    }
    let young = days_ago(now, policy.keep_days);
    let window = days_ago(now, policy.rollback_days);
    let stale = days_ago(now, policy.edition_days);
    let mut uploaded: Vec<&BuildFacts> = builds.iter().filter(|build| build.uploaded).collect();
    uploaded.sort_by_key(|build| std::cmp::Reverse((build.date_created, build.id)));
    let newest: Vec<i64> = uploaded
        .iter()
        .take(usize::try_from(policy.keep_newest).unwrap_or(usize::MAX))
        .map(|build| build.id)
        .collect();
    let mut doomed_builds: Vec<Doomed> = builds
        .iter()
        .filter(|build| !build.in_use)
        .filter(|build| build.last_shown.is_none_or(|shown| shown < window))
        .filter(|build| !newest.contains(&build.id))
        .filter(|build| build.date_created < young)
        .map(|build| Doomed {
            id: build.id,
            slug: build.slug.clone(),
            why: format!(
                "{} on {}, older than {} days, not among the newest {} uploaded builds, {}",
                if build.uploaded {
                    "uploaded"
                } else {
                    "registered and never uploaded"
                },
                build.date_created.format("%Y-%m-%d"),
                policy.keep_days,
                policy.keep_newest,
                match build.last_shown {
                    Some(shown) => format!(
                        "last shown by an edition on {} (before the {}-day rollback window)",
                        shown.format("%Y-%m-%d"),
                        policy.rollback_days
                    ),
                    None => "never shown by an edition".to_owned(),
                }
            ),
        })
        .collect();
    doomed_builds.sort_by_key(|doomed| doomed.id);
    let mut doomed_editions: Vec<Doomed> = editions
        .iter()
        .filter(|edition| edition.auto_created && edition.kind == EditionKind::Draft)
        .filter(|edition| !edition.busy)
        .filter_map(|edition| {
            let last = edition
                .last_build_of_ref
                .map_or(edition.date_created, |last| last.max(edition.date_created));
            (last < stale).then(|| Doomed {
                id: edition.id,
                slug: edition.slug.clone(),
                why: format!(
                    "created by keeper for a branch or ticket; its ref has had no build since {} \
                     (more than {} days)",
                    last.format("%Y-%m-%d"),
                    policy.edition_days
                ),
            })
        })
        .collect();
    doomed_editions.sort_by_key(|doomed| doomed.id);
    RetentionPlan {
        editions: doomed_editions,
        builds: doomed_builds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
    }

    fn build(id: i64, age_days: i64) -> BuildFacts {
        BuildFacts {
            id,
            slug: id.to_string(),
            uploaded: true,
            date_created: now() - Duration::days(age_days),
            in_use: false,
            last_shown: None,
        }
    }

    const POLICY: RetentionPolicy = RetentionPolicy {
        enabled: true,
        keep_newest: 2,
        keep_days: 10,
        rollback_days: 5,
        edition_days: 30,
    };

    fn doomed_ids(plan: &RetentionPlan) -> Vec<i64> {
        plan.builds.iter().map(|doomed| doomed.id).collect()
    }

    #[test]
    fn each_rule_keeps_what_it_names() {
        let mut builds: Vec<BuildFacts> = (1..=8).map(|id| build(id, 100 - id)).collect();
        builds[0].in_use = true; // 1: shown now
        builds[1].last_shown = Some(now() - Duration::days(2)); // 2: shown within the window
        builds[2].last_shown = Some(now() - Duration::days(6)); // 3: shown before it
        builds[3].date_created = now() - Duration::days(9); // 4: young
        builds[4].uploaded = false; // 5: never uploaded, old
                                    // The newest two uploaded are 4 (young too) and 8: 7 is not among them.
        let plan = plan(&POLICY, now(), &builds, &[]);
        assert_eq!(doomed_ids(&plan), [3, 5, 6, 7]);
        assert!(plan.builds[0]
            .why
            .contains("before the 5-day rollback window"));
        assert!(plan.builds[1].why.contains("never uploaded"));
    }

    #[test]
    fn off_deletes_nothing() {
        let builds: Vec<BuildFacts> = (1..=5).map(|id| build(id, 1000)).collect();
        let off = RetentionPolicy {
            enabled: false,
            ..POLICY
        };
        assert!(plan(&off, now(), &builds, &[]).is_empty());
    }

    #[test]
    fn only_stale_editions_keeper_created_for_branches_go() {
        let edition = |id: i64, kind, auto_created, last_build: Option<i64>| EditionFacts {
            id,
            slug: format!("e{id}"),
            kind,
            auto_created,
            busy: false,
            date_created: now() - Duration::days(400),
            last_build_of_ref: last_build.map(|days| now() - Duration::days(days)),
        };
        let mut editions = vec![
            edition(1, EditionKind::Draft, true, Some(40)), // stale: goes
            edition(2, EditionKind::Draft, true, Some(20)), // built recently
            edition(3, EditionKind::Draft, false, Some(40)), // requested
            edition(4, EditionKind::Release, true, Some(400)),
            edition(5, EditionKind::Main, true, None),
            edition(6, EditionKind::Draft, true, None), // never built, created long ago: goes
            edition(7, EditionKind::Draft, true, Some(400)),
        ];
        editions[6].busy = true;
        let plan = plan(&POLICY, now(), &[], &editions);
        let ids: Vec<i64> = plan.editions.iter().map(|doomed| doomed.id).collect();
        assert_eq!(ids, [1, 6]);
    }

    #[test]
    fn a_product_override_replaces_only_what_it_names() {
        let product = PolicyOverride {
            enabled: Some(true),
            keep_newest: Some(50),
            ..PolicyOverride::default()
        };
        let off = RetentionPolicy {
            enabled: false,
            ..POLICY
        };
        let effective = off.with(&product);
        assert_eq!((effective.enabled, effective.keep_newest), (true, 50));
        assert_eq!(effective.keep_days, POLICY.keep_days);
        assert!(PolicyOverride {
            keep_days: Some(MAX_DAYS + 1),
            ..PolicyOverride::default()
        }
        .check()
        .unwrap_err()
        .contains("keep_days"));
        let parsed: Result<PolicyOverride, _> = serde_json::from_str(r#"{"keep_newset": 3}"#);
        assert!(parsed.is_err());
    }
}
