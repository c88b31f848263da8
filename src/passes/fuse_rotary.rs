//! Rotary position embeddings' `rotate_half`: the last axis split in two halves `x1, x2`,
//! then `[-x2, x1]` joined back along it, however TF spells the join:
//!
//! ```text
//! x1, x2 = Split(x, 2, last axis)          (or SplitV with two equal sizes)
//! y = ConcatV2([Neg(x2), x1], last axis)
//! y = Reshape(Pack([Neg(x2), x1], axis=rank-1), x's shape)   (keras-hub)
//! ```
//!
//! becomes one [`Fused::RotateHalf`] node, written with a `rotate_half` helper in `model.py`
//! that every attention layer calls (Llama, Mistral, Gemma, GPT-NeoX...). The rotation
//! itself, `x * cos(angles) + rotate_half(x) * sin(angles)` (operands in any order), then
//! becomes one [`Fused::ApplyRotary`] node reading `x` and `angles`: `apply_rotary(x, angles)`.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{both_orders, const_ints, inputs_of, replace_with_fused, unary_input};

pub fn fuse_rotary(g: &mut Graph) -> Result<()> {
    let joins: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).op.as_str(), "ConcatV2" | "Reshape"))
            .collect();
    for n in joins {
        if let Some(x) = rotated_half(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, Fused::RotateHalf, &[x]);
        }
    }
    let adds: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "Add" | "AddV2")).collect();
    for n in adds {
        if let Some((x, angles)) = rotation(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, Fused::ApplyRotary, &[x, angles]);
            let producer = g.node_mut(angles.node);
            if producer.value.is_none() && producer.op != "Placeholder" {
                producer.role.get_or_insert("angles");
            }
        }
    }
    Ok(())
}

/// `(x, angles)` when `v` is `x * cos(angles) + rotate_half(x) * sin(angles)`.
fn rotation(g: &Graph, v: ValueRef) -> Option<(ValueRef, ValueRef)> {
    both_orders(g, v, &["Add", "AddV2"]).into_iter().find_map(|(a, b)| {
        let (x, cos) = both_orders(g, a, &["Mul"])
            .into_iter()
            .find_map(|(x, c)| Some((x, unary_input(g, c, "Cos")?)))?;
        let (half, sin) = both_orders(g, b, &["Mul"])
            .into_iter()
            .find_map(|(h, s)| Some((h, unary_input(g, s, "Sin")?)))?;
        let rotated = g.g.contains_node(half.node)
            && matches!(g.node(half.node).fused, Some(Fused::RotateHalf))
            && g.inputs(half.node).first() == Some(&x);
        (rotated && cos == sin).then_some((x, cos))
    })
}

fn rank(g: &Graph, v: ValueRef) -> Option<usize> {
    g.info(v).shape.map(|s| s.len())
}

/// An axis constant, normalised against `rank`.
fn axis(g: &Graph, v: ValueRef, rank: usize) -> Option<usize> {
    let a = *const_ints(g, v)?.first()?;
    let a = if a < 0 { a + rank as i64 } else { a };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

/// `(x, half)` when `first` and `second` are the two equal halves of `x`'s last axis.
fn halves(g: &Graph, first: ValueRef, second: ValueRef) -> Option<ValueRef> {
    if first.node != second.node || first.port != 0 || second.port != 1 {
        return None;
    }
    let node = g.node(first.node);
    let i = g.inputs(first.node);
    let (x, axis_input) = match node.op.as_str() {
        "Split" if node.attr_int_or("num_split", 0).ok()? == 2 => (*i.get(1)?, i[0]),
        "SplitV" => {
            let sizes = const_ints(g, *i.get(1)?)?;
            let [a, b] = sizes[..] else { return None };
            if !(a == b || (a > 0 && b == -1 && split_total(g, i[0]) == Some(2 * a))) {
                return None;
            }
            (i[0], *i.get(2)?)
        }
        _ => return None,
    };
    let r = rank(g, x)?;
    (axis(g, axis_input, r)? == r - 1).then_some(x)
}

fn split_total(g: &Graph, x: ValueRef) -> Option<i64> {
    g.info(x).shape?.last().copied().flatten().map(|d| d as i64)
}

/// `[-x2, x1]` as two values: `x` when they are its halves negated and swapped.
fn swapped(g: &Graph, a: ValueRef, b: ValueRef) -> Option<ValueRef> {
    let x2 = unary_input(g, a, "Neg")?;
    halves(g, b, x2)
}

/// `x` when `v` is `rotate_half(x)`.
fn rotated_half(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    if let Some(i) = inputs_of(g, v, &["ConcatV2"]) {
        let [a, b, ax] = i[..] else { return None };
        let x = swapped(g, a, b)?;
        let r = rank(g, x)?;
        return (axis(g, ax, r)? == r - 1).then_some(x);
    }
    let i = inputs_of(g, v, &["Reshape"])?;
    let packed = *i.first()?;
    let parts = inputs_of(g, packed, &["Pack"])?;
    let [a, b] = parts[..] else { return None };
    let x = swapped(g, a, b)?;
    let r = rank(g, x)?;
    let pack_axis = g.node(packed.node).attr_int_or("axis", 0).ok()?;
    let pack_axis = if pack_axis < 0 { pack_axis + r as i64 + 1 } else { pack_axis };
    // Stacked before the last axis, then merged back: `[.., 2, half]` → `[.., 2·half]`.
    if pack_axis != r as i64 - 1 || g.use_count(packed) != 1 {
        return None;
    }
    let (xs, ys) = (g.info(x).shape?, g.info(v).shape?);
    let same = xs.len() == ys.len()
        && xs.iter().zip(&ys).all(|(a, b)| a.is_none() || b.is_none() || a == b);
    same.then_some(x)
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `x`'s last axis split in two by `Split`: `(x1, x2)`.
    fn split_halves(g: &mut TestGraph, x: ValueRef) -> (ValueRef, ValueRef) {
        let axis = g.constant("rot/axis", int_tensor(&[], &[-1]));
        let split = g.op("rot/split", "Split", &[axis, x], &[("num_split", int(2))]);
        (TestGraph::port(split, 0), TestGraph::port(split, 1))
    }

    /// `concat([a, b], -1)`.
    fn concat_last(g: &mut TestGraph, a: ValueRef, b: ValueRef) -> ValueRef {
        let cat_axis = g.constant("rot/cat_axis", int_tensor(&[], &[-1]));
        g.op("rot/concat", "ConcatV2", &[a, b, cat_axis], &[("N", int(2))])
    }

    /// keras-hub's RotaryEmbedding: `stack([-x2, x1], axis=-2)` reshaped back to x's shape.
    #[test]
    fn stacked_halves_are_rotate_half() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 2, 8]);
        let (x1, x2) = split_halves(&mut g, x);
        let neg = g.op("rot/Neg", "Neg", &[x2], &[]);
        let packed = g.op("rot/stack", "Pack", &[neg, x1], &[("axis", int(3)), ("N", int(2))]);
        let shape = g.constant("rot/shape", int_tensor(&[4], &[-1, 5, 2, 8]));
        let y = g.op("rot/Reshape", "Reshape", &[packed, shape], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = rotate_half(x)
        return x
        ");
    }

    /// `concat([-x2, x1], -1)` with SplitV: the same helper.
    #[test]
    fn concatenated_halves_are_rotate_half() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 2, 5, 8]);
        let sizes = g.constant("rot/sizes", int_tensor(&[2], &[4, -1]));
        let axis = g.constant("rot/axis", int_tensor(&[], &[3]));
        let split = g.op("rot/split", "SplitV", &[x, sizes, axis], &[("num_split", int(2))]);
        let (x1, x2) = (TestGraph::port(split, 0), TestGraph::port(split, 1));
        let neg = g.op("rot/Neg", "Neg", &[x2], &[]);
        let y = concat_last(&mut g, neg, x1);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = rotate_half(x)
        return x
        ");
    }

    /// `x * cos(t) + rotate_half(x) * sin(t)`, products in either order: one helper call.
    #[test]
    fn the_rotation_is_apply_rotary() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 2, 8]);
        let angles = g.input("angles", &[1, 5, 1, 8]);
        let (x1, x2) = split_halves(&mut g, x);
        let neg = g.op("rot/Neg", "Neg", &[x2], &[]);
        let half = concat_last(&mut g, neg, x1);
        let cos = g.op("rot/Cos", "Cos", &[angles], &[]);
        let sin = g.op("rot/Sin", "Sin", &[angles], &[]);
        let a = g.op("rot/mul", "Mul", &[cos, x], &[]);
        let b = g.op("rot/mul_1", "Mul", &[half, sin], &[]);
        let y = g.op("rot/add", "AddV2", &[a, b], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = apply_rotary(x, angles)
        return x
        ");
    }

    /// Halves joined in their own order are not a rotation.
    #[test]
    fn unswapped_halves_are_left_alone() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 2, 5, 8]);
        let (x1, x2) = split_halves(&mut g, x);
        let neg = g.op("rot/Neg", "Neg", &[x1], &[]);
        let y = concat_last(&mut g, neg, x2);
        assert!(!g.lower(&[y]).contains("rotate_half"));
    }
}
