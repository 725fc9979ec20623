//! User names: 1 to 64 characters of letters, digits and `_ . @ + -`, and not `.` or `..`
//! (which would make `/users/<name>` another path). The database checks the characters and the
//! length.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "_.@+-".contains(c);
        if raw == "." || raw == ".." {
            return Err(format!(
                "invalid user name {raw:?}: a user name must not be . or .. (it would name \
                 another URL path)"
            ));
        }
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(valid_char) {
            return Err(format!(
                "invalid user name {raw:?}: use 1 to {} letters, digits or _ . @ + -",
                Self::MAX_LEN
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names_and_rejects_others() {
        for ok in ["admin", "ci-bot", "alice@example.org", "a", "x.y_z+1"] {
            assert_eq!(Username::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "has space",
            "ümlaut",
            "semi;colon",
            &"a".repeat(65),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }
}
