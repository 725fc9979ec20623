//! Pure domain rules and values, without I/O. (Closed vocabularies derive diesel's
//! `AsExpression`/`FromSqlRow` so that columns can hold them; their conversions live in
//! `db::text_enum`.)

mod error;
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod operation;
pub(crate) mod organization;
pub(crate) mod permissions;
pub(crate) mod retention;
pub(crate) mod slugs;
pub(crate) mod tracking;
pub(crate) mod urls;
pub(crate) mod username;
pub(crate) mod versions;
pub(crate) mod webhooks;

pub use error::DomainError;
pub use history::{rollback_target, HistoryReason};
pub use keys::{
    BucketPrefix, DashboardFile, RecordKeys, SurrogateKey, DEPLOYMENT_KEY, RESERVED_PREFIX,
};
pub use operation::{OperationKind, OperationState};
pub use organization::{CdnKind, StoreKind, UrlLayout};
pub use permissions::Permissions;
pub use retention::{
    plan as retention_plan, BuildFacts, Doomed, EditionFacts, PolicyOverride, RetentionPlan,
    RetentionPolicy,
};
pub use slugs::{
    edition_slug_from_git_refs, first_free_number, next_build_slug, slug_number, BuildSlug,
    EditionSlug, ProductSlug,
};
pub use tracking::{edition_accepts, edition_kind, EditionKind, TrackingMode};
pub use urls::{build_url, edition_url, product_url, published_edition_url, PublishingLayout};
pub use username::Username;
pub use versions::{
    parse_eups_daily, parse_eups_major, parse_eups_weekly, parse_semver_ref, release_version,
    Version,
};
pub use webhooks::{DeliveryState, WebhookEvent};
