//! Helpers shared by op families: attribute checks, padding arithmetic, axis mapping.

use crate::ir::{Node, Shape, ValueInfo};
use crate::ops::OpInputs;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult, channels_first_axis};
use crate::py::Expr;
use crate::tensor::{DType, Tensor};
use crate::weights::Weight;

/// `torch.<name>` (a dtype such as `torch.int32`, or a function).
pub fn torch_attr(name: &str) -> Expr {
    Expr::name("torch").attr(name)
}

/// `torch.full(sizes, value, dtype=...)` of a known dtype, as a person writes it:
/// `torch.zeros(sizes)` and `torch.ones(sizes)` for those values.
pub fn filled(sizes: Expr, value: Expr, dtype: Option<DType>) -> OpResult<Expr> {
    let mut kwargs = Vec::new();
    if let Some(d) = dtype.filter(|d| *d != DType::F32) {
        let name = d.torch_name().ok_or_else(|| format!("a filled tensor of dtype {d}"))?;
        kwargs.push(("dtype", torch_attr(name)));
    }
    // Without a dtype, `torch.full` takes the value's and `torch.zeros` float32's.
    let func = match (value.as_number(), dtype) {
        (Some(v), Some(_)) if v == 0.0 && !is_negative_zero(&value) => "zeros",
        (Some(1.0), Some(_)) => "ones",
        _ => return Ok(Expr::call_kw("torch.full", vec![sizes, value], kwargs)),
    };
    Ok(torch_attr(func).called(vec![sizes], kwargs))
}

/// `-0.0` is a value of its own (`1 / -0.0` is `-inf`): no `torch.zeros` for it.
pub fn is_negative_zero(value: &Expr) -> bool {
    match value {
        Expr::Lit(crate::py::Lit::F32(f)) => f.is_sign_negative(),
        Expr::Lit(crate::py::Lit::F64(f)) => f.is_sign_negative(),
        _ => false,
    }
}

/// Most outputs an op may declare in an attribute (`num_split`, `num`): inference keeps one
/// entry per output, and a hostile file may ask for 2^40.
pub const MAX_OUTPUTS: usize = 1 << 16;

/// The output count attribute `attr`: at least 1, at most [`MAX_OUTPUTS`].
/// A one-element float tensor as a Python number, printed in the tensor's own precision: a
/// float32 `1e-3` is `0.001`, not the double nearest to it (`0.0010000000474974513`). Torch
/// converts a Python scalar to the other operand's dtype, so the value computed is the same.
pub fn float_literal(t: &Tensor) -> Option<Expr> {
    let v = t.scalar_f64()?;
    Some(if t.dtype == DType::F64 { Expr::f64(v) } else { Expr::f32(v as f32) })
}

pub fn output_count(node: &Node, attr: &str) -> OpResult<usize> {
    let n = node.attr_int(attr)?;
    usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_OUTPUTS).contains(n))
        .ok_or_else(|| format!("{attr} {n} is not a number of outputs (1 to {MAX_OUTPUTS})").into())
}

/// Normalises a possibly negative axis for a tensor of `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} out of range for rank {rank}").into())
    }
}

/// An axis of an input of unknown rank, kept as TF counts it (torch counts the same way in
/// TF's layout); one past any tensor's rank is refused here rather than at run time.
pub fn unranked_axis(axis: i64) -> OpResult<i64> {
    let limit = crate::ops::MAX_RANK as i64;
    if (-limit..limit).contains(&axis) {
        Ok(axis)
    } else {
        Err(format!("axis {axis} is past any tensor's rank").into())
    }
}

/// An axis for a torch call on a value held in TF's layout: normalised when the rank is
/// known, else kept as TF counts it (torch counts the same way), checked either way.
pub fn tf_layout_axis(axis: i64, rank: Option<usize>) -> OpResult<i64> {
    match rank {
        Some(rank) => Ok(norm_axis(axis, rank)? as i64),
        None => unranked_axis(axis),
    }
}

/// The physical axis of TF axis `a` in a value of `rank` held in `layout`.
pub fn phys_axis(a: usize, layout: Layout, rank: usize) -> usize {
    match layout {
        Layout::Tf | Layout::Host => a,
        Layout::ChannelsFirst => channels_first_axis(a, rank),
    }
}

/// `nn.Linear` applying the constant 2-D `w` to the last axis of input 0, with the bias of
/// input 2 when a bias was fused in. `w` is `[in, out]` (TF's kernel layout) unless
/// `transposed` (already `[out, in]`).
pub fn linear_layer(ctx: &mut Ctx, w: Tensor, transposed: bool) -> OpResult<Lowered> {
    let (in_f, out_f) =
        if transposed { (w.shape[1], w.shape[0]) } else { (w.shape[0], w.shape[1]) };
    let bias = ctx.bias(out_f)?;
    let mut kwargs = Vec::new();
    if bias.is_none() {
        kwargs.push(("bias", Expr::boolean(false)));
    }
    let ctor =
        Expr::call_kw("nn.Linear", vec![Expr::int(in_f as i64), Expr::int(out_f as i64)], kwargs);
    let weight = if transposed {
        Weight::plain(w)
    } else {
        Weight { tensor: w, permute: Some(vec![1, 0]), reshape: None }
    };
    let mut params = vec![("weight", weight)];
    if let Some(b) = bias {
        params.push(("bias", Weight::plain(b)));
    }
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout: Layout::Tf })
}

/// The layout to reduce or squeeze `axes` of input 0 in: an NCHW input stays NCHW when the
/// kept axes are in the same order in both layouts (global pooling), else TF layout.
pub fn layout_removing(ctx: &mut Ctx, axes: &[usize], keep_dims: bool) -> OpResult<Layout> {
    let Some(rank) = ctx.rank(0).filter(|&r| crate::ops::contract::channels_first_rank(Some(r)))
    else {
        return Ok(Layout::Tf);
    };
    let layout = ctx.layout(0)?;
    if layout == Layout::ChannelsFirst && !keep_dims {
        let kept: Vec<usize> =
            (0..rank).filter(|a| !axes.contains(a)).map(|a| phys_axis(a, layout, rank)).collect();
        if !kept.windows(2).all(|w| w[0] < w[1]) {
            return Ok(Layout::Tf);
        }
    }
    Ok(layout)
}

/// `(H, W)` of an NHWC shape.
pub fn hw(shape: &Shape) -> (Option<usize>, Option<usize>) {
    match shape {
        Some(s) if s.len() == 4 => (s[1], s[2]),
        _ => (None, None),
    }
}

/// Numpy broadcasting of two static shapes.
pub fn broadcast(a: &Shape, b: &Shape) -> Shape {
    let (a, b) = (a.as_ref()?, b.as_ref()?);
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { Some(1) };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { Some(1) };
        out.push(match (da, db) {
            (Some(1), d) | (d, Some(1)) => d,
            (Some(x), Some(y)) if x == y => Some(x),
            (Some(x), None) | (None, Some(x)) => Some(x),
            _ => None,
        });
    }
    Some(out)
}

/// Output info equal to input 0's (elementwise unary ops).
pub fn same_as_input(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    Some(vec![inp.infos.first()?.clone()])
}

/// Output info of a broadcasting binary op.
pub fn broadcast_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (a, b) = (inp.infos.first()?, inp.infos.get(1)?);
    Some(vec![ValueInfo { dtype: a.dtype.or(b.dtype), shape: broadcast(&a.shape, &b.shape) }])
}

pub(crate) fn float_weight(ctx: &Ctx, i: usize, rank: usize) -> OpResult<Tensor> {
    let w = ctx.const_input(i)?;
    // Layers of another float dtype (a bfloat16 keras-hub preset) say so in their constructor.
    if w.rank() != rank || !w.dtype.is_float() {
        return Err(format!("weight input #{i} must be a float tensor of rank {rank}").into());
    }
    Ok(w.clone())
}

/// Known integer values of input `i`: a constant, or shape arithmetic folded in part.
pub(crate) fn known_ints(ctx: &Ctx, i: usize) -> OpResult<Vec<Option<i64>>> {
    if let Ok(v) = ctx.const_ints(i) {
        return Ok(v.into_iter().map(Some).collect());
    }
    let p = ctx.partial(i).ok_or_else(|| format!("input #{i} must be known at conversion time"))?;
    Ok(p.values.iter().map(|d| d.known()).collect())
}

/// `e`, input `i`'s expression, as a tensor: a scalar constant written as a Python number
/// becomes `torch.tensor(number, dtype=...)` of input `i`'s dtype (`torch.ceil`, `torch.stack`
/// and most torch functions take no Python numbers).
pub fn as_tensor(ctx: &Ctx, i: usize, e: Expr) -> OpResult<Expr> {
    if !e.is_literal() {
        return Ok(e);
    }
    let dtype =
        ctx.info(i).dtype.and_then(|d| d.torch_name()).ok_or("a constant of unknown dtype")?;
    Ok(Expr::call_kw("torch.tensor", vec![e], vec![("dtype", torch_attr(dtype))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        let a = Some(vec![None, Some(7), Some(7), Some(32)]);
        let b = Some(vec![Some(32)]);
        assert_eq!(broadcast(&a, &b), a);
    }

    /// A hostile axis on an input of unknown rank is refused at conversion (no overflow, no
    /// literal torch rejects later).
    #[test]
    fn axes_of_unknown_rank_stay_within_any_rank() {
        assert_eq!(unranked_axis(-1).unwrap(), -1);
        assert_eq!(unranked_axis(3).unwrap(), 3);
        assert!(unranked_axis(i64::MIN).is_err());
        assert!(unranked_axis(crate::ops::MAX_RANK as i64).is_err());
    }
}
