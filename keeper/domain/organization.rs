//! The closed vocabularies of an organization's settings: how its URLs are laid out, where its
//! objects are stored, which CDN fronts them. Stored as text (`db::text_enum`).

use super::error::{shown, string_conversions, DomainError};

/// Defines a closed set of names: `ALL`, `as_str`, `parse` (whose error lists the names), and
/// the string and serde conversions; stored by diesel as text.
macro_rules! named_values {
    ($(#[$meta:meta])* $name:ident, $field:literal, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored and wire name.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// Parses a name; the error lists the valid ones.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == raw)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(Self::as_str).collect();
                        DomainError::new(
                            $field,
                            format!(
                                concat!("unknown ", $what, " {}: expected {}"),
                                shown(raw),
                                super::error::one_of(&names)
                            ),
                        )
                    })
            }
        }
        string_conversions!($name);
    };
}
pub(crate) use named_values;

named_values!(
    /// How an organization's product URLs are formed (`domain::PublishingLayout` holds the
    /// resolved form).
    UrlLayout, "layout", "layout", {
        /// `https://<product>.<root_domain>`.
        Subdomain => "subdomain",
        /// `<root><path_prefix>/<product>`.
        Path => "path",
    }
);

named_values!(
    /// Where an organization's objects are stored.
    StoreKind, "store", "store kind", {
        /// keeper's own directory (the default organization only).
        Local => "local",
        /// An S3-compatible bucket.
        S3 => "s3",
    }
);

named_values!(
    /// Which CDN an organization purges.
    CdnKind, "cdn", "CDN kind", {
        /// No CDN.
        None => "none",
        /// Fastly, through its API.
        Fastly => "fastly",
        /// A self-hosted Varnish with the xkey module.
        Varnish => "varnish",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_them() {
        for layout in UrlLayout::ALL {
            assert_eq!(UrlLayout::parse(layout.as_str()), Ok(*layout));
        }
        for kind in StoreKind::ALL {
            assert_eq!(StoreKind::parse(kind.as_str()), Ok(*kind));
        }
        for kind in CdnKind::ALL {
            assert_eq!(CdnKind::parse(kind.as_str()), Ok(*kind));
        }
        let err = CdnKind::parse("akamai").unwrap_err();
        assert!(
            err.message.contains("expected none, fastly or varnish"),
            "{err}"
        );
        assert!(UrlLayout::parse("Path").is_err());
    }
}
