//! CLI behaviour on bad input: a one-line error naming the problem, a non-zero exit, and no
//! output folder left behind. Never a panic.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops").join(name)
}

/// Runs `convert INPUT -o <tmp>/out`, expects failure; returns stderr.
fn convert_fails(input: &Path, extra: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let assert = Command::cargo_bin("tf2torch")
        .unwrap()
        .arg("convert")
        .arg(input)
        .arg("-o")
        .arg(&out)
        .args(extra)
        .assert()
        .failure();
    let output = assert.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error expected: {stderr}");
    assert!(!out.exists(), "output folder left behind");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    stderr
}

#[test]
fn missing_file() {
    let err = convert_fails(Path::new("/nonexistent/model.pb"), &[]);
    assert!(err.contains("/nonexistent/model.pb"), "{err}");
}

#[test]
fn not_a_graphdef() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("notes.pb");
    std::fs::write(&p, "this is a text file, not a protobuf\n").unwrap();
    let err = convert_fails(&p, &[]);
    assert!(err.contains("not a TensorFlow GraphDef"), "{err}");
}

#[test]
fn empty_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("empty.pb");
    std::fs::write(&p, b"").unwrap();
    let err = convert_fails(&p, &[]);
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn truncated_graphdef() {
    let bytes = std::fs::read(fixture("tf1_cnn.pb")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 7] {
        let p = tmp.path().join(format!("cut{cut}.pb"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let err = convert_fails(&p, &[]);
        assert!(err.contains(&format!("cut{cut}.pb")), "{err}");
    }
}

#[test]
fn saved_model_without_a_meta_graph() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my_saved_model");
    std::fs::create_dir_all(dir.join("variables")).unwrap();
    std::fs::write(dir.join("saved_model.pb"), b"\x08\x01").unwrap();
    let err = convert_fails(&dir, &[]);
    assert!(err.contains("my_saved_model") && err.contains("no MetaGraph"), "{err}");
}

#[test]
fn requested_output_that_does_not_exist() {
    let err = convert_fails(&fixture("tf1_cnn.pb"), &["--outputs", "no_such_node:0"]);
    assert!(err.contains("no_such_node:0"), "{err}");
}

/// Inputs the fuzzers found crashing or hanging (`scripts/fuzz.sh`), kept under
/// `tests/fixtures/fuzz/`: each converts or fails cleanly, in seconds.
#[test]
fn fuzz_findings_convert_or_fail_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let tmp = tempfile::tempdir().unwrap();
    for f in files {
        let start = std::time::Instant::now();
        let output = Command::cargo_bin("tf2torch")
            .unwrap()
            .arg("convert")
            .arg(&f)
            .arg("-o")
            .arg(tmp.path().join(f.file_stem().unwrap()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", f.display());
        assert!(
            matches!(output.status.code(), Some(0..=2)),
            "{}: {:?}",
            f.display(),
            output.status
        );
        assert!(start.elapsed().as_secs() < 20, "{}: {:?}", f.display(), start.elapsed());
    }
}

#[test]
fn hostile_bytes_never_panic() {
    // Flip bytes all over a real graph: every outcome must be a clean success or error.
    let bytes = std::fs::read(fixture("ops_conv.pb")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for i in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
        let mut b = bytes.clone();
        b[i] ^= 0xA5;
        let p = tmp.path().join("m.pb");
        std::fs::write(&p, &b).unwrap();
        let out = tmp.path().join(format!("out{i}"));
        let output = Command::cargo_bin("tf2torch")
            .unwrap()
            .arg("convert")
            .arg(&p)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "byte {i}: {stderr}");
        assert!(output.status.code().is_some(), "byte {i}: killed by a signal");
    }
}

#[test]
fn inspect_lists_inputs_outputs_and_ops() {
    let out = Command::cargo_bin("tf2torch")
        .unwrap()
        .arg("inspect")
        .arg(fixture("unknown_op.pb"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("inputs:") && s.contains("input_0"), "{s}");
    assert!(s.contains("MyFancyActivation") && s.contains("stub"), "{s}");
    assert!(s.contains("parameters:"), "{s}");
}

/// `debug passes` shows what each pass did: here, `fuse_bias` moving a BiasAdd into its MatMul.
#[test]
fn debug_passes_shows_the_graph_after_each_pass() {
    let out = Command::cargo_bin("tf2torch")
        .unwrap()
        .args(["debug", "passes"])
        .arg(fixture("ops_matmul.pb"))
        .args(["--node", "MatMul", "--pass"])
        .arg("unflatten_rows")
        .assert()
        .success();
    let before = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        before.starts_with("== after unflatten_rows ==\nMatMul = MatMul(input_0:0, Const:0) {")
    );
    let out = Command::cargo_bin("tf2torch")
        .unwrap()
        .args(["debug", "passes"])
        .arg(fixture("ops_matmul.pb"))
        .args(["--node", "MatMul", "--pass", "fuse_bias"])
        .assert()
        .success();
    let after = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(after.contains("MatMul = MatMul(input_0:0, Const:0, Const_1:0) {"), "{after}");
}

/// A GraphDef written here: a float Placeholder `x`, then `nodes` as (name, op, inputs).
fn graph_file(dir: &Path, nodes: &[(&str, &str, &[&str])]) -> PathBuf {
    use prost::Message;
    use tf2torch::proto::attr_value::Value;
    use tf2torch::proto::{AttrValue, GraphDef, NodeDef};
    let mut x = NodeDef { name: "x".into(), op: "Placeholder".into(), ..Default::default() };
    x.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(1)) });
    let mut node = vec![x];
    for (name, op, inputs) in nodes {
        node.push(NodeDef {
            name: name.to_string(),
            op: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
    }
    let path = dir.join("model.pb");
    std::fs::write(&path, GraphDef { node, ..Default::default() }.encode_to_vec()).unwrap();
    path
}

/// Node and op names holding terminal escapes (clear screen, set title, bell, carriage
/// return) are printed escaped by `convert`, `inspect`, `debug passes` and in errors.
#[test]
fn terminal_escapes_in_names_are_printed_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let evil = "\u{1b}[2J\u{1b}]0;pwned\u{7}\rok";
    let model = graph_file(tmp.path(), &[(evil, "Bad\u{1b}[31mOp", &["x"])]);
    let out_dir = tmp.path().join("out");
    let runs = [
        vec!["convert".into(), model.clone(), "-o".into(), out_dir],
        vec!["inspect".into(), model.clone()],
        vec!["debug".into(), "passes".into(), model.clone()],
    ];
    for args in runs {
        let out = Command::cargo_bin("tf2torch").unwrap().args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\r']),
            "{args:?} printed raw escapes: {text:?}"
        );
        assert!(text.contains("Bad\\x1b[31mOp"), "{args:?}: {text}");
    }
    // The same in an error (an input that names no node).
    let bad = graph_file(tmp.path(), &[("y", "Relu", &["\u{1b}]0;title\u{7}:0"])]);
    let err = convert_fails(&bad, &[]);
    assert!(!err.contains(['\u{1b}', '\u{7}']) && err.contains("\\x1b]0;title\\x07"), "{err:?}");
}

/// `--class-name` values that would replace the file's own names (`__file__`, the weight
/// reader, `load_model`) are refused.
#[test]
fn class_names_shadowing_the_files_own_names_are_refused() {
    for name in ["__file__", "__builtins__", "_DTYPES", "_read_safetensors", "load_model", "nn"] {
        let err = convert_fails(&fixture("tf1_cnn.pb"), &["--class-name", name]);
        assert!(err.contains("is not a valid Python class name"), "{name}: {err}");
    }
}

#[test]
fn an_input_given_twice_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = graph_file(tmp.path(), &[("y", "Relu", &["x"])]);
    let err = convert_fails(&model, &["--inputs", "x:0,x:0"]);
    assert!(err.contains("input 'x:0' is given twice"), "{err}");
}

/// A graph of a float Placeholder `x` of shape [4, 6], an int32 scalar `axis` = 1, and one
/// node `n` of `op` reading `inputs` with attributes `attrs` (integers; a list for a name
/// ending in `_dims`).
fn one_op_file(dir: &Path, op: &str, inputs: &[&str], attrs: &[(&str, i64)]) -> PathBuf {
    use prost::Message;
    use tf2torch::proto::attr_value::Value;
    use tf2torch::proto::tensor_shape_proto::Dim;
    use tf2torch::proto::{AttrValue, GraphDef, ListValue, NodeDef, TensorProto, TensorShapeProto};
    let attr = |v| AttrValue { value: Some(v) };
    let mut x = NodeDef { name: "x".into(), op: "Placeholder".into(), ..Default::default() };
    x.attr.insert("dtype".into(), attr(Value::Type(1)));
    let dim = vec![Dim { size: 4 }, Dim { size: 6 }];
    x.attr
        .insert("shape".into(), attr(Value::Shape(TensorShapeProto { dim, unknown_rank: false })));
    let mut axis = NodeDef { name: "axis".into(), op: "Const".into(), ..Default::default() };
    axis.attr.insert("dtype".into(), attr(Value::Type(3)));
    let t = TensorProto { dtype: 3, int_val: vec![1], ..Default::default() };
    axis.attr.insert("value".into(), attr(Value::Tensor(Box::new(t))));
    let mut n = NodeDef {
        name: "n".into(),
        op: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    for &(k, v) in attrs {
        let value = if k.ends_with("_dims") {
            Value::List(Box::new(ListValue { i: vec![v], ..Default::default() }))
        } else {
            Value::I(v)
        };
        n.attr.insert(k.to_string(), attr(value));
    }
    let path = dir.join(format!("{}.pb", op.to_lowercase()));
    std::fs::write(
        &path,
        GraphDef { node: vec![x, axis, n], ..Default::default() }.encode_to_vec(),
    )
    .unwrap();
    path
}

/// Attribute values no TensorFlow would write (a negative or 2^40 output count, a window
/// radius near i64::MAX, squeezing a dimension of size 4): the op becomes a stub saying why,
/// or translates when the value does not matter to PyTorch; nothing panics or runs out of
/// memory. (Split and Unpack used to abort on a 2^40-entry allocation.)
#[test]
fn absurd_attribute_values_give_stubs_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    // (op, inputs, attribute, what the summary must say)
    type Case = (&'static str, &'static [&'static str], (&'static str, i64), &'static str);
    let cases: [Case; 5] = [
        ("Split", &["axis", "x"], ("num_split", -1), "num_split -1 is not a number of outputs"),
        ("Split", &["axis", "x"], ("num_split", 1 << 40), "is not a number of outputs"),
        ("Unpack", &["x"], ("num", 1 << 40), "1 ops translated"),
        ("LRN", &["x"], ("depth_radius", i64::MAX), "is not a window radius"),
        ("Squeeze", &["x"], ("squeeze_dims", 0), "squeezes axis 0 of size 4"),
    ];
    for (op, inputs, (attr, value), reason) in cases {
        let model = one_op_file(tmp.path(), op, inputs, &[(attr, value)]);
        let out = tmp.path().join(format!("out_{op}_{value}"));
        let output = Command::cargo_bin("tf2torch")
            .unwrap()
            .arg("convert")
            .arg(&model)
            .arg("-o")
            .arg(&out)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{op} {attr}={value}: {stderr}");
        assert!(stdout.contains(reason), "{op} {attr}={value}: {stdout}");
    }
}

/// `--quiet` prints nothing; without it a pipe gets the summary on stdout and no progress bar
/// on stderr (the bar is for terminals).
#[test]
fn quiet_is_silent_and_pipes_get_no_progress_bar() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/small_cnn.pb");
    let run = |out: &str, extra: &[&str]| {
        Command::cargo_bin("tf2torch")
            .unwrap()
            .arg("convert")
            .arg(&sample)
            .arg("-o")
            .arg(tmp.path().join(out))
            .args(extra)
            .assert()
            .success()
            .get_output()
            .clone()
    };
    let quiet = run("a", &["--quiet"]);
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty(), "{quiet:?}");
    assert!(tmp.path().join("a/model.py").exists());
    let plain = run("b", &[]);
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with("converted "));
    assert!(plain.stderr.is_empty(), "{}", String::from_utf8_lossy(&plain.stderr));
}
