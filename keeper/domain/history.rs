//! The vocabulary of edition history: why an edition started showing a build, or ended.

use super::error::{shown, string_conversions, DomainError};
use super::organization::named_values;

named_values!(
    /// Which rule or request changed what an edition shows (`edition_history.reason`).
    HistoryReason, "reason", "history reason", {
        /// A `build_url` in a request: `POST /products/<slug>/editions/` or `PATCH /editions/<id>`.
        Requested => "requested",
        /// The edition's tracking mode accepted a newly confirmed build.
        Tracking => "tracking",
        /// `POST /editions/<id>/rollback`.
        Rollback => "rollback",
        /// `keeper verify --repair` rebuilt an edition that differed from its build.
        Repair => "repair",
        /// `keeper adopt` published the build the original's edition showed.
        Adopted => "adopted",
        /// `DELETE /editions/<id>`.
        Deleted => "deleted",
        /// The product's retention policy deleted the edition.
        Retention => "retention",
    }
);

impl HistoryReason {
    /// Whether an entry with this reason ends the edition (it shows nothing after it).
    pub fn ends_edition(self) -> bool {
        matches!(self, Self::Deleted | Self::Retention)
    }
}

impl Default for HistoryReason {
    /// What a rebuild queued before reasons were recorded was: a request.
    fn default() -> Self {
        Self::Requested
    }
}

/// The build a rollback goes back to when none is named: the newest build the edition showed
/// before its current one, passing over the builds earlier rollbacks left (so that a second
/// rollback goes one step further back instead of returning to what the first one undid).
///
/// `entries` are the edition's history, newest first, as `(build_before, reason)`.
pub fn rollback_target(
    current: Option<i64>,
    entries: &[(Option<i64>, HistoryReason)],
) -> Option<i64> {
    let rolled_back_from: Vec<i64> = entries
        .iter()
        .filter(|(_, reason)| *reason == HistoryReason::Rollback)
        .filter_map(|(before, _)| *before)
        .collect();
    entries
        .iter()
        .filter(|(_, reason)| !reason.ends_edition())
        .filter_map(|(before, _)| *before)
        .find(|build| Some(*build) != current && !rolled_back_from.contains(build))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_deletions_end() {
        for reason in HistoryReason::ALL {
            assert_eq!(HistoryReason::parse(reason.as_str()), Ok(*reason));
        }
        let ending: Vec<&str> = HistoryReason::ALL
            .iter()
            .filter(|reason| reason.ends_edition())
            .map(HistoryReason::as_str)
            .collect();
        assert_eq!(ending, ["deleted", "retention"]);
        assert!(HistoryReason::parse("rolled_back").is_err());
    }

    use HistoryReason::{Requested, Rollback, Tracking};

    #[test]
    fn rollback_goes_back_one_build_at_a_time() {
        // 1 -> 2 -> 3 by tracking: back to 2.
        let mut history = vec![(Some(2), Tracking), (Some(1), Tracking), (None, Requested)];
        assert_eq!(rollback_target(Some(3), &history), Some(2));
        // Rolled back from 3 to 2: the next rollback goes to 1, not back to 3.
        history.insert(0, (Some(3), Rollback));
        assert_eq!(rollback_target(Some(2), &history), Some(1));
        // Rolled back to 1: nothing older is left.
        history.insert(0, (Some(2), Rollback));
        assert_eq!(rollback_target(Some(1), &history), None);
        // A new build 4 after that: back to 1.
        history.insert(0, (Some(1), Tracking));
        assert_eq!(rollback_target(Some(4), &history), Some(1));
    }

    #[test]
    fn no_rollback_without_an_earlier_build() {
        assert_eq!(rollback_target(Some(1), &[(None, Requested)]), None);
        assert_eq!(rollback_target(None, &[]), None);
    }
}
