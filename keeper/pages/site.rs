//! The embedded site server's own pages: the list of products (`/docs/`) and the 404 page.

use super::{escape, page};

/// A product as `/docs/` lists it.
#[derive(Debug, Clone)]
pub struct ProductEntry {
    pub slug: String,
    pub title: String,
    /// Its published URL, without the trailing `/`.
    pub url: String,
    /// The default edition's title, if it has a build to show.
    pub default_edition: Option<String>,
    /// Live editions, the default one included.
    pub editions: i64,
}

/// `/docs/`: every product, by title.
pub fn products_page(products: &[ProductEntry]) -> String {
    let mut items = String::new();
    for product in products {
        let url = escape(&product.url);
        // A product with nothing published links its editions page rather than a 404.
        let (home, default) = match &product.default_edition {
            Some(title) => (
                format!("{url}/"),
                format!("default edition: {}", escape(title)),
            ),
            None => (format!("{url}/v/"), "nothing published yet".to_owned()),
        };
        let editions = match product.editions {
            1 => "1 edition".to_owned(),
            n => format!("{n} editions"),
        };
        items.push_str(&format!(
            "<li><a class=\"title\" href=\"{home}\">{title}</a><p class=\"meta\"><code>{slug}\
             </code> · {default} · <a href=\"{url}/v/\">{editions}</a> · \
             <a href=\"{url}/builds/\">builds</a></p></li>\n",
            title = escape(&product.title),
            slug = escape(&product.slug),
        ));
    }
    let listing = if products.is_empty() {
        "<p>No documentation is published here yet. An administrator creates a product with \
         <code>POST /products/</code>; CI then uploads builds to it.</p>"
            .to_owned()
    } else {
        format!("<ul class=\"cards\">\n{items}</ul>")
    };
    let body = format!(
        "<header>\n<h1>Documentation</h1>\n<p class=\"muted\">{} products hosted by \
         ltd-keeper.</p>\n</header>\n<main>\n{listing}\n</main>",
        products.len()
    );
    page("Documentation", &body)
}

/// Where a 404 page of a product points: its base path (`/docs/<product>` in the path layout,
/// `` on a product's own host) and where every product is listed, if this server lists them.
#[derive(Debug, Clone)]
pub struct NotFoundLinks {
    pub product: String,
    pub base: String,
    pub all_products: Option<String>,
}

/// The 404 page: what to do instead, with links back when the product is known.
pub fn not_found_page(links: Option<&NotFoundLinks>) -> String {
    let mut body = String::from(
        "<header>\n<h1>Page not found</h1>\n</header>\n<main>\n<p>There is no page at this \
         address. It may have moved, or the edition or build it was in may have been \
         renamed or deleted.</p>\n",
    );
    if let Some(links) = links {
        let base = escape(&links.base);
        body.push_str(&format!(
            "<ul>\n<li><a href=\"{base}/\">The default edition of {product}</a></li>\n\
             <li><a href=\"{base}/v/\">Every edition of {product}</a></li>\n\
             <li><a href=\"{base}/builds/\">Every build of {product}</a></li>\n",
            product = escape(&links.product),
        ));
        if let Some(all) = &links.all_products {
            body.push_str(&format!(
                "<li><a href=\"{}\">All documentation</a></li>\n",
                escape(all)
            ));
        }
        body.push_str("</ul>\n");
    }
    body.push_str("</main>");
    page("Page not found", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_listed_with_their_default_edition_and_counts() {
        let html = products_page(&[ProductEntry {
            slug: "demo".into(),
            title: "Demo <b>".into(),
            url: "http://127.0.0.1:8080/docs/demo".into(),
            default_edition: Some("Latest".into()),
            editions: 3,
        }]);
        assert!(html.contains("href=\"http://127.0.0.1:8080/docs/demo/\">Demo &lt;b&gt;</a>"));
        assert!(html.contains("default edition: Latest"));
        assert!(html.contains("href=\"http://127.0.0.1:8080/docs/demo/v/\">3 editions</a>"));
        assert!(products_page(&[]).contains("No documentation is published here yet"));
        let unpublished = products_page(&[ProductEntry {
            slug: "new".into(),
            title: "New".into(),
            url: "http://k/docs/new".into(),
            default_edition: None,
            editions: 1,
        }]);
        assert!(unpublished.contains("href=\"http://k/docs/new/v/\">New</a>"));
        assert!(unpublished.contains("nothing published yet"));
    }

    #[test]
    fn a_products_404_links_back() {
        let links = NotFoundLinks {
            product: "demo".into(),
            base: "/docs/demo".into(),
            all_products: Some("/docs/".into()),
        };
        let html = not_found_page(Some(&links));
        assert!(html.contains("href=\"/docs/demo/\""));
        assert!(html.contains("href=\"/docs/demo/v/\""));
        assert!(html.contains("href=\"/docs/\""));
        assert!(!not_found_page(None).contains("<ul>"));
    }
}
