//! The shape of the code base, checked on every run: within each crate, no two modules import
//! each other (directly or through others), and no source file is longer than 800 lines.
//!
//! A module is a top-level module of a crate (`src/<name>.rs` with its `src/<name>/…` children);
//! an import is any `crate::<name>` path in its files.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file allowed.
const MAX_LINES: usize = 800;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

/// The identifiers in `text` that follow `prefix` where `prefix` starts a path (not the tail of a
/// longer name: `skiff_crate::x` is no `crate::x`), with `prefix` kept when `keep` is set.
fn names_after(text: &str, prefix: &str, keep: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = text[i + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(if keep { format!("{prefix}{name}") } else { name });
        }
    }
    out
}

/// The `crate::<name>` module names a source text refers to.
fn crate_refs(text: &str) -> BTreeSet<String> {
    names_after(text, "crate::", false)
}

/// Module → the modules it imports, for one crate's `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(module.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable source");
        // Unit tests may reach anywhere; comments (doc links) are not imports.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let refs = crate_refs(&code);
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != module));
    }
    graph
}

/// A cycle through `start`, if the graph has one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        node: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(node).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if graph.contains_key(next) && seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut cycles = Vec::new();
    for dir in crates() {
        let graph = module_graph(&dir.join("src"));
        for module in graph.keys() {
            if let Some(c) = cycle_from(&graph, module) {
                cycles.push(format!("{}: {}", dir.display(), c.join(" → ")));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "module imports must point one way; these go round:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut files = Vec::new();
    for dir in crates() {
        rust_files(&dir, &mut files);
    }
    rust_files(&workspace().join("tests"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these files (at most {MAX_LINES} lines):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_see_a_cycle_and_ignore_other_crates_paths() {
    let refs = crate_refs("use crate::plane::X; use skiff_crate::y; crate::api::f()");
    assert_eq!(refs, BTreeSet::from(["api".to_owned(), "plane".to_owned()]));
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(cycle_from(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    assert!(cycle_from(&graph, "d").is_none());
}

#[test]
fn the_client_verbs_of_the_cli_use_only_the_api_and_the_client() {
    // `up.rs` starts the roles (control, agent, gateway) and is the one module that wires the
    // concrete crates; every other command speaks to a cluster through skiff-client.
    const ALLOWED: [&str; 4] = ["skiff_api", "skiff_client", "skiff_manifest", "skiff_cli"];
    let src = workspace().join("crates/cli/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for f in files {
        if f.file_name().is_some_and(|n| n == "up.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable source");
        for name in names_after(&text, "skiff_", true) {
            if !ALLOWED.contains(&name.as_str()) {
                wrong.push(format!("{}: {name}", f.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the CLI's verbs reach past skiff-api/skiff-client:\n{}",
        wrong.join("\n")
    );
}
