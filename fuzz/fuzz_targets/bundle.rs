//! The tensor-bundle (checkpoint) reader: the index table from arbitrary bytes, then, when it
//! parses, every tensor read from a data file made of the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if tf2torch::load::bundle::read_table(data).is_err() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ckpt.index"), data).expect("write index");
    std::fs::write(dir.path().join("ckpt.data-00000-of-00001"), data).expect("write data");
    if let Ok(bundle) = tf2torch::load::bundle::Bundle::open(&dir.path().join("ckpt")) {
        let keys: Vec<String> = bundle.keys().map(str::to_string).collect();
        for k in keys {
            let _ = bundle.tensor(&k);
            let _ = bundle.scalar_string(&k);
        }
    }
});
