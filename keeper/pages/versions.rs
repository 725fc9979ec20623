//! A product's editions as the version lists documentation themes read, in the order of
//! [`super::dashboard::ordered`], listing only editions that have a build (a link to an edition
//! without one would be a 404):
//!
//! - `v/switcher.json`, pydata-sphinx-theme's version switcher: `[{"name", "version", "url",
//!   "preferred"}]`; `version` is the edition's slug (what a build sets `version_match` to),
//!   `url` its published URL with the trailing `/`, `preferred` true for the default edition only.
//! - `v/versions.json`, mike's (MkDocs Material's version selector): `[{"version", "title",
//!   "aliases"}]`; the selector links `../<version>/`, the edition's `v/<slug>/` URL; the
//!   default edition carries the alias `latest`.

use serde::Serialize;

use super::dashboard::EditionView;
use crate::domain::EditionKind;

/// One entry of pydata-sphinx-theme's `switcher.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitcherEntry {
    pub name: String,
    pub version: String,
    pub url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preferred: bool,
}

/// One entry of mike's `versions.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MikeVersion {
    pub version: String,
    pub title: String,
    pub aliases: Vec<String>,
}

/// The alias mike's list gives the default edition.
pub const DEFAULT_ALIAS: &str = "latest";

fn readable(editions: &[EditionView]) -> impl Iterator<Item = &EditionView> {
    editions.iter().filter(|edition| edition.build.is_some())
}

/// pydata-sphinx-theme's switcher entries of `editions` (already ordered).
pub fn switcher(editions: &[EditionView]) -> Vec<SwitcherEntry> {
    readable(editions)
        .map(|edition| SwitcherEntry {
            name: edition.title.clone(),
            version: edition.slug.clone(),
            url: format!("{}/", edition.url),
            preferred: edition.kind == EditionKind::Main,
        })
        .collect()
}

/// mike's version entries of `editions` (already ordered).
pub fn mike_versions(editions: &[EditionView]) -> Vec<MikeVersion> {
    readable(editions)
        .map(|edition| MikeVersion {
            version: edition.slug.clone(),
            title: edition.title.clone(),
            aliases: if edition.kind == EditionKind::Main {
                vec![DEFAULT_ALIAS.to_owned()]
            } else {
                Vec::new()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TrackingMode;
    use crate::pages::dashboard::ordered;
    use crate::pages::dashboard::tests::edition;

    fn editions() -> Vec<EditionView> {
        let mut main = edition("__main", TrackingMode::GitRefs, &["main"], 3);
        main.title = "Latest".into();
        main.url = "https://example.org/docs/demo".into();
        let mut unbuilt = edition("DM-1", TrackingMode::GitRefs, &["tickets/DM-1"], 1);
        unbuilt.build = None;
        ordered(vec![
            edition("v1.0", TrackingMode::GitRefs, &["v1.0"], 1),
            unbuilt,
            main,
            edition("v2.0", TrackingMode::GitRefs, &["v2.0"], 2),
        ])
    }

    #[test]
    fn the_switcher_lists_readable_editions_with_the_default_preferred() {
        let json = serde_json::to_value(switcher(&editions())).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "Latest", "version": "__main", "url": "https://example.org/docs/demo/",
                 "preferred": true},
                {"name": "v2.0", "version": "v2.0", "url": "https://example.org/docs/demo/v/v2.0/"},
                {"name": "v1.0", "version": "v1.0", "url": "https://example.org/docs/demo/v/v1.0/"},
            ])
        );
    }

    #[test]
    fn mikes_list_names_slugs_with_the_default_aliased() {
        let json = serde_json::to_value(mike_versions(&editions())).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"version": "__main", "title": "Latest", "aliases": ["latest"]},
                {"version": "v2.0", "title": "v2.0", "aliases": []},
                {"version": "v1.0", "title": "v1.0", "aliases": []},
            ])
        );
    }
}
