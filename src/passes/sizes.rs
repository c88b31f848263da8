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

use petgraph::stable_graph::NodeIndex;

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
    fused::LAYER_NORM,
    fused::GROUP_NORM,
    fused::RMS_NORM,
    fused::SILU,
    fused::MISH,
    fused::LOG_SIGMOID,
    fused::HARD_SIGMOID,
    fused::HARD_SWISH,
    fused::GELU,
    fused::ROTATE_HALF,
    fused::ROTATE_EVERY_TWO,
    fused::APPLY_ROTARY,
    fused::WRAP_NEGATIVE,
];

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
            let rank = |port: usize| g.info(ValueRef { node: n, port }).shape.map(|s| s.len());
            let Some(r) = rank(0) else { continue };
            let out = ValueRef { node: n, port: 0 };
            for axis in 0..r {
                if g.info(out).dim(axis).is_some() {
                    continue;
                }
                if let Some(p) = forest.source(g, n, axis, r) {
                    let (root, depth) = forest.root.get(&p).copied().unwrap_or((p, 0));
                    forest.parent.insert((out, axis), p);
                    forest.root.insert((out, axis), (root, depth + 1));
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

    /// The axis that output axis `axis` (of rank `rank`) of node `n` provably equals.
    fn source(&self, g: &Graph, n: NodeIndex, axis: usize, rank: usize) -> Option<Axis> {
        let node = g.node(n);
        let inputs = g.inputs(n);
        let input_rank = |i: usize| inputs.get(i).and_then(|&v| g.info(v).shape).map(|s| s.len());
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
                let perm = g.const_value(*inputs.get(1)?)?.to_i64()?;
                let from = usize::try_from(*perm.get(axis)?).ok()?;
                (input_rank(0)? == rank && from < rank).then_some((inputs[0], from))
            }
            "ExpandDims" => {
                let at = g.const_value(*inputs.get(1)?)?.to_i64()?;
                let at = normalized(*at.first()?, rank)?;
                match axis.cmp(&at) {
                    std::cmp::Ordering::Less => Some((inputs[0], axis)),
                    std::cmp::Ordering::Equal => None,
                    std::cmp::Ordering::Greater => Some((inputs[0], axis - 1)),
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
                let along = g.const_value(*inputs.get(2)?)?.to_i64()?;
                let along = normalized(*along.first()?, input_rank(0)?)?;
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
            // Leading axes of a matrix product by a constant matrix (a dense layer).
            "MatMul" | "BatchMatMulV2" | "BatchMatMulV3" | "BatchMatMul" => {
                let transposed = ["transpose_a", "adj_x"]
                    .iter()
                    .any(|a| node.attr_bool_or(a, false).unwrap_or(true));
                let weight = g.const_value(*inputs.get(1)?).is_some_and(|w| w.rank() == 2);
                (weight && !transposed && axis + 1 < rank && input_rank(0)? == rank)
                    .then_some((inputs[0], axis))
            }
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
            _ => None,
        }
    }

    /// Output axis `axis` of a broadcasting op: the operands' (right-aligned), when every
    /// operand that is not of size 1 there has the same size.
    fn broadcast(&self, g: &Graph, inputs: &[ValueRef], axis: usize, rank: usize) -> Option<Axis> {
        let mut found: Option<Axis> = None;
        for &v in inputs {
            let shape = g.info(v).shape?;
            let Some(j) = (axis + shape.len()).checked_sub(rank) else { continue };
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
    use crate::passes::fold_and_infer;
    use crate::testing::*;

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
}
