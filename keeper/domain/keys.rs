//! CDN surrogate keys and object-store key prefixes.

use std::fmt;

use uuid::Uuid;

use super::error::{shown, string_conversions, DomainError};
use super::slugs::{BuildSlug, EditionSlug, ProductSlug};

/// A CDN surrogate key: 32 lowercase hex characters (a uuid4 in simple form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SurrogateKey(String);

impl SurrogateKey {
    /// The length of every key.
    pub const LEN: usize = 32;

    /// A new random key.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().simple().to_string())
    }

    /// Parses a stored or received key.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        if raw.len() != Self::LEN || !raw.as_bytes().iter().all(hex) {
            return Err(DomainError::new(
                "surrogate_key",
                format!(
                    "{} is not a surrogate key: use {} lowercase hexadecimal characters",
                    shown(raw),
                    Self::LEN
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_conversions!(SurrogateKey);

/// A normalized object-store key prefix: it always ends in `/` and never starts with `/`, so a
/// prefix operation on `v/1/` can never touch `v/10/`. Built only by the constructors below.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketPrefix(String);

impl BucketPrefix {
    /// Everything of a product: `<product>/`.
    pub fn product(product: &ProductSlug) -> Self {
        Self(format!("{product}/"))
    }

    /// A build's objects: `<product>/builds/<build>/`.
    pub fn build(product: &ProductSlug, build: &BuildSlug) -> Self {
        Self(format!("{product}/builds/{build}/"))
    }

    /// An edition's objects: `<product>/v/<edition>/`.
    pub fn edition(product: &ProductSlug, edition: &EditionSlug) -> Self {
        Self(format!("{product}/v/{edition}/"))
    }

    /// A sub-directory given as `/` (this prefix itself), `a/b`, `/a/b` or `/a/b/`.
    ///
    /// Rejects empty segments (`a//b`, an empty string), `.`, `..`, backslashes and control
    /// characters.
    pub fn directory(&self, dir: &str) -> Result<Self, DomainError> {
        if dir == "/" {
            return Ok(self.clone());
        }
        let inner = dir.strip_prefix('/').unwrap_or(dir);
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        check_relative_path(inner, "directories", "directory")?;
        Ok(Self(format!("{}{inner}/", self.0)))
    }

    /// The prefix as text (ending in `/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix without its trailing `/`: the key of a directory-redirect object, and the
    /// `bucket_root_dir` of the build JSON.
    pub fn as_dir_key(&self) -> &str {
        self.0.strip_suffix('/').unwrap_or(&self.0)
    }

    /// Whether `key` lies under this prefix.
    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(self.0.as_str())
    }

    /// The full key of `relative` (e.g. `a/index.html`) under this prefix.
    ///
    /// Rejects what could leave the prefix or is ambiguous: empty segments (so also a leading
    /// or trailing `/` and the empty string), `.`, `..`, backslashes and control characters.
    pub fn key(&self, relative: &str) -> Result<String, DomainError> {
        check_relative_path(relative, "key", "object key")?;
        Ok(format!("{}{relative}", self.0))
    }

    /// The part of `key` after this prefix, or `None` when the key is not under it.
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.0.as_str())
    }
}

/// The bucket's reserved prefix: keeper's own records (manifests of sealed builds, catalogue
/// records). No reader URL reaches it on any layout or edge: a product slug starts with a
/// letter, and the site server and edges map a URL to a key only through a product slug.
pub const RESERVED_PREFIX: &str = "__keeper/";

/// The object that names the deployment a bucket belongs to.
pub const DEPLOYMENT_KEY: &str = "__keeper/deployment.json";

/// Where keeper's records of one product live under [`RESERVED_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKeys(String);

impl RecordKeys {
    /// Every product's records: `__keeper/products/`.
    pub fn all_products() -> BucketPrefix {
        BucketPrefix(format!("{RESERVED_PREFIX}products/"))
    }

    pub fn of(product: &ProductSlug) -> Self {
        Self(format!("{RESERVED_PREFIX}products/{product}/"))
    }

    /// Everything recorded of the product (ends in `/`).
    pub fn prefix(&self) -> BucketPrefix {
        BucketPrefix(self.0.clone())
    }

    /// The product's own record.
    pub fn product(&self) -> String {
        format!("{}product.json", self.0)
    }

    /// A build's record, by the build's id (the id is in its URL; a slug never changes either).
    pub fn build(&self, build_id: i64) -> String {
        format!("{}builds/{build_id}.json", self.0)
    }

    /// An edition's record, by the edition's id (its slug changes with a rename).
    pub fn edition(&self, edition_id: i64) -> String {
        format!("{}editions/{edition_id}.json", self.0)
    }

    /// The manifest of a sealed build, named by its SHA-256 (hex).
    pub fn manifest(&self, build: &BuildSlug, digest: &str) -> String {
        format!("{}manifests/{build}/{digest}.jsonl", self.0)
    }
}

/// The files keeper renders for readers into a product's prefix, beside its editions and
/// builds (`ops::dashboard`): the editions page and the version lists under `<product>/v/`, the
/// builds page under `<product>/builds/`. No edition or build may take one of their names as
/// its slug ([`DashboardFile::reserves`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DashboardFile {
    /// `v/index.html`: every edition.
    Editions,
    /// `v/switcher.json`: pydata-sphinx-theme's version switcher.
    Switcher,
    /// `v/versions.json`: mike's (MkDocs) version list.
    MikeVersions,
    /// `builds/index.html`: every build.
    Builds,
}

impl DashboardFile {
    pub const ALL: [Self; 4] = [
        Self::Editions,
        Self::Switcher,
        Self::MikeVersions,
        Self::Builds,
    ];

    /// The directory of the product it lives in: `v` or `builds`.
    pub fn section(self) -> &'static str {
        match self {
            Self::Editions | Self::Switcher | Self::MikeVersions => "v",
            Self::Builds => "builds",
        }
    }

    /// Its name in that directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::Editions | Self::Builds => "index.html",
            Self::Switcher => "switcher.json",
            Self::MikeVersions => "versions.json",
        }
    }

    /// Its key: `<product>/<section>/<name>`.
    pub fn key(self, product: &ProductSlug) -> String {
        format!("{product}/{}/{}", self.section(), self.name())
    }

    /// The file `name` names in `section` (`v` or `builds`), if any.
    pub fn find(section: &str, name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|file| file.section() == section && file.name() == name)
    }

    /// Whether an edition (`section` `v`) or build (`builds`) slug is one of these names.
    pub fn reserves(section: &str, slug: &str) -> bool {
        Self::find(section, slug).is_some()
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Editions | Self::Builds => "text/html; charset=utf-8",
            Self::Switcher | Self::MikeVersions => "application/json",
        }
    }
}

impl fmt::Display for BucketPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a `/`-separated relative path: non-empty segments, none `.` or `..`, no backslash
/// or control character.
/// Most bytes in one segment of a key (a file name's limit on the local store).
pub const MAX_SEGMENT_BYTES: usize = 255;

fn check_relative_path(path: &str, field: &'static str, what: &str) -> Result<(), DomainError> {
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment.len() <= MAX_SEGMENT_BYTES
            && segment != "."
            && segment != ".."
            && !segment.chars().any(|c| c == '\\' || c.is_control())
    };
    if path.split('/').all(segment_ok) {
        Ok(())
    } else {
        Err(DomainError::new(
            field,
            format!(
                "{} is not a valid {what}: use '/'-separated names of at most \
                 {MAX_SEGMENT_BYTES} bytes, without empty names, \".\", \"..\", backslashes or \
                 control characters",
                shown(path)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn product(slug: &str) -> ProductSlug {
        ProductSlug::parse(slug).unwrap()
    }
    fn edition(slug: &str) -> EditionSlug {
        EditionSlug::parse(slug).unwrap()
    }
    fn build(slug: &str) -> BuildSlug {
        BuildSlug::parse(slug).unwrap()
    }

    #[test]
    fn generated_surrogate_keys_are_valid_and_distinct() {
        let a = SurrogateKey::generate();
        let b = SurrogateKey::generate();
        assert_ne!(a, b);
        assert_eq!(SurrogateKey::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(a.as_str().len(), 32);
        // A uuid4 carries its version in the 13th hex digit.
        assert_eq!(&a.as_str()[12..13], "4");
    }

    #[test]
    fn surrogate_key_parse_rejects_other_text() {
        let upper = "0123456789ABCDEF0123456789abcdef";
        let dashed = "01234567-89ab-cdef-0123-456789abcdef";
        for bad in [
            "",
            "abc",
            upper,
            dashed,
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef0",
        ] {
            let err = SurrogateKey::parse(bad).expect_err(bad);
            assert_eq!(err.field, "surrogate_key");
            assert!(
                err.message.contains("32 lowercase hexadecimal"),
                "{}",
                err.message
            );
        }
        assert!(SurrogateKey::parse("0123456789abcdef0123456789abcdef").is_ok());
    }

    #[test]
    fn surrogate_key_is_a_plain_json_string() {
        let key = SurrogateKey::generate();
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{key}\""));
        assert_eq!(serde_json::from_str::<SurrogateKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<SurrogateKey>("\"nothex\"").is_err());
    }

    #[test]
    fn prefixes_follow_the_bucket_layout() {
        let p = product("demo");
        assert_eq!(BucketPrefix::product(&p).as_str(), "demo/");
        assert_eq!(
            BucketPrefix::build(&p, &build("7")).as_str(),
            "demo/builds/7/"
        );
        assert_eq!(
            BucketPrefix::edition(&p, &edition("v1")).as_str(),
            "demo/v/v1/"
        );
        assert_eq!(
            BucketPrefix::edition(&p, &EditionSlug::main()).to_string(),
            "demo/v/__main/"
        );
        assert_eq!(
            BucketPrefix::build(&p, &build("7")).as_dir_key(),
            "demo/builds/7"
        );
    }

    #[test]
    fn directory_normalizes_its_argument() {
        let base = BucketPrefix::build(&product("demo"), &build("1"));
        assert_eq!(base.directory("/"), Ok(base.clone()));
        for dir in ["a/b", "/a/b", "a/b/", "/a/b/"] {
            assert_eq!(
                base.directory(dir).unwrap().as_str(),
                "demo/builds/1/a/b/",
                "{dir}"
            );
        }
        assert_eq!(
            base.directory("_static").unwrap().as_dir_key(),
            "demo/builds/1/_static"
        );
        assert_eq!(
            base.directory("...").unwrap().as_str(),
            "demo/builds/1/.../"
        );
    }

    #[test]
    fn directory_rejects_traversal_and_odd_segments() {
        let base = BucketPrefix::build(&product("demo"), &build("1"));
        for bad in [
            "", "//", "a//b", "..", "/../", "a/../b", ".", "./a", "a\\b", "a\0b", "a/\nb", "///a",
        ] {
            let err = base.directory(bad).expect_err(bad);
            assert_eq!(err.field, "directories");
        }
    }

    #[test]
    fn key_joins_and_rejects_traversal() {
        let base = BucketPrefix::edition(&product("demo"), &edition("v1"));
        assert_eq!(base.key("index.html").unwrap(), "demo/v/v1/index.html");
        assert_eq!(base.key("a/b/c.css").unwrap(), "demo/v/v1/a/b/c.css");
        assert_eq!(base.key("${filename}").unwrap(), "demo/v/v1/${filename}");
        for bad in [
            "",
            "/",
            "/index.html",
            "a/",
            "a//b",
            "..",
            "../x/index.html",
            "a/./b",
            "a\\..\\b",
            "x\u{7f}",
        ] {
            let err = base.key(bad).expect_err(bad);
            assert_eq!(err.field, "key");
        }
    }

    #[test]
    fn contains_respects_the_trailing_slash() {
        let p = product("demo");
        let v1 = BucketPrefix::edition(&p, &edition("v1"));
        assert!(v1.contains("demo/v/v1/index.html"));
        assert!(v1.contains("demo/v/v1/"));
        assert!(!v1.contains("demo/v/v1"));
        assert!(!v1.contains("demo/v/v10/index.html"));
        assert!(!v1.contains("demo/v/v1a/index.html"));
        assert!(!v1.contains("other/v/v1/index.html"));
        assert!(BucketPrefix::product(&p).contains("demo/v/v1/index.html"));
        assert!(!BucketPrefix::product(&p).contains("demo2/v/v1/index.html"));
    }

    #[test]
    fn relative_strips_only_its_own_prefix() {
        let b = BucketPrefix::build(&product("demo"), &build("1"));
        assert_eq!(
            b.relative("demo/builds/1/a/index.html"),
            Some("a/index.html")
        );
        assert_eq!(b.relative("demo/builds/1/"), Some(""));
        assert_eq!(b.relative("demo/builds/10/a/index.html"), None);
        assert_eq!(b.relative("demo/builds/1"), None);
    }

    fn path_slug() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{1,20}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }
    fn relative_path() -> impl Strategy<Value = String> {
        proptest::collection::vec(path_slug(), 1..4).prop_map(|segments| segments.join("/"))
    }

    proptest! {
        #[test]
        fn edition_prefix_never_contains_a_longer_slugs_keys(
            product_slug in "[a-z][a-z0-9-]{0,10}[a-z0-9]",
            slug in path_slug(),
            suffix in "[a-zA-Z0-9._-]{1,10}",
            rel in relative_path(),
        ) {
            let p = ProductSlug::parse(&product_slug).unwrap();
            let short = EditionSlug::parse(&slug).unwrap();
            let long = EditionSlug::parse(&format!("{slug}{suffix}")).unwrap();
            let short_prefix = BucketPrefix::edition(&p, &short);
            let long_prefix = BucketPrefix::edition(&p, &long);
            let long_key = long_prefix.key(&rel).unwrap();
            prop_assert!(!short_prefix.contains(&long_key), "{} contains {}", short_prefix, long_key);
            prop_assert!(!long_prefix.contains(&short_prefix.key(&rel).unwrap()));
            prop_assert_eq!(short_prefix.relative(&long_key), None);
        }

        #[test]
        fn build_prefix_never_contains_a_longer_slugs_keys(
            product_slug in "[a-z][a-z0-9-]{0,10}[a-z0-9]",
            slug in path_slug(),
            suffix in "[a-zA-Z0-9._-]{1,10}",
            rel in relative_path(),
        ) {
            let p = ProductSlug::parse(&product_slug).unwrap();
            let short = BucketPrefix::build(&p, &BuildSlug::parse(&slug).unwrap());
            let long = BucketPrefix::build(&p, &BuildSlug::parse(&format!("{slug}{suffix}")).unwrap());
            let long_key = long.key(&rel).unwrap();
            prop_assert!(!short.contains(&long_key), "{} contains {}", short, long_key);
            prop_assert!(!long.contains(&short.key(&rel).unwrap()));
        }

        #[test]
        fn keys_round_trip_and_stay_inside(
            product_slug in "[a-z][a-z0-9-]{0,10}[a-z0-9]",
            slug in path_slug(),
            dir in proptest::option::of(relative_path()),
            rel in relative_path(),
        ) {
            let p = ProductSlug::parse(&product_slug).unwrap();
            let edition = BucketPrefix::edition(&p, &EditionSlug::parse(&slug).unwrap());
            let base = match &dir {
                Some(dir) => edition.directory(&format!("/{dir}/")).unwrap(),
                None => edition.clone(),
            };
            let key = base.key(&rel).unwrap();
            prop_assert!(base.contains(&key));
            prop_assert!(edition.contains(&key));
            prop_assert!(BucketPrefix::product(&p).contains(&key));
            prop_assert_eq!(base.relative(&key), Some(rel.as_str()));
            prop_assert!(base.as_str().ends_with('/') && !base.as_str().starts_with('/'));
        }

        #[test]
        fn traversal_segments_are_always_rejected(
            before in proptest::collection::vec(path_slug(), 0..3),
            bad in prop::sample::select(vec!["..", ".", ""]),
            after in proptest::collection::vec(path_slug(), 0..3),
        ) {
            let base = BucketPrefix::product(&ProductSlug::parse("demo").unwrap());
            let path = before.iter().map(String::as_str).chain([bad]).chain(after.iter().map(String::as_str))
                .collect::<Vec<_>>().join("/");
            prop_assert!(base.key(&path).is_err(), "{}", path);
            // `directory` forgives one leading and one trailing `/`, nothing else.
            let inner_empty = bad.is_empty() && (before.is_empty() ^ after.is_empty());
            if !inner_empty {
                prop_assert!(base.directory(&path).is_err(), "{}", path);
            }
        }
    }
}
