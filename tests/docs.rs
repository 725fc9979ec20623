//! The documentation stays true: every variable keeper reads is documented in README.md and
//! .env.example, and .env.example, loaded as it is, gives the documented defaults.

use std::collections::{BTreeSet, HashMap};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every `"KEEPER_..."` string literal in the configuration code (`keeper/config/`, one file
/// per area).
fn variables_read_by_the_code() -> BTreeSet<String> {
    let dir = format!("{}/keeper/config", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the configuration areas moved: {files:?}");
    let source: String = files
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.starts_with("KEEPER_")
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_is_documented() {
    let variables = variables_read_by_the_code();
    assert!(variables.len() >= 10, "found {variables:?}");
    let readme = read("README.md");
    let example = read(".env.example");
    for variable in &variables {
        assert!(
            readme.contains(&format!("`{variable}`")),
            "{variable} missing from README.md"
        );
        assert!(
            example.contains(&format!("{variable}=")),
            "{variable} missing from .env.example"
        );
    }
}

#[test]
fn env_example_loads_and_gives_the_defaults() {
    let values: HashMap<String, String> = read(".env.example")
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains('='))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let from_example =
        keeper::config::Config::from_lookup(|name| values.get(name).cloned()).unwrap();
    let defaults = keeper::config::Config::from_lookup(|_| None).unwrap();
    assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
}
