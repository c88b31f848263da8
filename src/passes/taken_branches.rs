//! A conditional whose predicate becomes a constant only once shapes are known (Hugging Face's
//! Swin pads and shifts its windows `if min(resolution) > window_size`, Funnel pools by a
//! configuration flag carried through the graph) runs one branch, always: that branch's nodes
//! take the `_Cond`'s place, so the code reads as straight-line statements instead of a method
//! with an `if` on a buffer that always holds the same value. A predicate constant in the file
//! itself is handled earlier, on the `Switch` nodes ([`super::constant_switches`]).

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::error::{Error, Result};
use crate::ir::{Dim, Graph, Partial, ValueRef};
use crate::tensor::DType;

/// The branch a `_Cond` runs when its predicate (or a case's branch index) is a constant.
pub fn constant_branch(g: &Graph, n: NodeIndex) -> Option<usize> {
    let branches = g.node(n).cond()?.branches.len();
    let t = g.const_value(*g.inputs(n).first()?)?;
    if t.numel() != 1 || branches == 0 {
        return None;
    }
    if t.dtype == DType::Bool {
        // Branch 1 is `then` (a `Switch`'s output 1 is alive when the predicate holds).
        let holds = *t.data.first()? != 0;
        return (branches == 2).then_some(usize::from(holds));
    }
    let k = *t.to_i64()?.first()?;
    // Out of range takes the last branch, as `tf.switch_case` does.
    Some(usize::try_from(k).ok().filter(|&k| k < branches).unwrap_or(branches - 1))
}

/// Outputs of the `_Cond` `n` that every branch hands back as one same argument, unchanged:
/// whichever runs, it is that argument (SAM 3's geometry encoder passes its box labels
/// through both sides of a `tf.cond`). Their readers read the argument instead; a
/// conditional left with no reader is pruned.
pub fn pass_through(g: &mut Graph, n: NodeIndex) {
    let Some(cond) = g.node(n).cond() else { return };
    let args = g.inputs(n);
    let mut through = Vec::new();
    for port in 0..cond.branches.first().map_or(0, |b| b.outputs.len()) {
        let argument = |b: &crate::ir::Graph| {
            let out = *b.outputs.get(port)?;
            b.inputs.iter().position(|&i| i == out)
        };
        let Some(j) = cond.branches.first().and_then(argument) else { continue };
        if cond.branches.iter().all(|b| argument(b) == Some(j))
            && let Some(&arg) = args.get(j + 1)
        {
            through.push((port, arg));
        }
    }
    for (port, arg) in through {
        g.replace_uses(ValueRef { node: n, port }, arg);
    }
}

/// Replaces the `_Cond` `n` by the nodes of its branch `k`, reading the `_Cond`'s inputs where
/// the branch read its placeholders. The branch's shapes must be inferred already.
pub fn inline_branch(g: &mut Graph, n: NodeIndex, k: usize) -> Result<()> {
    let (name, op) = (g.node(n).name.clone(), g.node(n).op.clone());
    let fail = |msg: &str| Error::node(&name, &op, msg);
    let branch = g.node(n).cond().and_then(|c| c.branches.get(k)).cloned();
    let branch = branch.ok_or_else(|| fail("no such branch"))?;
    let args = g.inputs(n);
    if args.len() != branch.inputs.len() + 1 {
        return Err(fail("inputs and branch inputs disagree"));
    }
    let placeholders: BTreeMap<ValueRef, ValueRef> =
        branch.inputs.iter().copied().zip(args[1..].iter().copied()).collect();
    // A branch's node ordinals sit past its placeholders (one per argument, and the
    // predicate's): back to their places in the file.
    let shift = branch.inputs.len() + 1;
    let order = branch.topo_order().map_err(|_| fail("a branch with a cycle"))?;
    let mut copies: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
    for &b in &order {
        if branch.inputs.iter().any(|v| v.node == b) {
            continue;
        }
        let mut copy = branch.node(b).clone();
        copy.ordinal = copy.ordinal.saturating_sub(shift);
        copy.partial = None;
        copies.insert(b, g.add_node(copy));
    }
    let resolve = |v: ValueRef| match copies.get(&v.node) {
        Some(&c) => Ok(ValueRef { node: c, port: v.port }),
        None => placeholders.get(&v).copied().ok_or_else(|| fail("a branch value with no source")),
    };
    for &b in &order {
        let Some(&c) = copies.get(&b) else { continue };
        for (slot, v) in branch.inputs(b).into_iter().enumerate() {
            g.connect(resolve(v)?, c, slot);
        }
        if let Some(p) = &branch.node(b).partial {
            let values = p
                .values
                .iter()
                .map(|d| match d {
                    Dim::Of(v, axis) => resolve(*v).map(|v| Dim::Of(v, *axis)),
                    d => Ok(*d),
                })
                .collect::<Result<_>>()?;
            g.set_partial(c, Partial { scalar: p.scalar, values });
        }
    }
    let outputs = branch.outputs.iter().map(|&v| resolve(v)).collect::<Result<Vec<_>>>()?;
    for (port, out) in outputs.into_iter().enumerate() {
        g.replace_uses(ValueRef { node: n, port }, out);
    }
    g.g.remove_node(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::{extract_control_flow, fold_and_infer, prune, remove_identities};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `tf.cond(tf.size(x) > 4, relu, tanh * 2)`: the predicate is known once `x`'s shape is,
    /// so the `then` branch takes the conditional's place, and a value the branch computes
    /// from `x`'s shape folds with it.
    #[test]
    fn a_predicate_known_from_shapes_inlines_its_branch() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let size = g.op("size", "Rank", &[x], &[]);
        let one = g.constant("one", int_tensor(&[], &[1]));
        let p = g.op("p", "Greater", &[size, one], &[]);
        let st = g.op("cond/Relu/Switch", "Switch", &[x, p], &[]);
        let relu = g.op("cond/Relu", "Relu", &[TestGraph::port(st, 1)], &[]);
        let rs = g.op("cond/Rank/Switch", "Switch", &[size, p], &[]);
        let rank = g.op("cond/Rank", "Mul", &[TestGraph::port(rs, 1), TestGraph::port(rs, 1)], &[]);
        let sf = g.op("cond/Tanh/Switch", "Switch", &[x, p], &[]);
        let tanh = g.op("cond/Tanh", "Tanh", &[TestGraph::port(sf, 0)], &[]);
        let merged = g.op("cond/Merge", "Merge", &[tanh, relu], &[]);
        let zero = g.constant("zero", int_tensor(&[], &[0]));
        let merged_rank = g.op("cond/Merge_1", "Merge", &[zero, rank], &[]);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 4] =
            [prune, remove_identities, extract_control_flow, fold_and_infer];
        assert_snapshot!(g.after_passes(&[merged, merged_rank], &passes), @"
        inputs: x:0
        outputs: cond/Relu:0, cond/Rank:0
        x = Placeholder -> float32 [?, 4]
        cond/Relu = Relu(x:0) -> float32 [?, 4]
        cond/Rank = Const -> int32 []
        ");
    }

    /// A value both branches hand back unchanged is read from outside the conditional.
    #[test]
    fn a_value_every_branch_passes_through_is_read_directly() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let y = g.input("y", &[-1, 2]);
        let p = g.typed_input("p", &[], crate::tensor::DType::Bool);
        let sx = g.op("cond/Switch", "Switch", &[x, p], &[]);
        let relu = g.op("cond/Relu", "Relu", &[TestGraph::port(sx, 1)], &[]);
        let tanh = g.op("cond/Tanh", "Tanh", &[TestGraph::port(sx, 0)], &[]);
        let merged = g.op("cond/Merge", "Merge", &[tanh, relu], &[]);
        let sy = g.op("cond/Switch_1", "Switch", &[y, p], &[]);
        let yt = g.op("cond/y_then", "Identity", &[TestGraph::port(sy, 1)], &[]);
        let ye = g.op("cond/y_else", "Identity", &[TestGraph::port(sy, 0)], &[]);
        let merged_y = g.op("cond/Merge_1", "Merge", &[ye, yt], &[]);
        let z = g.op("z", "Neg", &[merged_y], &[]);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 4] =
            [prune, remove_identities, extract_control_flow, fold_and_infer];
        assert_snapshot!(g.after_passes(&[merged, z], &passes), @"
        inputs: x:0, y:0, p:0
        outputs: cond:0, z:0
        x = Placeholder -> float32 [?, 4]
        y = Placeholder -> float32 [?, 2]
        p = Placeholder -> bool []
        cond = _Cond(p:0, x:0) -> float32 [?, 4]
          branch 0:
            inputs: cond/else/input_0:0
            outputs: cond/Tanh:0
            cond/else/input_0 = Placeholder -> float32 [?, 4]
            cond/Tanh = Tanh(cond/else/input_0:0) -> float32 [?, 4]
          branch 1:
            inputs: cond/then/input_0:0
            outputs: cond/Relu:0
            cond/then/input_0 = Placeholder -> float32 [?, 4]
            cond/Relu = Relu(cond/then/input_0:0) -> float32 [?, 4]
        z = Neg(y:0) -> float32 [?, 2]
        ");
    }

    /// A run-time predicate keeps its conditional.
    #[test]
    fn a_run_time_predicate_keeps_its_conditional() {
        let mut g = TestGraph::new();
        let merged = crate::passes::conds::tests::tf1_cond(&mut g);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 2] =
            [extract_control_flow, fold_and_infer];
        let text = g.after_passes(&[merged], &passes);
        assert!(text.contains("cond = _Cond(p:0, x:0)"), "{text}");
    }
}
