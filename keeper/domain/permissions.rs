//! The five permission bits of LSST the Docs, with their names.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Self = Self(0);
    pub const ADMIN_USER: Self = Self(1);
    pub const ADMIN_PRODUCT: Self = Self(2);
    pub const ADMIN_EDITION: Self = Self(4);
    pub const UPLOAD_BUILD: Self = Self(8);
    pub const DEPRECATE_BUILD: Self = Self(16);
    pub const ALL: Self = Self(31);

    const NAMED: [(&'static str, Self); 5] = [
        ("admin_user", Self::ADMIN_USER),
        ("admin_product", Self::ADMIN_PRODUCT),
        ("admin_edition", Self::ADMIN_EDITION),
        ("upload_build", Self::UPLOAD_BUILD),
        ("deprecate_build", Self::DEPRECATE_BUILD),
    ];

    /// The bits as stored in the database; `None` if a bit outside the five is set.
    pub fn from_bits(bits: i32) -> Option<Self> {
        u8::try_from(bits)
            .ok()
            .filter(|b| b & !Self::ALL.0 == 0)
            .map(Self)
    }

    pub fn bits(self) -> i32 {
        i32::from(self.0)
    }

    /// Whether every bit of `required` is set.
    pub fn contains(self, required: Self) -> bool {
        self.0 & required.0 == required.0
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Parses a comma-separated list of names (`admin_product,upload_build`), `all`, or `none`.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let mut permissions = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            permissions = permissions.union(match name {
                "all" => Self::ALL,
                "none" => Self::NONE,
                _ => Self::NAMED
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, bit)| *bit)
                    .ok_or_else(|| {
                        format!(
                            "unknown permission {name:?}; expected a comma-separated list of {}, \
                             or all or none",
                            Self::NAMED.map(|(n, _)| n).join(", ")
                        )
                    })?,
            });
        }
        Ok(permissions)
    }

    /// The names of the bits that are set, in bit order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(_, bit)| self.contains(*bit))
            .map(|(name, _)| *name)
            .collect()
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_the_original() {
        let bits: Vec<i32> = Permissions::NAMED.iter().map(|(_, p)| p.bits()).collect();
        assert_eq!(bits, [1, 2, 4, 8, 16]);
        assert_eq!(Permissions::ALL.bits(), 31);
    }

    #[test]
    fn parses_names_and_round_trips() {
        let p = Permissions::parse_list("upload_build, admin_product").unwrap();
        assert_eq!(p.bits(), 10);
        assert_eq!(p.to_string(), "admin_product,upload_build");
        assert_eq!(Permissions::parse_list(&p.to_string()).unwrap(), p);
        assert_eq!(Permissions::parse_list("all").unwrap(), Permissions::ALL);
        assert_eq!(Permissions::parse_list("").unwrap(), Permissions::NONE);
        assert!(Permissions::parse_list("root")
            .unwrap_err()
            .contains("admin_user"));
    }

    #[test]
    fn contains_requires_every_bit() {
        let p = Permissions::ADMIN_EDITION.union(Permissions::UPLOAD_BUILD);
        assert!(p.contains(Permissions::UPLOAD_BUILD));
        assert!(!p.contains(Permissions::UPLOAD_BUILD.union(Permissions::ADMIN_USER)));
        assert!(p.contains(Permissions::NONE));
    }

    #[test]
    fn rejects_bits_outside_the_five() {
        assert_eq!(Permissions::from_bits(31), Some(Permissions::ALL));
        assert_eq!(Permissions::from_bits(32), None);
        assert_eq!(Permissions::from_bits(-1), None);
    }
}
