//! Static shape inference and constant folding, in one walk: each needs the other (a Reshape's
//! target is often computed from `Shape` of a tensor, and `Shape` folds once shapes are known).

use crate::error::{Error, Result};
use petgraph::stable_graph::NodeIndex;

use super::pattern::read_sizes;
use crate::ir::{Dim, Graph, Node, ValueInfo, ValueRef, target_slot};
use crate::ops::{self, Folded, OpInputs};
use crate::tensor::{DType, Tensor};

pub fn fold_and_infer(g: &mut Graph) -> Result<()> {
    // A conditional taken for certain is inlined: its nodes are walked again, now with what is
    // known of its inputs (their values too).
    while walk(g)? {}
    Ok(())
}

/// One walk in topological order; whether a conditional was inlined.
fn walk(g: &mut Graph) -> Result<bool> {
    let mut inlined = false;
    let order = g.topo_order().map_err(|n| {
        let node = g.node(n);
        Error::node(&node.name, &node.op, "is part of a cycle that is not a loop frame")
    })?;
    for n in order {
        let node = g.node(n);
        if node.value.is_some() || node.op == "Placeholder" {
            continue;
        }
        let inputs = g.inputs(n);
        if node.op == crate::ir::fused::COND {
            super::conds::sink_constants(g, n);
            let inputs = g.inputs(n);
            let infos: Vec<ValueInfo> = inputs.iter().map(|&v| g.info(v)).collect();
            let outputs = super::conds::infer_cond(g.node_mut(n), &infos)?;
            g.node_mut(n).outputs = outputs;
            if let Some(k) = super::taken_branches::constant_branch(g, n) {
                super::taken_branches::inline_branch(g, n, k)?;
                inlined = true;
            } else {
                super::taken_branches::pass_through(g, n);
            }
            continue;
        }
        if node.op == crate::ir::fused::LOOP {
            let infos: Vec<ValueInfo> = inputs.iter().map(|&v| g.info(v)).collect();
            let consts: Vec<Option<Tensor>> =
                inputs.iter().map(|&v| g.const_value(v).cloned()).collect();
            let consts: Vec<Option<&Tensor>> = consts.iter().map(Option::as_ref).collect();
            let trained: Vec<Option<String>> =
                inputs.iter().map(|&v| g.node(v.node).trained_name()).collect();
            // Lists reserved without an element rank (pfor's) take the rank the body sets.
            let lists: Vec<bool> =
                inputs.iter().map(|&v| g.node(v.node).op == "TensorListReserve").collect();
            let outputs =
                super::loops::infer_loop(g.node_mut(n), &infos, &consts, &trained, &lists)?;
            g.node_mut(n).outputs = outputs;
            continue;
        }
        let Some(def) = ops::lookup(&node.op) else {
            // An op nothing translates becomes a stub: what follows it still needs a rank.
            if let Some(infos) = untranslated_outputs(g, n) {
                let node = g.node_mut(n);
                node.assumed = !node.attrs.contains_key("_output_shapes");
                node.outputs = infos;
            }
            continue;
        };
        let folded = {
            let inp = OpInputs {
                node,
                refs: inputs.clone(),
                infos: inputs.iter().map(|&v| g.info(v)).collect(),
                consts: inputs.iter().map(|&v| g.const_value(v)).collect(),
                partials: inputs
                    .iter()
                    .map(|&v| if v.port == 0 { g.node(v.node).partial.as_ref() } else { None })
                    .collect(),
                variables: inputs.iter().map(|&v| g.node(v.node).is_trained()).collect(),
            };
            let infos: Option<Vec<ValueInfo>> = def.infer.and_then(|f| f(&inp));
            // Fold functions check what they need: most need constant inputs, `Shape` only
            // needs a static shape.
            let folded = def.fold.and_then(|f| f(&inp));
            (infos, folded)
        };
        constant_reshape_target(g, n);
        let folded = within_budget(g, &inputs, folded);
        let generated = g.all_generated(&inputs);
        // A trained value only laid out anew or cut into parts (`ops.expand_dims(self.latents,
        // 0)`, a split bias) is still that trained value.
        let trained = match kept_input(&g.node(n).op).and_then(|i| inputs.get(i)) {
            Some(&v) if v.port == 0 => g.node(v.node).trained_name(),
            _ => None,
        };
        match folded {
            (_, Some(Folded::Tensor(t))) => {
                g.make_const(n, t, generated);
                g.node_mut(n).trained_from = trained;
            }
            (_, Some(Folded::Outputs(ts))) => {
                let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
                for (port, t) in ts.into_iter().enumerate() {
                    let mut c = Node::constant(format!("{name}/output_{port}"), t, ordinal);
                    c.generated |= generated;
                    c.trained_from.clone_from(&trained);
                    let c = g.add_node(c);
                    g.replace_uses(ValueRef { node: n, port }, ValueRef { node: c, port: 0 });
                }
            }
            (infos, partial) => {
                if let Some(infos) = infos {
                    g.node_mut(n).outputs = infos;
                }
                if let Some(Folded::Partial(p)) = partial {
                    g.set_partial(n, p);
                }
            }
        }
    }
    Ok(inlined)
}

/// The input whose elements an op only lays out anew or cuts into parts, each element kept
/// at most once: its results are that input's values, not new ones.
fn kept_input(op: &str) -> Option<usize> {
    match op {
        "Reshape" | "ExpandDims" | "Squeeze" | "Transpose" | "Identity" => Some(0),
        "Slice" | "StridedSlice" | "SplitV" | "Unpack" => Some(0),
        // `Split` takes its axis first.
        "Split" => Some(1),
        _ => None,
    }
}

/// The outputs of an op without a translation: what the file says (`_output_shapes`, which
/// TF1 writes), else output 0 taken to have the rank and dtype of its first tensor input, its
/// sizes unknown (so nothing is folded from them); the dtype is the op's own where an
/// attribute gives it (`T`, or `Tout` of `LookupTableFindV2`). A handle (a table's, a
/// queue's) is no tensor to take a shape from: the keys looked up in a table are. The stub's
/// docstring states the assumption.
fn untranslated_outputs(g: &Graph, n: NodeIndex) -> Option<Vec<ValueInfo>> {
    let node = g.node(n);
    if node.fused.is_some() || matches!(node.op.as_str(), "Placeholder" | "Const") {
        return None;
    }
    let dtype = node.output_type();
    if let Some(crate::proto::attr_value::Value::List(l)) =
        node.attrs.get("_output_shapes").and_then(|a| a.value.as_ref())
        && !l.shape.is_empty()
    {
        let shape = |s: &crate::proto::TensorShapeProto| {
            if s.unknown_rank { None } else { crate::tensor::shape_from_proto(Some(s)).ok() }
        };
        return Some(l.shape.iter().map(|s| ValueInfo { dtype, shape: shape(s) }).collect());
    }
    let handle = |d: Option<DType>| matches!(d, Some(DType::Resource | DType::Variant));
    let first = g.inputs(n).into_iter().map(|v| g.info(v)).find(|i| !handle(i.dtype))?;
    let rank = first.shape?.len();
    Some(vec![ValueInfo { dtype: dtype.or(first.dtype), shape: Some(vec![None; rank]) }])
}

/// A fold that would create more constant bytes than its constant inputs hold is kept only
/// while the graph's expansion budget lasts; past it the node stays a run-time op.
fn within_budget(
    g: &Graph,
    inputs: &[ValueRef],
    folded: (Option<Vec<ValueInfo>>, Option<Folded>),
) -> (Option<Vec<ValueInfo>>, Option<Folded>) {
    let out_bytes = match &folded.1 {
        Some(Folded::Tensor(t)) => t.data.len(),
        Some(Folded::Outputs(ts)) => ts.iter().map(|t| t.data.len()).sum(),
        _ => return folded,
    };
    let in_bytes: usize =
        inputs.iter().filter_map(|&v| g.const_value(v)).map(|t| t.data.len()).sum();
    if out_bytes <= in_bytes || g.budget.take(out_bytes - in_bytes) {
        folded
    } else {
        (folded.0, None)
    }
}

/// A Reshape whose target is computed from `Shape` (e.g. `[batch, 1, 1, C]` with a dynamic
/// batch) gets a constant target, so the shape arithmetic is not emitted at all: `-1` for a
/// single unknown entry; with several, the unknown entries stay marked on the constant's
/// `partial` (as `Dim::Of(value, axis)`) and the values they come from become extra inputs of
/// the Reshape, so that they are still alive where `forward` reads their `.shape`.
fn constant_reshape_target(g: &mut Graph, n: NodeIndex) {
    // A conv-transpose reads only the known entries of its output shape (its height and
    // width; an unknown batch becomes -1); a resize's size becomes a constant only when known.
    let Some((slot, arity)) = target_slot(&g.node(n).op) else { return };
    let reshape = matches!(g.node(n).op.as_str(), "Reshape" | "BroadcastTo" | "Fill" | "Slice");
    let inputs = g.inputs(n);
    let Some(&target) = inputs.get(slot) else { return };
    if g.const_value(target).is_some() || target.port != 0 || inputs.len() != arity {
        return;
    }
    let Some(p) = g.node(target.node).partial.clone() else {
        return;
    };
    if p.scalar {
        return;
    }
    let unknown = p.values.iter().filter(|d| !matches!(d, Dim::Known(v) if *v >= 0)).count();
    // A resize's size has no -1: unknown entries are read at run time by the translator.
    if !reshape && unknown > 0 && g.node(n).op != "Conv2DBackpropInput" {
        return;
    }
    // Nor do a conv-transpose's height and width: only its batch and channels may be -1.
    let spatial = p.values.get(1..p.values.len().saturating_sub(1)).unwrap_or_default();
    if !reshape && spatial.iter().any(|d| !matches!(d, Dim::Known(v) if *v >= 0)) {
        return;
    }
    let always = matches!(g.node(n).op.as_str(), "BroadcastTo" | "Slice" | "Fill");
    let symbolic = reshape && (unknown > 1 || (always && unknown > 0));
    if symbolic && p.values.contains(&Dim::Unknown) {
        return;
    }
    let dims: Vec<i64> = p.values.iter().map(|d| d.known().unwrap_or(-1)).collect();
    let (name, ordinal) = (format!("{}/target", g.node(n).name), g.node(n).ordinal);
    let c = Node::constant(name, Tensor::from_i64(vec![dims.len()], &dims), ordinal);
    let c = g.add_node(c);
    if symbolic {
        g.set_partial(c, p.clone());
    }
    g.set_input(n, slot, ValueRef { node: c, port: 0 });
    if symbolic {
        read_sizes(g, n, &p.values, arity);
    }
}

#[cfg(test)]
mod tests {
    use crate::passes::fold_and_infer;
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Constant arithmetic becomes a constant; shape arithmetic on a dynamic batch becomes a
    /// vector known in part, so the reshape's output shape is known but its batch.
    #[test]
    fn constants_fold_and_shapes_are_known_in_part() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 2, 3]);
        let a = g.constant("a", Tensor::from_f32(vec![], &[1.5]));
        let b = g.constant("b", Tensor::from_f32(vec![], &[2.0]));
        let c = g.op("c", "AddV2", &[a, b], &[]);
        let s = g.op("s", "Shape", &[x], &[]);
        let begin = g.constant("begin", int_tensor(&[1], &[0]));
        let end = g.constant("end", int_tensor(&[1], &[1]));
        let one = g.constant("one", int_tensor(&[1], &[1]));
        let n = g.op("n", "StridedSlice", &[s, begin, end, one], &[("shrink_axis_mask", int(1))]);
        let six = g.constant("six", int_tensor(&[], &[6]));
        let t = g.op("t", "Pack", &[n, six], &[("N", int(2))]);
        let r = g.op("r", "Reshape", &[x, t], &[]);
        let y = g.op("y", "Mul", &[r, c], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [?, 2, 3]
        c = Const -> float32 []
        r/target = Const -> int64 [2]
        r = Reshape(x:0, r/target:0) -> float32 [?, 6]
        y = Mul(r:0, c:0) -> float32 [?, 6]
        ");
    }
}
