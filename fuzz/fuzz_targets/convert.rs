//! The whole `convert` on a file of arbitrary bytes, output folder included.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("model.pb");
    std::fs::write(&input, data).expect("write input");
    let opts = tf2torch::Options {
        input,
        out_dir: dir.path().join("out"),
        ..tf2torch::Options::default()
    };
    let _ = tf2torch::convert(&opts);
});
