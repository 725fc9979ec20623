//! A product's dashboards: the editions page (`<product>/v/index.html`) and the builds page
//! (`<product>/builds/index.html`), and the order editions are listed in everywhere readers see
//! them (also [`super::versions`]).
//!
//! Order: the default edition first; then releases, newest version first, compared
//! numerically in whichever scheme their name uses ([`release_version`]: semver-like, `lsst_doc`,
//! EUPS majors, weeklies and dailies); then everything else (branches, tickets) by last update,
//! newest first. Pages link relatively (`../`, `./<edition>/`), so they work under every layout
//! and behind any CDN.

use std::cmp::Ordering;

use chrono::{NaiveDateTime, TimeDelta};

use super::{escape, format_date, page};
use crate::domain::{release_version, EditionKind, TrackingMode, Version};

/// A branch or ticket edition not rebuilt for this long is marked stale.
pub const STALE_AFTER_DAYS: i64 = 90;
/// The builds page lists at most this many, newest first, and says how many more there are.
pub const MAX_LISTED_BUILDS: usize = 2_000;

/// The product a dashboard is of.
#[derive(Debug, Clone)]
pub struct ProductView {
    pub slug: String,
    pub title: String,
    /// Its published URL (the default edition's), without the trailing `/`.
    pub url: String,
    pub doc_repo: String,
    /// Whether its default edition shows a build (else its URL is a 404, not linked).
    pub published: bool,
}

/// A build as the dashboards show it.
#[derive(Debug, Clone)]
pub struct BuildView {
    pub slug: String,
    pub git_refs: Vec<String>,
    pub github_requester: Option<String>,
    pub date_created: NaiveDateTime,
    pub deprecated: bool,
}

/// A live edition as the dashboards show it.
#[derive(Debug, Clone)]
pub struct EditionView {
    pub slug: String,
    pub title: String,
    /// Its published URL, without the trailing `/`.
    pub url: String,
    pub kind: EditionKind,
    pub mode: TrackingMode,
    pub tracked_refs: Vec<String>,
    /// What it shows now; `None` before its first rebuild.
    pub build: Option<BuildView>,
    pub date_created: NaiveDateTime,
    pub date_rebuilt: Option<NaiveDateTime>,
}

impl EditionView {
    /// The version it is listed by, if it is a release: from its slug, else the ref it tracks
    /// (`git_refs`, `git_ref`), else the ref of the build it shows (the version-tracking modes).
    fn version(&self) -> Option<Version> {
        release_version(&self.slug).or_else(|| {
            let from = match self.mode {
                TrackingMode::GitRefs | TrackingMode::GitRef => self.tracked_refs.first(),
                _ => self.build.as_ref().and_then(|build| build.git_refs.first()),
            };
            from.and_then(|name| release_version(name))
        })
    }

    fn last_update(&self) -> NaiveDateTime {
        self.date_rebuilt.unwrap_or(self.date_created)
    }

    /// Whether it stopped following new builds: pinned (`manual`), or a branch or ticket edition
    /// not rebuilt for [`STALE_AFTER_DAYS`]. Releases are expected to stand still.
    pub fn mark(&self, now: NaiveDateTime) -> Option<String> {
        if self.kind == EditionKind::Main {
            return None;
        }
        if self.mode == TrackingMode::Manual {
            return Some("pinned: not updated by new builds".to_owned());
        }
        let stale = now - self.last_update() > TimeDelta::days(STALE_AFTER_DAYS);
        (stale && self.version().is_none())
            .then(|| format!("not updated since {}", format_date(self.last_update())))
    }
}

/// `editions` in the order readers see them (see the module's documentation).
pub fn ordered(mut editions: Vec<EditionView>) -> Vec<EditionView> {
    editions.sort_by_cached_key(|edition| SortKey {
        main: edition.kind != EditionKind::Main,
        version: edition.version(),
        updated: edition.last_update(),
        slug: edition.slug.clone(),
    });
    editions
}

/// The default edition, then versions (newest first), then the rest by last update.
#[derive(PartialEq, Eq)]
struct SortKey {
    main: bool,
    version: Option<Version>,
    updated: NaiveDateTime,
    slug: String,
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.main
            .cmp(&other.main)
            .then_with(|| match (&self.version, &other.version) {
                (Some(mine), Some(theirs)) => theirs.cmp(mine),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => other.updated.cmp(&self.updated),
            })
            .then_with(|| self.slug.cmp(&other.slug))
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn refs(refs: &[String]) -> String {
    refs.iter()
        .map(|r| format!("<code>{}</code>", escape(r)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn header(product: &ProductView, heading: &str) -> String {
    let repo =
        if product.doc_repo.starts_with("https://") || product.doc_repo.starts_with("http://") {
            format!(" <a href=\"{}\">source</a>", escape(&product.doc_repo))
        } else {
            String::new()
        };
    let default = if product.published {
        "<a href=\"../\">Default edition</a>"
    } else {
        ""
    };
    format!(
        "<header>\n<p class=\"muted\">{}</p>\n<h1>{}</h1>\n<nav>{default}\
         <a href=\"../v/\">Editions</a><a href=\"../builds/\">Builds</a>{repo}</nav>\n</header>",
        escape(&product.title),
        escape(heading),
    )
}

fn footer(now: NaiveDateTime) -> String {
    format!(
        "<footer>Rendered by ltd-keeper at {}. Versions as JSON: \
         <a href=\"../v/switcher.json\">switcher.json</a> (pydata-sphinx-theme), \
         <a href=\"../v/versions.json\">versions.json</a> (mike).</footer>",
        format_date(now)
    )
}

/// `v/index.html`: every live edition, in [`ordered`] order.
pub fn editions_page(
    product: &ProductView,
    editions: &[EditionView],
    now: NaiveDateTime,
) -> String {
    let mut items = String::new();
    for edition in editions {
        let link = if edition.kind == EditionKind::Main {
            "../".to_owned()
        } else {
            format!("./{}/", escape(&edition.slug))
        };
        let title = match &edition.build {
            Some(_) => format!(
                "<a class=\"title\" href=\"{link}\">{}</a>",
                escape(&edition.title)
            ),
            None => format!("<span class=\"title\">{}</span>", escape(&edition.title)),
        };
        let mut tags = String::new();
        if edition.kind == EditionKind::Main {
            tags.push_str("<span class=\"tag\">default</span>");
        }
        if let Some(mark) = edition.mark(now) {
            tags.push_str(&format!(
                "<span class=\"tag warn\">{}</span>",
                escape(&mark)
            ));
        }
        let shows = match &edition.build {
            Some(build) => format!(
                "build <a href=\"../builds/{slug}/\">{slug}</a> {refs}",
                slug = escape(&build.slug),
                refs = refs(&build.git_refs),
            ),
            None => "no build yet".to_owned(),
        };
        let rebuilt = edition
            .date_rebuilt
            .map(|date| format!(" · updated {}", format_date(date)))
            .unwrap_or_default();
        let tracking = if edition.tracked_refs.is_empty() {
            format!("mode <code>{}</code>", edition.mode.as_str())
        } else {
            format!(
                "mode <code>{}</code> tracking {}",
                edition.mode.as_str(),
                refs(&edition.tracked_refs)
            )
        };
        items.push_str(&format!(
            "<li id=\"edition-{anchor}\">{title}{tags}<p class=\"meta\"><code>{slug}</code> · \
             {shows}{rebuilt}</p><p class=\"meta\">{tracking}</p></li>\n",
            anchor = escape(&edition.slug),
            slug = escape(&edition.slug),
        ));
    }
    let summary = if product.published {
        format!(
            "{} editions. The default edition is at <a href=\"../\">{}</a>.",
            editions.len(),
            escape(&product.url)
        )
    } else {
        format!(
            "{} editions. Nothing is published yet: the default edition is at {} once a build \
             of its tracked branch is confirmed.",
            editions.len(),
            escape(&product.url)
        )
    };
    let body = format!(
        "{}\n<main>\n<p class=\"muted\">{summary}</p>\n<ul class=\"cards\">\n{items}</ul>\n\
         </main>\n{}",
        header(product, "Editions"),
        footer(now),
    );
    page(&format!("{} editions", product.title), &body)
}

/// `builds/index.html`: the newest [`MAX_LISTED_BUILDS`] of `builds`, newest first, and how
/// many of the product's `total` confirmed builds are not listed.
pub fn builds_page(
    product: &ProductView,
    builds: &[BuildView],
    total: usize,
    now: NaiveDateTime,
) -> String {
    let mut sorted: Vec<&BuildView> = builds.iter().collect();
    sorted.sort_by(|a, b| {
        b.date_created
            .cmp(&a.date_created)
            .then_with(|| b.slug.cmp(&a.slug))
    });
    let mut items = String::new();
    for build in sorted.iter().take(MAX_LISTED_BUILDS) {
        let slug = escape(&build.slug);
        let title = if build.deprecated {
            format!("<span class=\"title\">{slug}</span><span class=\"tag warn\">deprecated</span>")
        } else {
            format!("<a class=\"title\" href=\"./{slug}/\">{slug}</a>")
        };
        let requester = build
            .github_requester
            .as_deref()
            .map(|who| format!(" · by {}", escape(who)))
            .unwrap_or_default();
        items.push_str(&format!(
            "<li id=\"build-{slug}\">{title}<p class=\"meta\">{} · {}{requester}</p></li>\n",
            format_date(build.date_created),
            refs(&build.git_refs),
        ));
    }
    let more = total.saturating_sub(sorted.len().min(MAX_LISTED_BUILDS));
    let more = if more > 0 {
        format!("<p class=\"muted\">{more} older builds are not listed.</p>\n")
    } else {
        String::new()
    };
    let body = format!(
        "{}\n<main>\n<p class=\"muted\">{} builds, newest first.</p>\n<ul class=\"cards\">\n\
         {items}</ul>\n{more}</main>\n{}",
        header(product, "Builds"),
        total,
        footer(now),
    );
    page(&format!("{} builds", product.title), &body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn at(days: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_700_000_000 + days * 86_400, 0)
            .unwrap()
            .naive_utc()
    }

    pub(crate) fn build(slug: &str, refs: &[&str], day: i64) -> BuildView {
        BuildView {
            slug: slug.into(),
            git_refs: refs.iter().map(|r| r.to_string()).collect(),
            github_requester: None,
            date_created: at(day),
            deprecated: false,
        }
    }

    pub(crate) fn edition(slug: &str, mode: TrackingMode, refs: &[&str], day: i64) -> EditionView {
        let kind = if slug == "__main" {
            EditionKind::Main
        } else {
            EditionKind::Draft
        };
        EditionView {
            slug: slug.into(),
            title: slug.into(),
            url: format!("https://example.org/docs/demo/v/{slug}"),
            kind,
            mode,
            tracked_refs: refs.iter().map(|r| r.to_string()).collect(),
            build: Some(build("1", refs, day)),
            date_created: at(0),
            date_rebuilt: Some(at(day)),
        }
    }

    fn slugs(editions: Vec<EditionView>) -> Vec<String> {
        ordered(editions).into_iter().map(|e| e.slug).collect()
    }

    #[test]
    fn the_default_edition_then_versions_numerically_then_branches_by_update() {
        use TrackingMode::*;
        let editions = vec![
            edition("DM-1", GitRefs, &["tickets/DM-1"], 5),
            edition("v1.9", GitRefs, &["v1.9"], 1),
            edition("v1.10", GitRefs, &["v1.10"], 2),
            edition("__main", GitRefs, &["main"], 3),
            edition("DM-2", GitRefs, &["tickets/DM-2"], 9),
            edition("v2.0.1", GitRefs, &["v2.0.1"], 0),
            edition("v10", GitRefs, &["v10"], 0),
        ];
        assert_eq!(
            slugs(editions),
            ["__main", "v10", "v2.0.1", "v1.10", "v1.9", "DM-2", "DM-1"]
        );
    }

    #[test]
    fn every_tracking_scheme_sorts_numerically() {
        use TrackingMode::*;
        // lsst_doc and EUPS editions named after what they track, or named freely and ordered
        // by the version of the build they show.
        let eups = vec![
            edition("v9_0", EupsMajorRelease, &[], 1),
            edition("v12_0", EupsMajorRelease, &[], 2),
            edition("v10_1", EupsMajorRelease, &[], 3),
        ];
        assert_eq!(slugs(eups), ["v12_0", "v10_1", "v9_0"]);
        let weekly = vec![
            edition("w_2024_9", EupsWeeklyRelease, &[], 1),
            edition("w_2024_10", EupsWeeklyRelease, &[], 2),
            edition("w_2023_52", EupsWeeklyRelease, &[], 3),
        ];
        assert_eq!(slugs(weekly), ["w_2024_10", "w_2024_9", "w_2023_52"]);
        let daily = vec![
            edition("d_2024_01_09", EupsDailyRelease, &[], 1),
            edition("d_2024_01_10", EupsDailyRelease, &[], 2),
        ];
        assert_eq!(slugs(daily), ["d_2024_01_10", "d_2024_01_09"]);
        let mut latest = edition("latest", LsstDoc, &[], 1);
        latest.build = Some(build("7", &["v3.1"], 1));
        let mut older = edition("stable", LsstDoc, &[], 2);
        older.build = Some(build("6", &["v3.0.9"], 2));
        let mut pinned = edition("pinned", Manual, &[], 9);
        pinned.build = Some(build("5", &["main"], 9));
        assert_eq!(
            slugs(vec![older, pinned, latest]),
            ["latest", "stable", "pinned"]
        );
        // git_ref: by the ref it tracks, whatever the edition is called.
        let git_ref = vec![
            edition("one", GitRef, &["v1.2.9"], 3),
            edition("two", GitRef, &["v1.2.10"], 1),
            edition("branch", GitRef, &["feature"], 9),
        ];
        assert_eq!(slugs(git_ref), ["two", "one", "branch"]);
    }

    #[test]
    fn pinned_and_stale_branch_editions_are_marked() {
        let now = at(200);
        let pinned = edition("frozen", TrackingMode::Manual, &[], 199);
        assert!(pinned.mark(now).unwrap().contains("pinned"));
        let stale = edition("DM-1", TrackingMode::GitRefs, &["tickets/DM-1"], 100);
        assert!(stale.mark(now).unwrap().contains("not updated since"));
        let fresh = edition("DM-2", TrackingMode::GitRefs, &["tickets/DM-2"], 150);
        assert_eq!(fresh.mark(now), None);
        let release = edition("v1.0", TrackingMode::GitRefs, &["v1.0"], 0);
        assert_eq!(release.mark(now), None);
        let main = edition("__main", TrackingMode::GitRefs, &["main"], 0);
        assert_eq!(main.mark(now), None);
    }

    fn product() -> ProductView {
        ProductView {
            slug: "demo".into(),
            title: "Demo <docs>".into(),
            url: "https://example.org/docs/demo".into(),
            doc_repo: "https://github.com/x/\"demo\"".into(),
            published: true,
        }
    }

    #[test]
    fn user_input_is_escaped_everywhere() {
        let hostile = "<img src=x onerror=alert(1)>\"'&";
        let mut e = edition("DM-1", TrackingMode::GitRefs, &[hostile], 1);
        e.title = hostile.into();
        e.build.as_mut().unwrap().git_refs = vec![hostile.into()];
        let mut b = build("b1", &[hostile], 1);
        b.github_requester = Some(hostile.into());
        let pages = [
            editions_page(&product(), &[e], at(2)),
            builds_page(&product(), &[b], 1, at(2)),
        ];
        for html in pages {
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<docs>"));
            assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
            assert!(html.contains("Demo &lt;docs&gt;"));
            assert!(html.contains("https://github.com/x/&quot;demo&quot;"));
            assert!(!html.contains("<script"));
        }
    }

    #[test]
    fn the_editions_page_links_what_can_be_read_and_says_what_each_shows() {
        let main = edition("__main", TrackingMode::GitRefs, &["main"], 3);
        let mut pending = edition("DM-9", TrackingMode::GitRefs, &["tickets/DM-9"], 1);
        pending.build = None;
        pending.date_rebuilt = None;
        let html = editions_page(&product(), &[main, pending], at(3));
        assert!(html.contains("<a class=\"title\" href=\"../\">__main</a>"));
        assert!(html.contains("<span class=\"tag\">default</span>"));
        assert!(html.contains("<span class=\"title\">DM-9</span>"));
        assert!(html.contains("no build yet"));
        assert!(html.contains("build <a href=\"../builds/1/\">1</a> <code>main</code>"));
        assert!(html.contains("tracking <code>tickets/DM-9</code>"));
        assert!(!html.contains("href=\"./DM-9/\""));

        let unpublished = ProductView {
            published: false,
            ..product()
        };
        for html in [
            editions_page(&unpublished, &[], at(3)),
            builds_page(&unpublished, &[], 0, at(3)),
        ] {
            assert!(!html.contains("href=\"../\""), "{html}");
            assert!(html.contains("href=\"../v/\""));
        }
    }

    #[test]
    fn the_builds_page_lists_newest_first_marks_deprecated_and_is_bounded() {
        let mut old = build("1", &["main"], 1);
        old.deprecated = true;
        let mut new = build("2", &["v1.0"], 2);
        new.github_requester = Some("alice".into());
        let html = builds_page(&product(), &[old, new], 2, at(3));
        let (first, second) = (
            html.find("id=\"build-2\"").unwrap(),
            html.find("id=\"build-1\"").unwrap(),
        );
        assert!(first < second);
        assert!(html
            .contains("<span class=\"title\">1</span><span class=\"tag warn\">deprecated</span>"));
        assert!(html.contains("href=\"./2/\""));
        assert!(html.contains("by alice"));

        let many: Vec<BuildView> = (0..MAX_LISTED_BUILDS + 5)
            .map(|n| build(&n.to_string(), &["main"], n as i64))
            .collect();
        let html = builds_page(&product(), &many, many.len() + 10, at(0));
        assert_eq!(html.matches("<li id=\"build-").count(), MAX_LISTED_BUILDS);
        assert!(html.contains("15 older builds are not listed."));
    }
}
