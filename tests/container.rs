//! The container image (issue 16, item 2), as far as this machine can test it without a
//! container engine: the Dockerfile's runtime stage installs every library the binary links,
//! and the build context `.dockerignore` leaves holds what cargo reads.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stdout(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The packages the runtime stage (`FROM debian:... AS runtime`) installs with apt-get.
fn runtime_packages(dockerfile: &str) -> Vec<String> {
    let stage = dockerfile
        .split("\nFROM ")
        .find(|stage| stage.contains(" AS runtime"))
        .expect("a runtime stage");
    assert!(stage.starts_with("debian:bookworm-slim"), "{stage}");
    let install = stage
        .lines()
        .find(|line| line.contains("apt-get install"))
        .expect("an apt-get install in the runtime stage");
    install
        .split_whitespace()
        .skip_while(|word| *word != "install")
        .skip(1)
        .filter(|word| !word.starts_with('-') && *word != "\\" && *word != "&&")
        .take_while(|word| {
            word.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-+.".contains(c))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_runtime_stage_installs_every_library_the_binary_links() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let packages = runtime_packages(&dockerfile);
    assert!(packages.contains(&"libpq5".to_owned()), "{packages:?}");
    // What a bookworm-slim image has: the Essential packages and what they depend on, plus
    // what the stage installs, each with its dependencies.
    let essential = stdout(Command::new("dpkg-query").args(["-W", "-f=${Package} ${Essential}\n"]));
    let mut roots: Vec<String> = essential
        .lines()
        .filter_map(|line| line.strip_suffix(" yes").map(str::to_owned))
        .collect();
    roots.extend(packages.iter().cloned());
    let depends = stdout(
        Command::new("apt-cache")
            .args([
                "depends",
                "--recurse",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
            ])
            .args(&roots),
    );
    let available: BTreeSet<String> = depends
        .lines()
        .map(|line| {
            let name = line.trim().trim_start_matches('|');
            let name = name
                .strip_prefix("Depends: ")
                .or_else(|| name.strip_prefix("PreDepends: "))
                .unwrap_or(name);
            name.trim_matches(|c| c == '<' || c == '>')
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();

    let linked = stdout(Command::new("ldd").arg(env!("CARGO_BIN_EXE_keeper")));
    let libraries: Vec<&str> = linked
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then_some(path)
        })
        .collect();
    assert!(
        libraries.iter().any(|lib| lib.contains("libpq.so")),
        "{linked}"
    );
    let mut missing = Vec::new();
    for library in libraries {
        let package = owner_of(library);
        if !available.contains(&package) {
            missing.push(format!("{library} ({package})"));
        }
    }
    assert!(
        missing.is_empty(),
        "the runtime stage lacks: {missing:?} (it installs {packages:?})"
    );
}

/// The package that ships `library`. Debian merged /lib into /usr/lib, and dpkg knows each
/// file by the path its package gave, so every spelling of the path is asked.
fn owner_of(library: &str) -> String {
    let real = std::fs::canonicalize(library)
        .unwrap()
        .display()
        .to_string();
    let mut candidates = vec![library.to_owned(), real.clone()];
    for path in [library, real.as_str()] {
        if let Some(rest) = path.strip_prefix("/usr") {
            candidates.push(rest.to_owned());
        } else {
            candidates.push(format!("/usr{path}"));
        }
    }
    for candidate in &candidates {
        let output = Command::new("dpkg")
            .arg("-S")
            .arg(candidate)
            .output()
            .unwrap();
        if output.status.success() {
            let owner = String::from_utf8(output.stdout).unwrap();
            return owner.split(':').next().unwrap().trim().to_owned();
        }
    }
    panic!("no package ships {library} (asked dpkg for {candidates:?})")
}

/// Whether `.dockerignore`'s patterns (`dir/`, `*.ext`, `name`) leave `path` out.
fn ignored(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|pattern| {
        if let Some(dir) = pattern.strip_suffix('/') {
            path == dir || path.starts_with(&format!("{dir}/"))
        } else if let Some(extension) = pattern.strip_prefix('*') {
            path.rsplit('/')
                .next()
                .is_some_and(|name| name.ends_with(extension))
        } else {
            path == pattern || path.starts_with(&format!("{pattern}/"))
        }
    })
}

#[test]
fn the_build_context_holds_what_cargo_reads() {
    let patterns: Vec<String> = std::fs::read_to_string(root().join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let tracked = stdout(Command::new("git").arg("-C").arg(root()).arg("ls-files"));
    let context = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for path in tracked.lines().filter(|path| !ignored(&patterns, path)) {
        let from = root().join(path);
        if !from.is_file() {
            continue;
        }
        let to = context.path().join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
        copied += 1;
    }
    assert!(copied > 50, "{copied} files");
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "keeper/main.rs",
        "migrations/postgres",
    ] {
        assert!(
            context.path().join(needed).exists(),
            "{needed} is not in the context"
        );
    }
    assert!(!context.path().join("target").exists());
    // The manifest, its targets and the lock file are complete: what `cargo build --locked`
    // checks before it compiles.
    stdout(
        Command::new("cargo")
            .args([
                "metadata",
                "--locked",
                "--offline",
                "--format-version",
                "1",
                "--no-deps",
            ])
            .current_dir(context.path()),
    );
    stdout(
        Command::new("cargo")
            .args(["read-manifest"])
            .current_dir(context.path()),
    );
}
