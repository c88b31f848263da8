//! Which run-time sizes are the same size: `query.shape[1]` and `key.shape[1]` are both the
//! sequence length of the layer's input, and so is the next layer's `x.shape[1]`. Each
//! (value, axis) whose size is unknown at conversion time points back to an earlier one it
//! provably equals (its *parent*), through the ops that carry an axis through unchanged:
//! elementwise ops, projections on the last axis, transposes, reshapes whose target names
//! the size, gathers, attention. Sizes are equal when they share a root; the nearest common
//! ancestor of several is the latest value they can all be read from.
//!
//! Built once in topological order (no recursion: a deep graph cannot exhaust the stack).

use std::collections::BTreeMap;

use super::pattern::const_ints;
use crate::ir::fused;
use crate::ir::{Dim, Graph, ValueRef};

/// One axis of one value.
pub type Axis = (ValueRef, usize);

/// Ops whose output has input 0's shape.
const SAME_SHAPE: &[&str] = &[
    "Cast",
    "Neg",
    "Abs",
    "Relu",
    "Relu6",
    "Elu",
    "Selu",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Rsqrt",
    "Square",
    "Softmax",
    "LogSoftmax",
    "Softplus",
    "Softsign",
    "Erf",
    "Erfc",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Reciprocal",
    "LeakyRelu",
    "Sin",
    "Cos",
    "LogicalNot",
    "Identity",
    "BiasAdd",
    "FusedBatchNormV3",
    "Gelu",
    "Log1p",
    "Expm1",
    fused::BATCH_NORM_STATISTICS,
    fused::LAYER_NORM,
    fused::GROUP_NORM,
    fused::RMS_NORM,
    fused::SILU,
    fused::MISH,
    fused::LOG_SIGMOID,
    fused::PRELU,
    fused::SIGN_BIT,
    fused::HARD_SIGMOID,
    fused::HARD_SWISH,
    fused::GELU,
    fused::ROTATE_HALF,
    fused::ROTATE_EVERY_TWO,
    fused::APPLY_ROTARY,
    fused::APPLY_ROTARY_EVERY_TWO,
    fused::WRAP_NEGATIVE,
    // Both outputs: the int8 values, and their scales (the quantized axes kept, of size 1).
    fused::QUANTIZE_INT8,
];

/// Ops with several outputs that each carry axes of the input.
const SPLITTING: &[&str] = &["Split", "SplitV", "Unpack", fused::QUANTIZE_INT8];

/// Broadcasting elementwise ops: an output axis is each operand's (those not of size 1).
pub(super) const BROADCASTING: &[&str] = &[
    "Add",
    "AddV2",
    "Sub",
    "Mul",
    "RealDiv",
    "Div",
    "Maximum",
    "Minimum",
    "Pow",
    "SquaredDifference",
    "FloorDiv",
    "FloorMod",
    "Less",
    "LessEqual",
    "Greater",
    "GreaterEqual",
    "Equal",
    "NotEqual",
    "LogicalAnd",
    "LogicalOr",
    "SelectV2",
    "AddN",
];

/// The sizes a graph's values share.
#[derive(Default)]
pub struct SizeForest {
    parent: BTreeMap<Axis, Axis>,
    /// Each axis's root and its distance from it (absent: its own root, depth 0), kept as
    /// the forest grows so that no question walks a long chain more than once.
    root: BTreeMap<Axis, (Axis, usize)>,
}

/// Steps [`SizeForest::nearest_common`] may take: a hostile graph can chain many sizes.
const MAX_STEPS: usize = 1 << 20;

impl SizeForest {
    pub fn build(g: &Graph) -> SizeForest {
        let mut forest = SizeForest::default();
        let Ok(order) = g.topo_order() else { return forest };
        for n in order {
            // Only the ops that split a value have more than one output a size reaches.
            let ports = if SPLITTING.contains(&g.node(n).op.as_str()) {
                g.node(n).outputs.len()
            } else {
                1
            };
            for port in 0..ports {
                let out = ValueRef { node: n, port };
                let Some(r) = g.info(out).shape.map(|s| s.len()) else { continue };
                for axis in 0..r {
                    if g.info(out).dim(axis).is_some() {
                        continue;
                    }
                    if let Some(p) = forest.source(g, out, axis, r) {
                        let (root, depth) = forest.root.get(&p).copied().unwrap_or((p, 0));
                        forest.parent.insert((out, axis), p);
                        forest.root.insert((out, axis), (root, depth + 1));
                    }
                }
            }
        }
        forest
    }

    /// The earliest axis `a` is known to equal.
    pub fn root(&self, a: Axis) -> Axis {
        self.root.get(&a).map_or(a, |r| r.0)
    }

    fn depth(&self, a: Axis) -> usize {
        self.root.get(&a).map_or(0, |r| r.1)
    }

    /// The latest axis every one of `axes` is known to equal (they must share a root) that
    /// `allowed` accepts; `None` past [`MAX_STEPS`] steps.
    pub fn nearest_common(&self, axes: &[Axis], allowed: impl Fn(Axis) -> bool) -> Option<Axis> {
        let mut steps = 0usize;
        let mut up = |a: Axis| {
            steps += 1;
            (steps <= MAX_STEPS).then(|| self.parent.get(&a).copied()).flatten()
        };
        let (&first, rest) = axes.split_first()?;
        let mut common = first;
        for &b in rest {
            if self.root(b) != self.root(common) {
                return None;
            }
            let mut b = b;
            while self.depth(b) > self.depth(common) {
                b = up(b)?;
            }
            while self.depth(common) > self.depth(b) {
                common = up(common)?;
            }
            while common != b {
                common = up(common)?;
                b = up(b)?;
            }
        }
        while !allowed(common) {
            common = up(common)?;
        }
        Some(common)
    }

    /// The axis that axis `axis` of `out` (of rank `rank`) provably equals.
    fn source(&self, g: &Graph, out: ValueRef, axis: usize, rank: usize) -> Option<Axis> {
        let n = out.node;
        let node = g.node(n);
        let inputs = g.inputs(n);
        let input_rank = |i: usize| inputs.get(i).and_then(|&v| g.info(v).shape).map(|s| s.len());
        let constant = |i: usize| const_ints(g, *inputs.get(i)?);
        let op = node.op.as_str();
        if SAME_SHAPE.contains(&op) {
            let x = *inputs.first()?;
            return (input_rank(0)? == rank).then_some((x, axis));
        }
        if BROADCASTING.contains(&op) {
            return self.broadcast(g, &inputs, axis, rank);
        }
        match op {
            "Transpose" => {
                let perm = constant(1)?;
                let from = usize::try_from(*perm.get(axis)?).ok()?;
                (input_rank(0)? == rank && from < rank).then_some((inputs[0], from))
            }
            "ExpandDims" => {
                let at = normalized(*constant(1)?.first()?, rank)?;
                match axis.cmp(&at) {
                    std::cmp::Ordering::Less => Some((inputs[0], axis)),
                    std::cmp::Ordering::Equal => None,
                    std::cmp::Ordering::Greater => Some((inputs[0], axis - 1)),
                }
            }
            // The axes a squeeze keeps, in order.
            "Squeeze" => {
                let r = input_rank(0)?;
                let dims = node.attr_ints("squeeze_dims").ok()?;
                let dims: Vec<usize> =
                    dims.iter().map(|&d| normalized(d, r)).collect::<Option<_>>()?;
                if dims.is_empty() || r != rank + dims.len() {
                    return None;
                }
                let kept = (0..r).filter(|i| !dims.contains(i)).nth(axis)?;
                Some((*inputs.first()?, kept))
            }
            // `[n, m]` (`[n, n]`) from scalar sizes, each read at run time from an axis.
            fused::CAUSAL_MASK => {
                let size = *inputs.get(axis).or(inputs.first())?;
                let p =
                    g.node(size.node).partial.as_ref().filter(|p| p.scalar && size.port == 0)?;
                match p.values.first()? {
                    Dim::Of(v, a) => Some((*v, *a)),
                    _ => None,
                }
            }
            "Reshape" | "BroadcastTo" => {
                let target = g.node(inputs.get(1)?.node).partial.as_ref()?;
                match target.values.get(axis)? {
                    Dim::Of(v, a) => Some((*v, *a)),
                    _ => None,
                }
            }
            "GatherV2" => {
                let along = normalized(*constant(2)?.first()?, input_rank(0)?)?;
                let indices = input_rank(1)?;
                if node.attr_int_or("batch_dims", 0).ok()? != 0 {
                    return None;
                }
                if axis < along {
                    Some((inputs[0], axis))
                } else if axis < along + indices {
                    Some((inputs[1], axis - along))
                } else {
                    Some((inputs[0], axis - indices + 1))
                }
            }
            "Einsum" => {
                let eq = node.attr_str("equation").ok()?;
                let (lhs, out) = eq.split_once("->")?;
                if eq.contains("...") {
                    return None;
                }
                let letter = out.chars().nth(axis)?;
                lhs.split(',').zip(&inputs).find_map(|(subs, &v)| {
                    let j = subs.chars().position(|c| c == letter)?;
                    (g.info(v).dim(j).is_none()).then_some((v, j))
                })
            }
            // A matrix product's rows are `a`'s, its columns `b`'s (each maybe transposed),
            // its batch axes either's: attention's scores have the query's length and the
            // key's, its output the query's (a model whose attention stays written out).
            "MatMul" | "BatchMatMulV2" | "BatchMatMulV3" | "BatchMatMul" => {
                let flag = |names: [&str; 2]| {
                    names
                        .iter()
                        .map(|a| node.attr_bool_or(a, false))
                        .try_fold(false, |t, f| f.ok().map(|f| t || f))
                };
                let (ta, tb) = (flag(["transpose_a", "adj_x"])?, flag(["transpose_b", "adj_y"])?);
                let (ra, rb) = (input_rank(0)?, input_rank(1)?);
                if ra < 2 || rb < 2 || rank != ra.max(rb) {
                    return None;
                }
                if axis == rank - 2 {
                    Some((inputs[0], ra - if ta { 1 } else { 2 }))
                } else if axis == rank - 1 {
                    Some((*inputs.get(1)?, rb - if tb { 2 } else { 1 }))
                } else {
                    self.broadcast_batch(g, &inputs[..2], axis, rank)
                }
            }
            fused::REPEAT_INTERLEAVE => match node.fused {
                Some(fused::Fused::RepeatInterleave { axis: along, .. }) if along != axis => {
                    (input_rank(0)? == rank).then_some((*inputs.first()?, axis))
                }
                _ => None,
            },
            // `range(0, n)` has `n` entries: positions counted up to a run-time length.
            "Range" => {
                let is = |i: usize, v: f64| {
                    inputs.get(i).and_then(|&c| g.const_value(c)).and_then(|t| t.to_f64())
                        == Some(vec![v])
                };
                if axis != 0 || !is(0, 0.0) || !is(2, 1.0) {
                    return None;
                }
                let mut limit = *inputs.get(1)?;
                if g.node(limit.node).op == "Cast" {
                    limit = *g.inputs(limit.node).first()?;
                }
                match g.node(limit.node).partial.as_ref()?.values[..] {
                    [Dim::Of(v, a)] => Some((v, a)),
                    _ => None,
                }
            }
            // SDPA's output: q's axes but the last, v's.
            fused::ATTENTION if axis + 1 < rank => Some((*inputs.first()?, axis)),
            fused::ATTENTION => Some((*inputs.get(2)?, axis)),
            // Every part of a split has its input's other axes (the MLP's gate and value).
            "Split" => {
                let along = normalized(*constant(0)?.first()?, rank)?;
                (axis != along && input_rank(1)? == rank).then_some((inputs[1], axis))
            }
            "SplitV" => {
                let along = normalized(*constant(2)?.first()?, rank)?;
                (axis != along && input_rank(0)? == rank).then_some((inputs[0], axis))
            }
            // Stacked parts: each part's axis, one axis further where the new one is before.
            "Unpack" => {
                let along = normalized(node.attr_int_or("axis", 0).ok()?, rank + 1)?;
                (input_rank(0)? == rank + 1)
                    .then_some((inputs[0], if axis < along { axis } else { axis + 1 }))
            }
            "Pack" => {
                let along = normalized(node.attr_int_or("axis", 0).ok()?, rank)?;
                let first = *inputs.first()?;
                match axis.cmp(&along) {
                    _ if g.info(first).shape?.len() + 1 != rank => None,
                    std::cmp::Ordering::Less => Some((first, axis)),
                    std::cmp::Ordering::Equal => None,
                    std::cmp::Ordering::Greater => Some((first, axis - 1)),
                }
            }
            // TF requires every part of a concatenation to agree on the other axes.
            "ConcatV2" => {
                let parts = usize::try_from(node.attr_int("N").ok()?).ok()?;
                let along = normalized(*constant(parts)?.first()?, rank)?;
                let first = *inputs.first()?;
                (axis != along && g.info(first).shape?.len() == rank).then_some((first, axis))
            }
            // Padding or tiling nothing along the axis keeps it.
            "Pad" | "PadV2" | "MirrorPad" => {
                let pads = constant(1)?;
                let untouched = pads.get(2 * axis..2 * axis + 2)? == [0, 0];
                (untouched && pads.len() == 2 * rank && input_rank(0)? == rank)
                    .then_some((inputs[0], axis))
            }
            "Tile" => {
                let multiples = constant(1)?;
                (multiples.len() == rank && multiples[axis] == 1 && input_rank(0)? == rank)
                    .then_some((inputs[0], axis))
            }
            // A slice that takes the whole axis.
            "Slice" => {
                let (begin, size) = (constant(1)?, constant(2)?);
                let whole = *begin.get(axis)? == 0 && *size.get(axis)? == -1;
                (whole && begin.len() == rank && input_rank(0)? == rank)
                    .then_some((inputs[0], axis))
            }
            "StridedSlice" => self.strided_slice_axis(g, out, axis),
            // A reduction keeps the axes it does not reduce (Gemma's fully masked rows:
            // `mask.all(2, keepdim=True)`).
            "Sum" | "Mean" | "Max" | "Min" | "Prod" | "All" | "Any" => {
                let r = input_rank(0)?;
                let reduced: Vec<usize> =
                    constant(1)?.into_iter().map(|a| normalized(a, r)).collect::<Option<_>>()?;
                let kept = (0..r).filter(|a| !reduced.contains(a));
                let from = if node.attr_bool_or("keep_dims", false).ok()? {
                    (r == rank && !reduced.contains(&axis)).then_some(axis)?
                } else {
                    kept.clone().nth(axis).filter(|_| kept.count() == rank)?
                };
                Some((inputs[0], from))
            }
            _ => None,
        }
    }

    /// Output axis `axis` of a `StridedSlice` without new axes: the input axis it comes
    /// from (shrunk axes skipped) when the slice takes all of it (`x[..., :d]` keeps the
    /// leading axes).
    fn strided_slice_axis(&self, g: &Graph, out: ValueRef, axis: usize) -> Option<Axis> {
        let node = g.node(out.node);
        let inputs = g.inputs(out.node);
        let mask = |name: &str| node.attr_int_or(name, 0).ok();
        let (begin_mask, end_mask, shrink, ellipsis, new_axis) = (
            mask("begin_mask")?,
            mask("end_mask")?,
            mask("shrink_axis_mask")?,
            mask("ellipsis_mask")?,
            mask("new_axis_mask")?,
        );
        // Entry `j` of spec vector `i`, constant or partly known (a begin built by `Pack`).
        let entry = |i: usize, j: usize| -> Option<Option<i64>> {
            let v = *inputs.get(i)?;
            if let Some(ints) = const_ints(g, v) {
                return Some(ints.get(j).copied());
            }
            let p = g.node(v.node).partial.as_ref()?;
            (!p.scalar).then(|| p.values.get(j).and_then(|d| d.known()))
        };
        let spec_len = match g.info(*inputs.get(1)?).shape?.as_slice() {
            [Some(n)] => *n,
            _ => return None,
        };
        let input_rank = g.info(*inputs.first()?).shape?.len();
        let bit = |m: i64, j: usize| j < 63 && (m >> j) & 1 == 1;
        if ellipsis.count_ones() > 1 || ellipsis & new_axis != 0 {
            return None;
        }
        // Each output axis: the input axis it comes from and the spec entry that takes it
        // (`None`: an ellipsis or the end of the spec takes it whole), or nothing for a new
        // axis of size 1 (`x[:, None]`).
        let named = (0..spec_len).filter(|&j| !bit(new_axis, j) && !bit(ellipsis, j)).count();
        let covered = input_rank.checked_sub(named)?;
        let mut outs: Vec<Option<(usize, Option<usize>)>> = Vec::with_capacity(input_rank + 1);
        let mut from = 0;
        for j in 0..spec_len {
            if bit(new_axis, j) {
                outs.push(None);
            } else if bit(ellipsis, j) {
                outs.extend((from..from + covered).map(|f| Some((f, None))));
                from += covered;
            } else {
                if !bit(shrink, j) {
                    outs.push(Some((from, Some(j))));
                }
                from += 1;
            }
        }
        outs.extend((from..input_rank).map(|f| Some((f, None))));
        let (from, j) = (*outs.get(axis)?)?;
        let whole = match j {
            None => true,
            Some(j) => {
                (bit(begin_mask, j) || entry(1, j)? == Some(0))
                    && bit(end_mask, j)
                    && entry(3, j)? == Some(1)
            }
        };
        whole.then_some((inputs[0], from))
    }

    /// Output axis `axis` of a broadcasting op: the operands' (right-aligned), when every
    /// operand that is not of size 1 there has the same size.
    fn broadcast(&self, g: &Graph, inputs: &[ValueRef], axis: usize, rank: usize) -> Option<Axis> {
        self.broadcast_from_end(g, inputs, axis, rank, 0)
    }

    /// As [`Self::broadcast`], for the batch axes of a matrix product (its last two axes
    /// are each operand's matrix).
    fn broadcast_batch(
        &self,
        g: &Graph,
        inputs: &[ValueRef],
        axis: usize,
        rank: usize,
    ) -> Option<Axis> {
        self.broadcast_from_end(g, inputs, axis, rank - 2, 2)
    }

    /// Axis `axis` of a broadcast over `rank` axes, each operand's last `skip` axes left out.
    fn broadcast_from_end(
        &self,
        g: &Graph,
        inputs: &[ValueRef],
        axis: usize,
        rank: usize,
        skip: usize,
    ) -> Option<Axis> {
        let mut found: Option<Axis> = None;
        for &v in inputs {
            let shape = g.info(v).shape?;
            let len = shape.len().checked_sub(skip)?;
            let Some(j) = (axis + len).checked_sub(rank) else { continue };
            if shape[j] == Some(1) {
                continue;
            }
            match found {
                None => found = Some((v, j)),
                Some(f) if self.root(f) == self.root((v, j)) => {}
                Some(_) => return None,
            }
        }
        found
    }
}

/// `axis` (negative counted from the end of `rank`) as an index.
fn normalized(axis: i64, rank: usize) -> Option<usize> {
    let rank = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis.checked_add(rank)? } else { axis };
    usize::try_from(a).ok().filter(|&a| (a as i64) < rank.max(1))
}

#[cfg(test)]
mod tests {
    use super::SizeForest;
    use crate::ir::fused::Fused;
    use crate::passes::fold_and_infer;
    use crate::testing::*;

    /// A squeeze keeps the axes it does not drop; an int8 quantization's values and scales
    /// (its quantized axes kept, of size 1) keep their input's.
    #[test]
    fn squeezes_and_quantized_scales_keep_the_lengths() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 1, 8]);
        let sq = g.op("sq", "Squeeze", &[x], &[("squeeze_dims", ints(&[2]))]);
        let axes = g.constant("axes", int_tensor(&[1], &[2]));
        let q = g.fused("q", Fused::QuantizeInt8 { epsilon: 1e-7 }, &[sq, axes]);
        let scale = TestGraph::port(q, 1);
        let mut graph = g.build(&[q, scale]);
        fold_and_infer(&mut graph).expect("infer");
        let f = SizeForest::build(&graph);
        assert_eq!((f.root((sq, 0)), f.root((sq, 1))), ((x, 0), (x, 1)));
        assert_eq!((f.root((q, 1)), f.root((scale, 1))), ((x, 1), (x, 1)));
    }

    /// An attention left written out (a bfloat16 model's, say): the scores have the query's
    /// length and the key's, the output of `probs @ v` the query's again, so the residual
    /// sum after it keeps the layer input's length; repeated heads keep the others.
    #[test]
    fn a_written_attention_keeps_the_lengths() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, -1, 8]);
        let k = g.input("k", &[-1, 1, -1, 8]);
        let v = g.input("v", &[-1, 1, -1, 8]);
        let repeat = |g: &mut TestGraph, name: &str, x| {
            let f = Fused::RepeatInterleave { axis: 1, repeats: 2 };
            g.fused(name, f, &[x])
        };
        let (k2, v2) = (repeat(&mut g, "k2", k), repeat(&mut g, "v2", v));
        let s = g.op("s", "BatchMatMulV2", &[q, k2], &[("adj_y", boolean(true))]);
        let p = g.op("p", "Softmax", &[s], &[]);
        let o = g.op("o", "BatchMatMulV2", &[p, v2], &[]);
        let sum = g.op("sum", "AddV2", &[o, q], &[]);
        let mut graph = g.build(&[sum]);
        fold_and_infer(&mut graph).expect("infer");
        let f = SizeForest::build(&graph);
        assert_eq!((f.root((s, 2)), f.root((s, 3))), ((q, 2), (k, 2)));
        assert_eq!(f.root((o, 2)), (q, 2));
        assert_eq!(f.root((sum, 2)), (q, 2));
        assert_eq!(f.root((k2, 2)), (k, 2));
    }

    /// The query and the key of one input have its length; a sum of two values of unrelated
    /// lengths has no known source (either could broadcast at run time).
    #[test]
    fn projections_of_one_input_share_its_length() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 8]);
        let other = g.input("other", &[-1, -1, 4]);
        let eq = ("equation", string("abc,cde->abde"));
        let wq = g.constant("wq", weights(&[8, 2, 4]));
        let wk = g.constant("wk", weights(&[8, 1, 4]));
        let q = g.op("q", "Einsum", &[x, wq], &[eq.clone(), ("N", int(2))]);
        let k = g.op("k", "Einsum", &[x, wk], &[eq, ("N", int(2))]);
        let perm = g.constant("perm", int_tensor(&[4], &[0, 2, 1, 3]));
        let kt = g.op("kt", "Transpose", &[k, perm], &[]);
        let v = g.op("v", "Tanh", &[other], &[]);
        let sum = g.op("sum", "AddV2", &[v, other], &[]);
        let mixed = g.op("mixed", "AddV2", &[x, sum], &[]);
        let mut graph = g.build(&[q, kt, mixed]);
        fold_and_infer(&mut graph).expect("infer");
        let f = SizeForest::build(&graph);
        assert_eq!(f.root((q, 1)), (x, 1));
        assert_eq!(f.root((kt, 2)), (x, 1));
        assert_eq!(f.root((sum, 1)), (other, 1));
        assert_eq!(f.root((mixed, 1)), (mixed, 1));
        assert_eq!(f.nearest_common(&[(q, 1), (kt, 2)], |_| true), Some((x, 1)));
    }

    /// A sequence's length carries through what keeps that axis: a split's parts (the MLP's
    /// gate), a concatenation on the features, `x[..., :d]` (an ellipsis), a slice of every
    /// position, a stack of parts; a slice that cuts the axis does not carry it.
    #[test]
    fn lengths_pass_through_splits_concatenations_and_whole_slices() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 8]);
        let dim = g.constant("dim", int_tensor(&[], &[2]));
        let split = g.op("split", "Split", &[dim, x], &[("num_split", int(2))]);
        let (gate, up) = (split, TestGraph::port(split, 1));
        let mul = g.op("mul", "Mul", &[gate, up], &[]);
        let axis = g.constant("axis", int_tensor(&[], &[-1]));
        let cat = g.op("cat", "ConcatV2", &[mul, x, axis], &[("N", int(2))]);
        let spec = |g: &mut TestGraph, name: &str, v: &[i64]| g.constant(name, int_tensor(&[2], v));
        let (b0, e2, s1) =
            (spec(&mut g, "b0", &[0, 0]), spec(&mut g, "e2", &[0, 2]), spec(&mut g, "s1", &[1, 1]));
        // `cat[..., :2]`: the ellipsis keeps the batch and the length.
        let head = g.op("head", "StridedSlice", &[cat, b0, e2, s1], &[("ellipsis_mask", int(1))]);
        // `x[:, 1:]`: the length is cut.
        let b1 = spec(&mut g, "b1", &[0, 1]);
        let tail = g.op(
            "tail",
            "StridedSlice",
            &[x, b1, e2, s1],
            &[("begin_mask", int(1)), ("end_mask", int(3))],
        );
        let stacked = g.op("stacked", "Pack", &[head, head], &[("axis", int(1)), ("N", int(2))]);
        let mut graph = g.build(&[head, tail, stacked]);
        fold_and_infer(&mut graph).expect("infer");
        let f = SizeForest::build(&graph);
        assert_eq!(f.root((up, 1)), (x, 1));
        assert_eq!(f.root((cat, 1)), (x, 1));
        assert_eq!(f.root((head, 1)), (x, 1));
        assert_eq!(f.root((head, 0)), (x, 0));
        assert_eq!(f.root((tail, 1)), (tail, 1));
        assert_eq!(f.root((tail, 0)), (x, 0));
        assert_eq!(f.root((stacked, 2)), (x, 1));
        assert_eq!(f.root((stacked, 1)), (stacked, 1));
    }

    /// Gemma's mask of fully masked rows, `mask.all(2, keepdim=True)[:, :, :, None]`, has the
    /// mask's batch and length: a reduction keeps the axes it does not reduce (with or
    /// without `keep_dims`), and a slice adding an axis keeps the others.
    #[test]
    fn lengths_pass_through_reductions_and_new_axes() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, -1, -1], crate::tensor::DType::Bool);
        let two = g.constant("two", int_tensor(&[1], &[2]));
        let kept = g.op("kept", "All", &[x, two], &[("keep_dims", boolean(true))]);
        let one = g.constant("one", int_tensor(&[1], &[1]));
        let dropped = g.op("dropped", "Any", &[x, one], &[]);
        let spec = |g: &mut TestGraph, name: &str, v: &[i64]| g.constant(name, int_tensor(&[4], v));
        let (b, e, s) =
            (spec(&mut g, "b", &[0; 4]), spec(&mut g, "e", &[0; 4]), spec(&mut g, "s", &[1; 4]));
        let masks = [("begin_mask", int(7)), ("end_mask", int(7)), ("new_axis_mask", int(8))];
        let widened = g.op("widened", "StridedSlice", &[kept, b, e, s], &masks);
        let mut graph = g.build(&[widened, dropped]);
        fold_and_infer(&mut graph).expect("infer");
        let f = SizeForest::build(&graph);
        assert_eq!(f.root((kept, 1)), (x, 1));
        assert_eq!(f.root((dropped, 1)), (x, 2));
        assert_eq!(f.root((widened, 0)), (x, 0));
        assert_eq!(f.root((widened, 1)), (x, 1));
        assert_eq!(graph.info(widened).shape.map(|s| s.len()), Some(4));
    }
}
