//! Published URLs of products, editions and builds (without a trailing slash).

use super::organization::UrlLayout;
use super::slugs::{BuildSlug, EditionSlug, ProductSlug};
use super::tracking::EditionKind;

/// Where an organization publishes its products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishingLayout {
    /// One host per product: `<scheme>://<product>.<root_domain>`.
    Subdomain {
        /// Normally `https`.
        scheme: String,
        /// e.g. `lsst.io`.
        root_domain: String,
    },
    /// One host for all products: `<base_url><path_prefix>/<product>`.
    Path {
        /// Scheme and host, e.g. `https://example.org` or `http://127.0.0.1:8080`.
        base_url: String,
        /// `""` or a path such as `/docs`.
        path_prefix: String,
    },
}

impl PublishingLayout {
    /// The layout an organization's settings describe. An organization without a root (the
    /// `default` one, `root_domain` NULL) publishes under keeper's own `public_base` (its
    /// external URL without the trailing `/`), where the embedded site server answers.
    pub fn of_organization(
        layout: UrlLayout,
        root_domain: Option<&str>,
        path_prefix: &str,
        public_base: &str,
    ) -> Self {
        match (layout, root_domain) {
            (UrlLayout::Subdomain, Some(root_domain)) => Self::Subdomain {
                scheme: "https".to_owned(),
                root_domain: root_domain.to_owned(),
            },
            (_, Some(root)) if !root.is_empty() => Self::Path {
                base_url: if root.contains("://") {
                    root.trim_end_matches('/').to_owned()
                } else {
                    format!("https://{}", root.trim_end_matches('/'))
                },
                path_prefix: path_prefix.to_owned(),
            },
            _ => Self::Path {
                base_url: public_base.trim_end_matches('/').to_owned(),
                path_prefix: path_prefix.to_owned(),
            },
        }
    }
}

/// The product's URL, which is also its default edition's URL.
///
/// Stray slashes in the layout are forgiven: a trailing `/` on `base_url`, a missing leading or
/// extra `/` in `path_prefix`, a `://` after `scheme`, dots or slashes around `root_domain`.
pub fn product_url(layout: &PublishingLayout, product: &ProductSlug) -> String {
    match layout {
        PublishingLayout::Subdomain {
            scheme,
            root_domain,
        } => {
            let scheme = scheme.trim_end_matches("://");
            let domain = root_domain.trim_matches(|c| c == '.' || c == '/');
            format!("{scheme}://{product}.{domain}")
        }
        PublishingLayout::Path {
            base_url,
            path_prefix,
        } => {
            let mut url = base_url.trim_end_matches('/').to_owned();
            for segment in path_prefix.split('/').filter(|s| !s.is_empty()) {
                url.push('/');
                url.push_str(segment);
            }
            url.push('/');
            url.push_str(product.as_str());
            url
        }
    }
}

/// An edition's URL: the product URL for `__main`, else `<product URL>/v/<edition>`.
pub fn edition_url(
    layout: &PublishingLayout,
    product: &ProductSlug,
    edition: &EditionSlug,
) -> String {
    let base = product_url(layout, product);
    if edition.is_main() {
        base
    } else {
        format!("{base}/v/{edition}")
    }
}

/// Where an edition of `kind` is published: the product's URL for the default edition (kind
/// main: `__main`, or an adopted 1.x product's `main`), else [`edition_url`].
pub fn published_edition_url(
    layout: &PublishingLayout,
    product: &ProductSlug,
    edition: &EditionSlug,
    kind: EditionKind,
) -> String {
    if kind == EditionKind::Main {
        product_url(layout, product)
    } else {
        edition_url(layout, product, edition)
    }
}

/// A build's URL: `<product URL>/builds/<build>`.
pub fn build_url(layout: &PublishingLayout, product: &ProductSlug, build: &BuildSlug) -> String {
    format!("{}/builds/{build}", product_url(layout, product))
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
    fn path(base_url: &str, path_prefix: &str) -> PublishingLayout {
        PublishingLayout::Path {
            base_url: base_url.to_owned(),
            path_prefix: path_prefix.to_owned(),
        }
    }
    fn subdomain(scheme: &str, root_domain: &str) -> PublishingLayout {
        PublishingLayout::Subdomain {
            scheme: scheme.to_owned(),
            root_domain: root_domain.to_owned(),
        }
    }

    #[test]
    fn the_default_edition_is_published_at_the_product_url_whatever_its_slug() {
        let layout = path("http://127.0.0.1:8080", "/docs");
        let old = product("old");
        // An adopted 1.x product's default edition keeps the slug `main`.
        assert_eq!(
            published_edition_url(&layout, &old, &edition("main"), EditionKind::Main),
            "http://127.0.0.1:8080/docs/old"
        );
        assert_eq!(
            published_edition_url(&layout, &old, &edition("main"), EditionKind::Draft),
            "http://127.0.0.1:8080/docs/old/v/main"
        );
    }

    #[test]
    fn embedded_default_layout_publishes_under_docs() {
        let layout = path("http://127.0.0.1:8080", "/docs");
        let demo = product("demo");
        assert_eq!(
            product_url(&layout, &demo),
            "http://127.0.0.1:8080/docs/demo"
        );
        assert_eq!(
            edition_url(&layout, &demo, &EditionSlug::main()),
            "http://127.0.0.1:8080/docs/demo"
        );
        assert_eq!(
            edition_url(&layout, &demo, &edition("v1")),
            "http://127.0.0.1:8080/docs/demo/v/v1"
        );
        assert_eq!(
            build_url(&layout, &demo, &build("3")),
            "http://127.0.0.1:8080/docs/demo/builds/3"
        );
    }

    #[test]
    fn subdomain_layout_puts_the_product_in_the_host() {
        let layout = subdomain("https", "lsst.io");
        let p = product("pipelines");
        assert_eq!(product_url(&layout, &p), "https://pipelines.lsst.io");
        assert_eq!(
            edition_url(&layout, &p, &EditionSlug::main()),
            "https://pipelines.lsst.io"
        );
        assert_eq!(
            edition_url(&layout, &p, &edition("DM-1234")),
            "https://pipelines.lsst.io/v/DM-1234"
        );
        assert_eq!(
            build_url(&layout, &p, &build("12")),
            "https://pipelines.lsst.io/builds/12"
        );
        assert_eq!(
            product_url(&subdomain("http", "docs.test"), &p),
            "http://pipelines.docs.test"
        );
    }

    #[test]
    fn subdomain_layout_forgives_stray_separators() {
        let p = product("demo");
        for layout in [
            subdomain("https://", "example.org"),
            subdomain("https", ".example.org/"),
        ] {
            assert_eq!(
                product_url(&layout, &p),
                "https://demo.example.org",
                "{layout:?}"
            );
        }
    }

    #[test]
    fn path_layout_normalizes_slashes() {
        let p = product("demo");
        let cases = [
            (path("https://example.org", ""), "https://example.org/demo"),
            (path("https://example.org/", ""), "https://example.org/demo"),
            (path("https://example.org", "/"), "https://example.org/demo"),
            (
                path("https://example.org", "docs"),
                "https://example.org/docs/demo",
            ),
            (
                path("https://example.org/", "/docs/"),
                "https://example.org/docs/demo",
            ),
            (
                path("https://example.org//", "//docs//"),
                "https://example.org/docs/demo",
            ),
            (
                path("https://example.org", "/a//b"),
                "https://example.org/a/b/demo",
            ),
        ];
        for (layout, expected) in cases {
            assert_eq!(product_url(&layout, &p), expected, "{layout:?}");
        }
    }

    proptest! {
        #[test]
        fn edition_and_build_urls_extend_the_product_url(
            slug in "[a-z][a-z0-9-]{0,10}[a-z0-9]",
            child in "[a-zA-Z0-9._-]{1,12}".prop_filter("slug", |s| EditionSlug::parse(s).is_ok() && s != "__main"),
            use_path in any::<bool>(),
            prefix in "(/?[a-z]{1,5}){0,2}/?",
        ) {
            let layout = if use_path { path("http://127.0.0.1:8080/", &prefix) } else { subdomain("https", "example.org") };
            let p = ProductSlug::parse(&slug).unwrap();
            let base = product_url(&layout, &p);
            prop_assert!(!base.ends_with('/'));
            prop_assert!(!base["https://".len()..].contains("//"), "{}", base);
            let host = format!("://{slug}.");
            prop_assert!(base.ends_with(&slug) || base.contains(&host));
            let e = EditionSlug::parse(&child).unwrap();
            prop_assert_eq!(edition_url(&layout, &p, &e), format!("{base}/v/{child}"));
            let b = BuildSlug::parse(&child).unwrap();
            prop_assert_eq!(build_url(&layout, &p, &b), format!("{base}/builds/{child}"));
        }
    }
}
