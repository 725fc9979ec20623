//! The vocabulary of durable operations (DESIGN.md section 5): their kinds and states. Stored
//! as text (`db::text_enum`); the operation kinds themselves live in `ops/`, one file each.

use super::error::{shown, string_conversions, DomainError};
use super::organization::named_values;

named_values!(
    /// What an operation does. `ops::worker` dispatches on it with an exhaustive `match`.
    OperationKind, "kind", "operation kind", {
        /// Copy a build over an edition, remove leftovers, purge (`ops::rebuild`).
        RebuildEdition => "rebuild_edition",
        /// Move an edition's objects to its new slug's prefix (`ops::rename`).
        RenameEdition => "rename_edition",
        /// Delete an edition's objects, then its row (`ops::delete`).
        DeleteEdition => "delete_edition",
        /// Delete a deprecated build's objects (`ops::delete`).
        DeleteBuild => "delete_build",
        /// Purge surrogate keys from the CDN (`ops::purge`).
        Purge => "purge",
        /// Render a product's dashboards and version lists into its prefix, then purge the
        /// product's key (`ops::dashboard`).
        Dashboard => "dashboard",
        /// Write a confirmed build's manifest into the bucket (`ops::seal`).
        SealBuild => "seal_build",
        /// Write a product's, build's or edition's catalogue record into the bucket
        /// (`ops::records`).
        WriteRecord => "write_record",
        /// Apply a product's retention policy: delete the builds and editions it no longer
        /// keeps (`ops::retention`), scheduled once per period.
        Retention => "retention",
        /// Send one event to one webhook subscription (`ops::webhook`). Claimed only by the
        /// workers' webhook lane, so that a slow receiver never holds up the other kinds.
        DeliverWebhook => "deliver_webhook",
    }
);

named_values!(
    /// Where an operation is: `READY -> WORKING -> OK | FAILED`, or `SUPERSEDED` by a newer
    /// request before it was claimed.
    OperationState, "state", "operation state", {
        /// Waiting to be claimed (after `not_before`).
        Ready => "READY",
        /// Claimed by a worker whose lease has not run out.
        Working => "WORKING",
        /// Done.
        Ok => "OK",
        /// Gave up; an operator may retry it.
        Failed => "FAILED",
        /// A newer request replaced it: a rebuild of the same edition before it ran, or a
        /// render of the same product's dashboards after it failed.
        Superseded => "SUPERSEDED",
    }
);

impl OperationState {
    /// Not finished yet: the states a worker still has to act on.
    pub const UNFINISHED: [Self; 2] = [Self::Ready, Self::Working];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in OperationKind::ALL {
            assert_eq!(OperationKind::parse(kind.as_str()), Ok(*kind));
        }
        for state in OperationState::ALL {
            assert_eq!(OperationState::parse(state.as_str()), Ok(*state));
        }
        assert!(OperationKind::parse("dashboards").is_err());
    }
}
