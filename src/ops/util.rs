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

/// `[1, a, b, 1]` (NHWC attrs such as strides/ksize/dilations) → `(a, b)`.
pub fn spatial_pair(node: &Node, attr: &str, default: Option<&[i64]>) -> OpResult<(i64, i64)> {
    let v = match default {
        Some(d) => node.attr_ints_or(attr, d),
        None => node.attr_ints(attr),
    }?;
    match v.as_slice() {
        [1, a, b, 1] if *a > 0 && *b > 0 => Ok((*a, *b)),
        _ => Err(format!("unsupported {attr} {v:?} (need [1, h, w, 1] with positive h, w)").into()),
    }
}

pub fn require_nhwc(node: &Node) -> OpResult<()> {
    let df = node.attr_str_or("data_format", "NHWC")?;
    if df == "NHWC" { Ok(()) } else { Err(format!("data_format {df} is not supported").into()) }
}

/// TF's SAME padding for one spatial dim: `(before, after)` (tf-formats.md §4.1).
pub fn same_pads(n: i64, k: i64, s: i64, d: i64) -> (i64, i64) {
    let k_eff = (k - 1) * d + 1;
    let out = (n + s - 1) / s;
    let total = ((out - 1) * s + k_eff - n).max(0);
    (total / 2, total - total / 2)
}

/// Output size of a VALID window op.
pub fn valid_out(n: i64, k: i64, s: i64, d: i64) -> i64 {
    let k_eff = (k - 1) * d + 1;
    ((n - k_eff + 1).max(0) + s - 1) / s
}

/// `(top, bottom, left, right)` padding of a 2-D window op from its `padding` attribute.
pub fn window_pads(
    node: &Node,
    input_hw: (Option<usize>, Option<usize>),
    k: (i64, i64),
    s: (i64, i64),
    d: (i64, i64),
) -> OpResult<[i64; 4]> {
    let padding = node.attr_str("padding")?;
    match padding.as_str() {
        "VALID" => Ok([0; 4]),
        "SAME" => {
            if s == (1, 1) {
                // With stride 1 the pads do not depend on the input size.
                let (t, b) = same_pads(k.0, k.0, 1, d.0);
                let (l, r) = same_pads(k.1, k.1, 1, d.1);
                return Ok([t, b, l, r]);
            }
            let (Some(h), Some(w)) = input_hw else {
                return Err(
                    "SAME padding with strides needs a static input height and width".into()
                );
            };
            let (t, b) = same_pads(h as i64, k.0, s.0, d.0);
            let (l, r) = same_pads(w as i64, k.1, s.1, d.1);
            Ok([t, b, l, r])
        }
        "EXPLICIT" => {
            let p = node.attr_ints("explicit_paddings")?;
            match p.as_slice() {
                [0, 0, t, b, l, r, 0, 0] if p.iter().all(|&x| x >= 0) => Ok([*t, *b, *l, *r]),
                _ => Err(format!("unsupported explicit_paddings {p:?}").into()),
            }
        }
        other => Err(format!("unknown padding {other:?}").into()),
    }
}

/// Output spatial size for a window op given its pads.
pub fn window_out(n: Option<usize>, k: i64, s: i64, d: i64, pads: (i64, i64)) -> Option<usize> {
    n.map(|n| valid_out(n as i64 + pads.0 + pads.1, k, s, d) as usize)
}

/// Most outputs an op may declare in an attribute (`num_split`, `num`): inference keeps one
/// entry per output, and a hostile file may ask for 2^40.
pub const MAX_OUTPUTS: usize = 1 << 16;

/// The output count attribute `attr`: at least 1, at most [`MAX_OUTPUTS`].
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

/// `3` for a square pair, `(3, 5)` otherwise.
pub(crate) fn pair(p: (i64, i64)) -> Expr {
    if p.0 == p.1 { Expr::int(p.0) } else { Expr::ints(&[p.0, p.1]) }
}

/// `F.pad` arguments for asymmetric `[top, bottom, left, right]` pads, or the symmetric
/// `(h, w)` that torch layers take themselves.
pub(crate) enum Pads {
    Symmetric((i64, i64)),
    Explicit([i64; 4]),
}

pub(crate) fn classify(p: [i64; 4]) -> Pads {
    if p[0] == p[1] && p[2] == p[3] { Pads::Symmetric((p[0], p[2])) } else { Pads::Explicit(p) }
}

pub(crate) fn f_pad(x: Expr, p: [i64; 4], value: Option<Expr>) -> Expr {
    let args = vec![x, Expr::ints(&[p[2], p[3], p[0], p[1]])];
    let kwargs = value.map(|v| vec![("value", v)]).unwrap_or_default();
    Expr::call_kw("F.pad", args, kwargs)
}

pub(crate) fn float_weight(ctx: &Ctx, i: usize, rank: usize) -> OpResult<Tensor> {
    let w = ctx.const_input(i)?;
    if w.rank() != rank || w.dtype != DType::F32 {
        return Err(format!("weight input #{i} must be a float32 tensor of rank {rank}").into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_pixel_last() {
        assert_eq!(same_pads(224, 3, 2, 1), (0, 1));
        assert_eq!(same_pads(225, 3, 2, 1), (1, 1));
        assert_eq!(same_pads(7, 7, 1, 1), (3, 3));
        assert_eq!(same_pads(8, 2, 1, 2), (1, 1));
    }

    #[test]
    fn broadcasting() {
        let a = Some(vec![None, Some(7), Some(7), Some(32)]);
        let b = Some(vec![Some(32)]);
        assert_eq!(broadcast(&a, &b), a);
    }
}
