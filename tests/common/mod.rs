//! Shared by the integration tests: TensorFlow-made fixtures, which a fresh clone lacks.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `build/fixtures/<name>` when it has been made. Without it the test is skipped with a message
/// naming the command that makes it, unless `TF2TORCH_REQUIRE_FIXTURES` is set (as
/// `scripts/test.sh` and CI do), where a missing fixture fails the test.
pub fn generated_fixture(name: &str, generator: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("build/fixtures").join(name);
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "build/fixtures/{name} missing: make it with `.venv/bin/python \
         tests/fixtures/make_fixtures.py {generator} build/fixtures` (scripts/test.sh makes them all)"
    );
    assert!(std::env::var_os("TF2TORCH_REQUIRE_FIXTURES").is_none(), "{msg}");
    // Straight to stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "skipped: {msg}");
    None
}
