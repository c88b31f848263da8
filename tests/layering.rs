//! The layering the README describes, checked: each top-level module of `src/` may use only
//! the modules listed for it (test code aside). A new `crate::x` reference that breaks the
//! layering fails here, with the file that made it.

use std::collections::BTreeSet;
use std::path::Path;

/// Module → the crate modules it may use. Leaves first; each layer uses only layers above it
/// in this list.
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("natural", &[]),
    ("terminal", &[]),
    ("permute", &[]),
    ("output", &["error"]),
    ("mapped", &["error"]),
    ("py", &[]),
    ("proto", &["error"]),
    ("tensor", &["error", "proto", "mapped", "permute"]),
    ("weights", &["error", "tensor", "mapped", "permute"]),
    ("load", &["error", "proto", "tensor", "natural", "mapped"]),
    ("ir", &["error", "proto", "tensor", "terminal"]),
    ("ops", &["error", "proto", "tensor", "weights", "ir", "py"]),
    ("passes", &["error", "proto", "tensor", "natural", "ir", "ops"]),
    ("lower", &["error", "proto", "tensor", "weights", "ir", "ops", "py"]),
    ("emit", &["error", "lower", "py"]),
];
// Above them all: `lib.rs` (the `convert` pipeline), `main.rs` (the CLI), and the other
// commands, `inspect` and `reference` (check.py, make_reference.py), which may use anything.

/// Source text with `#[cfg(test)]` items (test modules) cut off.
fn non_test_code(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_depend_only_on_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == top) else {
            continue; // The top (see above), and testing.rs.
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in non_test_code(&text).match_indices("crate::") {
            let used: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if used != top && !allowed.contains(&used.as_str()) {
                broken.insert(format!("{} uses crate::{used}", rel.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layering broken:\n{}",
        broken.into_iter().collect::<Vec<_>>().join("\n")
    );
}
