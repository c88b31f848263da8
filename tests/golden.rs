//! Golden files: the whole generated `model.py` (and `custom_ops.py`) of a handful of models is
//! committed under `tests/golden/<case>/`, so that every diff shows what a change does to the
//! output. After an intended change, rewrite them with
//!
//!     UPDATE_GOLDEN=1 cargo test --test golden
//!
//! and review the diff. Cases whose model TensorFlow makes at test time are skipped (with the
//! command that makes it) until it exists; the Python suite checks that these files import,
//! run and match TensorFlow.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A model to convert: a committed file, or one `make_fixtures.py <generator>` makes.
enum Source {
    Committed(&'static str),
    Generated { file: &'static str, generator: &'static str },
}

fn model(source: &Source) -> Option<PathBuf> {
    match source {
        Source::Committed(p) => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)),
        Source::Generated { file, generator } => common::generated_fixture(file, generator),
    }
}

fn check(case: &str, source: Source) {
    let Some(input) = model(&source) else { return };
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join(case);
    let run = Command::new(env!("CARGO_BIN_EXE_tf2torch"))
        .arg("convert")
        .arg(&input)
        .arg("-o")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(case);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for file in ["model.py", "custom_ops.py"] {
        let got = std::fs::read_to_string(dir.join(file)).ok();
        let want_path = golden.join(file);
        let want = std::fs::read_to_string(&want_path).ok();
        if got == want {
            continue;
        }
        if update {
            std::fs::create_dir_all(&golden).unwrap();
            match &got {
                Some(text) => std::fs::write(&want_path, text).unwrap(),
                None => std::fs::remove_file(&want_path).unwrap(),
            }
            continue;
        }
        panic!(
            "{case}/{file} differs from tests/golden ({}); if the change is intended, run \
             `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff",
            first_difference(want.as_deref().unwrap_or(""), got.as_deref().unwrap_or(""))
        );
    }
}

/// Where two texts first differ, for the failure message.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let k = w.iter().zip(&g).take_while(|(a, b)| a == b).count();
    let line = |v: &[&str]| v.get(k).copied().unwrap_or("<end of file>").to_string();
    format!("line {}: golden {:?}, now {:?}", k + 1, line(&w), line(&g))
}

/// A TF1 CNN from raw `tf.nn` ops (the shipped sample).
#[test]
fn tf1_cnn() {
    check("tf1_cnn", Source::Committed("samples/small_cnn.pb"));
}

/// An op with no translation, inside a loop: a stub called from a `while` method.
#[test]
fn stub_in_loop() {
    check("stub_in_loop", Source::Committed("tests/fixtures/ops/loop_unknown_op.pb"));
}

/// keras.applications.ResNet50: block classes, NCHW throughout.
#[test]
fn resnet50() {
    check("resnet50", Source::Generated { file: "keras_resnet50.pb", generator: "keras_resnet50" });
}

/// keras-hub BERT (4 layers): a transformer layer class, attention as written today.
#[test]
fn bert_small() {
    check(
        "bert_small",
        Source::Generated { file: "keras_hub_bert_small.pb", generator: "keras_hub_bert_small" },
    );
}

/// Keras LSTM → GRU → Dense: `nn.LSTM` and `nn.GRU` with their states.
#[test]
fn lstm_gru() {
    check("lstm_gru", Source::Generated { file: "rnn_lstm_gru.pb", generator: "rnn_lstm_gru" });
}
