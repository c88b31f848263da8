//! q and k reordered alike along their features, then only multiplied together: the
//! reordering goes. Keras' Gemma interleaves the two halves of each head after its rotary
//! embedding, `reshape(stack(split(x, 2, -1), -1), shape(x))`, on the query and on the key:
//!
//! ```python
//! x, y = torch.split(rotary_embedding, [8, 8], dim=3)
//! x = torch.stack([x, y], dim=4)
//! x = x.reshape(rotary_embedding.shape[0], rotary_embedding.shape[1], 2, 16)
//! q = x.permute(0, 2, 1, 3)
//! ```
//!
//! Attention reads q and k only through their dot products over the features, which one
//! permutation of both leaves as they were (a sum in another order), so
//! `q = apply_rotary(x, angles).permute(0, 2, 1, 3)` computes the same attention. Only where
//! both operands of a fused attention are so reordered, by the same permutation, and nothing
//! else reads what is dropped.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Dim, Graph, ValueRef, fused};
use crate::passes::fuse_rotary::halves;
use crate::passes::pattern::{const_ints, inputs_of, single_consumer};
use crate::passes::simplify::{provably, target_dims};

pub fn drop_shared_feature_order(g: &mut Graph) -> Result<()> {
    let attentions: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == fused::ATTENTION).collect();
    for n in attentions {
        let inputs = g.inputs(n);
        let (Some(&q), Some(&k)) = (inputs.first(), inputs.get(1)) else { continue };
        let (Some(q), Some(k)) = (reordered(g, q), reordered(g, k)) else { continue };
        if q.features != k.features {
            continue;
        }
        for side in [q, k] {
            g.set_input(side.reader.0, side.reader.1, side.source);
        }
    }
    Ok(())
}

/// An operand of attention whose features were interleaved: `source` before it, and where
/// the interleaved value is read (`(node, slot)`, the attention itself or a transpose that
/// keeps the features last).
#[derive(Clone, Copy)]
struct Reordered {
    source: ValueRef,
    reader: (NodeIndex, usize),
    /// How many features `source` has (the permutation's size).
    features: usize,
}

/// `v` (an attention operand) as `T(interleave(source))`, `T` a transpose keeping the last
/// axis last, or none; every value between read once.
fn reordered(g: &Graph, v: ValueRef) -> Option<Reordered> {
    let mut reader = (single_consumer(g, v)?, 0);
    let mut interleaved = v;
    if let Some(i) = inputs_of(g, v, &["Transpose"]) {
        let perm = const_ints(g, *i.get(1)?)?;
        let last = perm.len().checked_sub(1)?;
        if perm.get(last) != Some(&(last as i64)) || single_consumer(g, i[0]).is_none() {
            return None;
        }
        (interleaved, reader) = (i[0], (v.node, 0));
    } else {
        // The attention reads `v` directly: at whichever slot it does.
        reader.1 = g.inputs(reader.0).iter().position(|&u| u == v)?;
    }
    let source = interleave_of(g, interleaved)?;
    let features = g.info(source).shape?.last().copied().flatten()?;
    Some(Reordered { source, reader, features })
}

/// `x` where `v` is `reshape(stack([a, b], axis=-1), shape(x))`, `a` and `b` the halves of
/// `x`'s last axis: its features interleaved (`a0, b0, a1, b1, ...`).
fn interleave_of(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let i = inputs_of(g, v, &["Reshape"])?;
    let (packed, target) = (*i.first()?, *i.get(1)?);
    let pair = inputs_of(g, packed, &["Pack"])?;
    let [a, b] = pair[..] else { return None };
    if single_consumer(g, packed).is_none() || g.use_count(a) != 1 || g.use_count(b) != 1 {
        return None;
    }
    let x = halves(g, a, b)?;
    let shape = g.info(x).shape?;
    let rank = shape.len() as i64;
    let axis = g.node(packed.node).attr_int_or("axis", 0).ok()?;
    if axis != rank && axis != -1 {
        return None;
    }
    is_shape_of(g, target, x, &shape).then_some(x)
}

/// Whether the reshape target `target` is `x`'s shape (`shape`): each entry `x`'s size at
/// run time or a known size equal to it (or one -1, which the element count fixes).
fn is_shape_of(g: &Graph, target: ValueRef, x: ValueRef, shape: &[Option<usize>]) -> bool {
    let own = |k: usize, d: Dim| matches!(d, Dim::Of(u, axis) if u == x && axis == k);
    target_dims(g, target).is_some_and(|dims| provably(shape, &dims, own))
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras Gemma's `reshape(stack(split(x, 2, -1), -1), shape(x))`, then heads first.
    fn interleaved(g: &mut TestGraph, name: &str, x: ValueRef) -> ValueRef {
        let axis = g.constant(&format!("{name}/axis"), int_tensor(&[], &[-1]));
        let split = g.op(&format!("{name}/split"), "Split", &[axis, x], &[("num_split", int(2))]);
        let halves = [split, ValueRef { port: 1, ..split }];
        let stack = [("axis", int(-1)), ("N", int(2))];
        let packed = g.op(&format!("{name}/stack"), "Pack", &halves, &stack);
        let shape = g.constant(&format!("{name}/shape"), int_tensor(&[4], &[1, 5, 2, 16]));
        let y = g.op(&format!("{name}/Reshape"), "Reshape", &[packed, shape], &[]);
        let perm = g.constant(&format!("{name}/perm"), int_tensor(&[4], &[0, 2, 1, 3]));
        g.op(&format!("{name}/transpose"), "Transpose", &[y, perm], &[])
    }

    fn attention(g: &mut TestGraph, q: ValueRef, k: ValueRef, v: ValueRef) -> ValueRef {
        let s = g.op("att/MatMul", "BatchMatMulV2", &[q, k], &[("adj_y", boolean(true))]);
        let p = g.op("att/Softmax", "Softmax", &[s], &[]);
        g.op("att/MatMul_1", "BatchMatMulV2", &[p, v], &[])
    }

    /// Both q and k interleaved alike: neither is (their dot products are the same).
    #[test]
    fn features_reordered_alike_in_q_and_k_are_left_in_order() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[1, 5, 2, 16]);
        let k = g.input("k", &[1, 5, 2, 16]);
        let v = g.input("v", &[1, 2, 5, 16]);
        let (q, k) = (interleaved(&mut g, "q", q), interleaved(&mut g, "k", k));
        let y = attention(&mut g, q, k, v);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        q_2 = q.permute(0, 2, 1, 3)
        k_2 = k.permute(0, 2, 1, 3)
        x = F.scaled_dot_product_attention(q_2, k_2, v, scale=1.0)
        return x
        ");
    }

    /// Only q interleaved: the scores differ without it, so it stays.
    #[test]
    fn features_reordered_in_q_alone_stay_reordered() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[1, 5, 2, 16]);
        let k = g.input("k", &[1, 2, 5, 16]);
        let v = g.input("v", &[1, 2, 5, 16]);
        let q = interleaved(&mut g, "q", q);
        let y = attention(&mut g, q, k, v);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x, q_1 = torch.split(q, [8, 8], dim=3)
        q_2 = torch.stack([x, q_1], dim=4).reshape(1, 5, 2, 16).permute(0, 2, 1, 3)
        x = F.scaled_dot_product_attention(q_2, k, v, scale=1.0)
        return x
        ");
    }
}
