//! Tracking modes (which confirmed build an edition shows) and edition kinds.

use super::error::{shown, string_conversions, DomainError};
use super::slugs::EditionSlug;
use super::versions::{
    parse_eups_daily, parse_eups_major, parse_eups_weekly, parse_semver_ref, Version,
};

/// How an edition picks up newly confirmed builds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum TrackingMode {
    /// The build's ref list equals the tracked refs (the default).
    #[default]
    GitRefs,
    /// The build's first ref equals the first tracked ref.
    GitRef,
    /// Never: only an explicit `build_url` changes the edition.
    Manual,
    /// `main`/`master` until the first version tag `v?X.Y(.Z)?`, then the newest version.
    LsstDoc,
    /// The newest `vX_Y` / `X.Y` release.
    EupsMajorRelease,
    /// The newest `w_YYYY_WW` / `w.YYYY.WW` release.
    EupsWeeklyRelease,
    /// The newest `d_YYYY_MM_DD` / `d.YYYY.MM.DD` release.
    EupsDailyRelease,
}

impl TrackingMode {
    /// Every mode, in the order of the API documentation.
    pub const ALL: [Self; 7] = [
        Self::GitRefs,
        Self::GitRef,
        Self::Manual,
        Self::LsstDoc,
        Self::EupsMajorRelease,
        Self::EupsWeeklyRelease,
        Self::EupsDailyRelease,
    ];

    /// The wire name, e.g. `git_refs`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::GitRefs => "git_refs",
            Self::GitRef => "git_ref",
            Self::Manual => "manual",
            Self::LsstDoc => "lsst_doc",
            Self::EupsMajorRelease => "eups_major_release",
            Self::EupsWeeklyRelease => "eups_weekly_release",
            Self::EupsDailyRelease => "eups_daily_release",
        }
    }

    /// Parses a wire name; the error lists the valid ones.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(Self::as_str).collect();
                DomainError::new(
                    "mode",
                    format!(
                        "unknown tracking mode {}: use one of {}",
                        shown(raw),
                        names.join(", ")
                    ),
                )
            })
    }
}
string_conversions!(TrackingMode);

/// Whether a newly confirmed build should become the edition's build.
///
/// The caller guarantees that the candidate belongs to the edition's product, is uploaded and is
/// not deprecated. `current_build_refs` are the refs of the edition's current build, if any. A
/// build's "ref" is its first git ref; an empty list has none and matches nothing (also in
/// `git_refs` mode, where an edition tracking no refs takes no build).
pub fn edition_accepts(
    mode: TrackingMode,
    tracked_refs: &[String],
    current_build_refs: Option<&[String]>,
    candidate_refs: &[String],
) -> bool {
    let candidate = candidate_refs.first().map(String::as_str);
    let current = current_build_refs
        .and_then(|refs| refs.first())
        .map(String::as_str);
    match mode {
        TrackingMode::GitRefs => !tracked_refs.is_empty() && candidate_refs == tracked_refs,
        TrackingMode::GitRef => {
            candidate.is_some() && candidate == tracked_refs.first().map(String::as_str)
        }
        TrackingMode::Manual => false,
        TrackingMode::LsstDoc => match candidate {
            // The edition follows the main branch until it shows a version.
            Some(branch) if is_main_branch(branch) => current.and_then(parse_semver_ref).is_none(),
            _ => newest_version_accepts(parse_semver_ref, current, candidate),
        },
        TrackingMode::EupsMajorRelease => {
            newest_version_accepts(parse_eups_major, current, candidate)
        }
        TrackingMode::EupsWeeklyRelease => {
            newest_version_accepts(parse_eups_weekly, current, candidate)
        }
        TrackingMode::EupsDailyRelease => {
            newest_version_accepts(parse_eups_daily, current, candidate)
        }
    }
}

/// `main` or `master`.
fn is_main_branch(git_ref: &str) -> bool {
    matches!(git_ref, "main" | "master")
}

/// A candidate that parses in the scheme replaces a current build that does not, or one whose
/// version is not newer (`>=` lets the same version be re-published).
fn newest_version_accepts(
    parse: fn(&str) -> Option<Version>,
    current: Option<&str>,
    candidate: Option<&str>,
) -> bool {
    let Some(candidate) = candidate.and_then(parse) else {
        return false;
    };
    match current.and_then(parse) {
        Some(current) => candidate >= current,
        None => true,
    }
}

/// What an edition shows, derived from its slug and tracked refs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum EditionKind {
    /// The default edition (`__main`).
    Main,
    /// A release: `X.Y.Z`.
    Release,
    /// A minor version: `X.Y`.
    Minor,
    /// A major version: `X`.
    Major,
    /// Anything else (branches, tickets).
    Draft,
}

impl EditionKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Main,
        Self::Release,
        Self::Minor,
        Self::Major,
        Self::Draft,
    ];

    /// The wire name, e.g. `release`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Release => "release",
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Draft => "draft",
        }
    }

    /// Parses a wire name; the error lists the valid ones.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(Self::as_str).collect();
                DomainError::new(
                    "kind",
                    format!(
                        "unknown edition kind {}: use one of {}",
                        shown(raw),
                        names.join(", ")
                    ),
                )
            })
    }
}
string_conversions!(EditionKind);

/// The kind of an edition: `__main` is Main; otherwise the first ref, with an optional leading
/// `v`, decides: `X.Y.Z` release, `X.Y` minor, `X` major, anything else (or no ref) draft.
pub fn edition_kind(slug: &EditionSlug, refs: &[String]) -> EditionKind {
    if slug.is_main() {
        return EditionKind::Main;
    }
    let Some(first) = refs.first() else {
        return EditionKind::Draft;
    };
    let version = first.strip_prefix('v').unwrap_or(first);
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !version.split('.').all(numeric) {
        return EditionKind::Draft;
    }
    match version.split('.').count() {
        1 => EditionKind::Major,
        2 => EditionKind::Minor,
        3 => EditionKind::Release,
        _ => EditionKind::Draft,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TrackingMode::*;

    fn refs(list: &[&str]) -> Vec<String> {
        list.iter().map(|r| (*r).to_owned()).collect()
    }

    /// `edition_accepts` with string literals; `current` is `None` for an edition without a build.
    fn accepts(
        mode: TrackingMode,
        tracked: &[&str],
        current: Option<&[&str]>,
        candidate: &[&str],
    ) -> bool {
        let current = current.map(refs);
        edition_accepts(mode, &refs(tracked), current.as_deref(), &refs(candidate))
    }

    #[test]
    fn modes_have_their_wire_names() {
        let names: Vec<&str> = TrackingMode::ALL.iter().map(TrackingMode::as_str).collect();
        assert_eq!(
            names,
            [
                "git_refs",
                "git_ref",
                "manual",
                "lsst_doc",
                "eups_major_release",
                "eups_weekly_release",
                "eups_daily_release"
            ]
        );
        for mode in TrackingMode::ALL {
            assert_eq!(TrackingMode::parse(mode.as_str()), Ok(mode));
            assert_eq!(mode.to_string().parse::<TrackingMode>(), Ok(mode));
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
            assert_eq!(serde_json::from_str::<TrackingMode>(&json).unwrap(), mode);
        }
        assert_eq!(TrackingMode::default(), GitRefs);
    }

    #[test]
    fn unknown_mode_lists_the_valid_names() {
        for bad in ["", "GitRefs", "git-refs", "Manual", "eups_major"] {
            let err = TrackingMode::parse(bad).expect_err(bad);
            assert_eq!(err.field, "mode");
            for mode in TrackingMode::ALL {
                assert!(err.message.contains(mode.as_str()), "{}", err.message);
            }
        }
        let err = serde_json::from_str::<TrackingMode>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("lsst_doc"), "{err}");
    }

    #[test]
    fn git_refs_needs_the_same_list_in_the_same_order() {
        assert!(accepts(GitRefs, &["main"], None, &["main"]));
        assert!(accepts(
            GitRefs,
            &["a", "b"],
            Some(&["a", "b"]),
            &["a", "b"]
        ));
        assert!(!accepts(GitRefs, &["a", "b"], None, &["b", "a"]));
        assert!(!accepts(GitRefs, &["a", "b"], None, &["a"]));
        assert!(!accepts(GitRefs, &["a"], None, &["a", "b"]));
        assert!(!accepts(GitRefs, &["main"], None, &["Main"]));
        assert!(!accepts(GitRefs, &[], None, &[]));
        assert!(!accepts(GitRefs, &[], None, &["main"]));
        assert!(!accepts(GitRefs, &["main"], None, &[]));
    }

    #[test]
    fn git_ref_compares_the_first_ref_only() {
        assert!(accepts(GitRef, &["main"], None, &["main"]));
        assert!(accepts(
            GitRef,
            &["main"],
            Some(&["main"]),
            &["main", "extra"]
        ));
        assert!(accepts(GitRef, &["main", "ignored"], None, &["main"]));
        assert!(!accepts(GitRef, &["main"], None, &["extra", "main"]));
        assert!(!accepts(GitRef, &["main"], None, &[]));
        assert!(!accepts(GitRef, &[], None, &["main"]));
        assert!(!accepts(GitRef, &[], None, &[]));
    }

    #[test]
    fn manual_never_accepts() {
        assert!(!accepts(Manual, &["main"], None, &["main"]));
        assert!(!accepts(Manual, &["v1.0"], Some(&["v0.9"]), &["v1.0"]));
        assert!(!accepts(Manual, &[], None, &[]));
    }

    #[test]
    fn lsst_doc_follows_main_until_a_version_appears() {
        for branch in ["main", "master"] {
            assert!(
                accepts(LsstDoc, &[], None, &[branch]),
                "{branch} on an empty edition"
            );
            assert!(accepts(LsstDoc, &[], Some(&["main"]), &[branch]));
            assert!(accepts(LsstDoc, &[], Some(&["master"]), &[branch]));
            assert!(
                accepts(LsstDoc, &[], Some(&["feature/x"]), &[branch]),
                "current is not a version"
            );
            assert!(
                accepts(LsstDoc, &[], Some(&[]), &[branch]),
                "current has no ref"
            );
            assert!(
                !accepts(LsstDoc, &[], Some(&["v1.0"]), &[branch]),
                "{branch} after a version"
            );
            assert!(!accepts(LsstDoc, &[], Some(&["2.3.4"]), &[branch]));
        }
    }

    #[test]
    fn lsst_doc_takes_the_newest_version() {
        assert!(accepts(LsstDoc, &[], None, &["v1.0"]));
        assert!(accepts(LsstDoc, &[], Some(&["main"]), &["v1.0"]));
        assert!(accepts(LsstDoc, &[], Some(&["v1.0"]), &["v1.1"]));
        assert!(
            accepts(LsstDoc, &[], Some(&["v1.0"]), &["v1.0"]),
            "re-publishing the same version"
        );
        assert!(
            accepts(LsstDoc, &[], Some(&["v1.0"]), &["1.0.0"]),
            "1.0 == 1.0.0"
        );
        assert!(
            accepts(LsstDoc, &[], Some(&["v1.9"]), &["v1.10"]),
            "numeric, not text order"
        );
        assert!(!accepts(LsstDoc, &[], Some(&["v1.10"]), &["v1.9"]));
        assert!(!accepts(LsstDoc, &[], Some(&["v2.0.1"]), &["v2.0"]));
        assert!(accepts(LsstDoc, &[], Some(&["v2.0"]), &["v2.0.1"]));
    }

    #[test]
    fn lsst_doc_ignores_other_refs() {
        for junk in [
            "feature/x",
            "v1",
            "v1.2.3.4",
            "tickets/DM-1",
            "Main",
            "v1.2-rc1",
            "",
        ] {
            assert!(!accepts(LsstDoc, &[], None, &[junk]), "{junk}");
            assert!(!accepts(LsstDoc, &[], Some(&["main"]), &[junk]), "{junk}");
        }
        assert!(!accepts(LsstDoc, &[], None, &[]));
        assert!(
            !accepts(LsstDoc, &[], None, &["feature", "main"]),
            "only the first ref counts"
        );
    }

    #[test]
    fn eups_major_release_takes_the_newest_release() {
        assert!(accepts(EupsMajorRelease, &[], None, &["v12_0"]));
        assert!(accepts(EupsMajorRelease, &[], None, &["12.0"]));
        assert!(accepts(EupsMajorRelease, &[], Some(&["main"]), &["v12_0"]));
        assert!(accepts(EupsMajorRelease, &[], Some(&["v11_0"]), &["v12_0"]));
        assert!(
            accepts(EupsMajorRelease, &[], Some(&["v12_0"]), &["12.0"]),
            "same version, other spelling"
        );
        assert!(accepts(EupsMajorRelease, &[], Some(&["v9_9"]), &["v9_10"]));
        assert!(!accepts(EupsMajorRelease, &[], Some(&["v9_10"]), &["v9_9"]));
        assert!(!accepts(EupsMajorRelease, &[], Some(&["13.0"]), &["v12_0"]));
        for junk in ["main", "v12", "v12_0_1", "12_0", "w_2024_05", ""] {
            assert!(!accepts(EupsMajorRelease, &[], None, &[junk]), "{junk}");
        }
        assert!(!accepts(EupsMajorRelease, &[], None, &[]));
    }

    #[test]
    fn eups_weekly_release_takes_the_newest_week() {
        assert!(accepts(EupsWeeklyRelease, &[], None, &["w_2024_05"]));
        assert!(accepts(
            EupsWeeklyRelease,
            &[],
            Some(&["w_2024_05"]),
            &["w.2024.06"]
        ));
        assert!(accepts(
            EupsWeeklyRelease,
            &[],
            Some(&["w_2023_52"]),
            &["w_2024_1"]
        ));
        assert!(accepts(
            EupsWeeklyRelease,
            &[],
            Some(&["w_2024_05"]),
            &["w_2024_05"]
        ));
        assert!(accepts(
            EupsWeeklyRelease,
            &[],
            Some(&["w_2024_9"]),
            &["w_2024_10"]
        ));
        assert!(
            accepts(EupsWeeklyRelease, &[], Some(&["v12_0"]), &["w_2024_05"]),
            "current is not a weekly"
        );
        assert!(!accepts(
            EupsWeeklyRelease,
            &[],
            Some(&["w_2024_10"]),
            &["w_2024_9"]
        ));
        for junk in ["main", "d_2024_01_01", "w_2024", "w_2024.05", "v12_0"] {
            assert!(
                !accepts(EupsWeeklyRelease, &[], Some(&["w_2024_05"]), &[junk]),
                "{junk}"
            );
            assert!(!accepts(EupsWeeklyRelease, &[], None, &[junk]), "{junk}");
        }
    }

    #[test]
    fn eups_daily_release_takes_the_newest_day() {
        assert!(accepts(EupsDailyRelease, &[], None, &["d_2024_01_31"]));
        assert!(accepts(
            EupsDailyRelease,
            &[],
            Some(&["d_2024_01_31"]),
            &["d.2024.02.01"]
        ));
        assert!(accepts(
            EupsDailyRelease,
            &[],
            Some(&["d_2024_01_31"]),
            &["d_2024_01_31"]
        ));
        assert!(accepts(
            EupsDailyRelease,
            &[],
            Some(&["d_2024_9_30"]),
            &["d_2024_10_01"]
        ));
        assert!(!accepts(
            EupsDailyRelease,
            &[],
            Some(&["d_2024_10_01"]),
            &["d_2024_9_30"]
        ));
        assert!(accepts(
            EupsDailyRelease,
            &[],
            Some(&["master"]),
            &["d_2024_01_31"]
        ));
        for junk in ["main", "w_2024_05", "d_2024_01", "d_2024_01_31_2"] {
            assert!(!accepts(EupsDailyRelease, &[], None, &[junk]), "{junk}");
        }
    }

    #[test]
    fn tracked_refs_do_not_matter_for_version_modes() {
        for mode in [
            LsstDoc,
            EupsMajorRelease,
            EupsWeeklyRelease,
            EupsDailyRelease,
        ] {
            let candidate = match mode {
                LsstDoc => "v1.0",
                EupsMajorRelease => "v1_0",
                EupsWeeklyRelease => "w_2024_01",
                _ => "d_2024_01_01",
            };
            assert!(
                accepts(mode, &["something-else"], None, &[candidate]),
                "{mode}"
            );
            assert!(accepts(mode, &[], None, &[candidate]), "{mode}");
        }
    }

    #[test]
    fn kinds_have_their_wire_names() {
        let names: Vec<&str> = EditionKind::ALL.iter().map(EditionKind::as_str).collect();
        assert_eq!(names, ["main", "release", "minor", "major", "draft"]);
        for kind in EditionKind::ALL {
            assert_eq!(kind.as_str().parse::<EditionKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        let err = EditionKind::parse("Release").unwrap_err();
        assert!(
            err.message.contains("release, minor, major, draft"),
            "{}",
            err.message
        );
    }

    #[test]
    fn edition_kind_from_slug_and_refs() {
        let slug = EditionSlug::parse("anything").unwrap();
        let cases: [(&[&str], EditionKind); 14] = [
            (&["v1.2.3"], EditionKind::Release),
            (&["1.2.3"], EditionKind::Release),
            (&["v1.2"], EditionKind::Minor),
            (&["1.10"], EditionKind::Minor),
            (&["v1"], EditionKind::Major),
            (&["23"], EditionKind::Major),
            (&["v1.2.3.4"], EditionKind::Draft),
            (&["main"], EditionKind::Draft),
            (&["v"], EditionKind::Draft),
            (&["v1.2."], EditionKind::Draft),
            (&["vv1"], EditionKind::Draft),
            (&["v12_0"], EditionKind::Draft),
            (&["tickets/DM-1", "1.0"], EditionKind::Draft),
            (&[], EditionKind::Draft),
        ];
        for (input, expected) in cases {
            assert_eq!(edition_kind(&slug, &refs(input)), expected, "{input:?}");
        }
    }

    #[test]
    fn main_slug_is_always_main_kind() {
        for input in [&["v1.2.3"][..], &["main"], &[]] {
            assert_eq!(
                edition_kind(&EditionSlug::main(), &refs(input)),
                EditionKind::Main
            );
        }
    }

    fn format_for(mode: TrackingMode, version: &[u64]) -> String {
        match mode {
            LsstDoc => format!("v{}.{}.{}", version[0], version[1], version[2]),
            EupsMajorRelease => format!("v{}_{}", version[0], version[1]),
            EupsWeeklyRelease => format!("w_{}_{:02}", version[0], version[1]),
            _ => format!("d.{}.{:02}.{:02}", version[0], version[1], version[2]),
        }
    }

    proptest! {
        #[test]
        fn version_modes_agree_with_numeric_order(
            mode in prop::sample::select(vec![LsstDoc, EupsMajorRelease, EupsWeeklyRelease, EupsDailyRelease]),
            current in proptest::collection::vec(0u64..12, 3),
            candidate in proptest::collection::vec(0u64..12, 3),
        ) {
            let significant = if matches!(mode, EupsMajorRelease | EupsWeeklyRelease) { 2 } else { 3 };
            let expected = candidate[..significant] >= current[..significant];
            let current_refs = vec![format_for(mode, &current)];
            let candidate_refs = vec![format_for(mode, &candidate)];
            prop_assert_eq!(
                edition_accepts(mode, &[], Some(&current_refs), &candidate_refs),
                expected,
                "{} -> {}", current_refs[0], candidate_refs[0]
            );
            // Without a current build any well-formed candidate is taken.
            prop_assert!(edition_accepts(mode, &[], None, &candidate_refs));
        }

        #[test]
        fn version_modes_reject_refs_of_no_scheme(
            mode in prop::sample::select(vec![LsstDoc, EupsMajorRelease, EupsWeeklyRelease, EupsDailyRelease]),
            junk in "[a-z/_-]{1,12}",
        ) {
            prop_assume!(!is_main_branch(&junk));
            prop_assert!(!edition_accepts(mode, &[], None, std::slice::from_ref(&junk)));
        }

        #[test]
        fn edition_kind_matches_the_number_of_components(
            parts in proptest::collection::vec(0u64..1000, 1..5),
            v in any::<bool>(),
        ) {
            let text = parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            let git_ref = if v { format!("v{text}") } else { text };
            let slug = EditionSlug::parse("e").unwrap();
            let expected = match parts.len() {
                1 => EditionKind::Major,
                2 => EditionKind::Minor,
                3 => EditionKind::Release,
                _ => EditionKind::Draft,
            };
            prop_assert_eq!(edition_kind(&slug, &[git_ref]), expected);
        }
    }
}
