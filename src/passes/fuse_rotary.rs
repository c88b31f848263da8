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
//!
//! RoFormer pairs neighbours instead of halves: `stack([-x[..., 1::2], x[..., ::2]], -1)`
//! reshaped back to `x`'s shape is one [`Fused::RotateEveryTwo`] node, `rotate_every_two(x)`;
//! so is Moonshine's spelling, the columns of `x` viewed as pairs (`x.reshape(.., d/2, 2)`)
//! for `x[..., 1::2]` and `x[..., ::2]`. Its rotation, with `rotate_every_two(x)`, is one
//! [`Fused::ApplyRotaryEveryTwo`] node: `apply_rotary_every_two(x, angles)`.
//! Flux writes each pair's whole turn: `x` viewed as pairs `[.., d/2, 2]`, `x0, x1` its two
//! columns, `stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1)` reshaped back is one
//! [`Fused::RotatePairs`] node, `rotate_pairs(x, cos, sin)`.

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{
    Width, both_orders, const_ints, float_cast, inputs_of, replace_with_fused, unary_input,
};

pub fn fuse_rotary(g: &mut Graph) -> Result<()> {
    let joins: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).op.as_str(), "ConcatV2" | "Reshape"))
            .collect();
    for n in joins {
        let v = ValueRef { node: n, port: 0 };
        if let Some(x) = rotated_half(g, v) {
            replace_with_fused(g, n, Fused::RotateHalf, &[x]);
        } else if let Some(x) = rotated_pairs(g, v) {
            replace_with_fused(g, n, Fused::RotateEveryTwo, &[x]);
        } else if let Some((x, cos, sin)) = turned_pairs(g, v) {
            replace_with_fused(g, n, Fused::RotatePairs, &[x, cos, sin]);
            g.name_computed(cos, "cos");
            g.name_computed(sin, "sin");
        }
    }
    let adds: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "Add" | "AddV2")).collect();
    // Angles reshaped as the cos and sin tables were, made once for every layer that
    // reshapes the same angles the same way.
    let mut shaped: BTreeMap<(ValueRef, Vec<Step>), ValueRef> = BTreeMap::new();
    for n in adds {
        if let Some((x, table, layout)) = rotation(g, ValueRef { node: n, port: 0 }) {
            let angles = if table.chain.is_empty() {
                table.angles
            } else {
                let key = (table.angles, steps(g, &table));
                match shaped.get(&key) {
                    Some(&v) => v,
                    None => {
                        let v = reshaped_angles(g, &table);
                        shaped.insert(key, v);
                        v
                    }
                }
            };
            replace_with_fused(g, n, layout, &[x, angles]);
            g.name_computed(angles, "angles");
            if let Some(freqs) = doubled(g, angles) {
                g.name_computed(freqs, "freqs");
            }
        } else if let Some((cos, sin)) = written_rotation(g, ValueRef { node: n, port: 0 }) {
            // A rotation left written out (its tables not `cos` and `sin` of angles the graph
            // shows: RoFormer's, each repeated per pair) still names them for what they are.
            g.name_computed(cos, "cos");
            g.name_computed(sin, "sin");
        }
    }
    Ok(())
}

/// `f` where `angles` is `f` concatenated with itself (then reshaped), as Hugging Face's
/// rotary embedding builds them: `emb = torch.cat((freqs, freqs), dim=-1)`.
fn doubled(g: &Graph, mut angles: ValueRef) -> Option<ValueRef> {
    for _ in 0..4 {
        let node = g.node(angles.node);
        let inputs = g.inputs(angles.node);
        match node.op.as_str() {
            "ExpandDims" | "Reshape" | "Squeeze" => angles = *inputs.first()?,
            "ConcatV2" => {
                let [a, b, _axis] = inputs[..] else { return None };
                return (a == b).then_some(a);
            }
            _ => return None,
        }
    }
    None
}

/// `(cos, sin)` when `v` is `x * cos + turned(x) * sin`, `turned` a fused half or pair turn.
fn written_rotation(g: &Graph, v: ValueRef) -> Option<(ValueRef, ValueRef)> {
    both_orders(g, v, &["Add", "AddV2"]).into_iter().find_map(|(a, b)| {
        both_orders(g, a, &["Mul"]).into_iter().find_map(|(x, cos)| {
            both_orders(g, b, &["Mul"]).into_iter().find_map(|(turned, sin)| {
                let node = g.node(turned.node);
                let turn = matches!(node.fused, Some(Fused::RotateHalf | Fused::RotateEveryTwo));
                (turn && g.inputs(turned.node).first() == Some(&x)).then_some((cos, sin))
            })
        })
    })
}

/// A cos or sin table as a rotation reads it: `cos(angles)`, then reshaped (`ExpandDims`,
/// `Reshape`: Hugging Face's `cos[None, :, None, :]`) by the nodes of `chain`, in order.
struct Table {
    angles: ValueRef,
    chain: Vec<NodeIndex>,
}

/// The reshapes and slices that may follow a cos or sin table (ESM's `cos[None, :, None]`
/// cut to the sequence, `[:, :n]`): each acts on positions alone, so it may as well act on
/// the angles before the cos and sin.
const TABLE_RESHAPES: &[&str] = &["ExpandDims", "Reshape", "StridedSlice"];

/// `v` as `func(angles)` reshaped, and cast from one float type to another on the way:
/// Keras's bfloat16 layers make the table in float32 and cast it to the rotated value's
/// type, which the helper does too (a product's operands share a type).
fn table(g: &Graph, mut v: ValueRef, func: &str) -> Option<Table> {
    let mut chain = Vec::new();
    loop {
        if let Some(angles) = unary_input(g, v, func) {
            chain.reverse();
            return Some(Table { angles, chain });
        }
        if let Some(from) = float_cast(g, v, Width::Any) {
            v = from;
            continue;
        }
        let i = inputs_of(g, v, TABLE_RESHAPES)?;
        let (&data, operands) = i.split_first()?;
        // A reshape's target is a constant; a slice's bounds may be run-time sizes.
        let sliced = g.node(v.node).op == "StridedSlice";
        if operands.is_empty() || (!sliced && operands.iter().any(|&o| g.const_value(o).is_none()))
        {
            return None;
        }
        chain.push(v.node);
        v = data;
    }
}

/// One step of a table's chain: the op, its attributes, and each operand (a constant by
/// value; else sizes known in part, by what they are; else the value itself).
type Step = (String, String, Vec<Result<Vec<i64>, String>>);

fn steps(g: &Graph, t: &Table) -> Vec<Step> {
    t.chain
        .iter()
        .map(|&n| {
            let node = g.node(n);
            let operand = |o: ValueRef| {
                const_ints(g, o).ok_or_else(|| match &g.node(o.node).partial {
                    Some(p) => format!("{p:?}"),
                    None => format!("{o:?}"),
                })
            };
            let operands = g.inputs(n).iter().skip(1).map(|&o| operand(o)).collect();
            (node.op.clone(), format!("{:?}", node.attrs), operands)
        })
        .collect()
}

/// Whether two tables reshape the same angles the same way.
fn same_table(g: &Graph, a: &Table, b: &Table) -> bool {
    a.angles == b.angles && steps(g, a) == steps(g, b)
}

/// The table's reshapes applied to its angles (new nodes beside the table's own): the
/// rotation then takes angles shaped as it reads cos and sin. They are named after the
/// angles, not after the layer that first reads them: every layer shares them.
fn reshaped_angles(g: &mut Graph, table: &Table) -> ValueRef {
    let mut v = table.angles;
    let base = g.node(table.angles.node).name.clone();
    for (k, &n) in table.chain.iter().enumerate() {
        let operands = g.inputs(n);
        let mut node = g.node(n).clone();
        node.name = format!("{base}/angles_{k}");
        node.set_role(0, None);
        let new = g.add_node(node);
        g.connect(v, new, 0);
        for (slot, &o) in operands.iter().enumerate().skip(1) {
            g.connect(o, new, slot);
        }
        v = ValueRef { node: new, port: 0 };
    }
    v
}

/// `(x, table, rotation)` when `v` is `x * cos(angles) + rotate_half(x) * sin(angles)` (cos
/// and sin reshaped alike), or the same with `rotate_every_two`: which fused rotation it is.
fn rotation(g: &Graph, v: ValueRef) -> Option<(ValueRef, Table, Fused)> {
    both_orders(g, v, &["Add", "AddV2"]).into_iter().find_map(|(a, b)| {
        let (x, cos) = both_orders(g, a, &["Mul"])
            .into_iter()
            .find_map(|(x, c)| Some((x, table(g, c, "Cos")?)))?;
        let (half, sin) = both_orders(g, b, &["Mul"])
            .into_iter()
            .find_map(|(h, s)| Some((h, table(g, s, "Sin")?)))?;
        if !g.g.contains_node(half.node) {
            return None;
        }
        let layout = match g.node(half.node).fused {
            Some(Fused::RotateHalf) => Fused::ApplyRotary,
            Some(Fused::RotateEveryTwo) => Fused::ApplyRotaryEveryTwo,
            _ => return None,
        };
        let rotated = g.inputs(half.node).first() == Some(&x);
        (rotated && same_table(g, &cos, &sin)).then_some((x, cos, layout))
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

/// `(x, start, stop)` when `v` is `x[..., start:stop]`: a unit-stride slice of the last axis
/// alone (`stop` is `None` up to the end).
fn last_axis_slice(g: &Graph, v: ValueRef) -> Option<(ValueRef, i64, Option<i64>)> {
    let (x, start, stop, step, false) = last_axis_strided(g, v)? else { return None };
    (step == 1).then_some((x, start, stop))
}

/// `(x, start)` when `v` is `x[..., start::2]`, every other feature from `start`.
fn every_other(g: &Graph, v: ValueRef) -> Option<(ValueRef, i64)> {
    let (x, start, stop, step, false) = last_axis_strided(g, v)? else { return None };
    let d = split_total(g, x)?;
    (step == 2 && d % 2 == 0 && stop.is_none_or(|s| s >= d)).then_some((x, start))
}

/// `(x, start, stop, step, shrunk)` when `v` is `x[..., start:stop:step]`, or `x[..., start]`
/// when `shrunk`: a slice of the last axis alone (`stop` is `None` up to the end).
fn last_axis_strided(g: &Graph, v: ValueRef) -> Option<(ValueRef, i64, Option<i64>, i64, bool)> {
    let i = inputs_of(g, v, &["StridedSlice"])?;
    let [x, b, e, s] = i[..] else { return None };
    let (b, e, s) = (const_ints(g, b)?, const_ints(g, e)?, const_ints(g, s)?);
    let node = g.node(v.node);
    let mask = |a: &str| node.attr_int_or(a, 0).ok();
    let (bm, em, ellipsis) = (mask("begin_mask")?, mask("end_mask")?, mask("ellipsis_mask")?);
    let n = b.len();
    if n == 0 || e.len() != n || s.len() != n || s[..n - 1].iter().any(|&s| s != 1) || s[n - 1] < 1
    {
        return None;
    }
    let shrink = mask("shrink_axis_mask")?;
    if mask("new_axis_mask")? != 0 || (shrink != 0 && shrink != 1 << (n - 1)) {
        return None;
    }
    let bit = |m: i64, k: usize| k < 63 && (m >> k) & 1 == 1;
    let r = rank(g, x)?;
    // Every axis before the last taken whole: by an ellipsis (`x[..., a:b]`) or one by one.
    let leading_whole = if ellipsis != 0 {
        ellipsis == 1 && n == 2
    } else {
        n == r && (0..n - 1).all(|k| bit(bm, k) && bit(em, k))
    };
    let k = n - 1;
    let start = if bit(bm, k) { 0 } else { b[k] };
    leading_whole.then(|| (x, start, (!bit(em, k)).then_some(e[k]), s[k], shrink != 0))
}

/// `(x, half)` when `first` and `second` are the two equal halves of `x`'s last axis.
pub(super) fn halves(g: &Graph, first: ValueRef, second: ValueRef) -> Option<ValueRef> {
    // Hugging Face's `x[..., : d // 2]` and `x[..., d // 2 :]`.
    if let (Some((x, 0, Some(h))), Some((x2, h2, stop))) =
        (last_axis_slice(g, first), last_axis_slice(g, second))
    {
        let d = split_total(g, x)?;
        return (x == x2 && h == h2 && h > 0 && 2 * h == d && stop.is_none_or(|s| s >= d))
            .then_some(x);
    }
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
    // Stacked before the last axis, then merged back: `[.., 2, half]` → `[.., 2·half]`.
    restacked(g, v, 1, |a, b| swapped(g, a, b))
}

/// `x` when `v` is `rotate_every_two(x)`: RoFormer's `stack([-x[..., 1::2], x[..., ::2]],
/// axis=-1)` reshaped back to `x`'s shape, each pair of neighbours turned.
fn rotated_pairs(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    // Stacked on a new last axis, then merged back: `[.., d/2, 2]` → `[.., d]`.
    restacked(g, v, 0, |a, b| {
        let odd = unary_input(g, a, "Neg")?;
        // Or Moonshine's: the columns of `x` viewed as pairs, `x.reshape(.., d/2, 2)[..., 1]`.
        if let (Some(x), Some(x2)) = (pair_column(g, odd, 1), pair_column(g, b, 0)) {
            return (x == x2).then_some(x);
        }
        let (x, 1) = every_other(g, odd)? else { return None };
        let (x2, 0) = every_other(g, b)? else { return None };
        (x == x2).then_some(x)
    })
}

/// `(x, cos, sin)` when `v` is Flux's turn of `x`'s neighbouring pairs (see the module's
/// documentation), products and sums in any order.
fn turned_pairs(g: &Graph, v: ValueRef) -> Option<(ValueRef, ValueRef, ValueRef)> {
    let tables = std::cell::Cell::new(None);
    let x = restacked(g, v, 0, |a, b| {
        // a = x0 * cos - x1 * sin
        let [p, q] = inputs_of(g, a, &["Sub"])?[..] else { return None };
        let (x0, cos, x) = both_orders(g, p, &["Mul"])
            .into_iter()
            .find_map(|(x0, cos)| Some((x0, cos, pair_column(g, x0, 0)?)))?;
        let (x1, sin) = both_orders(g, q, &["Mul"])
            .into_iter()
            .find(|&(x1, _)| pair_column(g, x1, 1) == Some(x))?;
        // b = x0 * sin + x1 * cos
        let products = |s: ValueRef, c: ValueRef| {
            let is = |m: ValueRef, u: ValueRef, w: ValueRef| {
                both_orders(g, m, &["Mul"]).contains(&(u, w))
            };
            is(s, x0, sin) && is(c, x1, cos)
        };
        both_orders(g, b, &["Add", "AddV2"]).into_iter().find(|&(s, c)| products(s, c))?;
        tables.set(Some((cos, sin)));
        Some(x)
    })?;
    let (cos, sin) = tables.get()?;
    Some((x, cos, sin))
}

/// `x` when `v` is column `k` of `x` viewed as pairs: `Reshape(x, [.., d/2, 2])[.., k]`, the
/// last axis taken away.
fn pair_column(g: &Graph, v: ValueRef, k: i64) -> Option<ValueRef> {
    let (pairs, start, _, 1, true) = last_axis_strided(g, v)? else { return None };
    if start != k {
        return None;
    }
    // The target may be read at run time (more inputs, the values it reads sizes from).
    let x = *inputs_of(g, pairs, &["Reshape"])?.first()?;
    let (xs, ps) = (g.info(x).shape?, g.info(pairs).shape?);
    let halves =
        xs.last().copied().flatten().zip(ps.get(ps.len().checked_sub(2)?).copied().flatten());
    let fits = !xs.is_empty()
        && ps.len() == xs.len() + 1
        && ps.last() == Some(&Some(2))
        && halves.is_none_or(|(d, h)| d == 2 * h)
        && xs[..xs.len() - 1].iter().zip(&ps).all(|(a, b)| a.is_none() || b.is_none() || a == b);
    fits.then_some(x)
}

/// `x` when `v` is `Reshape(Pack([a, b]))` back to `x`'s shape, with `x = parts(a, b)` and
/// the pair stacked on axis `rank(x) - before_last` (of the stack's `rank(x) + 1`), the
/// stack read by the reshape alone.
fn restacked(
    g: &Graph,
    v: ValueRef,
    before_last: i64,
    parts: impl Fn(ValueRef, ValueRef) -> Option<ValueRef>,
) -> Option<ValueRef> {
    let i = inputs_of(g, v, &["Reshape"])?;
    let packed = *i.first()?;
    let pair = inputs_of(g, packed, &["Pack"])?;
    let [a, b] = pair[..] else { return None };
    let x = parts(a, b)?;
    let r = rank(g, x)? as i64;
    let pack_axis = g.node(packed.node).attr_int_or("axis", 0).ok()?;
    let pack_axis = if pack_axis < 0 { pack_axis + r + 1 } else { pack_axis };
    if pack_axis != r - before_last || g.use_count(packed) != 1 {
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
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `x[..., begin:end:step]` (a StridedSlice after an ellipsis), with `attrs` saying which
    /// bounds count and whether the axis goes.
    fn last_axis(
        g: &mut TestGraph,
        name: &str,
        x: ValueRef,
        [begin, end, step]: [i64; 3],
        attrs: &[(&str, crate::proto::AttrValue)],
    ) -> ValueRef {
        let b = g.constant(&format!("{name}/b"), int_tensor(&[2], &[0, begin]));
        let e = g.constant(&format!("{name}/e"), int_tensor(&[2], &[0, end]));
        let s = g.constant(&format!("{name}/s"), int_tensor(&[2], &[1, step]));
        g.op(name, "StridedSlice", &[x, b, e, s], attrs)
    }

    /// `x`'s last axis split in two by `Split`: `(x1, x2)`.
    fn split_halves(g: &mut TestGraph, x: ValueRef) -> (ValueRef, ValueRef) {
        let axis = g.constant("rot/axis", int_tensor(&[], &[-1]));
        let split = g.op("rot/split", "Split", &[axis, x], &[("num_split", int(2))]);
        (TestGraph::port(split, 0), TestGraph::port(split, 1))
    }

    /// Columns 0 and 1 of `x` viewed as pairs: `x.reshape(pairs)[..., k]`.
    fn pair_columns(g: &mut TestGraph, x: ValueRef, pairs: &[i64]) -> [ValueRef; 2] {
        let target = g.constant("rot/pairs_shape", int_tensor(&[pairs.len()], pairs));
        let viewed = g.op("rot/pairs", "Reshape", &[x, target], &[]);
        let attrs = [("ellipsis_mask", int(1)), ("shrink_axis_mask", int(2))];
        [0, 1].map(|k| last_axis(g, &format!("rot/x{k}"), viewed, [k, k + 1, 1], &attrs))
    }

    /// `stack([a, b], -1)` reshaped back to `shape`.
    fn stacked_back(g: &mut TestGraph, a: ValueRef, b: ValueRef, shape: &[i64]) -> ValueRef {
        let packed = g.op("rot/stack", "Pack", &[a, b], &[("axis", int(-1)), ("N", int(2))]);
        let shape = g.constant("rot/shape", int_tensor(&[shape.len()], shape));
        g.op("rot/Reshape", "Reshape", &[packed, shape], &[])
    }

    /// `concat([a, b], -1)`.
    fn concat_last(g: &mut TestGraph, a: ValueRef, b: ValueRef) -> ValueRef {
        let cat_axis = g.constant("rot/cat_axis", int_tensor(&[], &[-1]));
        g.op("rot/concat", "ConcatV2", &[a, b, cat_axis], &[("N", int(2))])
    }

    /// `rotate_half(x)` as TF spells it: x's halves split, the second negated, joined first.
    fn half_turned(g: &mut TestGraph, x: ValueRef) -> ValueRef {
        let (x1, x2) = split_halves(g, x);
        let neg = g.op("rot/Neg", "Neg", &[x2], &[]);
        concat_last(g, neg, x1)
    }

    /// `a0 * a1 + b0 * b1`, each product's operands in the order given.
    fn sum_of_products(g: &mut TestGraph, a: [ValueRef; 2], b: [ValueRef; 2]) -> ValueRef {
        let a = g.op("rot/mul", "Mul", &a, &[]);
        let b = g.op("rot/mul_1", "Mul", &b, &[]);
        g.op("rot/add", "AddV2", &[a, b], &[])
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

    /// RoFormer's interleaved pairs: `stack([-x[..., 1::2], x[..., ::2]], -1)` reshaped
    /// back is `rotate_every_two(x)`; the halves' slices of another step are not.
    #[test]
    fn neighbours_stacked_are_rotate_every_two() {
        for (step, helper) in [(2, true), (3, false)] {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 5, 2, 8]);
            let every = |g: &mut TestGraph, name: &str, start: i64| {
                let attrs = [("ellipsis_mask", int(1)), ("end_mask", int(2))];
                last_axis(g, name, x, [start, 0, step], &attrs)
            };
            let odd = every(&mut g, "rot/odd", 1);
            let even = every(&mut g, "rot/even", 0);
            let neg = g.op("rot/Neg", "Neg", &[odd], &[]);
            let y = stacked_back(&mut g, neg, even, &[-1, 5, 2, 8]);
            let code = g.lower(&[y]);
            assert_eq!(code.contains("rotate_every_two(x)"), helper, "{code}");
        }
    }

    #[test]
    fn columns_of_pairs_stacked_are_rotate_every_two() {
        // Moonshine: `x` viewed as pairs, `stack([-pairs[..., 1], pairs[..., 0]], -1)`; the
        // columns the other way round are no rotation.
        for (first, helper) in [(1usize, true), (0, false)] {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 5, 2, 8]);
            let columns = pair_columns(&mut g, x, &[-1, 5, 2, 4, 2]);
            let neg = g.op("rot/Neg", "Neg", &[columns[first]], &[]);
            let y = stacked_back(&mut g, neg, columns[1 - first], &[-1, 5, 2, 8]);
            let code = g.lower(&[y]);
            assert_eq!(code.contains("rotate_every_two(x)"), helper, "{code}");
        }
    }

    /// Flux's turn of each pair written whole: `x` viewed as pairs, `(x0 * cos - x1 * sin,
    /// x0 * sin + x1 * cos)` stacked and merged back is `rotate_pairs(x, cos, sin)`; with the
    /// sign of the sine's product swapped it is another rotation, and stays written.
    #[test]
    fn a_whole_turn_of_pairs_is_rotate_pairs() {
        for (sub, helper) in [("Sub", true), ("AddV2", false)] {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 2, 6, 8]);
            let cos = g.input("cos", &[1, 1, 6, 4]);
            let sin = g.input("sin", &[1, 1, 6, 4]);
            let [x0, x1] = pair_columns(&mut g, x, &[-1, 2, 6, 4, 2]);
            let x0c = g.op("rot/mul", "Mul", &[x0, cos], &[]);
            let x1s = g.op("rot/mul_1", "Mul", &[sin, x1], &[]);
            let a = g.op("rot/sub", sub, &[x0c, x1s], &[]);
            let x0s = g.op("rot/mul_2", "Mul", &[x0, sin], &[]);
            let x1c = g.op("rot/mul_3", "Mul", &[x1, cos], &[]);
            let b = g.op("rot/add", "AddV2", &[x1c, x0s], &[]);
            let y = stacked_back(&mut g, a, b, &[-1, 2, 6, 8]);
            let code = g.lower(&[y]);
            assert_eq!(code.contains("rotate_pairs(x, cos, sin)"), helper, "{code}");
        }
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
        let half = half_turned(&mut g, x);
        let cos = g.op("rot/Cos", "Cos", &[angles], &[]);
        let sin = g.op("rot/Sin", "Sin", &[angles], &[]);
        let y = sum_of_products(&mut g, [cos, x], [half, sin]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = apply_rotary(x, angles)
        return x
        ");
    }

    /// Keras's bfloat16 layers make the tables in float32 and cast them to the rotated
    /// value's type: the same helper call (it casts them so).
    #[test]
    fn tables_cast_to_bfloat16_are_apply_rotary() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, 5, 2, 8], DType::BF16);
        let angles = g.input("angles", &[1, 5, 1, 8]);
        let half = half_turned(&mut g, x);
        let to = [("SrcT", dtype(DType::F32)), ("DstT", dtype(DType::BF16))];
        let cos = g.op("rot/Cos", "Cos", &[angles], &[]);
        let cos = g.op("rot/Cast", "Cast", &[cos], &to);
        let sin = g.op("rot/Sin", "Sin", &[angles], &[]);
        let sin = g.op("rot/Cast_1", "Cast", &[sin], &to);
        let y = sum_of_products(&mut g, [x, cos], [half, sin]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = apply_rotary(x, angles)
        return x
        ");
    }

    /// The rotation in the interleaved layout (Moonshine's, RoFormer's): `x * cos(t) +
    /// rotate_every_two(x) * sin(t)` is one helper call too.
    #[test]
    fn the_rotation_of_neighbours_is_apply_rotary_every_two() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 2, 8]);
        let angles = g.input("angles", &[1, 5, 1, 8]);
        let columns = pair_columns(&mut g, x, &[-1, 5, 2, 4, 2]);
        let neg = g.op("rot/Neg", "Neg", &[columns[1]], &[]);
        let turned = stacked_back(&mut g, neg, columns[0], &[-1, 5, 2, 8]);
        let cos = g.op("rot/Cos", "Cos", &[angles], &[]);
        let sin = g.op("rot/Sin", "Sin", &[angles], &[]);
        let a = g.op("rot/mul", "Mul", &[x, cos], &[]);
        let b = g.op("rot/mul_1", "Mul", &[sin, turned], &[]);
        let y = g.op("rot/add", "AddV2", &[b, a], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = apply_rotary_every_two(x, angles)
        return x
        ");
    }

    /// `x[..., d/2:]` and `x[..., :d/2]` (Hugging Face's `rotate_half`), and cos and sin
    /// tables unsqueezed before the products: the rotation reads the angles unsqueezed alike.
    #[test]
    fn sliced_halves_and_unsqueezed_tables() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 2, 8]);
        let angles = g.input("angles", &[5, 8]);
        let slice = |g: &mut TestGraph, name: &str, b: i64, e: i64, masks: (i64, i64)| {
            let b = g.constant(&format!("{name}/b"), int_tensor(&[2], &[0, b]));
            let e = g.constant(&format!("{name}/e"), int_tensor(&[2], &[0, e]));
            let s = g.constant(&format!("{name}/s"), int_tensor(&[2], &[1, 1]));
            let attrs = [
                ("ellipsis_mask", int(1)),
                ("begin_mask", int(masks.0)),
                ("end_mask", int(masks.1)),
            ];
            g.op(name, "StridedSlice", &[x, b, e, s], &attrs)
        };
        let x2 = slice(&mut g, "rot/x2", 4, 0, (0, 2));
        let x1 = slice(&mut g, "rot/x1", 0, 4, (2, 0));
        let neg = g.op("rot/Neg", "Neg", &[x2], &[]);
        let half = concat_last(&mut g, neg, x1);
        let unsqueezed = |g: &mut TestGraph, func: &str| {
            let t = g.op(&format!("rot/{func}"), func, &[angles], &[]);
            let dim = g.constant(&format!("rot/{func}/dim"), int_tensor(&[], &[1]));
            g.op(&format!("rot/{func}/ExpandDims"), "ExpandDims", &[t, dim], &[])
        };
        let cos = unsqueezed(&mut g, "Cos");
        let sin = unsqueezed(&mut g, "Sin");
        let y = sum_of_products(&mut g, [x, cos], [sin, half]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        angles_2 = angles.unsqueeze(1)
        x = apply_rotary(x, angles_2)
        return x
        ");
    }

    /// ESM's tables, cut to the sequence after being computed for the longest one
    /// (`cos[:n]`, `n` read from `x`): each table's own cut reads the same size, so the cut
    /// moves onto the angles.
    #[test]
    fn tables_cut_to_the_sequence() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 2, 8]);
        let angles = g.input("angles", &[64, 1, 8]);
        let half = half_turned(&mut g, x);
        let cut = |g: &mut TestGraph, func: &str| {
            let t = g.op(&format!("rot/{func}"), func, &[angles], &[]);
            let shape = g.op(&format!("rot/{func}/Shape"), "Shape", &[x], &[]);
            let one = g.constant(&format!("rot/{func}/1"), int_tensor(&[1], &[1]));
            let two = g.constant(&format!("rot/{func}/2"), int_tensor(&[1], &[2]));
            let shrink = [("shrink_axis_mask", int(1))];
            let n =
                g.op(&format!("rot/{func}/n"), "StridedSlice", &[shape, one, two, one], &shrink);
            let zero = g.constant(&format!("rot/{func}/0"), int_tensor(&[], &[0]));
            let end =
                g.op(&format!("rot/{func}/end"), "Pack", &[n], &[("N", int(1)), ("axis", int(0))]);
            let begin = g.op(
                &format!("rot/{func}/begin"),
                "Pack",
                &[zero],
                &[("N", int(1)), ("axis", int(0))],
            );
            g.op(&format!("rot/{func}/cut"), "StridedSlice", &[t, begin, end, one], &[])
        };
        let cos = cut(&mut g, "Cos");
        let sin = cut(&mut g, "Sin");
        let y = sum_of_products(&mut g, [x, cos], [half, sin]);
        assert_snapshot!(g.lower(&[y]), @"
            ---
            angles_2 = angles[0 : x.shape[1]]
            h = apply_rotary(x, angles_2)
            return h
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
