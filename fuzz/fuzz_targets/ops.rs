//! Small random graphs over every op tf2torch translates (`tests/common/op_graphs.rs`, which
//! `tests/random_graphs.rs` runs for a fixed set of seeds): nothing may panic, hang or
//! allocate without bound.
#![no_main]

#[path = "../../tests/common/op_graphs.rs"]
mod op_graphs;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(gd) = op_graphs::graph(&mut arbitrary::Unstructured::new(data)) {
        op_graphs::run(gd);
    }
});
