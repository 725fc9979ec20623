//! The arrows between the library's modules (docs/architecture.md, "Arrows"): read from every
//! `crate::` path in `keeper/` (comments left out), at the granularity of the top-level modules
//! (`keeper/<name>.rs` or `keeper/<name>/`). The graph must have no cycle, and the lower floors
//! must not reach up into the HTTP edge or the processes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that nothing below the composition root may import.
const TOP_FLOORS: [&str; 5] = ["api", "cli", "server", "startup", "worker"];

/// Lower floors, and what each may import. Anything not listed is forbidden to them.
const ALLOWED: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("domain", &[]),
    ("metrics", &[]),
    ("retry", &[]),
    ("shutdown", &[]),
    ("telemetry", &["config"]),
    ("crypto", &["config"]),
    ("storage", &["config", "domain", "metrics", "retry"]),
    ("cdn", &["config", "metrics", "retry"]),
    ("db", &["config", "domain"]),
    ("auth", &["config", "db", "domain", "metrics"]),
    ("pages", &["domain"]),
    (
        "backends",
        &["cdn", "config", "crypto", "db", "domain", "storage"],
    ),
    (
        "ops",
        &[
            "backends", "cdn", "config", "db", "domain", "metrics", "pages", "retry", "storage",
        ],
    ),
    ("catalog", &["db", "domain", "ops"]),
    (
        "org_settings",
        &["backends", "config", "crypto", "db", "domain"],
    ),
    ("client", &["retry", "storage"]),
    ("recover", &["db", "domain", "ops", "storage"]),
    ("verify", &["backends", "db", "domain", "ops", "storage"]),
    (
        "adopt",
        &["auth", "config", "crypto", "db", "domain", "ops"],
    ),
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file belongs to: `keeper/api/builds.rs` -> `api`.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    Path::new(first)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The source without comments (line comments and doc comments; block comments are not used).
fn without_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (URLs) is rare in paths; cut only when no quote
            // precedes it on the line.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `source` names through `crate::<name>`.
fn references(source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code = without_comments(source);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` in macros names the crate too.
        let rest = &code[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let name = match name.as_str() {
            // `#[macro_export]` puts the macro at the crate root; it lives in `db`.
            "with_connection" => "db".to_owned(),
            _ => name,
        };
        if modules.contains(&name) {
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("keeper");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|file| module_of(&root, file))
        .filter(|name| name != "lib" && name != "main")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&root, file);
        if !modules.contains(&from) {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        let targets = edges.entry(from.clone()).or_default();
        for to in references(&source, &modules) {
            if to != from {
                targets.insert(to);
            }
        }
    }
    edges
}

/// A cycle through `start`, if any, as the path of modules.
fn cycle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|seen| seen == node) {
        let mut cycle = path[at..].to_vec();
        cycle.push(node.to_owned());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_owned());
    for next in edges.get(node).into_iter().flatten() {
        if let Some(cycle) = cycle_from(edges, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node.to_owned());
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let edges = graph();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = cycle_from(&edges, node, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn lower_floors_import_only_what_they_may() {
    let edges = graph();
    let mut wrong = Vec::new();
    for (module, allowed) in ALLOWED {
        let imports = edges
            .get(*module)
            .unwrap_or_else(|| panic!("no module {module}: update ALLOWED"));
        for target in imports {
            if !allowed.contains(&target.as_str()) {
                wrong.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows that must not exist: {wrong:?}");
}

#[test]
fn nothing_but_the_processes_imports_the_top_floors() {
    let edges = graph();
    let below: BTreeSet<&str> = ALLOWED.iter().map(|(module, _)| *module).collect();
    for (module, imports) in &edges {
        for top in TOP_FLOORS {
            if below.contains(module.as_str()) && imports.contains(top) {
                panic!("{module} imports {top}");
            }
        }
    }
    // The HTTP edge is used only by the composition root and the processes built on it.
    for (module, imports) in &edges {
        if imports.contains("api") {
            assert!(
                ["startup"].contains(&module.as_str()),
                "{module} imports api; only startup may"
            );
        }
    }
}

#[test]
fn only_the_http_edge_knows_the_http_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("keeper");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for file in files {
        let module = module_of(&root, &file);
        let code = without_comments(&std::fs::read_to_string(&file).unwrap());
        if ["api", "error"].contains(&module.as_str()) {
            continue;
        }
        assert!(
            !code.contains("ApiError") && !code.contains("ApiResult"),
            "{} uses the HTTP error type",
            file.display()
        );
    }
}

#[test]
fn the_graph_sees_every_module_and_its_arrows() {
    // The checks above are only as good as the graph: it must find known arrows.
    let edges = graph();
    for (from, to) in [
        ("startup", "api"),
        ("api", "db"),
        ("ops", "storage"),
        ("db", "config"),
    ] {
        assert!(
            edges.get(from).is_some_and(|targets| targets.contains(to)),
            "{from} -> {to} not found in {edges:?}"
        );
    }
    let below: BTreeSet<&str> = ALLOWED.iter().map(|(module, _)| *module).collect();
    let unlisted: Vec<&String> = edges
        .keys()
        .filter(|module| {
            !below.contains(module.as_str())
                && !TOP_FLOORS.contains(&module.as_str())
                && !["error", "org_admin"].contains(&module.as_str())
        })
        .collect();
    assert!(
        unlisted.is_empty(),
        "modules with no floor in this test (add them to ALLOWED or TOP_FLOORS): {unlisted:?}"
    );
}
