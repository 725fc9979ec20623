//! The site on disk: every file to upload and every directory, named as `ltd upload` names them
//! (`/` for the root, `a/b/` otherwise).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Deepest directory nesting followed (guards against symbolic-link loops).
const MAX_DEPTH: usize = 64;

/// One file of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    pub path: PathBuf,
    /// The directory it is in, as a form name (`/`, `a/b/`).
    pub directory: String,
    /// The file name (the `${filename}` of the form).
    pub name: String,
    pub size: u64,
}

/// What `--dir` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// Every directory, the root (`/`) first, then in path order.
    pub directories: Vec<String>,
    /// Every file, in path order.
    pub files: Vec<SiteFile>,
}

impl Site {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

/// The form name of a directory relative to the site root (`""` is the root).
pub fn directory_name(relative: &str) -> String {
    if relative.is_empty() {
        "/".to_owned()
    } else {
        format!("{relative}/")
    }
}

/// Lists `root` (following symbolic links, as `ltd upload` does). File and directory names must
/// be UTF-8: they become object keys.
pub fn scan(root: &Path) -> anyhow::Result<Site> {
    let metadata = std::fs::metadata(root)
        .with_context(|| format!("reading the site directory {}", root.display()))?;
    if !metadata.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let mut site = Site::default();
    walk(root, "", 0, &mut site)?;
    Ok(site)
}

fn walk(dir: &Path, relative: &str, depth: usize, site: &mut Site) -> anyhow::Result<()> {
    if depth > MAX_DEPTH {
        bail!(
            "{} is nested more than {MAX_DEPTH} directories deep (a symbolic-link loop?)",
            dir.display()
        );
    }
    site.directories.push(directory_name(relative));
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort();
    let mut subdirectories = Vec::new();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("{} has a name that is not UTF-8", path.display()))?
            .to_owned();
        let metadata =
            std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if metadata.is_dir() {
            subdirectories.push((path, name));
        } else if metadata.is_file() {
            site.files.push(SiteFile {
                path,
                directory: directory_name(relative),
                name,
                size: metadata.len(),
            });
        }
    }
    for (path, name) in subdirectories {
        let child = if relative.is_empty() {
            name
        } else {
            format!("{relative}/{name}")
        };
        walk(&path, &child, depth + 1, site)?;
    }
    Ok(())
}

/// The Content-Type a file is uploaded with, guessed from its name.
pub fn content_type(name: &str) -> String {
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_nested_directories_as_ltd_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("index.html"), "<p>").unwrap();
        std::fs::write(root.join("a/b/page.html"), "12345").unwrap();
        std::fs::write(root.join("a/style.css"), "").unwrap();
        let site = scan(root).unwrap();
        assert_eq!(site.directories, ["/", "a/", "a/b/", "empty/"]);
        let files: Vec<(&str, &str, u64)> = site
            .files
            .iter()
            .map(|f| (f.directory.as_str(), f.name.as_str(), f.size))
            .collect();
        assert_eq!(
            files,
            [
                ("/", "index.html", 3),
                ("a/", "style.css", 0),
                ("a/b/", "page.html", 5)
            ]
        );
        assert_eq!(site.bytes(), 8);
    }

    #[test]
    fn refuses_what_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan(&dir.path().join("missing")).is_err());
        std::fs::write(dir.path().join("file"), "x").unwrap();
        assert!(scan(&dir.path().join("file")).is_err());
    }

    #[test]
    fn content_types_come_from_the_name() {
        assert_eq!(content_type("index.html"), "text/html");
        assert_eq!(content_type("style.css"), "text/css");
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("README"), "application/octet-stream");
    }
}
