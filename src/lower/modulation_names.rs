//! Names for the parts of an adaptive norm's modulation (DiT, Stable Diffusion 3, Flux): a
//! projection of the conditioning split into chunks that shift and scale a normalized
//! value, `x * (1 + scale) + shift`, and gate a branch before it is added back,
//! `residual + gate * x`. The chunks are named `shift`, `scale` and `gate`, as diffusers
//! writes them, not after the norm's scope and numbered (`ada_layer_norm_4`). Read off the
//! wiring, only where one split gives both a shift and a scale.

use petgraph::stable_graph::NodeIndex;

use super::layout_walk::sole_reader;
use crate::ir::{Graph, ValueRef};

/// Ops that only lay a chunk out (a new axis for the positions).
const LAYOUT: &[&str] = &["ExpandDims", "Reshape", "Identity"];

/// Ops that split a projection into chunks.
pub(super) const SPLITS: &[&str] = &["Split", "SplitV", "Unpack"];

/// How many layout ops a chunk may pass through before its use.
const REACH: usize = 3;

/// The most chunks a modulation has (Flux's double block: six; a split into more is
/// something else, and each of its outputs would look at all the others).
const MAX_CHUNKS: usize = 12;

/// The names of the chunks of split `n` (by output port), where it is a modulation.
pub(super) fn modulation_parts(graph: &Graph, n: NodeIndex) -> Option<Vec<Option<&'static str>>> {
    if !SPLITS.contains(&graph.node(n).op.as_str()) {
        return None;
    }
    let ports = graph.node(n).outputs.len();
    if ports > MAX_CHUNKS {
        return None;
    }
    let parts: Vec<Option<&'static str>> =
        (0..ports).map(|port| part_role(graph, ValueRef { node: n, port })).collect();
    let has = |r: &str| parts.contains(&Some(r));
    (has("shift") && has("scale")).then_some(parts)
}

/// `shift`, `scale` or `gate`: what chunk `v` does where it is used.
fn part_role(graph: &Graph, v: ValueRef) -> Option<&'static str> {
    let (user, other) = use_of(graph, v)?;
    let op = graph.node(user).op.as_str();
    let out = ValueRef { node: user, port: 0 };
    match op {
        // `1 + scale`, then the product with the normalized value.
        "AddV2" | "Add" if is_one(graph, other) => {
            let (times, _) = sole_reader(graph, out)?;
            is_mul(graph, times).then_some("scale")
        }
        // `x * (1 + scale) + shift`.
        "AddV2" | "Add" => {
            let by_one_plus = is_mul(graph, other.node)
                && graph.inputs(other.node).iter().any(|&f| one_plus(graph, f));
            by_one_plus.then_some("shift")
        }
        // `gate * x`, then added back onto the residual.
        "Mul" => {
            let (add, _) = sole_reader(graph, out)?;
            matches!(graph.node(add).op.as_str(), "AddV2" | "Add").then_some("gate")
        }
        _ => None,
    }
}

/// The binary op that uses chunk `v` (through layout ops), with its other operand.
fn use_of(graph: &Graph, v: ValueRef) -> Option<(NodeIndex, ValueRef)> {
    let mut at = v;
    for _ in 0..=REACH {
        let (reader, slot) = sole_reader(graph, at)?;
        let node = graph.node(reader);
        if LAYOUT.contains(&node.op.as_str()) && slot == 0 {
            at = ValueRef { node: reader, port: 0 };
            continue;
        }
        let inputs = graph.inputs(reader);
        if inputs.len() != 2 || slot > 1 {
            return None;
        }
        return Some((reader, inputs[1 - slot]));
    }
    None
}

fn is_mul(graph: &Graph, n: NodeIndex) -> bool {
    graph.node(n).op == "Mul"
}

/// Whether `v` is the constant 1.
fn is_one(graph: &Graph, v: ValueRef) -> bool {
    graph.const_value(v).and_then(|t| t.scalar_f64()) == Some(1.0)
}

/// Whether `v` is `1 + s` (either order).
fn one_plus(graph: &Graph, v: ValueRef) -> bool {
    matches!(graph.node(v.node).op.as_str(), "AddV2" | "Add")
        && graph.inputs(v.node).iter().any(|&t| is_one(graph, t))
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::{TestGraph, int, weights};

    /// DiT's modulation: the conditioning projected and split in three, shifting and scaling
    /// the normalized input and gating the branch added back. Without a shift beside the
    /// scale, chunks are no modulation and keep their scope's name.
    #[test]
    fn an_adaptive_norms_chunks_are_shift_scale_and_gate() {
        let lower = |with_shift: bool| {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 8]);
            let c = g.input("c", &[-1, 8]);
            let w = g.variable("m/ada/dense/kernel", weights(&[8, 24]));
            let p = g.op("m/ada/dense/MatMul", "MatMul", &[c, w], &[]);
            let axis = g.constant("m/ada/axis", Tensor::from_i32(vec![], &[1]));
            let split = g.op("m/ada/split", "Split", &[axis, p], &[("num_split", int(3))]);
            let part = |k| TestGraph::port(split, k);
            let one = g.constant("m/ada/one", Tensor::from_f32(vec![], &[1.0]));
            let one_plus = g.op("m/ada/add", "AddV2", &[one, part(1)], &[]);
            let scaled = g.op("m/ada/mul", "Mul", &[x, one_plus], &[]);
            let shifted = if with_shift {
                g.op("m/ada/add_1", "AddV2", &[scaled, part(0)], &[])
            } else {
                g.op("m/ada/sub", "Sub", &[scaled, part(0)], &[])
            };
            let kernel = g.variable("m/branch/kernel", weights(&[8, 8]));
            let branch = g.op("m/branch/MatMul", "MatMul", &[shifted, kernel], &[]);
            let gated = g.op("m/ada/mul_1", "Mul", &[part(2), branch], &[]);
            let out = g.op("m/add", "AddV2", &[x, gated], &[]);
            g.lower(&[out])
        };
        let code = lower(true);
        assert!(code.contains("shift, scale, gate = torch.split("), "{code}");
        assert!(code.contains("gate * "), "{code}");
        let code = lower(false);
        assert!(!code.contains("shift") && !code.contains("gate"), "{code}");
    }
}
