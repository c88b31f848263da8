//! What two integer values computed at run time differ by, when that is the same constant
//! whatever the inputs are. TF's `required_space_to_batch_paddings` computes a dilated
//! convolution's paddings and crops from the input's size: both hold the same run-time
//! remainder, the paddings plus the base padding. Their difference, the padding a dilated
//! conv needs, is a constant, and this finds it without knowing the size.
//!
//! The rules are those of linear algebra on integer tensors: equal values differ by zero,
//! constants by their difference, `x + k` and `y` by `k` plus what `x` and `y` differ by, and
//! an op that only moves or combines elements linearly (`Pack`, slices, reshapes, `Add`,
//! `Sub`) applied alike to two values gives values that differ by that op applied to their
//! difference. The last is computed by the op's own fold, so no op is evaluated twice here.

use crate::ir::{Graph, ValueInfo, ValueRef};
use crate::ops::{self, Folded, OpInputs};
use crate::tensor::{Tensor, Values};

/// How many nodes deep the walk goes: TF's paddings are a dozen ops from the shape.
const DEPTH: usize = 16;
/// How many comparisons one question may take, so that a graph of shared nodes cannot make
/// the walk exponential.
const BUDGET: usize = 4096;
/// The largest difference looked for: paddings and crops are `[rank, 2]`.
const MAX_ELEMENTS: usize = 64;

/// `a − b` when it is a constant, as a tensor of `a`'s integer dtype and shape.
pub fn constant_difference(g: &Graph, a: ValueRef, b: ValueRef) -> Option<Tensor> {
    let mut budget = BUDGET;
    difference(g, a, b, DEPTH, &mut budget)
}

/// Whether `a` and `b` are one value or computed alike (same ops, attributes and inputs;
/// constants by value), looking `depth` nodes up at most and comparing no more pairs than
/// `budget` allows (false once it is spent: a hostile graph of wide nodes stays cheap).
fn same_value(g: &Graph, a: ValueRef, b: ValueRef, depth: usize, budget: &mut usize) -> bool {
    if a == b {
        return true;
    }
    if depth == 0 || a.port != b.port {
        return false;
    }
    let Some(left) = budget.checked_sub(1) else { return false };
    *budget = left;
    let (x, y) = (g.node(a.node), g.node(b.node));
    if let (Some(s), Some(t)) = (g.const_value(a), g.const_value(b)) {
        return s == t;
    }
    let (xs, ys) = (g.inputs(a.node), g.inputs(b.node));
    x.op == y.op
        && x.value.is_none()
        && y.value.is_none()
        && x.op != "Placeholder"
        && x.attrs == y.attrs
        && xs.len() == ys.len()
        && xs.iter().zip(&ys).all(|(&p, &q)| same_value(g, p, q, depth - 1, budget))
}

/// The inputs of `op` that its output depends on linearly; the others are parameters (a
/// slice's bounds, a reshape's target) that must be equal in both values.
fn linear_inputs(op: &str, n: usize) -> Option<std::ops::Range<usize>> {
    Some(match op {
        "Pack" | "AddV2" | "Add" | "Sub" | "Neg" => 0..n,
        "ConcatV2" => 0..n.checked_sub(1)?,
        "StridedSlice" | "Slice" | "GatherV2" | "Reshape" | "Transpose" | "ExpandDims"
        | "Squeeze" | "Identity" => 0..1,
        _ => return None,
    })
}

fn difference(
    g: &Graph,
    a: ValueRef,
    b: ValueRef,
    depth: usize,
    budget: &mut usize,
) -> Option<Tensor> {
    *budget = budget.checked_sub(1)?;
    let info = g.info(a);
    let dtype = info.dtype.filter(|d| d.is_int())?;
    let shape: Vec<usize> = info.shape.clone()?.into_iter().collect::<Option<_>>()?;
    let numel = crate::tensor::checked_numel(&shape).filter(|&n| n <= MAX_ELEMENTS)?;
    if let (Some(s), Some(t)) = (g.const_value(a), g.const_value(b)) {
        return subtract(s, t);
    }
    if same_value(g, a, b, DEPTH, budget) {
        return Tensor::with_values_like(dtype, shape, &Values::I(vec![0; numel]));
    }
    if depth == 0 {
        return None;
    }
    if let Some(d) = alike(g, a, b, depth, budget) {
        return Some(d);
    }
    // `x + k` against `b`: what `x` and `b` differ by, plus `k` (in either operand order).
    if let Some(d) = plus_constant(g, a, b, depth, budget, false) {
        return Some(d);
    }
    plus_constant(g, b, a, depth, budget, true)
}

/// `a` and `b` from the same linear op with equal parameters: the op of their inputs'
/// differences.
fn alike(g: &Graph, a: ValueRef, b: ValueRef, depth: usize, budget: &mut usize) -> Option<Tensor> {
    let (x, y) = (g.node(a.node), g.node(b.node));
    let (xs, ys) = (g.inputs(a.node), g.inputs(b.node));
    if a.port != 0 || b.port != 0 || x.op != y.op || x.attrs != y.attrs || xs.len() != ys.len() {
        return None;
    }
    let linear = linear_inputs(&x.op, xs.len())?;
    let mut inputs = Vec::with_capacity(xs.len());
    for (i, (&p, &q)) in xs.iter().zip(&ys).enumerate() {
        inputs.push(if linear.contains(&i) {
            difference(g, p, q, depth - 1, budget)?
        } else if same_value(g, p, q, DEPTH, budget) {
            g.const_value(p)?.clone()
        } else {
            return None;
        });
    }
    fold(g, a, &inputs)
}

/// When `sum` is `x + k` with `k` a constant: `x − other + k`, or negated when `negate`
/// (`other − (x + k)`).
fn plus_constant(
    g: &Graph,
    sum: ValueRef,
    other: ValueRef,
    depth: usize,
    budget: &mut usize,
    negate: bool,
) -> Option<Tensor> {
    let node = g.node(sum.node);
    if sum.port != 0 || !matches!(node.op.as_str(), "Add" | "AddV2") {
        return None;
    }
    let ins = g.inputs(sum.node);
    let [p, q] = ins.as_slice() else { return None };
    let (k_slot, x) = match (g.const_value(*p), g.const_value(*q)) {
        (Some(_), None) => (0, *q),
        (None, Some(_)) => (1, *p),
        _ => return None,
    };
    let k = g.const_value(ins[k_slot])?;
    let d = if negate {
        difference(g, other, x, depth - 1, budget)?
    } else {
        difference(g, x, other, depth - 1, budget)?
    };
    let k = if negate { negated(k)? } else { k.clone() };
    let mut inputs = vec![d];
    inputs.insert(k_slot, k);
    fold(g, sum, &inputs)
}

fn subtract(s: &Tensor, t: &Tensor) -> Option<Tensor> {
    if s.dtype != t.dtype || s.shape != t.shape {
        return None;
    }
    let (x, y) = (s.to_i64()?, t.to_i64()?);
    let d = x.iter().zip(&y).map(|(p, q)| p.checked_sub(*q)).collect::<Option<_>>()?;
    Tensor::with_values_like(s.dtype, s.shape.clone(), &Values::I(d))
}

fn negated(t: &Tensor) -> Option<Tensor> {
    let v = t.to_i64()?.into_iter().map(i64::checked_neg).collect::<Option<_>>()?;
    Tensor::with_values_like(t.dtype, t.shape.clone(), &Values::I(v))
}

/// The node of `v` folded with `inputs` in place of its own.
fn fold(g: &Graph, v: ValueRef, inputs: &[Tensor]) -> Option<Tensor> {
    let node = g.node(v.node);
    let def = ops::lookup(&node.op)?;
    let inp = OpInputs {
        node,
        refs: g.inputs(v.node),
        infos: inputs
            .iter()
            .map(|t| ValueInfo {
                dtype: Some(t.dtype),
                shape: Some(t.shape.iter().map(|&d| Some(d)).collect()),
            })
            .collect(),
        consts: inputs.iter().map(Some).collect(),
        partials: vec![None; inputs.len()],
        variables: vec![false; inputs.len()],
    };
    match (def.fold?)(&inp)? {
        Folded::Tensor(t) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::constant_difference;
    use crate::testing::*;

    /// Two values computed alike from one input, each 16 levels of 64-input packs of the
    /// level below: they are equal, but a walk without a budget would compare 64^16 pairs
    /// to find it out. Past the budget the answer is "not known".
    #[test]
    fn a_wide_deep_graph_is_compared_in_bounded_time() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[1], crate::tensor::DType::I32);
        let tower = |g: &mut TestGraph, name: &str| {
            let mut v = x;
            for level in 0..16 {
                let ins = vec![v; 64];
                let attrs = [("N", int(64)), ("axis", int(0))];
                v = g.op(&format!("{name}/pack_{level}"), "Pack", &ins, &attrs);
                let one = g.constant(&format!("{name}/one_{level}"), int_tensor(&[1], &[1]));
                v = g.op(&format!("{name}/slice_{level}"), "Slice", &[v, one, one], &[]);
            }
            v
        };
        let (a, b) = (tower(&mut g, "a"), tower(&mut g, "b"));
        let mut g = g.build(&[a, b]);
        crate::passes::fold_and_infer(&mut g).unwrap();
        assert_eq!(g.info(a).shape, Some(vec![Some(1)]));
        let started = std::time::Instant::now();
        assert!(constant_difference(&g, a, b).is_none());
        assert!(started.elapsed().as_secs() < 5);
    }

    /// `(x + 3) − x` is 3 and `x − (x + 3)` is −3, elementwise through a pack of both.
    #[test]
    fn a_constant_added_is_the_difference() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[2], crate::tensor::DType::I32);
        let k = g.constant("k", int_tensor(&[2], &[3, 4]));
        let sum = g.op("sum", "AddV2", &[x, k], &[]);
        let attrs = [("N", int(2)), ("axis", int(0))];
        let a = g.op("a", "Pack", &[sum, x], &attrs);
        let b = g.op("b", "Pack", &[x, sum], &attrs);
        let mut g = g.build(&[a, b]);
        crate::passes::fold_and_infer(&mut g).unwrap();
        let d = constant_difference(&g, a, b).expect("a constant");
        assert_eq!(d.shape, [2, 2]);
        assert_eq!(d.to_i64().unwrap(), [3, 4, -3, -4]);
    }
}
