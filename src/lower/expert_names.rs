//! Names for a mixture of experts' stacked kernels whose variables' names say nothing: Keras
//! 3 reads them through a `Cast` (mixed precision), so a frozen graph keeps only
//! `experts/Cast/ReadVariableOp` and `experts/Cast_1/ReadVariableOp`, which would make them
//! `experts` and `experts_2`. Each is named by its part in every expert's feed-forward, as
//! Hugging Face names the stacked kernels (Mixtral's, GPT-OSS's `experts.gate_up_proj`,
//! `experts.down_proj`):
//!
//! - a kernel whose product another expert kernel's contraction reads (through the
//!   activation and the gating product) projects in: `gate_up_proj` where its product is
//!   split into the gate and the up projection (Qwen-MoE, GPT-OSS), `gate_proj` where its
//!   product goes through the activation and multiplies another's, `up_proj` otherwise;
//! - a kernel whose contraction reads another expert kernel's product projects back out:
//!   `down_proj`.
//!
//! A stacked kernel is `[experts, in, out]`, contracted over `in` with the experts kept as
//! the leading axis of the product (`ab,cbd->cad`, `abc,acd->abd`); an EinsumDense
//! projection into heads (`btd,dnh->btnh`) contracts its first axis and is none. Both
//! layers must be found, so no lone rank-3 weight is taken for an expert.

use petgraph::Direction;
use petgraph::stable_graph::NodeIndex;

use crate::ir::{Graph, ValueRef};

/// How far apart (in ops) the two contractions of one expert feed-forward may be: a split,
/// an activation, the gating product and a cast or two between them.
const REACH: usize = 6;

/// The part of an expert feed-forward trained constant `n` is (see the module's doc), if it
/// is a stacked expert kernel.
fn kernel_word(graph: &Graph, n: NodeIndex) -> Option<&'static str> {
    let reader = expert_contraction(graph, n)?;
    let other = graph.inputs(reader).into_iter().find(|v| v.node != n)?;
    if reaches(graph, other.node, REACH, &|m| m != reader && is_expert_product(graph, m), true) {
        return Some("down_proj");
    }
    let product = ValueRef { node: reader, port: 0 };
    let feeds_another =
        |from: NodeIndex| reaches(graph, from, REACH, &|m| is_expert_product(graph, m), false);
    let readers = past_bias(graph, product);
    if !readers.iter().any(|&(r, _)| feeds_another(r)) {
        return None;
    }
    let op = |r: NodeIndex| graph.node(r).op.as_str();
    let slices = readers.iter().filter(|&&(r, _)| op(r) == "StridedSlice").count();
    if readers.iter().any(|&(r, _)| matches!(op(r), "Split" | "SplitV" | "Unpack")) || slices >= 2 {
        return Some("gate_up_proj");
    }
    // The gate goes through the activation and multiplies the up projection.
    Some(if multiplied_by_another(graph, reader) { "gate_proj" } else { "up_proj" })
}

/// The name of trained constant `n` in an expert feed-forward: a stacked kernel's part
/// ([`kernel_word`]), or `{part}_bias` for a bias `[experts, out]` added to that kernel's
/// product (GPT-OSS's `gate_up_proj_bias`, read as `bias[:, None]`).
pub(super) fn word(graph: &Graph, n: NodeIndex) -> Option<String> {
    if let Some(w) = kernel_word(graph, n) {
        return Some(w.to_string());
    }
    let t = graph.node(n).value.as_ref()?;
    if t.rank() != 2 {
        return None;
    }
    // Through the layout ops that broadcast it over the tokens, to the add.
    let mut at = n;
    for _ in 0..4 {
        let consumers = graph.consumers(ValueRef { node: at, port: 0 });
        let &[(reader, _)] = consumers.as_slice() else { return None };
        let op = graph.node(reader).op.as_str();
        if matches!(op, "Add" | "AddV2" | "BiasAdd") {
            let product = graph.inputs(reader).into_iter().find(|v| v.node != at)?.node;
            let kernel = graph
                .inputs(product)
                .into_iter()
                .find(|v| expert_contraction(graph, v.node) == Some(product))?;
            return kernel_word(graph, kernel.node).map(|w| format!("{w}_bias"));
        }
        if !matches!(op, "StridedSlice" | "ExpandDims" | "Reshape" | "Identity") {
            return None;
        }
        at = reader;
    }
    None
}

/// What reads `product`, past a bias added to it (GPT-OSS splits the sum).
fn past_bias(graph: &Graph, product: ValueRef) -> Vec<(NodeIndex, usize)> {
    let readers = graph.consumers(product);
    match readers.as_slice() {
        &[(add, _)] if matches!(graph.node(add).op.as_str(), "Add" | "AddV2" | "BiasAdd") => {
            graph.consumers(ValueRef { node: add, port: 0 })
        }
        _ => readers,
    }
}

/// The contraction reading `n` as a stacked expert kernel `[experts, in, out]`: its one
/// reader, an `Einsum` whose product leads with the experts and contracts `in`, or a batched
/// matmul of it as the second operand.
fn expert_contraction(graph: &Graph, n: NodeIndex) -> Option<NodeIndex> {
    let node = graph.node(n);
    let t = node.value.as_ref()?;
    if t.rank() != 3 || !t.dtype.is_float() {
        return None;
    }
    let consumers = graph.consumers(ValueRef { node: n, port: 0 });
    let &[(reader, slot)] = consumers.as_slice() else { return None };
    let r = graph.node(reader);
    let leading = match r.op.as_str() {
        "Einsum" => {
            let eq = r.attr_str("equation").ok()?;
            let (ins, out) = eq.split_once("->")?;
            let kernel = ins.split(',').nth(slot)?.as_bytes();
            let out = out.as_bytes();
            kernel.len() == 3
                && out.first() == kernel.first()
                && !out.contains(&kernel[1])
                && out.last() == kernel.last()
        }
        "BatchMatMul" | "BatchMatMulV2" | "BatchMatMulV3" => {
            let adjoint = |a: &str| r.attr_bool_or(a, true).unwrap_or(true);
            slot == 1 && !adjoint("adj_x") && !adjoint("adj_y")
        }
        _ => false,
    };
    leading.then_some(reader)
}

/// Whether `m` is the product of a stacked expert kernel's contraction.
fn is_expert_product(graph: &Graph, m: NodeIndex) -> bool {
    graph
        .inputs(m)
        .iter()
        .any(|v| graph.node(v.node).is_trained() && expert_contraction(graph, v.node) == Some(m))
}

/// Whether `found` holds for `from` or a node within `depth` ops of it, upstream (its
/// inputs) or downstream (its readers), through element-wise ops and splits only: a norm, a
/// reduction or a reshape between two contractions makes them two layers' (the next
/// layer's experts read the last one's after its residual and norm).
fn reaches(
    graph: &Graph,
    from: NodeIndex,
    depth: usize,
    found: &dyn Fn(NodeIndex) -> bool,
    upstream: bool,
) -> bool {
    // Breadth first, each node once: a value many ops read is walked past once.
    let mut seen = std::collections::BTreeSet::from([from]);
    let mut frontier = vec![from];
    for step in 0..=depth {
        let mut next = Vec::new();
        for m in frontier {
            if found(m) {
                return true;
            }
            if step == depth || !passes_through(graph, m) {
                continue;
            }
            let around: Vec<NodeIndex> = if upstream {
                graph.inputs(m).into_iter().map(|v| v.node).collect()
            } else {
                graph.g.neighbors_directed(m, Direction::Outgoing).collect()
            };
            next.extend(around.into_iter().filter(|&r| seen.insert(r)));
        }
        frontier = next;
    }
    false
}

/// Ops between an expert's two contractions: the split into gate and up, the activation,
/// the gating product, a bias, a clamp (GPT-OSS), casts.
fn passes_through(graph: &Graph, m: NodeIndex) -> bool {
    let op = graph.node(m).op.as_str();
    is_activation(graph, m)
        || matches!(op, "Mul" | "Add" | "AddV2" | "BiasAdd" | "Sub" | "Neg" | "Cast" | "Identity")
        || matches!(op, "Split" | "SplitV" | "Unpack" | "StridedSlice" | "Slice")
        || matches!(op, "Minimum" | "Maximum" | "ClipByValue")
}

/// An activation: TF's op, or the one the passes made of its parts (`_SiLU`); no other
/// synthetic op (a fused norm, attention) is one.
fn is_activation(graph: &Graph, r: NodeIndex) -> bool {
    use crate::ir::fused::Fused;
    let node = graph.node(r);
    let fused = matches!(
        node.fused,
        Some(
            Fused::SiLU
                | Fused::Mish
                | Fused::Gelu { .. }
                | Fused::HardSwish
                | Fused::HardSigmoid
                | Fused::PReLU { .. }
        )
    );
    fused
        || matches!(node.op.as_str(), "Relu" | "Relu6" | "Elu" | "Selu" | "Sigmoid" | "Tanh")
        || matches!(node.op.as_str(), "Gelu" | "Softplus" | "Swish")
}

/// Whether product `mul` multiplies `product` by another expert kernel's product.
fn multiplies_a_product(graph: &Graph, mul: NodeIndex, product: NodeIndex) -> bool {
    graph.inputs(mul).iter().any(|v| {
        v.node != product && reaches(graph, v.node, 2, &|m| is_expert_product(graph, m), true)
    })
}

/// Whether `product`, through its activation, multiplies another expert kernel's product.
fn multiplied_by_another(graph: &Graph, product: NodeIndex) -> bool {
    let readers = graph.consumers(ValueRef { node: product, port: 0 });
    readers.iter().filter(|&&(r, _)| is_activation(graph, r)).any(|&(act, _)| {
        graph
            .consumers(ValueRef { node: act, port: 0 })
            .iter()
            .any(|&(mul, _)| graph.node(mul).op == "Mul" && multiplies_a_product(graph, mul, act))
    })
}

#[cfg(test)]
mod tests {
    use super::word;
    use crate::ir::{Graph, ValueRef};
    use crate::testing::*;

    fn einsum(g: &mut TestGraph, name: &str, x: ValueRef, w: ValueRef, eq: &str) -> ValueRef {
        g.op(name, "Einsum", &[x, w], &[("equation", string(eq))])
    }

    fn words(g: &Graph, kernels: &[ValueRef]) -> Vec<Option<String>> {
        kernels.iter().map(|k| word(g, k.node)).collect()
    }

    /// Qwen-MoE's and GPT-OSS's experts: one kernel into both halves, split into gate and
    /// up (after a bias), gated, and back out: `gate_up_proj`, its bias, `down_proj`.
    #[test]
    fn a_kernel_whose_product_is_split_is_gate_up() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let w1 = g.variable("moe/experts/Cast/ReadVariableOp/resource", weights(&[4, 8, 32]));
        let h = einsum(&mut g, "moe/experts/einsum/Einsum", x, w1, "ab,cbd->cad");
        let b1 = g.variable("moe/experts/add/ReadVariableOp/resource", weights(&[4, 32]));
        let axis = g.constant("moe/experts/ExpandDims/dim", int_tensor(&[], &[1]));
        let b = g.op("moe/experts/ExpandDims", "ExpandDims", &[b1, axis], &[]);
        let h = g.op("moe/experts/add", "AddV2", &[h, b], &[]);
        let dim = g.constant("moe/experts/split/split_dim", int_tensor(&[], &[2]));
        let halves = g.op("moe/experts/split", "Split", &[dim, h], &[("num_split", int(2))]);
        let gate = g.op("moe/experts/Relu", "Relu", &[halves], &[]);
        let h = g.op("moe/experts/mul", "Mul", &[TestGraph::port(halves, 1), gate], &[]);
        let w2 = g.variable("moe/experts/Cast_1/ReadVariableOp/resource", weights(&[4, 16, 8]));
        let y = einsum(&mut g, "moe/experts/einsum_1/Einsum", h, w2, "abc,acd->abd");
        let graph = g.build(&[y]);
        let named = words(&graph, &[w1, b1, w2]);
        assert_eq!(
            named,
            [
                Some("gate_up_proj".into()),
                Some("gate_up_proj_bias".into()),
                Some("down_proj".into())
            ]
        );
    }

    /// Mixtral's experts: a gate kernel through the activation times an up kernel's
    /// product, then back out; keras.io's Switch Transformer's: one kernel in, one out.
    #[test]
    fn gate_up_and_down_kernels_are_told_by_their_products() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let wg = g.variable("moe/experts/Cast/ReadVariableOp/resource", weights(&[4, 8, 16]));
        let gate = einsum(&mut g, "moe/experts/einsum/Einsum", x, wg, "ab,cbd->cad");
        let gate = g.op("moe/experts/Relu", "Relu", &[gate], &[]);
        let wu = g.variable("moe/experts/Cast_1/ReadVariableOp/resource", weights(&[4, 8, 16]));
        let up = einsum(&mut g, "moe/experts/einsum_1/Einsum", x, wu, "ab,cbd->cad");
        let h = g.op("moe/experts/mul", "Mul", &[up, gate], &[]);
        let wd = g.variable("moe/experts/Cast_2/ReadVariableOp/resource", weights(&[4, 16, 8]));
        let y = einsum(&mut g, "moe/experts/einsum_2/Einsum", h, wd, "abc,acd->abd");
        let graph = g.build(&[y]);
        let named = words(&graph, &[wg, wu, wd]);
        assert_eq!(
            named,
            [Some("gate_proj".into()), Some("up_proj".into()), Some("down_proj".into())]
        );

        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let w1 = g.variable("switch/Cast_6/ReadVariableOp/resource", weights(&[4, 8, 16]));
        let h = einsum(&mut g, "switch/einsum/Einsum", x, w1, "ab,cbd->cad");
        let h = g.op("switch/Relu", "Relu", &[h], &[]);
        let w2 = g.variable("switch/Cast_7/ReadVariableOp/resource", weights(&[4, 16, 8]));
        let y = einsum(&mut g, "switch/einsum_1/Einsum", h, w2, "abc,acd->abd");
        let graph = g.build(&[y]);
        assert_eq!(words(&graph, &[w1, w2]), [Some("up_proj".into()), Some("down_proj".into())]);
    }

    /// Rank-3 kernels that are no experts' keep their scope's name: EinsumDense projections
    /// into heads and out of them contract their first axes, and a lone kernel of the
    /// experts' shape has no second layer.
    #[test]
    fn other_rank_3_kernels_are_no_experts() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 8]);
        let wq = g.variable("attn/query/Cast/ReadVariableOp/resource", weights(&[8, 2, 4]));
        let q = einsum(&mut g, "attn/query/einsum/Einsum", x, wq, "btd,dnh->btnh");
        let q = g.op("attn/Relu", "Relu", &[q], &[]);
        let wo = g.variable("attn/out/Cast/ReadVariableOp/resource", weights(&[2, 4, 8]));
        let y = einsum(&mut g, "attn/out/einsum/Einsum", q, wo, "btnh,nhd->btd");
        let t = g.input("t", &[-1, 8]);
        let lone = g.variable("moe/Cast/ReadVariableOp/resource", weights(&[4, 8, 16]));
        let z = einsum(&mut g, "moe/einsum/Einsum", t, lone, "ab,cbd->cad");
        let graph = g.build(&[y, z]);
        assert_eq!(words(&graph, &[wq, wo, lone]), [None, None, None]);
    }
}
