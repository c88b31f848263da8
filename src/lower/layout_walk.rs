//! Following a weight to where it is used through ops that only lay it out (a reshape, a
//! broadcast over the batch, a cast): the wiring that names a frozen graph's weights
//! (`token_names`, `rotary_tables`) looks past them. The names of an attention's parts and
//! of a modulation's chunks follow a value to its one reader (`sole_reader`).

use petgraph::stable_graph::NodeIndex;

use crate::ir::{Graph, ValueRef, reads_only_size};

/// Ops that only lay a value out.
const LAYOUT: &[&str] = &["Tile", "BroadcastTo", "Identity", "Cast", "ExpandDims", "Reshape"];

/// How many readers one search looks at in all: a hostile graph may give each op 100k
/// readers.
pub(super) const BUDGET: usize = 64;

/// The first answer `at(reader, slot)` gives for a reader of `v`, or of what layout ops
/// (at most `reach` of them in a row) make of it, within `budget` readers.
pub(super) fn find<T>(
    graph: &Graph,
    v: ValueRef,
    reach: usize,
    budget: &mut usize,
    at: &mut impl FnMut(NodeIndex, usize) -> Option<T>,
) -> Option<T> {
    if reach == 0 {
        return None;
    }
    for (reader, slot) in graph.consumers(v) {
        *budget = budget.checked_sub(1)?;
        if let Some(found) = at(reader, slot) {
            return Some(found);
        }
        if LAYOUT.contains(&graph.node(reader).op.as_str()) && slot == 0 {
            let out = ValueRef { node: reader, port: 0 };
            if let Some(found) = find(graph, out, reach - 1, budget, at) {
                return Some(found);
            }
        }
    }
    None
}

/// The one reader of `v` that reads more than its size, with its slot: none where another
/// reads it too, or the model gives it back.
pub(super) fn sole_reader(graph: &Graph, v: ValueRef) -> Option<(NodeIndex, usize)> {
    if graph.outputs.contains(&v) {
        return None;
    }
    let mut readers =
        graph.consumers(v).into_iter().filter(|&(r, s)| !reads_only_size(&graph.node(r).op, s));
    let first = readers.next()?;
    readers.next().is_none().then_some(first)
}
