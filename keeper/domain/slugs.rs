//! Slugs of products, editions and builds, and how new build and edition slugs are chosen.

use std::collections::HashSet;

use super::error::{shown, string_conversions, DomainError};

/// A product slug: `^[a-z]+[-a-z0-9]*[a-z0-9]+$`, 2 to 64 characters. It names the product's
/// bucket prefix and its subdomain, so it stays DNS-safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductSlug(String);

impl ProductSlug {
    /// The longest slug allowed.
    pub const MAX_LEN: usize = 64;

    /// Parses a product slug.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bytes = raw.as_bytes();
        let middle_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let valid = match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                bytes.len() >= 2
                    && bytes.len() <= Self::MAX_LEN
                    && first.is_ascii_lowercase()
                    && (last.is_ascii_lowercase() || last.is_ascii_digit())
                    && bytes.iter().all(middle_ok)
            }
            _ => false,
        };
        if !valid {
            return Err(DomainError::new(
                "slug",
                format!(
                    "{} is not a valid product slug: use 2 to {} lowercase letters, digits and '-', \
                     starting with a letter and ending with a letter or digit",
                    shown(raw),
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_conversions!(ProductSlug);

/// The longest edition or build slug allowed.
const PATH_SLUG_MAX_LEN: usize = 255;

/// Whether `c` may appear in an edition or build slug (`[a-zA-Z0-9-._]`).
fn is_path_slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

/// Checks the rule shared by edition and build slugs; `what` names the kind of slug.
fn check_path_slug(raw: &str, what: &str) -> Result<(), DomainError> {
    let valid = !raw.is_empty()
        && raw.len() <= PATH_SLUG_MAX_LEN
        && raw.chars().all(is_path_slug_char)
        && raw != "."
        && raw != "..";
    if valid {
        Ok(())
    } else {
        Err(DomainError::new(
            "slug",
            format!(
                "{} is not a valid {what} slug: use 1 to {PATH_SLUG_MAX_LEN} letters, digits, \
                 '-', '.' or '_', and not \".\" or \"..\"",
                shown(raw)
            ),
        ))
    }
}

/// An edition slug: `^[a-zA-Z0-9-._]+$`, 1 to 255 characters, never `.` or `..` (they would
/// escape the edition's bucket prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EditionSlug(String);

impl EditionSlug {
    /// The slug of every product's default edition.
    pub const MAIN: &'static str = "__main";

    /// Parses an edition slug.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        check_path_slug(raw, "edition")?;
        Ok(Self(raw.to_owned()))
    }

    /// The default edition's slug, `__main`.
    pub fn main() -> Self {
        Self(Self::MAIN.to_owned())
    }

    /// Whether this is the default edition's slug.
    pub fn is_main(&self) -> bool {
        self.0 == Self::MAIN
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_conversions!(EditionSlug);

/// A build slug: the same rule as [`EditionSlug`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildSlug(String);

impl BuildSlug {
    /// Parses a build slug.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        check_path_slug(raw, "build")?;
        Ok(Self(raw.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_conversions!(BuildSlug);

/// The automatic slug of a new build: the smallest positive integer not used by `existing`.
///
/// Only slugs that are the canonical decimal form of a number count (`"01"` does not take `1`,
/// since `"1"` is still free); other slugs are ignored.
pub fn next_build_slug<'a>(existing: impl IntoIterator<Item = &'a str>) -> BuildSlug {
    BuildSlug(first_free_number(existing).to_string())
}

/// The smallest positive integer whose canonical decimal form is not among `existing`.
pub fn first_free_number<'a>(existing: impl IntoIterator<Item = &'a str>) -> u64 {
    let used: HashSet<u64> = existing.into_iter().filter_map(slug_number).collect();
    // At most `used.len()` numbers are taken, so one of 1..=len+1 is free.
    (1..).find(|n| !used.contains(n)).unwrap_or(1)
}

/// The number a slug is the canonical decimal form of (`"12"`, not `"012"` or `"+12"`).
pub fn slug_number(slug: &str) -> Option<u64> {
    if slug.is_empty() || !slug.bytes().all(|b| b.is_ascii_digit()) || slug.starts_with('0') {
        return None;
    }
    slug.parse().ok()
}

/// The slug of the edition created automatically for a build's git refs.
///
/// A single `tickets/X` ref gives `X`; otherwise the refs are joined by `-`, `/` becoming `-`.
/// Any other character outside `[a-zA-Z0-9-._]` also becomes `-`.
pub fn edition_slug_from_git_refs(refs: &[String]) -> Result<EditionSlug, DomainError> {
    let joined = match refs {
        [] => {
            return Err(DomainError::new(
                "git_refs",
                "no git refs: give at least one git ref (branch or tag name)",
            ))
        }
        [only] => match only.strip_prefix("tickets/") {
            Some(ticket) if !ticket.is_empty() => ticket.to_owned(),
            _ => only.clone(),
        },
        many => many.join("-"),
    };
    let slug: String = joined
        .chars()
        .map(|c| if is_path_slug_char(c) { c } else { '-' })
        .collect();
    EditionSlug::parse(&slug).map_err(|_| {
        DomainError::new(
            "git_refs",
            format!(
                "git refs {} give no usable edition slug: they must give 1 to \
                 {PATH_SLUG_MAX_LEN} characters, and not \".\" or \"..\"",
                shown(&refs.join(" "))
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refs(list: &[&str]) -> Vec<String> {
        list.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn product_slug_accepts_the_documented_shape() {
        for ok in [
            "ab",
            "a1",
            "pipelines",
            "ltd-keeper",
            "a-b-c",
            "x--y",
            "sqr-001",
            &"a".repeat(64),
        ] {
            assert_eq!(
                ProductSlug::parse(ok).map(|s| s.to_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn product_slug_rejects_everything_else() {
        let too_long = "a".repeat(65);
        for bad in [
            "", "a", "1a", "-ab", "ab-", "Ab", "aB", "a_b", "a.b", "a b", "ab/", "dé", "ab\n",
            &too_long,
        ] {
            let err = ProductSlug::parse(bad).expect_err(bad);
            assert_eq!(err.field, "slug");
            assert!(err.message.contains("lowercase letters"), "{}", err.message);
        }
    }

    #[test]
    fn edition_and_build_slugs_accept_their_alphabet() {
        for ok in [
            "a",
            "1",
            "__main",
            "v1.2.3",
            "DM-1234",
            "w_2024_05",
            "...",
            ".hidden",
            &"x".repeat(255),
        ] {
            assert_eq!(
                EditionSlug::parse(ok).map(|s| s.to_string()),
                Ok(ok.to_owned())
            );
            assert_eq!(
                BuildSlug::parse(ok).map(|s| s.to_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn edition_and_build_slugs_reject_traversal_and_other_characters() {
        let too_long = "x".repeat(256);
        for bad in [
            ".", "..", "", "a/b", "a\\b", "a b", "ü", "a\0", "a%2F", &too_long,
        ] {
            let edition = EditionSlug::parse(bad).expect_err(bad);
            assert!(
                edition.message.contains("edition slug"),
                "{}",
                edition.message
            );
            let build = BuildSlug::parse(bad).expect_err(bad);
            assert!(build.message.contains("build slug"), "{}", build.message);
        }
    }

    #[test]
    fn main_edition_slug_is_a_valid_slug() {
        let main = EditionSlug::main();
        assert!(main.is_main());
        assert_eq!(EditionSlug::parse(main.as_str()), Ok(main.clone()));
        assert_eq!(main.as_str(), "__main");
        assert!(!EditionSlug::parse("main")
            .map(|s| s.is_main())
            .unwrap_or(true));
        assert!(!EditionSlug::parse("__main_")
            .map(|s| s.is_main())
            .unwrap_or(true));
    }

    #[test]
    fn slugs_are_plain_json_strings() {
        let slug = ProductSlug::parse("demo").unwrap();
        assert_eq!(serde_json::to_string(&slug).unwrap(), "\"demo\"");
        let back: EditionSlug = serde_json::from_str("\"v1\"").unwrap();
        assert_eq!(back.as_str(), "v1");
        let bad = serde_json::from_str::<BuildSlug>("\"..\"").unwrap_err();
        assert!(bad.to_string().contains("build slug"), "{bad}");
        assert!(serde_json::from_str::<ProductSlug>("\"A\"").is_err());
        assert!(serde_json::from_str::<ProductSlug>("3").is_err());
    }

    #[test]
    fn slugs_parse_through_from_str_and_try_from() {
        let parsed: ProductSlug = "demo".parse().unwrap();
        assert_eq!(ProductSlug::try_from("demo".to_owned()), Ok(parsed));
        assert!("..".parse::<EditionSlug>().is_err());
        assert!(BuildSlug::try_from("a/b").is_err());
    }

    #[test]
    fn next_build_slug_starts_at_one() {
        assert_eq!(next_build_slug([]).as_str(), "1");
        assert_eq!(next_build_slug(["main", "v1.0", "b2"]).as_str(), "1");
    }

    #[test]
    fn next_build_slug_fills_the_smallest_gap() {
        assert_eq!(next_build_slug(["1", "2", "3"]).as_str(), "4");
        assert_eq!(next_build_slug(["3", "1", "4"]).as_str(), "2");
        assert_eq!(next_build_slug(["2", "3"]).as_str(), "1");
        assert_eq!(next_build_slug(["1", "x", "2", "10"]).as_str(), "3");
    }

    #[test]
    fn next_build_slug_ignores_non_canonical_and_huge_numbers() {
        assert_eq!(
            next_build_slug(["01", "0", "-1", "+1", "1.0"]).as_str(),
            "1"
        );
        assert_eq!(
            next_build_slug(["1", "99999999999999999999999"]).as_str(),
            "2"
        );
    }

    #[test]
    fn tickets_ref_gives_the_ticket_name() {
        assert_eq!(
            edition_slug_from_git_refs(&refs(&["tickets/DM-1234"]))
                .unwrap()
                .as_str(),
            "DM-1234"
        );
    }

    #[test]
    fn other_refs_are_joined_with_dashes() {
        let cases: [(&[&str], &str); 7] = [
            (&["main"], "main"),
            (&["u/alice/fix"], "u-alice-fix"),
            (&["a", "b/c"], "a-b-c"),
            (&["tickets/DM-1", "main"], "tickets-DM-1-main"),
            (&["tickets/"], "tickets-"),
            (&["feature/ü ber"], "feature---ber"),
            (&["v1.2.3"], "v1.2.3"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                edition_slug_from_git_refs(&refs(input)).unwrap().as_str(),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn refs_without_a_usable_slug_are_errors() {
        for input in [&[][..], &[""], &["."], &[".."], &["tickets/.."]] {
            let err = edition_slug_from_git_refs(&refs(input)).expect_err("no slug");
            assert_eq!(err.field, "git_refs");
        }
        let long = vec!["a".repeat(200), "b".repeat(200)];
        assert!(edition_slug_from_git_refs(&long).is_err());
    }

    proptest! {
        #[test]
        fn generated_product_slugs_parse(slug in "[a-z][-a-z0-9]{0,62}[a-z0-9]") {
            prop_assert_eq!(ProductSlug::parse(&slug).map(|s| s.to_string()), Ok(slug));
        }

        #[test]
        fn a_foreign_character_breaks_any_slug(
            slug in "[a-z][a-z0-9]{1,20}",
            at in 0usize..22,
            bad in "[A-Z_./ \\\\%\u{0}-\u{1f}é]",
        ) {
            let mut broken = slug.clone();
            broken.insert_str(at.min(slug.len()), &bad);
            prop_assert!(ProductSlug::parse(&broken).is_err());
            if bad.chars().all(|c| !is_path_slug_char(c)) {
                prop_assert!(EditionSlug::parse(&broken).is_err());
                prop_assert!(BuildSlug::parse(&broken).is_err());
            }
        }

        #[test]
        fn next_build_slug_is_unused_and_minimal(numbers in proptest::collection::vec(1u64..40, 0..30)) {
            let existing: Vec<String> = numbers.iter().map(u64::to_string).collect();
            let next = next_build_slug(existing.iter().map(String::as_str));
            prop_assert!(!existing.contains(&next.to_string()));
            let n: u64 = next.as_str().parse().unwrap();
            for smaller in 1..n {
                prop_assert!(numbers.contains(&smaller), "{} was free", smaller);
            }
        }

        #[test]
        fn edition_slugs_from_refs_are_always_valid(refs in proptest::collection::vec("[ -~]{1,12}", 1..4)) {
            match edition_slug_from_git_refs(&refs) {
                Ok(slug) => prop_assert!(EditionSlug::parse(slug.as_str()).is_ok()),
                Err(err) => prop_assert!(
                    refs.len() == 1 && matches!(refs[0].trim_start_matches("tickets/"), "." | ".."),
                    "{:?}: {}", refs, err
                ),
            }
        }
    }
}
