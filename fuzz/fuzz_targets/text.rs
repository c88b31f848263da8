//! Text-format GraphDefs (`.pbtxt`) from arbitrary text: the nesting gate, prost-reflect's
//! parser against TF's schemas, and the IR. Anything may fail; nothing may panic, overflow the
//! stack or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let parsed = tf2torch::proto::text::parse::<tf2torch::proto::GraphDef>("tensorflow.GraphDef", text);
    let Ok(gd) = parsed else { return };
    let Ok(gd) = tf2torch::load::inline_library(gd) else { return };
    let Ok(mut graph) = tf2torch::ir::build(gd, &[], &[]) else { return };
    let _ = tf2torch::passes::run_all(&mut graph);
});
