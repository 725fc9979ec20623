//! Pure domain rules, without I/O.

mod error;
pub mod keys;
pub mod permissions;
pub mod slugs;
pub mod tracking;
pub mod urls;
pub mod username;
pub mod versions;

pub use error::DomainError;
pub use keys::{BucketPrefix, SurrogateKey};
pub use permissions::Permissions;
pub use slugs::{edition_slug_from_git_refs, next_build_slug, BuildSlug, EditionSlug, ProductSlug};
pub use tracking::{edition_accepts, edition_kind, EditionKind, TrackingMode};
pub use urls::{build_url, edition_url, product_url, PublishingLayout};
pub use username::Username;
pub use versions::{
    parse_eups_daily, parse_eups_major, parse_eups_weekly, parse_semver_ref, Version,
};
