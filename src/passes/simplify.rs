//! Drops arithmetic that does nothing (`x * 1.0`, `x + 0.0`, `x - 0`, `x / 1`), as Keras'
//! Rescaling and swish emit it, when the constant does not broadcast `x` to a larger shape.
//! Exact in floating point (up to the sign of a zero). Also transposes that undo each other
//! and reshapes back to the shape a value had before it was reshaped (Keras' `UpSampling3D`
//! by 1 along an axis: `ExpandDims → Tile by ones → Reshape`), and a reduction reshaped to
//! the shape it would keep with `keep_dims` (Keras' squeeze-and-excitation: global pooling,
//! then `Reshape((1, 1, C))`), which becomes that reduction (`x.mean((2, 3), keepdim=True)`
//! rather than `.reshape(-1, 480, 1, 1)`, a size a block class would have to take), and a
//! reshape of a reshape, which is one. After the fusions, a stack transposed is a stack on
//! another axis ([`stack_on_moved_axes`]).

use crate::error::Result;
use crate::ir::{Dim, Graph, ValueRef};
use crate::passes::pattern::{const_ints, replace_with_op, single_consumer};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;

/// Which operand slot may hold the neutral constant, and its value (from the registry).
fn neutral(op: &str) -> Option<(&'static [usize], f64)> {
    crate::ops::lookup(op)?.neutral
}

/// `Transpose(Transpose(x, p), q)` with `p[q[i]] == i`: `x` itself (Keras' time-major
/// recurrent layers swap the first two axes on the way in and out).
fn transpose_pair(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let perm = |n: petgraph::stable_graph::NodeIndex| {
        let i = g.inputs(n);
        (g.node(n).op == "Transpose" && i.len() == 2)
            .then(|| const_ints(g, i[1]).map(|p| (i[0], p)))
            .flatten()
    };
    let (inner, q) = perm(n)?;
    let (x, p) = perm(inner.node)?;
    let identity = p.len() == q.len()
        && q.iter().enumerate().all(|(i, &qi)| {
            usize::try_from(qi).ok().and_then(|qi| p.get(qi)).is_some_and(|&v| v == i as i64)
        });
    identity.then_some(x)
}

/// `x & x`, `x | x`, `min(x, x)`, `max(x, x)`: `x` (a loop's condition on twin counters,
/// once they are one).
fn idempotent(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let ops = ["LogicalAnd", "LogicalOr", "Minimum", "Maximum", "BitwiseAnd", "BitwiseOr"];
    let i = g.inputs(n);
    (ops.contains(&g.node(n).op.as_str()) && i.len() == 2 && i[0] == i[1]).then(|| i[0])
}

/// `where(c, a, a)`: `a`, where the select grows it to no larger shape (SAM 3 clamps a
/// coordinate to the same value on both sides).
fn same_either_way(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let i = g.inputs(n);
    if !matches!(g.node(n).op.as_str(), "Select" | "SelectV2") || i.len() != 3 || i[1] != i[2] {
        return None;
    }
    let (a, out) = (g.info(i[1]), g.info(ValueRef { node: n, port: 0 }));
    (a.shape.is_some() && a.shape == out.shape && a.dtype == out.dtype).then_some(i[1])
}

/// `Cast(where(c, v, 0), bool)` with `v` a non-zero constant: `c` itself, where the select
/// grows it to no larger shape (Keras casts a boolean mask to numbers and back).
fn indicator_cast(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let node = g.node(n);
    if node.op != "Cast" || node.attr_type("DstT").ok()? != crate::tensor::DType::Bool {
        return None;
    }
    let select = *g.inputs(n).first()?;
    let i = g.inputs(select.node);
    if !matches!(g.node(select.node).op.as_str(), "Select" | "SelectV2") || i.len() != 3 {
        return None;
    }
    let all = |v: ValueRef, f: fn(f64) -> bool| {
        let t = g.const_value(v)?;
        let values = t.to_f64()?;
        (!values.is_empty() && values.iter().all(|&x| f(x))).then_some(())
    };
    all(i[1], |x| x != 0.0)?;
    all(i[2], |x| x == 0.0)?;
    let (c, out) = (g.info(i[0]), g.info(ValueRef { node: n, port: 0 }));
    (c.shape.is_some() && c.shape == out.shape && c.dtype == out.dtype).then_some(i[0])
}

/// An index op whose int32 result every reader casts to int64 (Keras' mixture-of-experts
/// routers: `top_k`'s indices, then `cast(.., "int64")`) makes int64 indices itself, as
/// its `index_type` (`output_type` for ArgMax/ArgMin) allows: torch's own indices, not
/// `indices.to(torch.int32).to(torch.int64)`. Exact: an index fits in int32 wherever TF's
/// int32 index is right. Returns the casts it made unneeded, each with the indices.
fn widened_indices(
    g: &mut Graph,
    n: petgraph::stable_graph::NodeIndex,
) -> Vec<(ValueRef, ValueRef)> {
    use crate::tensor::DType;
    // The attribute, its default (TF's), and the port it types.
    let (attr, default, port) = match g.node(n).op.as_str() {
        "TopKV2" => ("index_type", DType::I32, 1),
        "ArgMax" | "ArgMin" => ("output_type", DType::I64, 0),
        _ => return Vec::new(),
    };
    let indices = ValueRef { node: n, port };
    let narrow = g.node(n).attr_type(attr).unwrap_or(default) == DType::I32;
    let widened = |c: petgraph::stable_graph::NodeIndex| {
        let cast = g.node(c);
        cast.op == "Cast" && cast.attr_type("DstT").ok() == Some(DType::I64)
    };
    let readers = g.consumers(indices);
    if !narrow || readers.is_empty() || g.outputs.contains(&indices) {
        return Vec::new();
    }
    if !readers.iter().all(|&(c, _)| widened(c)) {
        return Vec::new();
    }
    let i64_type = crate::proto::attr_value::Value::Type(DType::I64.to_tf());
    let node = g.node_mut(n);
    node.attrs.insert(attr.to_string(), crate::proto::AttrValue { value: Some(i64_type) });
    if let Some(info) = node.outputs.get_mut(port) {
        info.dtype = Some(DType::I64);
    }
    readers.into_iter().map(|(c, _)| (ValueRef { node: c, port: 0 }, indices)).collect()
}

/// `Reshape(r(x), target)` with `r` a Reshape, ExpandDims or Squeeze (or none) and `target`
/// provably `x`'s own shape: `x` itself. Provably: every size known and equal, except at
/// most one that the target leaves to `-1` (the element count then fixes it).
fn reshape_back(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let i = g.inputs(n);
    if g.node(n).op != "Reshape" || i.len() != 2 {
        return None;
    }
    let target = const_ints(g, i[1])?;
    let producer = g.node(i[0].node);
    let x = match producer.op.as_str() {
        "Reshape" | "ExpandDims" | "Squeeze" => *g.inputs(i[0].node).first()?,
        _ => i[0],
    };
    let shape = g.info(x).shape?;
    let target: Vec<Dim> = target.into_iter().map(Dim::Known).collect();
    let same = provably(&shape, &target, |_, _| false);
    (same && g.info(x).dtype == g.info(ValueRef { node: n, port: 0 }).dtype).then_some(x)
}

/// The sizes a reshape-like target holds, those read at run time included (they are in its
/// partial value; the constant holds -1 there).
pub(super) fn target_dims(g: &Graph, target: ValueRef) -> Option<Vec<Dim>> {
    match g.node(target.node).partial.as_ref().filter(|_| target.port == 0) {
        Some(p) => Some(p.values.clone()),
        None => const_ints(g, target).map(|t| t.into_iter().map(Dim::Known).collect()),
    }
}

/// Whether `target` provably is `shape`: each size known and equal or known `same` (the
/// size of an axis read at run time), except at most one left to `-1` (the element count
/// then fixes it).
pub(super) fn provably(
    shape: &[Option<usize>],
    target: &[Dim],
    same: impl Fn(usize, Dim) -> bool,
) -> bool {
    let mut free = 0;
    let each = shape.iter().zip(target).enumerate().all(|(k, (&d, &t))| match (d, t) {
        (Some(d), Dim::Known(t)) if t == d as i64 => true,
        (_, Dim::Known(-1)) => {
            free += 1;
            true
        }
        (_, t) => same(k, t),
    });
    shape.len() == target.len() && each && free <= 1
}

/// `Reshape(Mean(x, axes), target)` (or another reduction) with `target` provably what the
/// reduction keeps with `keep_dims`: the reduction, keeping them.
fn reduce_keeping_dims(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) -> bool {
    let i = g.inputs(n);
    if g.node(n).op != "Reshape" || i.len() != 2 {
        return false;
    }
    let (reduced, r) = (i[0], i[0].node);
    let reduction = ["Mean", "Sum", "Max", "Min", "Prod"].contains(&g.node(r).op.as_str());
    // Floats only: integer reductions are shape arithmetic, whose folded values have shapes.
    let float = g.info(reduced).dtype.is_some_and(|d| d.is_float());
    if !reduction || !float || g.node(r).attr_bool_or("keep_dims", false).unwrap_or(true) {
        return false;
    }
    let x = g.inputs(r)[0];
    // The target as sizes: constant, or computed from shapes (Keras' `Reshape` builds
    // `[batch, 1, 1, C]` from the input's shape at run time).
    let target: Option<Vec<Dim>> = match const_ints(g, i[1]) {
        Some(t) => Some(t.into_iter().map(Dim::Known).collect()),
        None if i[1].port == 0 => g.node(i[1].node).partial.as_ref().map(|p| p.values.clone()),
        None => None,
    };
    let (Some(target), Some(shape)) = (target, g.info(x).shape) else {
        return false;
    };
    let Some(raw) = g.inputs(r).get(1).and_then(|&a| const_ints(g, a)) else { return false };
    let rank = shape.len() as i64;
    let axes: Vec<usize> = raw.iter().map(|&a| if a < 0 { a + rank } else { a } as usize).collect();
    if raw.iter().any(|&a| a < -rank || a >= rank) {
        return false;
    }
    let kept: Vec<Option<usize>> = shape
        .iter()
        .enumerate()
        .map(|(k, &d)| if axes.contains(&k) { Some(1) } else { d })
        .collect();
    // Where each axis of the reduced value is in what the reduction keeps.
    let kept_axes: Vec<usize> = (0..shape.len()).filter(|k| !axes.contains(k)).collect();
    let same = provably(&kept, &target, |k, t| match t {
        // The size of the reduced value's own axis, which the reduction keeps.
        Dim::Of(v, axis) if v == x => axis == k && !axes.contains(&k),
        Dim::Of(v, axis) => v == reduced && kept_axes.get(axis) == Some(&k),
        _ => false,
    });
    if !same || g.info(reduced).dtype != g.info(ValueRef { node: n, port: 0 }).dtype {
        return false;
    }
    let node = g.node_mut(r);
    node.attrs.insert(
        "keep_dims".into(),
        crate::proto::AttrValue { value: Some(crate::proto::attr_value::Value::B(true)) },
    );
    node.outputs[0].shape = Some(kept);
    g.replace_uses(ValueRef { node: n, port: 0 }, reduced);
    true
}

/// `min(max(x, a), b)` with `a >= b` (or `max(min(x, b), a)` with `a >= b`) on an integer
/// scalar: the constant `b` (`a`), whatever `x` is. `tf.math.bincount` clamps its size so,
/// and Keras' `CategoryEncoding` passes one number of tokens as both bounds: its size is
/// that number, and what computed `x` (the largest id, the element count) goes.
fn clamped_to_constant(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let scalar = |v: ValueRef| -> Option<i64> {
        let t = g.const_value(v).filter(|t| t.rank() == 0 && t.dtype.is_int())?;
        t.to_i64()?.first().copied()
    };
    let bound = |n: petgraph::stable_graph::NodeIndex, op: &str| -> Option<(ValueRef, i64)> {
        let i = g.inputs(n);
        if g.node(n).op != op || i.len() != 2 {
            return None;
        }
        scalar(i[1]).map(|c| (i[0], c)).or_else(|| scalar(i[0]).map(|c| (i[1], c)))
    };
    let out = ValueRef { node: n, port: 0 };
    let info = g.info(out);
    if info.shape.as_deref() != Some(&[]) || !info.dtype.is_some_and(|d| d.is_int()) {
        return None;
    }
    let value = match g.node(n).op.as_str() {
        "Minimum" => {
            let (inner, b) = bound(n, "Minimum")?;
            let (_, a) = bound(inner.node, "Maximum")?;
            (a >= b).then_some(b)?
        }
        "Maximum" => {
            let (inner, a) = bound(n, "Maximum")?;
            let (_, b) = bound(inner.node, "Minimum")?;
            (a >= b).then_some(a)?
        }
        _ => return None,
    };
    let t = crate::tensor::Tensor::with_values_like(
        info.dtype?,
        vec![],
        &crate::tensor::Values::I(vec![value]),
    )?;
    let node = g.node(n);
    let c = crate::ir::Node::constant(format!("{}/clamped", node.name), t, node.ordinal);
    Some(ValueRef { node: g.add_node(c), port: 0 })
}

pub fn simplify(g: &mut Graph) -> Result<()> {
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        let same = transpose_pair(g, n).or_else(|| idempotent(g, n));
        let same = same.or_else(|| same_either_way(g, n)).or_else(|| indicator_cast(g, n));
        if let Some(x) = same.or_else(|| clamped_to_constant(g, n)) {
            g.replace_uses(ValueRef { node: n, port: 0 }, x);
            continue;
        }
        let Some((slots, value)) = neutral(&g.node(n).op) else {
            continue;
        };
        let inputs = g.inputs(n);
        if inputs.len() != 2 {
            continue;
        }
        for &slot in slots {
            let (c, other) = (inputs[slot], inputs[1 - slot]);
            let Some(t) = g.const_value(c) else { continue };
            // A trained scale of ones (a fresh LayerNorm's gamma) is a parameter, not a 1.
            if g.node(c.node).is_trained() {
                continue;
            }
            // Read in any float width: a 16-bit 1.0 (a mixed-precision swish's) is exactly 1.
            let values = if t.dtype.is_float() {
                t.to_f64().map(crate::tensor::Values::F)
            } else {
                t.values()
            };
            let is_neutral = values.is_some_and(|v| match v {
                crate::tensor::Values::F(f) => f.iter().all(|&x| x == value),
                crate::tensor::Values::I(i) => i.iter().all(|&x| x as f64 == value),
            });
            let out = ValueRef { node: n, port: 0 };
            let (in_info, out_info) = (g.info(other), g.info(out));
            // A broadcasting op may grow its operand; a Tile by ones never does.
            let same_shape = (in_info.shape.is_some() && in_info.shape == out_info.shape)
                || g.node(n).op == "Tile";
            if is_neutral
                && same_shape
                && in_info.dtype == out_info.dtype
                && g.const_value(other).is_none()
            {
                g.replace_uses(out, other);
                if !g.outputs.contains(&out) {
                    g.g.remove_node(n);
                }
                break;
            }
        }
    }
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        broadcast_by_the_op(g, n);
        zero_of_a_select(g, n);
    }
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        // A cast removed here is never visited after.
        if !g.g.contains_node(n) {
            continue;
        }
        for (cast, indices) in widened_indices(g, n) {
            g.replace_uses(cast, indices);
            g.g.remove_node(cast.node);
        }
    }
    // After the Tiles by ones are gone.
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        if let Some(x) = reshape_back(g, n) {
            g.replace_uses(ValueRef { node: n, port: 0 }, x);
        } else if !reduce_keeping_dims(g, n) && !stack_then_merge(g, n) {
            reshape_of_reshape(g, n);
        }
    }
    Ok(())
}

/// `where(c, zeros_like(y), y)` (either way round): `where(c, 0.0, y)`, the scalar
/// broadcast by the select to `y`'s shape, which `y` already gives the result (Gemma's
/// attention zeroes fully masked rows: `torch.where(fully_masked, 0.0, x)`).
fn zero_of_a_select(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) {
    let i = g.inputs(n);
    if g.node(n).op != "SelectV2" || i.len() != 3 {
        return;
    }
    for (slot, other) in [(1, 2), (2, 1)] {
        let zeros = i[slot];
        let like = g.node(zeros.node);
        if like.op != "ZerosLike" || g.inputs(zeros.node).first() != Some(&i[other]) {
            continue;
        }
        let Some(dtype) = g.info(zeros).dtype else { continue };
        let zero = match dtype {
            d if d.is_float() => crate::tensor::Values::F(vec![0.0]),
            d if d.is_int() => crate::tensor::Values::I(vec![0]),
            _ => continue,
        };
        let Some(value) = crate::tensor::Tensor::with_values_like(dtype, vec![], &zero) else {
            continue;
        };
        let mut node =
            crate::ir::Node::constant(format!("{}/zero", like.name), value, like.ordinal);
        node.generated = true;
        let c = g.add_node(node);
        g.set_input(n, slot, ValueRef { node: c, port: 0 });
        return;
    }
}

/// `a + BroadcastTo(v, shape)` where `shape` provably is `a`'s own shape: `a + v`, the add
/// broadcasting `v` itself (keras-hub's position embeddings, broadcast to the token
/// embeddings' shape before the add: `x + self.position_embedding.weight[:n]`, not
/// `.expand(x.shape[0], n, 768)` first).
fn broadcast_by_the_op(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) {
    let i = g.inputs(n);
    // Not `AddN`, whose operands have one shape.
    let op = g.node(n).op.as_str();
    if !super::sizes::BROADCASTING.contains(&op) || op == "AddN" || i.len() != 2 {
        return;
    }
    for slot in 0..2 {
        let (b, a) = (i[slot], i[1 - slot]);
        if g.node(b.node).op != "BroadcastTo" || single_consumer(g, b) != Some(n) {
            continue;
        }
        // (Inputs after the target are the values its run-time sizes are read from.)
        let [v, target, ..] = g.inputs(b.node)[..] else { continue };
        let (Some(target), Some(shape)) = (target_dims(g, target), g.info(a).shape) else {
            continue;
        };
        let own = |k: usize, t: Dim| matches!(t, Dim::Of(x, axis) if x == a && axis == k);
        let no_free = !target.contains(&Dim::Known(-1));
        let rank = g.info(v).shape.map(|s| s.len());
        if no_free && rank.is_some_and(|r| r <= target.len()) && provably(&shape, &target, own) {
            g.set_input(n, slot, v);
            return;
        }
    }
}

/// `Reshape(Reshape(x, s1), s2)`: `Reshape(x, s2)`, one reshape (a reshape keeps the
/// elements' order whatever the shape before it: ViT-style patching reshapes twice in a
/// row). The inner reshape stays for whatever else reads it, else it is pruned.
fn reshape_of_reshape(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) {
    let i = g.inputs(n);
    if g.node(n).op != "Reshape" || i.len() != 2 || g.node(i[0].node).op != "Reshape" {
        return;
    }
    let Some(&x) = g.inputs(i[0].node).first() else { return };
    if g.info(x).dtype == g.info(i[0]).dtype {
        g.set_input(n, 0, x);
    }
}

/// `Reshape(Pack([x1, .., xn], axis=a), target)` with `target` provably the stack's shape
/// with axes `a` and `a + 1` merged: `ConcatV2([x1, .., xn], a)`, what it computes
/// (keras-hub's rotary embeddings stack the frequencies twice and flatten them:
/// `torch.cat([freqs, freqs], dim=-1)`). Returns whether it replaced `n`.
fn stack_then_merge(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) -> bool {
    let i = g.inputs(n);
    if g.node(n).op != "Reshape" || i.len() != 2 || g.use_count(i[0]) != 1 {
        return false;
    }
    let pack = g.node(i[0].node);
    let parts = g.inputs(i[0].node);
    let Some(&first) = parts.first().filter(|_| pack.op == "Pack") else { return false };
    let (Some(target), Some(shape)) = (const_ints(g, i[1]), g.info(first).shape) else {
        return false;
    };
    let axis = pack.attr_int_or("axis", 0).ok().and_then(|a| {
        let a = if a < 0 { a + shape.len() as i64 + 1 } else { a };
        usize::try_from(a).ok()
    });
    let Some(a) = axis.filter(|&a| a < shape.len()) else { return false };
    let same_parts = parts.iter().all(|&p| g.info(p).shape.as_ref() == Some(&shape));
    let merged = shape[a].and_then(|d| d.checked_mul(parts.len()));
    let mut want = shape.clone();
    want[a] = merged;
    let target: Vec<Dim> = target.into_iter().map(Dim::Known).collect();
    if !same_parts || merged.is_none() || !provably(&want, &target, |_, _| false) {
        return false;
    }
    let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
    let axis_t = crate::tensor::Tensor::from_i32(vec![], &[a as i32]);
    let axis = g.add_node(crate::ir::Node::constant(format!("{name}/axis"), axis_t, ordinal));
    let inputs: Vec<ValueRef> =
        parts.into_iter().chain([ValueRef { node: axis, port: 0 }]).collect();
    replace_with_op(g, n, "ConcatV2", &inputs);
    true
}

/// `Transpose(Pack([x1, .., xn], axis=a), perm)` where `perm` moves axis `a` alone (to `b`),
/// the others kept in order: `Pack([x1, .., xn], axis=b)`, a stack on the axis the
/// transpose wanted (steps written to a list, stacked time-major, then made batch-major:
/// `torch.stack(steps, dim=1)`). A pass of its own, after the fusions, which match the
/// time-major stack (`TimeDistributed`'s).
pub fn stack_on_moved_axes(g: &mut Graph) -> Result<()> {
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        stack_moved(g, n);
    }
    Ok(())
}

/// [`stack_on_moved_axes`] at node `n`.
fn stack_moved(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) {
    if !g.g.contains_node(n) {
        return;
    }
    let i = g.inputs(n);
    if g.node(n).op != "Transpose" || i.len() != 2 || g.use_count(i[0]) != 1 {
        return;
    }
    let pack = g.node(i[0].node);
    let Some(perm) = const_ints(g, i[1]).filter(|_| pack.op == "Pack") else { return };
    let rank = perm.len() as i64;
    let Some(a) = pack.attr_int_or("axis", 0).ok().map(|a| if a < 0 { a + rank } else { a }) else {
        return;
    };
    let Some(b) = perm.iter().position(|&p| p == a) else { return };
    let others: Vec<i64> = perm.iter().copied().filter(|&p| p != a).collect();
    let kept = (0..rank).filter(|&p| p != a).eq(others.iter().copied());
    if !kept || b as i64 == a {
        return;
    }
    let parts = g.inputs(i[0].node);
    let attrs = pack.attrs.clone();
    let stack = replace_with_op(g, n, "Pack", &parts);
    let node = g.node_mut(stack);
    node.attrs = attrs;
    node.attrs.insert("axis".into(), AttrValue { value: Some(Value::I(b as i64)) });
}

/// `Unpack(x, axis)` of which one output `k` alone is read: `GatherV2(x, k, axis)`, that
/// slice (`x[:, 5]`, not `_, _, _, _, _, x = torch.unbind(x, dim=1)`). After the fusions,
/// which match unstacked steps.
pub fn one_slice_of_unstacks(g: &mut Graph) -> Result<()> {
    let nodes: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "Unpack").collect();
    for n in nodes {
        one_slice(g, n);
    }
    Ok(())
}

/// [`one_slice_of_unstacks`] at node `n`.
fn one_slice(g: &mut Graph, n: petgraph::stable_graph::NodeIndex) {
    let node = g.node(n);
    let read = |port: usize| {
        let v = ValueRef { node: n, port };
        g.use_count(v) > 0 || g.outputs.contains(&v)
    };
    let read_ports: Vec<usize> = (0..node.outputs.len()).filter(|&p| read(p)).collect();
    let (&[k], Some(&x)) = (read_ports.as_slice(), g.inputs(n).first()) else { return };
    let Some(rank) = g.info(x).shape.map(|s| s.len() as i64) else { return };
    let Some(axis) = node.attr_int_or("axis", 0).ok().filter(|a| (-rank..rank).contains(a)) else {
        return;
    };
    let (name, ordinal) = (node.name.clone(), node.ordinal);
    let out = ValueRef { node: n, port: k };
    let info = g.info(out);
    let constant = |g: &mut Graph, what: &str, v: i64| {
        let t = crate::tensor::Tensor::from_i32(vec![], &[v as i32]);
        let c = g.add_node(crate::ir::Node::constant(format!("{name}/{what}"), t, ordinal));
        ValueRef { node: c, port: 0 }
    };
    let (index, axis) = (constant(g, "index", k as i64), constant(g, "axis", axis));
    let mut gather = crate::ir::Node::new(format!("{name}/slice"), "GatherV2", ordinal);
    gather.outputs = vec![info];
    let gather = g.add_node(gather);
    for (slot, v) in [x, index, axis].into_iter().enumerate() {
        g.connect(v, gather, slot);
    }
    g.replace_uses(out, ValueRef { node: gather, port: 0 });
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, prune, simplify};
    use crate::proto::AttrValue;
    use crate::proto::attr_value::Value;
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras' `CategoryEncoding(num_tokens=4)`: the bincount size `min(max(n, 4), 4)` is 4,
    /// whatever `n` (the largest id plus one) is; a clamp that leaves a range stays.
    #[test]
    fn a_clamp_to_one_value_is_that_value() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, 3], crate::tensor::DType::I32);
        let axes = g.constant("axes", int_tensor(&[2], &[0, 1]));
        let largest = g.op("largest", "Max", &[x, axes], &[]);
        let (four, six) =
            (g.constant("four", int_tensor(&[], &[4])), g.constant("six", int_tensor(&[], &[6])));
        let low = g.op("low", "Maximum", &[largest, four], &[]);
        let size = g.op("size", "Minimum", &[low, four], &[]);
        let ranged = g.op("ranged", "Minimum", &[low, six], &[]);
        let y = g.op("y", "Mul", &[x, size], &[]);
        let z = g.op("z", "Mul", &[x, ranged], &[]);
        assert_snapshot!(g.lower(&[y, z]), @"
            ---
            h = x * 4
            largest = x.amax((0, 1))
            ranged = largest.clamp(4, 6)
            z = x * ranged
            return h, z
            ");
    }

    /// keras-hub's rotary frequencies: stacked twice on axis 2, the stack's last two axes
    /// merged, is a concatenation; merged with the axis before, an interleave, it is not.
    #[test]
    fn a_stack_flattened_is_a_concatenation() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 8]);
        let s = g.op("s", "Pack", &[x, x], &[("axis", int(2)), ("N", int(2))]);
        let to = g.constant("to", int_tensor(&[3], &[-1, 5, 16]));
        let cat = g.op("cat", "Reshape", &[s, to], &[]);
        let t = g.op("t", "Pack", &[x, x], &[("axis", int(2)), ("N", int(2))]);
        let mixed = g.constant("mixed", int_tensor(&[2], &[-1, 16]));
        let interleaved = g.op("interleaved", "Reshape", &[t, mixed], &[]);
        assert_snapshot!(g.lower(&[cat, interleaved]), @"
            ---
            h = torch.cat([x, x], dim=2)
            interleaved = torch.stack([x, x], dim=2).reshape(-1, 16)
            return h, interleaved
            ");
    }

    /// Steps stacked time-major, then made batch-major, are stacked on the batch-major axis;
    /// a transpose that moves another axis too stays.
    #[test]
    fn a_stack_transposed_is_a_stack_on_another_axis() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 2, 8]);
        let stack = |g: &mut TestGraph, name: &str| {
            g.op(name, "Pack", &[x, x, x], &[("axis", int(0)), ("N", int(3))])
        };
        let (s, t) = (stack(&mut g, "s"), stack(&mut g, "t"));
        let batch_major = g.constant("batch_major", int_tensor(&[4], &[1, 0, 2, 3]));
        let moved = g.op("moved", "Transpose", &[s, batch_major], &[]);
        let swapped = g.constant("swapped", int_tensor(&[4], &[1, 0, 3, 2]));
        let both = g.op("both", "Transpose", &[t, swapped], &[]);
        assert_snapshot!(g.lower(&[moved, both]), @"
        ---
        h = torch.stack([x, x, x], dim=1)
        both = torch.stack([x, x, x], dim=0).permute(1, 0, 3, 2)
        return h, both
        ");
    }

    /// An unstack of which one slice is read is that slice; of which two are, it stays.
    #[test]
    fn one_slice_read_of_an_unstack_is_that_slice() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let unstack = |g: &mut TestGraph, name: &str| {
            g.op(name, "Unpack", &[x], &[("axis", int(1)), ("num", int(3))])
        };
        let (one, two) = (unstack(&mut g, "one"), unstack(&mut g, "two"));
        let last = TestGraph::port(one, 2);
        let sum = g.op("sum", "AddV2", &[two, TestGraph::port(two, 1)], &[]);
        assert_snapshot!(g.lower(&[last, sum]), @"
        ---
        h = x[:, 2]
        two, two_1, _ = torch.unbind(x, dim=1)
        sum_ = two + two_1
        return h, sum_
        ");
    }

    /// keras-hub's position embeddings: a table broadcast to the token embeddings' shape
    /// (read at run time) before the add is added as it is; broadcast to more than the
    /// other operand's shape, it stays.
    #[test]
    fn a_broadcast_to_the_other_operands_shape_is_the_ops_own() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 8]);
        let table = g.input("table", &[4, 8]);
        let shape = g.op("shape", "Shape", &[x], &[]);
        let (b, e, st) = (
            g.constant("b", int_tensor(&[1], &[0])),
            g.constant("e", int_tensor(&[1], &[1])),
            g.constant("st", int_tensor(&[1], &[1])),
        );
        let batch =
            g.op("batch", "StridedSlice", &[shape, b, e, st], &[("shrink_axis_mask", int(1))]);
        let (four, eight) =
            (g.constant("four", int_tensor(&[], &[4])), g.constant("eight", int_tensor(&[], &[8])));
        let target =
            g.op("target", "Pack", &[batch, four, eight], &[("axis", int(0)), ("N", int(3))]);
        let wide = g.op("wide", "BroadcastTo", &[table, target], &[]);
        let sum = g.op("sum", "AddV2", &[x, wide], &[]);
        let two = g.constant("two", int_tensor(&[], &[2]));
        let more =
            g.op("more", "Pack", &[two, batch, four, eight], &[("axis", int(0)), ("N", int(4))]);
        let wider = g.op("wider", "BroadcastTo", &[table, more], &[]);
        let grown = g.op("grown", "Mul", &[x, wider], &[]);
        assert_snapshot!(g.lower(&[sum, grown]), @"
            ---
            h = x + table
            wider = table.expand(2, x.shape[0], 4, 8)
            grown = x * wider
            return h, grown
            ");
    }

    /// Gemma zeroes the attention of fully masked rows: `where(c, zeros_like(y), y)` is
    /// `where(c, 0.0, y)`; and a new axis indexed into a reduction's result chains onto it.
    #[test]
    fn a_select_of_zeros_like_its_other_side_selects_a_zero() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let c = g.input("c", &[-1, 4]);
        let y = g.op("y", "Relu", &[x], &[]);
        let zeros = g.op("zeros", "ZerosLike", &[y], &[]);
        let kept = g.op("kept", "SelectV2", &[c, zeros, y], &[]);
        let axis = g.constant("axis", int_tensor(&[], &[1]));
        let all = g.op("all", "All", &[c, axis], &[]);
        let at = |g: &mut TestGraph, name: &str| g.constant(name, int_tensor(&[2], &[0, 0]));
        let (b, e) = (at(&mut g, "b"), at(&mut g, "e"));
        let st = g.constant("st", int_tensor(&[2], &[1, 1]));
        let masks = [("begin_mask", int(1)), ("end_mask", int(1)), ("new_axis_mask", int(2))];
        let col = g.op("col", "StridedSlice", &[all, b, e, st], &masks);
        assert_snapshot!(g.lower(&[kept, col]), @"
            ---
            x = F.relu(x)
            x = torch.where(c, 0.0, x)
            col = c.all(1)[:, None]
            return x, col
            ");
    }

    /// `where(c, a, a)` is `a`; a mask cast to numbers by a select and back to bool is the
    /// mask. A select that broadcasts its operands to a larger shape stays.
    #[test]
    fn selects_that_choose_nothing_go() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let c = g.typed_input("c", &[-1, 4], crate::tensor::DType::Bool);
        let wide = g.typed_input("wide", &[3, 1, 4], crate::tensor::DType::Bool);
        let same = g.op("same", "SelectV2", &[c, x, x], &[]);
        let grown = g.op("grown", "SelectV2", &[wide, x, x], &[]);
        let one = g.constant("one", int_tensor(&[], &[1]));
        let zero = g.constant("zero", int_tensor(&[], &[0]));
        let ints = g.op("ints", "SelectV2", &[c, one, zero], &[]);
        let bool_type = crate::proto::attr_value::Value::Type(10); // DT_BOOL
        let cast = [("DstT", crate::proto::AttrValue { value: Some(bool_type) })];
        let back = g.op("back", "Cast", &[ints], &cast);
        let swapped = g.op("swapped", "SelectV2", &[c, zero, one], &[]);
        let not = g.op("not", "Cast", &[swapped], &cast);
        assert_snapshot!(g.lower(&[same, grown, back, not]), @"
        ---
        h = torch.where(wide, x, x)
        not_ = torch.where(c, 0, 1).to(torch.bool)
        return x, h, c, not_
        ");
    }

    /// Top-k indices every reader casts to int64 are torch's int64 indices; read as int32
    /// anywhere, they stay TF's int32.
    #[test]
    fn indices_cast_to_int64_are_made_so() {
        let i64_type = crate::proto::attr_value::Value::Type(9); // DT_INT64
        let cast = [("DstT", crate::proto::AttrValue { value: Some(i64_type) })];
        let k = |g: &mut TestGraph| g.constant("k", int_tensor(&[], &[2]));
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let kk = k(&mut g);
        let top = g.op("top", "TopKV2", &[x, kk], &[]);
        let wide = g.op("wide", "Cast", &[TestGraph::port(top, 1)], &cast);
        let widened = g.lower(&[wide]);
        assert!(!widened.contains("torch.int"), "{widened}");
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let kk = k(&mut g);
        let top = g.op("top", "TopKV2", &[x, kk], &[]);
        let wide = g.op("wide", "Cast", &[TestGraph::port(top, 1)], &cast);
        let neg = g.op("neg", "Neg", &[TestGraph::port(top, 1)], &[]);
        let kept = g.lower(&[wide, neg]);
        assert!(kept.contains(".to(torch.int32)") && kept.contains(".to(torch.int64)"), "{kept}");
    }

    #[test]
    fn neutral_arithmetic_and_inverse_transposes_go() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let one = g.constant("one", Tensor::from_f32(vec![], &[1.0]));
        let zeros = g.constant("zeros", Tensor::from_f32(vec![3], &[0.0; 3]));
        let perm = g.constant("perm", int_tensor(&[2], &[1, 0]));
        let a = g.op("a", "Mul", &[one, x], &[]);
        let b = g.op("b", "AddV2", &[a, zeros], &[]);
        let t = g.op("t", "Transpose", &[b, perm], &[]);
        let u = g.op("u", "Transpose", &[t, perm], &[]);
        let y = g.op("y", "Relu", &[u], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [2, 3]
        y = Relu(x:0) -> float32 [2, 3]
        ");
    }

    /// `x + zeros` that broadcasts `x` to a larger shape is not neutral.
    /// ViT patching's reshape of a reshape is one reshape.
    #[test]
    fn a_reshape_of_a_reshape_is_one() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 6]);
        let flat = g.constant("flat", int_tensor(&[2], &[-1, 24]));
        let grid = g.constant("grid", int_tensor(&[3], &[-1, 2, 12]));
        let a = g.op("a", "Reshape", &[x, flat], &[]);
        let b = g.op("b", "Reshape", &[a, grid], &[]);
        assert_snapshot!(g.after_passes(&[b], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: b:0
        x = Placeholder -> float32 [?, 4, 6]
        grid = Const -> int32 [3]
        b = Reshape(x:0, grid:0) -> float32 [?, 2, 12]
        ");
    }

    #[test]
    fn broadcasting_arithmetic_stays() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[3]);
        let zeros = g.constant("zeros", Tensor::from_f32(vec![2, 3], &[0.0; 6]));
        let y = g.op("y", "AddV2", &[x, zeros], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [3]
        zeros = Const -> float32 [2, 3]
        y = AddV2(x:0, zeros:0) -> float32 [2, 3]
        ");
    }

    /// A trained scale that is all ones (a fresh model's gamma) is a parameter to train, not a
    /// neutral 1: the multiply stays.
    #[test]
    fn a_trained_scale_of_ones_stays() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let gamma = g.variable("gamma", Tensor::from_f32(vec![3], &[1.0; 3]));
        let y = g.op("y", "Mul", &[x, gamma], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [2, 3]
        gamma = Const -> float32 [3]
        y = Mul(x:0, gamma:0) -> float32 [2, 3]
        ");
    }

    /// A reshape back to the shape a value had before ExpandDims (Keras' `UpSampling3D` by 1
    /// along an axis, once its Tile by ones is gone) is no reshape; one to another shape stays.
    #[test]
    fn reshapes_back_to_the_same_shape_go() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let axis = g.constant("axis", int_tensor(&[], &[2]));
        let e = g.op("e", "ExpandDims", &[x, axis], &[]);
        let same = g.constant("same", int_tensor(&[3], &[-1, 3, 4]));
        let back = g.op("back", "Reshape", &[e, same], &[]);
        let y = g.op("y", "Relu", &[back], &[]);
        let other = g.constant("other", int_tensor(&[3], &[-1, 4, 3]));
        let z = g.op("z", "Reshape", &[e, other], &[]);
        assert_snapshot!(g.after_passes(&[y, z], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: y:0, z:0
        x = Placeholder -> float32 [?, 3, 4]
        axis = Const -> int32 []
        e = ExpandDims(x:0, axis:0) -> float32 [?, 3, 1, 4]
        y = Relu(x:0) -> float32 [?, 3, 4]
        other = Const -> int32 [3]
        z = Reshape(e:0, other:0) -> float32 [?, 4, 3]
        ");
    }
    /// Keras' squeeze-and-excitation: a global average pool reshaped to `[batch, 1, 1, C]`,
    /// the batch read from the pooled value's shape at run time, is the mean keeping its
    /// dims (no channel count in the code); a reshape to another shape stays.
    #[test]
    fn a_reduction_reshaped_to_its_kept_dims_keeps_them() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4, 8]);
        let axes = g.constant("axes", int_tensor(&[2], &[1, 2]));
        let mut outs = Vec::new();
        for (k, tail) in [[1, 1, 8], [2, 1, 4]].iter().enumerate() {
            let m = g.op(&format!("m{k}"), "Mean", &[x, axes], &[]);
            let shape = g.op(&format!("shape{k}"), "Shape", &[m], &[]);
            let begin = g.constant(&format!("b{k}"), int_tensor(&[1], &[0]));
            let end = g.constant(&format!("e{k}"), int_tensor(&[1], &[1]));
            let attrs = [("shrink_axis_mask", AttrValue { value: Some(Value::I(1)) })];
            let batch =
                g.op(&format!("batch{k}"), "StridedSlice", &[shape, begin, end, end], &attrs);
            let dims: Vec<_> = tail
                .iter()
                .enumerate()
                .map(|(d, &v)| g.constant(&format!("d{k}{d}"), int_tensor(&[], &[v])))
                .collect();
            let target =
                g.op(&format!("target{k}"), "Pack", &[batch, dims[0], dims[1], dims[2]], &[]);
            outs.push(g.op(&format!("r{k}"), "Reshape", &[m, target], &[]));
        }
        let after = g.after_passes(&outs, &[fold_and_infer, simplify, prune]);
        assert_snapshot!(after, @"
        inputs: x:0
        outputs: m0:0, r1:0
        x = Placeholder -> float32 [?, 4, 4, 8]
        axes = Const -> int32 [2]
        m0 = Mean(x:0, axes:0) {keep_dims=true} -> float32 [?, 1, 1, 8]
        m1 = Mean(x:0, axes:0) -> float32 [?, 8]
        r1/target = Const -> int64 [4]
        r1 = Reshape(m1:0, r1/target:0) -> float32 [?, 2, 1, 4]
        ");
    }
}
