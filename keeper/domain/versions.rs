//! Numeric version tuples and the version schemes that tracking modes read from git refs.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A version as numeric components, compared numerically (`1.10` > `1.9`), never as text.
///
/// Missing trailing components count as 0: `1.2`, `1.2.0` and `1.2.0.0` are equal (and hash
/// alike), `1.2` < `1.2.1`.
#[derive(Debug, Clone)]
pub struct Version(pub Vec<u64>);

impl Version {
    /// The components as given.
    pub fn components(&self) -> &[u64] {
        &self.0
    }

    /// The components without trailing zeros: what comparison and hashing use.
    fn significant(&self) -> &[u64] {
        let len = self
            .0
            .iter()
            .rposition(|&c| c != 0)
            .map_or(0, |last| last + 1);
        &self.0[..len]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // Without trailing zeros, a proper prefix is the smaller version: the longer one has a
        // non-zero component where the shorter has an implicit 0.
        self.significant().cmp(other.significant())
    }
}

impl fmt::Display for Version {
    /// Components joined by `.`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, component) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{component}")?;
        }
        Ok(())
    }
}

/// Splits `raw` on `separator` into exactly `min..=max` decimal components.
/// `None` on empty components, anything but ASCII digits (no signs) or overflow.
fn components(raw: &str, separator: char, min: usize, max: usize) -> Option<Version> {
    let parts: Vec<&str> = raw.split(separator).collect();
    if parts.len() < min || parts.len() > max {
        return None;
    }
    parts
        .into_iter()
        .map(|part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                part.parse::<u64>().ok()
            }
        })
        .collect::<Option<Vec<u64>>>()
        .map(Version)
}

/// An `lsst_doc` version tag: `v?X.Y` or `v?X.Y.Z` (`v1.2`, `1.2.3`).
pub fn parse_semver_ref(git_ref: &str) -> Option<Version> {
    let raw = git_ref.strip_prefix('v').unwrap_or(git_ref);
    components(raw, '.', 2, 3)
}

/// An EUPS major release: the EUPS tag `vX_Y` or the git tag `X.Y`.
pub fn parse_eups_major(git_ref: &str) -> Option<Version> {
    match git_ref.strip_prefix('v') {
        Some(eups) => components(eups, '_', 2, 2),
        None => components(git_ref, '.', 2, 2),
    }
}

/// An EUPS weekly release: `w_YYYY_WW` or `w.YYYY.WW` (any number of digits per component).
pub fn parse_eups_weekly(git_ref: &str) -> Option<Version> {
    dated(git_ref, 'w', 2)
}

/// An EUPS daily release: `d_YYYY_MM_DD` or `d.YYYY.MM.DD` (any number of digits per component).
pub fn parse_eups_daily(git_ref: &str) -> Option<Version> {
    dated(git_ref, 'd', 3)
}

/// The version a release name carries, in any scheme a tracking mode reads: semver-like
/// `v?X(.Y(.Z(.W)))` (also a single number, `v2`), EUPS majors `vX_Y`, weeklies `w_YYYY_WW` and
/// dailies `d_YYYY_MM_DD` (or with dots). What dashboards and version lists order releases by,
/// newest first; `None` for branch and ticket names.
pub fn release_version(name: &str) -> Option<Version> {
    let dotted = name.strip_prefix('v').unwrap_or(name);
    components(dotted, '.', 1, 4)
        .or_else(|| parse_eups_major(name))
        .or_else(|| parse_eups_weekly(name))
        .or_else(|| parse_eups_daily(name))
}

/// `<letter>_N_N...` or `<letter>.N.N...` with exactly `count` components and one separator kind.
fn dated(git_ref: &str, letter: char, count: usize) -> Option<Version> {
    let rest = git_ref.strip_prefix(letter)?;
    let separator = rest.chars().next().filter(|c| matches!(c, '_' | '.'))?;
    components(&rest[1..], separator, count, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::hash_map::DefaultHasher;

    fn v(components: &[u64]) -> Version {
        Version(components.to_vec())
    }

    fn hash_of(version: &Version) -> u64 {
        let mut hasher = DefaultHasher::new();
        version.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn comparison_is_numeric() {
        assert!(v(&[1, 10]) > v(&[1, 9]));
        assert!(v(&[2]) > v(&[1, 99, 99]));
        assert!(v(&[1, 2, 10]) > v(&[1, 2, 9]));
        assert!(v(&[0, 0, 1]) > v(&[0]));
    }

    #[test]
    fn missing_trailing_components_are_zero() {
        assert_eq!(v(&[1, 2]), v(&[1, 2, 0]));
        assert_eq!(v(&[1, 2, 0, 0]).cmp(&v(&[1, 2])), Ordering::Equal);
        assert_eq!(hash_of(&v(&[1, 2])), hash_of(&v(&[1, 2, 0])));
        assert_eq!(v(&[]), v(&[0, 0]));
        assert!(v(&[1, 2]) < v(&[1, 2, 1]));
        assert!(v(&[1, 0, 5]) > v(&[1]));
        assert_ne!(v(&[1, 0, 2]), v(&[1, 2]));
    }

    #[test]
    fn display_keeps_the_given_components() {
        assert_eq!(v(&[1, 2, 0]).to_string(), "1.2.0");
        assert_eq!(v(&[2024, 5]).components(), &[2024, 5]);
    }

    #[test]
    fn release_names_carry_versions_in_every_scheme() {
        assert_eq!(release_version("v1.2.3"), Some(v(&[1, 2, 3])));
        assert_eq!(release_version("2"), Some(v(&[2])));
        assert_eq!(release_version("v12_0"), Some(v(&[12, 0])));
        assert_eq!(release_version("w_2024_05"), Some(v(&[2024, 5])));
        assert_eq!(release_version("d.2024.05.01"), Some(v(&[2024, 5, 1])));
        assert!(release_version("v1.10") > release_version("v1.9"));
        for draft in [
            "main",
            "DM-1234",
            "u-alice-fix",
            "1.2-rc1",
            "",
            "v",
            "1.2.3.4.5",
        ] {
            assert_eq!(release_version(draft), None, "{draft:?}");
        }
    }

    #[test]
    fn semver_refs() {
        assert_eq!(parse_semver_ref("v1.2"), Some(v(&[1, 2])));
        assert_eq!(parse_semver_ref("1.2.3"), Some(v(&[1, 2, 3])));
        assert_eq!(parse_semver_ref("v10.0.1"), Some(v(&[10, 0, 1])));
        assert_eq!(parse_semver_ref("v01.2").map(|v| v.0), Some(vec![1, 2]));
        for bad in [
            "",
            "v",
            "1",
            "v1",
            "1.2.3.4",
            "1..2",
            ".1.2",
            "1.2.",
            "vv1.2",
            "V1.2",
            "1.2a",
            "1.2-rc1",
            " 1.2",
            "1.2 ",
            "+1.2",
            "1.-2",
            "main",
            "v1_2",
            "1.99999999999999999999",
        ] {
            assert_eq!(parse_semver_ref(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn eups_major_refs() {
        assert_eq!(parse_eups_major("v12_0"), Some(v(&[12, 0])));
        assert_eq!(parse_eups_major("12.0"), Some(v(&[12, 0])));
        assert_eq!(parse_eups_major("v1_10"), Some(v(&[1, 10])));
        for bad in [
            "",
            "v12",
            "12",
            "v12_0_1",
            "12.0.1",
            "v12.0",
            "12_0",
            "v_12_0",
            "v12__0",
            "w_2024_05",
            "v12_0 ",
            "v12_x",
            "v18446744073709551616_0",
        ] {
            assert_eq!(parse_eups_major(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn eups_weekly_refs() {
        assert_eq!(parse_eups_weekly("w_2024_05"), Some(v(&[2024, 5])));
        assert_eq!(parse_eups_weekly("w.2024.52"), Some(v(&[2024, 52])));
        for bad in [
            "",
            "w",
            "w_",
            "w_2024",
            "w_2024_05_01",
            "w_2024.05",
            "w.2024_05",
            "W_2024_05",
            "w-2024-05",
            "w__2024_05",
            "w_2024_",
            "xw_2024_05",
            "w_2024_05x",
            "d_2024_05",
            "2024_05",
        ] {
            assert_eq!(parse_eups_weekly(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn eups_daily_refs() {
        assert_eq!(parse_eups_daily("d_2024_01_31"), Some(v(&[2024, 1, 31])));
        assert_eq!(parse_eups_daily("d.2024.12.01"), Some(v(&[2024, 12, 1])));
        for bad in [
            "",
            "d",
            "d_2024_01",
            "d_2024_01_31_1",
            "d_2024.01.31",
            "d.2024_01_31",
            "D_2024_01_31",
            "d_2024__31",
            "d_2024_01_3a",
            "w_2024_01_31",
            "d_é_1_1",
        ] {
            assert_eq!(parse_eups_daily(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn weekly_and_daily_order_by_date() {
        let earlier = parse_eups_weekly("w_2023_52").unwrap();
        let later = parse_eups_weekly("w.2024.1").unwrap();
        assert!(later > earlier);
        assert!(
            parse_eups_daily("d_2024_10_01").unwrap() > parse_eups_daily("d_2024_9_30").unwrap()
        );
    }

    proptest! {
        #[test]
        fn semver_refs_round_trip(parts in proptest::collection::vec(any::<u64>(), 2..=3), prefix in prop::sample::select(vec!["", "v"])) {
            let text = parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            let parsed = parse_semver_ref(&format!("{prefix}{text}"));
            prop_assert_eq!(parsed.map(|v| v.0), Some(parts));
        }

        #[test]
        fn eups_major_refs_round_trip(major in any::<u64>(), minor in any::<u64>()) {
            prop_assert_eq!(parse_eups_major(&format!("v{major}_{minor}")).map(|v| v.0), Some(vec![major, minor]));
            prop_assert_eq!(parse_eups_major(&format!("{major}.{minor}")).map(|v| v.0), Some(vec![major, minor]));
        }

        #[test]
        fn eups_weekly_refs_round_trip(year in any::<u64>(), week in any::<u64>()) {
            prop_assert_eq!(parse_eups_weekly(&format!("w_{year}_{week:02}")).map(|v| v.0), Some(vec![year, week]));
            prop_assert_eq!(parse_eups_weekly(&format!("w.{year}.{week}")).map(|v| v.0), Some(vec![year, week]));
        }

        #[test]
        fn eups_daily_refs_round_trip(year in any::<u64>(), month in any::<u64>(), day in any::<u64>()) {
            prop_assert_eq!(parse_eups_daily(&format!("d_{year}_{month:02}_{day:02}")).map(|v| v.0), Some(vec![year, month, day]));
            prop_assert_eq!(parse_eups_daily(&format!("d.{year}.{month}.{day}")).map(|v| v.0), Some(vec![year, month, day]));
        }

        #[test]
        fn ordering_agrees_with_tuple_ordering(
            a in proptest::collection::vec(0u64..20, 3),
            b in proptest::collection::vec(0u64..20, 3),
        ) {
            prop_assert_eq!(Version(a.clone()).cmp(&Version(b.clone())), a.cmp(&b));
            prop_assert_eq!(Version(a.clone()) == Version(b.clone()), a == b);
            let daily = |t: &[u64]| parse_eups_daily(&format!("d_{}_{}_{}", t[0], t[1], t[2]));
            prop_assert_eq!(daily(&a).cmp(&daily(&b)), a.cmp(&b));
            let semver = |t: &[u64]| parse_semver_ref(&format!("v{}.{}.{}", t[0], t[1], t[2]));
            prop_assert_eq!(semver(&a).cmp(&semver(&b)), a.cmp(&b));
        }

        #[test]
        fn trailing_zeros_never_change_order(
            a in proptest::collection::vec(0u64..5, 0..4),
            b in proptest::collection::vec(0u64..5, 0..4),
            zeros in 0usize..3,
        ) {
            let mut padded = a.clone();
            padded.resize(a.len() + zeros, 0);
            prop_assert_eq!(Version(padded.clone()).cmp(&Version(b.clone())), Version(a.clone()).cmp(&Version(b.clone())));
            prop_assert_eq!(Version(padded), Version(a));
        }

        #[test]
        fn parsers_never_panic(raw in "\\PC{0,20}") {
            let _ = (parse_semver_ref(&raw), parse_eups_major(&raw), parse_eups_weekly(&raw), parse_eups_daily(&raw));
        }
    }
}
