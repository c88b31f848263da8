//! The dataflow recurrent cells are made of: affine expressions (`x·K + h·R + b`, however TF
//! associated the sums and split the kernels) and equal column blocks of them (the gates).

use std::collections::BTreeMap;

use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{is_op, producer, unary_input};
use crate::tensor::Tensor;

/// `{input: kernel}` and the summed bias of an affine expression.
pub(super) type Affine = (BTreeMap<ValueRef, Tensor>, Option<Vec<f32>>);

/// A sum of `MatMul(input, const)` terms and constant vectors, as `{input: kernel}` and the
/// summed bias. Sums are `AddV2`/`Add`/`BiasAdd` in any association.
pub(super) fn affine(body: &Graph, v: ValueRef) -> Option<Affine> {
    let mut terms = BTreeMap::new();
    let mut bias: Option<Vec<f32>> = None;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        let node = producer(body, v);
        if let Some(t) = const_eval(body, v) {
            let b = t.to_f32().filter(|_| t.rank() == 1)?;
            bias = Some(match bias {
                None => b,
                Some(a) if a.len() == b.len() => a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                Some(_) => return None,
            });
            continue;
        }
        match node.op.as_str() {
            "AddV2" | "Add" | "BiasAdd" if v.port == 0 => {
                if node.op == "BiasAdd" && node.attr_str_or("data_format", "NHWC").ok()? != "NHWC" {
                    return None;
                }
                stack.extend(body.inputs(v.node));
            }
            "MatMul" if v.port == 0 => {
                let ta = node.attr_bool_or("transpose_a", false).ok()?;
                let tb = node.attr_bool_or("transpose_b", false).ok()?;
                let i = body.inputs(v.node);
                let [x, w] = i.as_slice() else { return None };
                let w = body.const_value(*w)?;
                if ta || w.rank() != 2 {
                    return None;
                }
                let w = if tb { w.permute(&[1, 0]) } else { w.clone() };
                // TF1 cells multiply `concat([x, h], 1)`: each part by its rows of the kernel.
                // (One part's width may be unknown: the kernel's remaining rows.)
                let parts = concat_parts(body, *x).unwrap_or_else(|| vec![(*x, None)]);
                let known: usize = parts.iter().filter_map(|p| p.1).sum();
                let rest = w.shape[0].checked_sub(known)?;
                let mut start = 0;
                for (part, rows) in parts {
                    let rows = rows.unwrap_or(rest);
                    if terms.contains_key(&part) {
                        return None;
                    }
                    terms.insert(part, w.slice_axis(0, start, rows)?);
                    start += rows;
                }
                if start != w.shape[0] {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some((terms, bias))
}

/// A constant, or a row of one picked out by `Squeeze(Split(0, const))` (how Keras' GRU
/// separates its input and recurrent biases).
pub(super) fn const_eval(body: &Graph, v: ValueRef) -> Option<Tensor> {
    if let Some(t) = body.const_value(v) {
        return Some(t.clone());
    }
    let x = unary_input(body, v, "Squeeze")?;
    let split = producer(body, x);
    if split.op != "Split" {
        return None;
    }
    let i = body.inputs(x.node);
    let [axis, src] = i.as_slice() else { return None };
    let t = body.const_value(*src)?;
    let parts = usize::try_from(split.attr_int("num_split").ok()?).ok()?;
    let axis = body.const_value(*axis)?.to_i64()?;
    if axis != [0] || t.rank() != 2 || t.shape[0] != parts {
        return None;
    }
    let cols = t.shape[1];
    // A file may read a port past the split's outputs.
    let start = x.port.checked_mul(cols)?;
    let row = t.to_f32()?.get(start..start.checked_add(cols)?)?.to_vec();
    Some(Tensor::from_f32(vec![cols], &row))
}

/// `ConcatV2(a, b, .., axis=-1)` of rank-2 values: `[(part, width)]`, at most one width
/// unknown.
pub(super) fn concat_parts(body: &Graph, v: ValueRef) -> Option<Vec<(ValueRef, Option<usize>)>> {
    if !is_op(body, v, "ConcatV2") || v.port != 0 {
        return None;
    }
    let i = body.inputs(v.node);
    let (axis, parts) = i.split_last()?;
    if !matches!(body.const_value(*axis)?.to_i64()?.as_slice(), [1] | [-1]) {
        return None;
    }
    let widths: Vec<Option<usize>> = parts
        .iter()
        .map(|&p| body.info(p).shape.filter(|s| s.len() == 2).and_then(|s| s[1]))
        .collect();
    (widths.iter().filter(|w| w.is_none()).count() <= 1)
        .then(|| parts.iter().copied().zip(widths).collect())
}

/// `Split(axis, v)` along the last axis of a rank-2 value into `n` parts: the split input.
pub(super) fn split_of(body: &Graph, parts: &[ValueRef], n: usize) -> Option<ValueRef> {
    let node = parts.first()?.node;
    if parts.iter().any(|p| p.node != node) || body.node(node).op != "Split" {
        return None;
    }
    if body.node(node).attr_int("num_split").ok()? != n as i64 {
        return None;
    }
    let i = body.inputs(node);
    let [axis, x] = i.as_slice() else { return None };
    let axis = body.const_value(*axis)?.to_i64()?;
    matches!(axis.as_slice(), [1] | [-1]).then_some(*x)
}

/// Columns `[lo, hi)` a `StridedSlice` takes from a rank-2 value (all rows): `(input, lo, hi)`.
pub(super) fn column_slice(
    body: &Graph,
    v: ValueRef,
    width: usize,
) -> Option<(ValueRef, usize, usize)> {
    let node = producer(body, v);
    if node.op != "StridedSlice" || v.port != 0 {
        return None;
    }
    for m in ["ellipsis_mask", "new_axis_mask", "shrink_axis_mask"] {
        if node.attr_int_or(m, 0).ok()? != 0 {
            return None;
        }
    }
    let (bm, em) = (node.attr_int_or("begin_mask", 0).ok()?, node.attr_int_or("end_mask", 0).ok()?);
    let i = body.inputs(v.node);
    let [x, b, e, s] = i.as_slice() else { return None };
    let ints = |v: &ValueRef| body.const_value(*v).and_then(|t| t.to_i64());
    let (b, e, s) = (ints(b)?, ints(e)?, ints(s)?);
    if b.len() != 2 || e.len() != 2 || s != [1, 1] {
        return None;
    }
    let rows_full = (bm & 1 != 0 || b[0] == 0) && em & 1 != 0;
    let norm = |x: i64| if x < 0 { x + width as i64 } else { x };
    let lo = if bm & 2 != 0 { 0 } else { norm(b[1]) };
    let hi = if em & 2 != 0 { width as i64 } else { norm(e[1]).min(width as i64) };
    (rows_full && 0 <= lo && lo < hi).then_some((*x, lo as usize, hi as usize))
}

/// One of three equal column blocks of a rank-2 value.
#[derive(Clone, Copy)]
pub(super) struct Block {
    pub src: ValueRef,
    pub index: usize,
}

/// `Split(-1, src, 3):k`, or `src[:, k·n:(k+1)·n]` with `3n` columns (read off `src`'s kernel).
pub(super) fn block(body: &Graph, v: ValueRef) -> Option<Block> {
    block_of(body, v, 3)
}

/// Like [`block`], for `parts` equal blocks.
pub(super) fn block_of(body: &Graph, v: ValueRef, parts: usize) -> Option<Block> {
    if is_op(body, v, "Split") {
        let src = split_of(body, &[v], parts)?;
        return Some(Block { src, index: v.port });
    }
    let src = *body.inputs(v.node).first()?;
    let (terms, _) = affine(body, src)?;
    let width = *terms.values().next()?.shape.get(1)?;
    let (s, lo, hi) = column_slice(body, v, width)?;
    let n = width / parts;
    // A file may declare a kernel with fewer columns than blocks (`n == 0`); `then`, not
    // `then_some`, so that `lo / n` is computed only once the checks hold.
    (n > 0 && s == src && width % parts == 0 && hi - lo == n && lo % n == 0)
        .then(|| Block { src, index: lo / n })
}

#[cfg(test)]
mod tests {
    use super::const_eval;
    use crate::testing::*;

    /// Found by fuzzing: a Squeeze reading a Split output past `num_split` sliced a row out of
    /// range. It is no constant row, not a panic.
    #[test]
    fn a_split_port_past_its_outputs_is_no_constant_row() {
        let mut g = TestGraph::new();
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let biases = g.constant("bias", weights(&[2, 3]));
        let split = g.op("split", "Split", &[axis, biases], &[("num_split", int(2))]);
        let row = |g: &mut TestGraph, port| {
            let v = TestGraph::port(split, port);
            g.op(&format!("row{port}"), "Squeeze", &[v], &[("squeeze_dims", ints(&[0]))])
        };
        let (second, past) = (row(&mut g, 1), row(&mut g, 2));
        let body = g.build(&[second, past]);
        assert_eq!(const_eval(&body, second).map(|t| t.shape), Some(vec![3]));
        assert!(const_eval(&body, past).is_none());
    }
}
