//! A SavedModel whose `saved_model.pb` is arbitrary bytes (beside a real variables checkpoint,
//! `fuzz/seeds/saved_model_variables`), through loading: MetaGraph and signature selection,
//! captured variables, inlining of its functions.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("saved_model.pb"), data).expect("write");
    let vars = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/saved_model_variables");
    let out = dir.path().join("variables");
    std::fs::create_dir(&out).expect("variables dir");
    if let Ok(entries) = std::fs::read_dir(vars) {
        for e in entries.flatten() {
            let _ = std::fs::copy(e.path(), out.join(e.file_name()));
        }
    }
    let sel = tf2torch::load::saved_model::Selection::default();
    if let Ok(flat) = tf2torch::load::saved_model::load(dir.path(), &sel)
        && let Ok(mut graph) = tf2torch::ir::build(flat.graph, &flat.inputs, &flat.outputs)
    {
        let _ = tf2torch::passes::run_all(&mut graph);
    }
});
