//! The one error of the domain rules: which input field was wrong and what it allows.

use std::fmt;

/// A value that breaks a domain rule. `message` says what is allowed and is meant for API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct DomainError {
    /// The input field (JSON name where there is one), e.g. `slug`, `git_refs`, `mode`.
    pub field: &'static str,
    /// What was wrong and what is allowed instead.
    pub message: String,
}

impl DomainError {
    /// A new error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The same error reported against another field (e.g. `tracked_refs` instead of `git_refs`).
    #[must_use]
    pub fn with_field(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}

/// Shows a rejected input in a message, quoted and cut short so that huge inputs stay readable.
pub(crate) fn shown(raw: &str) -> impl fmt::Display + '_ {
    struct Shown<'a>(&'a str);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            const MAX_CHARS: usize = 80;
            match self.0.char_indices().nth(MAX_CHARS) {
                Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
                None => write!(f, "{:?}", self.0),
            }
        }
    }
    Shown(raw)
}

/// `a, b or c`.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Implements `Display`, `FromStr`, `TryFrom<&str>`, `TryFrom<String>` and serde (as a plain
/// string) for a type with `fn as_str(&self) -> &str` and `fn parse(&str) -> Result<Self, DomainError>`.
macro_rules! string_conversions {
    ($ty:ty) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::domain::DomainError;
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Self::parse(raw)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::domain::DomainError;
            fn try_from(raw: &str) -> Result<Self, Self::Error> {
                Self::parse(raw)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::domain::DomainError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_conversions;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field_and_the_rule() {
        let err = DomainError::new("slug", "use letters");
        assert_eq!(err.to_string(), "invalid slug: use letters");
        let moved = err.with_field("tracked_refs");
        assert_eq!(moved.field, "tracked_refs");
        assert_eq!(moved.message, "use letters");
    }

    #[test]
    fn shown_quotes_and_cuts_long_inputs() {
        assert_eq!(shown("a b").to_string(), "\"a b\"");
        let long = "é".repeat(200);
        let text = shown(&long).to_string();
        assert!(text.ends_with("..."), "{text}");
        assert_eq!(text.chars().filter(|c| *c == 'é').count(), 80);
    }
}
