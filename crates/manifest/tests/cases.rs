//! Data-driven manifest cases: every `cases/<name>.{yaml,yml,json}` file or `cases/<name>/`
//! directory is loaded with `load_path`, and the result compared with `cases/<name>.err` (the exact
//! error text, one line per error) or `cases/<name>.ok` (one line per loaded document:
//! `file: document N: Kind/namespace/name`, then an indented line per local artifact).
//!
//! Set `SKIFF_BLESS=1` to write the actual output into the expectation files (then review the diff).
use std::path::{Path, PathBuf};

const CASES: &str = "tests/cases";

fn render_ok(docs: &[skiff_manifest::Document], root: &Path) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str(&format!(
            "{}: document {}: {}\n",
            d.file,
            d.index,
            d.object.describe()
        ));
        for a in &d.artifacts {
            let rel = a.path.strip_prefix(root).unwrap_or(&a.path);
            out.push_str(&format!("  {} -> {}\n", a.field_path, rel.display()));
        }
    }
    out
}

/// A line diff: `-` expected only, `+` actual only, two spaces both.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    // Longest common subsequence table.
    let mut lcs = vec![vec![0usize; a.len() + 1]; e.len() + 1];
    for i in (0..e.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < e.len() || j < a.len() {
        if i < e.len() && j < a.len() && e[i] == a[j] {
            out.push_str(&format!("  {}\n", e[i]));
            i += 1;
            j += 1;
        } else if j < a.len() && (i == e.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", a[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", e[i]));
            i += 1;
        }
    }
    out
}

fn is_case(path: &Path) -> bool {
    path.is_dir()
        || matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
}

#[test]
fn every_case_matches_its_expectation() {
    let root = std::fs::canonicalize(CASES).expect("cases directory");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(CASES)
        .expect("read cases")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| is_case(p))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 25,
        "expected the full case set, found {}",
        inputs.len()
    );
    let bless = std::env::var_os("SKIFF_BLESS").is_some();
    let mut failures = Vec::new();
    let (mut ok_cases, mut err_cases) = (0, 0);
    for input in &inputs {
        let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let err_file = Path::new(CASES).join(format!("{stem}.err"));
        let ok_file = Path::new(CASES).join(format!("{stem}.ok"));
        let (expect_file, actual) = match skiff_manifest::load_path(input) {
            Ok(docs) => (ok_file, render_ok(&docs, &root)),
            Err(e) => (err_file, format!("{e}\n")),
        };
        if expect_file.extension().is_some_and(|e| e == "ok") {
            ok_cases += 1;
        } else {
            err_cases += 1;
        }
        if bless {
            std::fs::write(&expect_file, &actual).expect("write expectation");
            continue;
        }
        let expected = std::fs::read_to_string(&expect_file).unwrap_or_else(|_| {
            format!(
                "<{} is missing: the case {} produced the output below>\n",
                expect_file.display(),
                if expect_file.extension().is_some_and(|e| e == "ok") {
                    "loaded without errors"
                } else {
                    "failed"
                }
            )
        });
        if expected != actual {
            failures.push(format!(
                "case {} (expected {}):\n{}",
                input.display(),
                expect_file.display(),
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (- expected, + actual):\n\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    assert!(err_cases >= 14, "only {err_cases} invalid cases");
    assert!(ok_cases >= 3, "only {ok_cases} valid cases");
}

#[test]
fn diff_marks_changes() {
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n+ x\n- b\n  c\n");
}
