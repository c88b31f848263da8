//! Small matchers the fusion passes share: "this value is output 0 of an `Add`", "the two
//! operands of this `Mul`, the constant one first", "used by exactly one reader", ...
//! Each answers `None`/`false` rather than failing, so a pass reads as a chain of `?`.

use petgraph::stable_graph::NodeIndex;

use crate::ir::{Dim, Graph, Node, ValueInfo, ValueRef};
use crate::tensor::DType;
use crate::tensor::Tensor;

/// A new constant int32 vector (slice bounds, a permutation) at `ordinal`.
pub fn int_const(g: &mut Graph, name: String, values: &[i32], ordinal: usize) -> ValueRef {
    let t = Tensor::from_i32(vec![values.len()], values);
    ValueRef { node: g.add_node(Node::constant(name, t, ordinal)), port: 0 }
}

/// A new node `node` reading `inputs` (in slot order), with one output `info`.
pub fn add_op(g: &mut Graph, mut node: Node, inputs: &[ValueRef], info: ValueInfo) -> ValueRef {
    node.outputs = vec![info];
    let n = g.add_node(node);
    for (slot, &v) in inputs.iter().enumerate() {
        g.connect(v, n, slot);
    }
    ValueRef { node: n, port: 0 }
}

/// Makes `n` read, from slot `from` on, each value whose run-time size `dims` names
/// (`Dim::Of`), once: what keeps them alive where `forward` reads their `.shape`.
pub fn read_sizes(g: &mut Graph, n: NodeIndex, dims: &[Dim], from: usize) {
    let mut sources: Vec<ValueRef> = Vec::new();
    for d in dims {
        if let Dim::Of(v, _) = d
            && !sources.contains(v)
        {
            sources.push(*v);
        }
    }
    for (k, v) in sources.into_iter().enumerate() {
        g.connect(v, n, from + k);
    }
}

/// The slot by which an op acting on the last axis only (as the registry declares it) reads
/// the rows it transforms: its one non-constant input, its constants per feature (rank ≤ 1)
/// or a MatMul's kernel.
pub fn row_slot(g: &Graph, n: NodeIndex) -> Option<usize> {
    let node = g.node(n);
    let per_row = crate::ops::lookup(&node.op).and_then(|d| d.per_row);
    if !per_row.is_some_and(|when| when(node)) {
        return None;
    }
    let mut row = None;
    for (slot, &i) in g.inputs(n).iter().enumerate() {
        match g.const_value(i) {
            Some(t) if t.rank() <= 1 || (node.op == "MatMul" && slot == 1) => {}
            Some(_) => return None,
            None if row.is_none() => row = Some(slot),
            None => return None,
        }
    }
    row
}

/// Per-row ops (`(node, slot of its row input)`, last first) applied again to `v`, whose
/// leading axes are `lead`: each a copy of the op (its name, attributes and payload), its
/// output `lead` + its own last size. The last copy's output; the old ops stay for the
/// caller to drop.
pub fn rows_on(
    g: &mut Graph,
    ops: &[(NodeIndex, usize)],
    mut v: ValueRef,
    lead: &[Option<usize>],
) -> ValueRef {
    for &(n, slot) in ops.iter().rev() {
        let mut node = g.node(n).clone();
        let old = node.outputs.first().cloned().unwrap_or_default();
        let mut shape = lead.to_vec();
        shape.push(old.shape.as_ref().and_then(|s| s.last().copied()).flatten());
        node.outputs = vec![ValueInfo { dtype: old.dtype, shape: Some(shape) }];
        let inputs = g.inputs(n);
        let new = g.add_node(node);
        for (s, &i) in inputs.iter().enumerate() {
            g.connect(if s == slot { v } else { i }, new, s);
        }
        v = ValueRef { node: new, port: 0 };
    }
    v
}

/// The node producing `v`.
pub fn producer(g: &Graph, v: ValueRef) -> &Node {
    g.node(v.node)
}

/// Whether `v` is produced by an `op` node (any output).
pub fn is_op(g: &Graph, v: ValueRef, op: &str) -> bool {
    g.g.contains_node(v.node) && g.node(v.node).op == op
}

/// Whether `v` is output 0 of a node whose op is one of `ops`.
pub fn is_one_of(g: &Graph, v: ValueRef, ops: &[&str]) -> bool {
    v.port == 0 && g.g.contains_node(v.node) && ops.contains(&g.node(v.node).op.as_str())
}

/// The inputs of the node whose output 0 is `v`, when its op is one of `ops`.
pub fn inputs_of(g: &Graph, v: ValueRef, ops: &[&str]) -> Option<Vec<ValueRef>> {
    is_one_of(g, v, ops).then(|| g.inputs(v.node))
}

/// The first input of `op` when `v` is its output 0 (a unary op's operand).
pub fn unary_input(g: &Graph, v: ValueRef, op: &str) -> Option<ValueRef> {
    inputs_of(g, v, &[op])?.first().copied()
}

/// Which float types a cast [`float_cast`] accepts goes between, by their widths.
#[derive(Clone, Copy, PartialEq)]
pub enum Width {
    Any,
    Wider,
    Narrower,
}

/// `x` where `v` is `x` cast, rounding to nearest (not `Truncate`), from one float type to
/// another of the `width` asked for: a bfloat16 model's casts around what Keras computes in
/// float32.
pub fn float_cast(g: &Graph, v: ValueRef, width: Width) -> Option<ValueRef> {
    let x = unary_input(g, v, "Cast")?;
    let bits = |v: ValueRef| match g.info(v).dtype? {
        DType::F16 | DType::BF16 => Some(16),
        DType::F32 => Some(32),
        DType::F64 => Some(64),
        _ => None,
    };
    let (from, to) = (bits(x)?, bits(v)?);
    let rounds = g.node(v.node).attr_bool_or("Truncate", false).ok() == Some(false);
    let goes = match width {
        Width::Any => true,
        Width::Wider => to > from,
        Width::Narrower => to < from,
    };
    (rounds && goes).then_some(x)
}

/// Like [`unary_input`], only when `v` has no other reader (it can be fused away).
pub fn sole_unary_input(g: &Graph, v: ValueRef, op: &str) -> Option<ValueRef> {
    if g.use_count(v) != 1 {
        return None;
    }
    unary_input(g, v, op)
}

/// The two operands of a binary op (one of `ops`) whose output 0 is `v`, in either order:
/// `(a, b)` with `first(a)` true.
pub fn operands(
    g: &Graph,
    v: ValueRef,
    ops: &[&str],
    first: impl Fn(ValueRef) -> bool,
) -> Option<(ValueRef, ValueRef)> {
    let i = inputs_of(g, v, ops)?;
    let [a, b] = i.as_slice() else { return None };
    if first(*a) {
        Some((*a, *b))
    } else if first(*b) {
        Some((*b, *a))
    } else {
        None
    }
}

/// The operands of a binary op (one of `ops`) in both orders: `[(a, b), (b, a)]`, or none.
pub fn both_orders(g: &Graph, v: ValueRef, ops: &[&str]) -> Vec<(ValueRef, ValueRef)> {
    match inputs_of(g, v, ops).as_deref() {
        Some([a, b]) => vec![(*a, *b), (*b, *a)],
        _ => vec![],
    }
}

/// The two operands of a binary op (one of `ops`) whose output 0 is `v`.
pub fn binary(g: &Graph, v: ValueRef, ops: &[&str]) -> Option<(ValueRef, ValueRef)> {
    match inputs_of(g, v, ops)?.as_slice() {
        [a, b] => Some((*a, *b)),
        _ => None,
    }
}

/// Like [`binary`], only when `v` has no other reader (it can be fused away).
pub fn sole_binary(g: &Graph, v: ValueRef, ops: &[&str]) -> Option<(ValueRef, ValueRef)> {
    if g.use_count(v) != 1 {
        return None;
    }
    binary(g, v, ops)
}

/// The one node reading `v`, when nothing else (no other node, no graph output) does.
pub fn single_consumer(g: &Graph, v: ValueRef) -> Option<NodeIndex> {
    let c = g.consumers(v);
    (c.len() == 1 && !g.outputs.contains(&v)).then(|| c[0].0)
}

/// A constant with one element, as a float.
pub fn const_scalar(g: &Graph, v: ValueRef) -> Option<f64> {
    g.const_value(v)?.scalar_f64()
}

/// Whether `v` is a one-element constant within `tol` of `x`, or in a 16-bit float type, `x`
/// rounded to it (GELU's `0.7071` is `0.70703125` in float16).
pub fn is_scalar(g: &Graph, v: ValueRef, x: f64, tol: f64) -> bool {
    let Some(t) = g.const_value(v) else { return false };
    let Some(c) = t.scalar_f64() else { return false };
    let rounding = match t.dtype {
        DType::F16 => x.abs() * f64::powi(2.0, -11),
        DType::BF16 => x.abs() * f64::powi(2.0, -8),
        _ => 0.0,
    };
    (c - x).abs() <= tol.max(rounding)
}

/// The integer values of a constant.
pub fn const_ints(g: &Graph, v: ValueRef) -> Option<Vec<i64>> {
    g.const_value(v).and_then(|t| t.to_i64())
}

/// `x²`: `Square(x)`, `Pow(x, 2)` or `x * x` → `x`.
pub fn squared(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    if let Some(i) = inputs_of(g, v, &["Square"]) {
        return i.first().copied();
    }
    if let Some((a, b)) = binary(g, v, &["Mul"]) {
        return (a == b).then_some(a);
    }
    let (x, p) = binary(g, v, &["Pow"])?;
    is_scalar(g, p, 2.0, 0.0).then_some(x)
}

/// Whether every element of the constant `v` is zero.
pub fn is_zeros(g: &Graph, v: ValueRef) -> bool {
    g.const_value(v).is_some_and(|t| t.to_f64().is_some_and(|x| x.iter().all(|&x| x == 0.0)))
}

/// Replaces node `n` (read at output 0) by one node of the synthetic op `op` reading `inputs`
/// (in slot order), named and ordered like `n`: how the fusions install what they matched.
pub fn replace_with_fused(
    g: &mut Graph,
    n: NodeIndex,
    op: crate::ir::fused::Fused,
    inputs: &[ValueRef],
) -> NodeIndex {
    let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
    replace_with(g, n, crate::ir::Node::fused(name, op, ordinal), inputs)
}

/// Replaces node `n` by one node of the TF op `op` (a `ClipByValue` for a min-then-max, a
/// `ConcatV2` for a stack flattened), as [`replace_with_fused`] does.
pub fn replace_with_op(g: &mut Graph, n: NodeIndex, op: &str, inputs: &[ValueRef]) -> NodeIndex {
    let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
    replace_with(g, n, Node::new(name, op, ordinal), inputs)
}

fn replace_with(g: &mut Graph, n: NodeIndex, mut node: Node, inputs: &[ValueRef]) -> NodeIndex {
    node.outputs = g.node(n).outputs.clone();
    let new = g.add_node(node);
    for (slot, &input) in inputs.iter().enumerate() {
        g.connect(input, new, slot);
    }
    g.replace_uses(ValueRef { node: n, port: 0 }, ValueRef { node: new, port: 0 });
    g.g.remove_node(n);
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn operands_in_either_order() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let c = g.constant("c", weights(&[]));
        let y = g.op("y", "Mul", &[x, c], &[]);
        let z = g.op("z", "Relu", &[y], &[]);
        let graph = g.build(&[z]);
        let is_const = |v: ValueRef| graph.const_value(v).is_some();
        assert_eq!(operands(&graph, y, &["Mul"], is_const), Some((c, x)));
        assert_eq!(operands(&graph, y, &["Add"], is_const), None);
        assert_eq!(both_orders(&graph, y, &["Mul"]), vec![(x, c), (c, x)]);
        assert_eq!(sole_unary_input(&graph, z, "Relu"), Some(y));
        assert_eq!(single_consumer(&graph, y), Some(z.node));
        assert_eq!(single_consumer(&graph, z), None, "a graph output has another reader");
        assert!(is_scalar(&graph, c, 0.5, 0.0));
    }
}
