//! A GraphDef from arbitrary bytes through every stage that does not touch the disk: decode,
//! function inlining, IR, passes, lowering, printing. Anything may fail; nothing may panic,
//! hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(gd) = tf2torch::proto::GraphDef::decode(data) else { return };
    let Ok(gd) = tf2torch::load::inline_library(gd) else { return };
    let Ok(mut graph) = tf2torch::ir::build(gd, &[], &[]) else { return };
    if tf2torch::passes::run_all(&mut graph).is_err() {
        return;
    }
    let Ok((module, _)) = tf2torch::lower::lower(&graph, "Model", "fuzz.pb") else { return };
    let _ = tf2torch::emit::render_model(&module, false);
    let _ = tf2torch::emit::render_custom_ops(&module, None);
    let _ = tf2torch::ir::dump(&graph, None);
});
