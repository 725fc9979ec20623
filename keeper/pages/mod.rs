//! What readers see besides the published sites themselves, rendered without I/O: a product's
//! dashboards and version lists ([`dashboard`], [`versions`], rendered into the bucket by
//! `ops::dashboard`), and the embedded site server's own pages ([`site`]: the product list and
//! the 404 page).
//!
//! Plain HTML with one inline style sheet: no script, no external resource, readable on a
//! phone. Every value that comes from users (titles, slugs, git refs, requesters) goes through
//! [`escape`].

pub mod dashboard;
pub mod site;
pub mod versions;

use std::fmt::Write;

use chrono::NaiveDateTime;

/// `text` safe inside HTML text and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // Control characters render as nothing useful and could hide text; show them.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// A UTC time as readers see it: `2026-12-02 20:31 UTC`.
pub fn format_date(date: NaiveDateTime) -> String {
    date.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The style sheet every page shares.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;--card:#f6f8fa;\
--accent:#0550ae;--warn:#9a6700}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--bg:#0d1117;\
--card:#151b23;--accent:#4493f8;--warn:#d29922}}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);\
background:var(--bg)}\
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}\
header{padding-top:1.5rem}\
h1{font-size:1.6rem;margin:0 0 .25rem}\
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}\
a{color:var(--accent)}\
nav a{margin-right:1rem}\
.muted{color:var(--muted)}\
ul.cards{list-style:none;padding:0;margin:0;display:grid;gap:.75rem}\
ul.cards>li{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.75rem 1rem;\
overflow-wrap:anywhere}\
.title{font-weight:600;font-size:1.05rem}\
.meta{color:var(--muted);font-size:.9rem;margin:.25rem 0 0}\
.tag{display:inline-block;font-size:.75rem;border:1px solid var(--line);border-radius:999px;\
padding:0 .5rem;margin-left:.5rem;vertical-align:middle}\
.tag.warn{color:var(--warn);border-color:var(--warn)}\
code{font-size:.9em;overflow-wrap:anywhere}\
footer{color:var(--muted);font-size:.85rem;padding:2rem 1rem}";

/// A whole page: `title` (text, escaped here) and `body` (HTML, already escaped).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"ltd-keeper\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("a\u{0}b\u{1b}c"), "a\\u{0}b\\u{1b}c");
        assert_eq!(escape("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn pages_are_whole_documents_with_an_escaped_title() {
        let html = page("<b>", "<p>x</p>");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<title>&lt;b&gt;</title>"));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("<p>x</p>"));
    }
}
