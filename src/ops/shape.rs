//! Shapes and axis order: `Shape`, `Reshape`, `Squeeze`, `ExpandDims`, `Transpose`,
//! `BroadcastTo`, and the shape arithmetic folding turns into (partly known) constants, so that
//! sizes known only at run time are read from `x.shape`.

use crate::ir::{Dim, Node, Partial, ValueInfo};
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult, TranslateError, channels_first_axis};
use crate::ops::sizes::sizes;
use crate::ops::util::{norm_axis, phys_axis};
use crate::ops::{Folded, OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::{DType, Tensor, Values, checked_numel};

pub const OPS: &[OpDef] = &[
    op("Shape", shape_op).infer(shape_infer).fold(shape_fold),
    op("Size", size_op).infer(scalar_int_infer).fold(size_fold),
    op("Rank", rank_op).infer(scalar_int_infer).fold(rank_fold),
    op("Reshape", reshape).infer(reshape_infer).fold(reshape_fold),
    op("Squeeze", squeeze).infer(squeeze_infer).fold(squeeze_fold),
    op("ExpandDims", expand_dims).infer(expand_infer).fold(expand_fold),
    op("Transpose", transpose).infer(transpose_infer).fold(transpose_fold),
    op("BroadcastTo", broadcast_to).infer(broadcast_to_infer).fold(broadcast_to_fold),
    op("BroadcastArgs", broadcast_args).infer(broadcast_args_infer).fold(broadcast_args_fold),
];

/// The target shape with at most one `-1`: an unknown entry (dynamic batch) becomes `-1`.
fn reshape_target(inp_target: Vec<Option<i64>>) -> OpResult<Vec<i64>> {
    let unknown = inp_target.iter().filter(|d| d.is_none() || **d == Some(-1)).count();
    if unknown > 1 {
        return Err("reshape target has more than one unknown dimension".into());
    }
    Ok(inp_target.into_iter().map(|d| d.unwrap_or(-1)).collect())
}

/// BroadcastTo(x, shape) = `x.expand(...)` (numpy broadcasting, as TF).
fn broadcast_to(ctx: &mut Ctx) -> OpResult<Lowered> {
    let target = sizes(ctx, 1)?;
    let x = ctx.input_tf(0)?;
    if x.is_literal() {
        // A constant scalar written as a number: `torch.full(sizes, value)`.
        let expr = crate::ops::util::filled(target.tuple(), x, ctx.info(0).dtype)?;
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    Ok(Lowered::Expr { expr: x.method("expand", target.args()), layout: Layout::Tf })
}

/// A constant of one value broadcast to a known shape (`tf.linspace`'s bounds), or to its
/// own; a larger result stays `torch.full` (see `tensor::MAX_EXPANDED_BYTES`).
fn broadcast_to_fold(inp: &OpInputs) -> Option<Folded> {
    let x = inp.consts.first().copied().flatten()?;
    let dims: Vec<usize> =
        inp.const_ints(1)?.into_iter().map(|d| usize::try_from(d).ok()).collect::<Option<_>>()?;
    if x.shape == dims {
        return Some(Folded::Tensor(x.clone()));
    }
    if x.numel() != 1 || x.shape.len() > dims.len() {
        return None;
    }
    x.filled(dims).map(Folded::Tensor)
}

fn broadcast_to_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    Some(vec![ValueInfo { dtype: inp.infos.first()?.dtype, shape: Some(inp.sizes(1)?) }])
}

/// The shape two shapes broadcast to (`tf.linspace` and `tf.broadcast_dynamic_shape` build
/// it): `torch.broadcast_shapes(a, b)`, Python ints; folded where the sizes say it.
fn broadcast_args(ctx: &mut Ctx) -> OpResult<Lowered> {
    let a = sizes(ctx, 0)?.tuple();
    let b = sizes(ctx, 1)?.tuple();
    Ok(Lowered::Expr {
        expr: Expr::call("torch.broadcast_shapes", vec![a, b]),
        layout: Layout::Host,
    })
}

fn broadcast_args_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (a, b) = (inp.ints(0)?.len(), inp.ints(1)?.len());
    let dtype = inp.infos.first()?.dtype;
    Some(vec![ValueInfo { dtype, shape: Some(vec![Some(a.max(b))]) }])
}

fn broadcast_args_fold(inp: &OpInputs) -> Option<Folded> {
    let (a, b) = (inp.dims(0)?, inp.dims(1)?);
    let rank = a.len().max(b.len());
    // Aligned from the last axis; a missing axis is 1.
    let at = |v: &[Dim], k: usize| (k + v.len()).checked_sub(rank).map_or(Dim::Known(1), |i| v[i]);
    let mut out = Vec::with_capacity(rank);
    for k in 0..rank {
        out.push(match (at(&a, k), at(&b, k)) {
            (Dim::Known(1), d) | (d, Dim::Known(1)) => d,
            (Dim::Known(x), Dim::Known(y)) if x != y => return None,
            // A size other than 1 is what the other must be, for the two to broadcast.
            (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(x),
            (Dim::Of(v, i), Dim::Of(w, j)) if (v, i) == (w, j) => Dim::Of(v, i),
            _ => return None,
        });
    }
    int_vector(inp.infos.first()?.dtype?, out, false)
}

/// The target as literals, when known: a constant, or what inference resolved (one unknown
/// entry at most, written -1).
fn static_target(ctx: &Ctx) -> Option<Vec<i64>> {
    // A constant with a partial value has -1 for sizes read at run time (`passes::fold`).
    if ctx.partial(1).is_some() {
        return None;
    }
    if let Ok(t) = ctx.const_ints(1) {
        return Some(t);
    }
    let shape = ctx.out_info(0).shape?;
    let target: Vec<Option<i64>> = shape.into_iter().map(|d| d.map(|d| d as i64)).collect();
    reshape_target(target).ok()
}

fn reshape(ctx: &mut Ctx) -> OpResult<Lowered> {
    if let Some(expr) = flattened_positions(ctx)? {
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    if let Some(expr) = new_unit_axes(ctx)? {
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    if let Some(expr) = kept_leading_axes(ctx)? {
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    let Some(mut target) = static_target(ctx) else {
        // Read at run time: `x.reshape(x.shape[0], -1)`, `x.reshape(n, 2, 2)`, `x.reshape(s)`.
        let args = sizes(ctx, 1)?.args();
        let x = ctx.input_tf(0)?;
        return Ok(Lowered::Expr { expr: x.method("reshape", args), layout: Layout::Tf });
    };
    let x = ctx.input_tf(0)?;
    // `[N, C]` → `[N, 1, 1, C]` (squeeze-and-excitation): with H = W = 1 the NCHW tensor has
    // the same memory order, so produce NCHW directly and spare the next conv a permute.
    let layout = match target.as_slice() {
        [n, 1, 1, c] if ctx.rank(0) == Some(2) => {
            target = vec![*n, *c, 1, 1];
            Layout::ChannelsFirst
        }
        _ => Layout::Tf,
    };
    let args = if target.is_empty() {
        vec![Expr::Tuple(Vec::new())]
    } else {
        target.iter().map(|&d| Expr::int(d)).collect()
    };
    Ok(Lowered::Expr { expr: x.method("reshape", args), layout })
}

/// A feature map held channels-first reshaped to `[batch, positions, channels]` (ViT's
/// patch embedding, attention over a conv's positions): `x.flatten(2).transpose(1, 2)`,
/// the same order as TF's reshape of NHWC, without permuting to NHWC first. Only where the
/// target is that shape for sure: its batch the input's own (`tf.shape(x)[0]` or the same
/// number), then `-1` or `H * W`, then the channel count.
fn flattened_positions(ctx: &mut Ctx) -> OpResult<Option<Expr>> {
    if ctx.rank(0) != Some(4) || ctx.layout(0)? != Layout::ChannelsFirst {
        return Ok(None);
    }
    let shape = ctx.info(0).shape.unwrap_or_default();
    let (Some(c), Some(p)) = (shape.get(3).copied().flatten(), ctx.partial(1)) else {
        return Ok(None);
    };
    let input = ctx.input_ref(0)?;
    let [b, n, last] = p.values.as_slice() else { return Ok(None) };
    let batch = match *b {
        Dim::Of(v, 0) => v == input,
        Dim::Known(k) => {
            shape.first().copied().flatten().and_then(|d| i64::try_from(d).ok()) == Some(k)
        }
        _ => false,
    };
    let positions = shape.get(1).copied().flatten().zip(shape.get(2).copied().flatten());
    let rest = match *n {
        Dim::Known(-1) => true,
        Dim::Known(k) => {
            positions.and_then(|(h, w)| h.checked_mul(w)).and_then(|n| i64::try_from(n).ok())
                == Some(k)
        }
        _ => false,
    };
    if !(batch && rest && i64::try_from(c).is_ok_and(|c| *last == Dim::Known(c))) {
        return Ok(None);
    }
    let x = ctx.input_in(0, Layout::ChannelsFirst)?;
    let flat = x.method("flatten", vec![Expr::int(2)]);
    Ok(Some(flat.method("transpose", vec![Expr::int(1), Expr::int(2)])))
}

/// A reshape that only inserts axes of size 1 among the input's own sizes, read at run time:
/// `mask[None, None]` (a causal mask `[T, T]` made `[1, 1, T, T]`), `x[:, None]`, rather than
/// `mask.reshape(1, 1, x.shape[1], x.shape[1])`.
fn new_unit_axes(ctx: &mut Ctx) -> OpResult<Option<Expr>> {
    let Some(p) = ctx.partial(1) else { return Ok(None) };
    let values = p.values.clone();
    let Some(shape) = ctx.info(0).shape else { return Ok(None) };
    if values.len() <= shape.len() {
        return Ok(None);
    }
    let input = ctx.input_ref(0)?;
    let (mut index, mut next) = (Vec::new(), 0);
    for d in &values {
        let own = match *d {
            Dim::Of(v, axis) => v == input && axis == next,
            Dim::Known(n) => shape.get(next).copied().flatten().is_some_and(|s| s as i64 == n),
            Dim::Unknown => false,
        };
        // A 1 the input also has there is its own axis (consumed in order, as reshape keeps it).
        if own && next < shape.len() {
            index.push(Expr::full_slice());
            next += 1;
        } else if *d == Dim::Known(1) {
            index.push(Expr::none());
        } else {
            return Ok(None);
        }
    }
    if next != shape.len() {
        return Ok(None);
    }
    // Trailing `:` say nothing.
    while index.last().is_some_and(|e| !matches!(e, Expr::Lit(crate::py::Lit::None))) {
        index.pop();
    }
    let x = ctx.input_tf(0)?;
    let index = if index.len() == 1 { index.remove(0) } else { Expr::Tuple(index) };
    Ok(Some(x.index(index)))
}

/// A reshape keeping the input's leading sizes, read at run time from the input itself, that
/// only splits its last axis or merges its trailing ones: `x.unflatten(2, (4, 4))` (heads
/// split off) and `x.flatten(2)` (heads merged), as a person writes them, rather than
/// `x.reshape(x.shape[0], x.shape[1], 4, 4)`.
fn kept_leading_axes(ctx: &mut Ctx) -> OpResult<Option<Expr>> {
    let Some(p) = ctx.partial(1) else { return Ok(None) };
    let values = p.values.clone();
    let Some(shape) = ctx.info(0).shape else { return Ok(None) };
    let input = ctx.input_ref(0)?;
    let kept = values
        .iter()
        .zip(&shape)
        .enumerate()
        .take_while(|&(k, (d, s))| match *d {
            Dim::Of(v, axis) => v == input && axis == k,
            Dim::Known(n) => s.is_some_and(|s| s as i64 == n),
            Dim::Unknown => false,
        })
        .count();
    let read = values[..kept].iter().any(|d| matches!(d, Dim::Of(..)));
    let (rest, tail) = (&values[kept..], &shape[kept..]);
    let known: Option<Vec<i64>> = rest.iter().map(|d| d.known()).collect();
    let (Some(rest), true, true) = (known, read, kept > 0) else { return Ok(None) };
    let numel =
        |d: &[i64]| d.iter().try_fold(1i64, |p, &v| (v > 0).then(|| p.checked_mul(v)).flatten());
    let tail_numel = tail.iter().try_fold(1usize, |p, &d| p.checked_mul(d?));
    let fits = |n: Option<i64>| n.is_some() && n == tail_numel.and_then(|t| i64::try_from(t).ok());
    let x = ctx.input_tf(0)?;
    let at = Expr::int(kept as i64);
    Ok(match (tail.len(), rest.as_slice()) {
        // One axis split in several, at most one of them -1.
        (1, [_, _, ..])
            if rest.iter().filter(|&&v| v == -1).count() <= 1
                && (rest.contains(&-1) || fits(numel(&rest))) =>
        {
            let sizes = Expr::Tuple(rest.iter().map(|&v| Expr::int(v)).collect());
            Some(x.method("unflatten", vec![at, sizes]))
        }
        // Several axes merged into one.
        (2.., [n]) if *n == -1 || fits(Some(*n)) => Some(x.method("flatten", vec![at])),
        _ => None,
    })
}

fn reshape_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let sizes = inp.sizes(1)?;
    let numel = x.shape.as_ref().and_then(|s| s.iter().copied().collect::<Option<Vec<_>>>());
    let numel = numel.and_then(|s| checked_numel(&s));
    // The one unknown entry (-1, or a size computed at run time) is what the others leave.
    let known = sizes.iter().flatten().try_fold(1usize, |a, &d| a.checked_mul(d));
    let inferred = match sizes.iter().filter(|d| d.is_none()).count() {
        1 => known.filter(|&k| k > 0).and_then(|k| Some(numel? / k)),
        _ => None,
    };
    let shape = sizes.into_iter().map(|d| d.or(inferred)).collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(shape) }])
}

fn reshape_fold(inp: &OpInputs) -> Option<Folded> {
    let t = inp.consts.first().copied().flatten()?;
    let sizes: Vec<Option<usize>> =
        inp.const_ints(1)?.into_iter().map(|d| usize::try_from(d).ok()).collect();
    let known = sizes.iter().flatten().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let inferred = (known > 0).then(|| t.numel() / known);
    let shape = sizes.into_iter().map(|d| d.or(inferred)).collect::<Option<Vec<usize>>>()?;
    (checked_numel(&shape) == Some(t.numel())).then(|| Folded::Tensor(t.reshaped(shape)))
}

fn squeeze_axes(node: &Node, shape: &[Option<usize>]) -> OpResult<Vec<usize>> {
    let dims = node.attr_ints_or("squeeze_dims", &[])?;
    if dims.is_empty() {
        if shape.iter().any(|d| d.is_none()) {
            return Err("squeezing every size-1 dim needs a static shape".into());
        }
        return Ok(shape
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == Some(1))
            .map(|(i, _)| i)
            .collect());
    }
    let mut v = dims.iter().map(|&a| norm_axis(a, shape.len())).collect::<OpResult<Vec<_>>>()?;
    if let Some((a, d)) = v.iter().find_map(|&a| Some((a, shape[a].filter(|&d| d != 1)?))) {
        return Err(format!("squeezes axis {a} of size {d}").into());
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn squeeze(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Some(shape) = ctx.info(0).shape else {
        // Unknown rank: listed axes, negative ones too, are squeezed as they are, in TF layout.
        // No axes: every size-1 axis, as `squeeze()` does.
        let dims = ctx.node().attr_ints_or("squeeze_dims", &[])?;
        let args = match dims.as_slice() {
            [] => vec![],
            [d] => vec![Expr::int(*d)],
            _ => vec![Expr::ints(&dims)],
        };
        let x = ctx.input_tf(0)?;
        return Ok(Lowered::Expr { expr: x.method("squeeze", args), layout: Layout::Tf });
    };
    let axes = squeeze_axes(ctx.node(), &shape)?;
    if axes.is_empty() {
        return Ok(Lowered::Alias(0));
    }
    let layout = crate::ops::util::layout_removing(ctx, &axes, false)?;
    let x = ctx.input_in(0, layout)?;
    let rank = shape.len();
    let mut dims: Vec<i64> = axes.iter().map(|&a| phys_axis(a, layout, rank) as i64).collect();
    dims.sort_unstable();
    let expr = match dims.as_slice() {
        [d] => x.squeezed(*d),
        _ => x.method("squeeze", vec![Expr::ints(&dims)]),
    };
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn squeeze_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let axes = squeeze_axes(inp.node, shape).ok()?;
    let out =
        shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| *d).collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

fn squeeze_fold(inp: &OpInputs) -> Option<Folded> {
    let t = inp.consts.first().copied().flatten()?;
    let shape: Vec<Option<usize>> = t.shape.iter().map(|&d| Some(d)).collect();
    let axes = squeeze_axes(inp.node, &shape).ok()?;
    let out =
        t.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| *d).collect();
    Some(Folded::Tensor(t.reshaped(out)))
}

fn expand_axis(inp_rank: usize, dim: i64) -> OpResult<usize> {
    norm_axis(dim, inp_rank + 1)
}

fn expand_dims(ctx: &mut Ctx) -> OpResult<Lowered> {
    if !ctx.is_const(1) {
        // A dim read at run time (a scalar or one entry): torch counts a negative one as TF.
        let d = match ctx.rank(1) {
            Some(1) => crate::ops::sizes::items(ctx, 1, 1)?.remove(0).expr,
            _ => crate::ops::sizes::scalar(ctx, 1)?.expr,
        };
        let x = ctx.input_tf(0)?;
        return Ok(Lowered::Expr { expr: x.method("unsqueeze", vec![d]), layout: Layout::Tf });
    }
    let raw = *ctx.const_ints(1)?.first().ok_or("dim must be a scalar")?;
    // torch counts a negative dim as TF does (from the end of the result): with the rank
    // unknown, the raw dim is right.
    let d = match ctx.rank(0) {
        Some(rank) => expand_axis(rank, raw)? as i64,
        None => raw,
    };
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("unsqueeze", vec![Expr::int(d)]), layout: Layout::Tf })
}

fn expand_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let mut shape = x.shape.clone()?;
    if inp.const_ints(1).is_none() {
        // Where the axis goes is known at run time only; the rank is one more.
        let out = vec![None; shape.len() + 1];
        return Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }]);
    }
    let d = expand_axis(shape.len(), *inp.const_ints(1)?.first()?).ok()?;
    shape.insert(d, Some(1));
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(shape) }])
}

fn expand_fold(inp: &OpInputs) -> Option<Folded> {
    // A run-time size made a vector (`expand_dims(batch_size, 0)` in TF1's zero states).
    if let Some(p) = inp.partials.first().copied().flatten()
        && p.scalar
        && matches!(inp.const_ints(1)?.as_slice(), [0] | [-1])
    {
        return Some(Folded::Partial(Partial { scalar: false, values: p.values.clone() }));
    }
    let t = inp.consts.first().copied().flatten()?;
    let d = expand_axis(t.rank(), *inp.const_ints(1)?.first()?).ok()?;
    let mut shape = t.shape.clone();
    shape.insert(d, 1);
    Some(Folded::Tensor(t.reshaped(shape)))
}

fn perm_of(v: Vec<i64>, rank: usize) -> OpResult<Vec<usize>> {
    let p = v.iter().map(|&a| norm_axis(a, rank)).collect::<OpResult<Vec<_>>>()?;
    let mut sorted = p.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(format!("{v:?} is not a permutation").into());
    }
    Ok(p)
}

fn transpose(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Ok(raw) = ctx.const_ints(1) else {
        // A permutation computed at run time (`tf.vectorized_map` picks one with a `where`):
        // read then, in TF's layout.
        let perm = crate::ops::sizes::sizes(ctx, 1)?.tuple();
        let x = ctx.input_tf(0)?;
        return Ok(Lowered::Expr { expr: x.method("permute", vec![perm]), layout: Layout::Tf });
    };
    // The permutation says the rank when nothing else does.
    let rank = ctx.rank(0).unwrap_or(raw.len());
    let perm = perm_of(raw, rank)?;
    let cf = crate::ops::contract::channels_first_rank(Some(rank));
    let layout = if cf { ctx.layout(0)? } else { Layout::Tf };
    // A channels-first tensor seen channels-last for a TF op in NCHW (see
    // `passes::channels_first`) is stored as PyTorch's layers want it already.
    let marked = ctx.node().attr_bool_or(crate::ir::attrs::CHANNELS_LAST, false).unwrap_or(false);
    let to_last = || crate::ops::contract::to_channels_last(rank).into_iter().map(|a| a as usize);
    if cf && marked && layout == Layout::Tf && perm.iter().copied().eq(to_last()) {
        return Ok(Lowered::Relabel(0, Layout::ChannelsFirst));
    }
    let x = ctx.input_in(0, layout)?;
    // Compose with the layout so that a channels-first input needs one permute, not two.
    let phys: Vec<i64> = perm.iter().map(|&p| phys_axis(p, layout, rank) as i64).collect();
    if phys.iter().enumerate().all(|(i, &p)| i as i64 == p) {
        return Ok(Lowered::Relabel(0, Layout::Tf));
    }
    Ok(Lowered::Expr { expr: x.permuted(&phys), layout: Layout::Tf })
}

fn transpose_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let Some(raw) = inp.const_ints(1) else {
        // Known at run time only: the rank stays.
        return Some(vec![ValueInfo { dtype: x.dtype, shape: Some(vec![None; shape.len()]) }]);
    };
    let perm = perm_of(raw, shape.len()).ok()?;
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(perm.iter().map(|&p| shape[p]).collect()) }])
}

fn transpose_fold(inp: &OpInputs) -> Option<Folded> {
    let t = inp.consts.first().copied().flatten()?;
    let perm = perm_of(inp.const_ints(1)?, t.rank()).ok()?;
    Some(Folded::Tensor(t.permute(&perm)))
}

fn out_int_dtype(node: &Node) -> DType {
    node.attr_type("out_type").unwrap_or(DType::I32)
}

/// `x.numel()`, a Python int.
fn size_op(ctx: &mut Ctx) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    let expr = match x.layout {
        Layout::Host => Expr::call("len", vec![x.expr]),
        _ => x.expr.method("numel", vec![]),
    };
    Ok(Lowered::Expr { expr, layout: Layout::Host })
}

/// `x.dim()`, a Python int.
fn rank_op(ctx: &mut Ctx) -> OpResult<Lowered> {
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("dim", vec![]), layout: Layout::Host })
}

fn scalar_int_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    Some(vec![ValueInfo { dtype: Some(out_int_dtype(inp.node)), shape: Some(vec![]) }])
}

fn size_fold(inp: &OpInputs) -> Option<Folded> {
    let shape: Vec<usize> =
        inp.infos.first()?.shape.as_ref()?.iter().copied().collect::<Option<_>>()?;
    let n = i64::try_from(checked_numel(&shape)?).ok()?;
    int_vector(out_int_dtype(inp.node), vec![Dim::Known(n)], true)
}

fn rank_fold(inp: &OpInputs) -> Option<Folded> {
    let rank = inp.infos.first()?.shape.as_ref()?.len() as i64;
    int_vector(DType::I32, vec![Dim::Known(rank)], true)
}

/// `x.shape`, as Python ints (`Layout::Host`): what sizes are read from.
fn shape_op(ctx: &mut Ctx) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    let expr = match x.layout {
        Layout::Tf => x.expr.attr("shape"),
        // TF's channels-last axes of a channels-first tensor: (n, h, w, c) of NCHW.
        Layout::ChannelsFirst => {
            let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
            let axis = |a| Expr::int(channels_first_axis(a, rank) as i64);
            Expr::Tuple((0..rank).map(|a| x.expr.clone().attr("shape").index(axis(a))).collect())
        }
        Layout::Host => match ctx.rank(0) {
            Some(0) => Expr::Tuple(Vec::new()),
            _ => Expr::Tuple(vec![Expr::call("len", vec![x.expr])]),
        },
    };
    Ok(Lowered::Expr { expr, layout: Layout::Host })
}

fn shape_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let rank = inp.infos.first()?.shape.as_ref().map(|s| s.len());
    Some(vec![ValueInfo {
        dtype: Some(out_int_dtype(inp.node)),
        shape: rank.map(|r| vec![Some(r)]),
    }])
}

fn shape_fold(inp: &OpInputs) -> Option<Folded> {
    let shape = inp.infos.first()?.shape.as_ref()?;
    let source = *inp.refs.first()?;
    let values = shape
        .iter()
        .enumerate()
        .map(|(axis, d)| d.map_or(Dim::Of(source, axis), |d| Dim::Known(d as i64)))
        .collect();
    int_vector(out_int_dtype(inp.node), values, false)
}

/// A folded integer vector (or scalar): a constant when every entry is known.
pub(crate) fn int_vector(dtype: DType, values: Vec<Dim>, scalar: bool) -> Option<Folded> {
    let known: Option<Vec<i64>> = values.iter().map(|d| d.known()).collect();
    match known {
        Some(v) => {
            let shape = if scalar { vec![] } else { vec![v.len()] };
            Tensor::with_values_like(dtype, shape, &Values::I(v)).map(Folded::Tensor)
        }
        None => Some(Folded::Partial(Partial { scalar, values })),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Shapes broadcast together: where the sizes say the result (a 1 beside a run-time size,
    /// a constant's one value spread to a known shape) it is folded; two run-time sizes are
    /// broadcast by `torch.broadcast_shapes`.
    /// A conv's output reshaped to `[batch, positions, channels]` (ViT's patch embedding) is
    /// `flatten(2).transpose(1, 2)` of the NCHW map; to other sizes, TF's reshape of NHWC.
    #[test]
    fn positions_of_a_feature_map_are_its_flattened_axes() {
        let flat = |channels: i64| {
            after_conv(|g, y| {
                let shape = g.op("shape", "Shape", &[y], &[]);
                let (b, e) = (int_tensor(&[1], &[0]), int_tensor(&[1], &[1]));
                let (b, e) = (g.constant("b", b), g.constant("e", e));
                let one = g.constant("one", int_tensor(&[1], &[1]));
                let batch = g.op(
                    "batch",
                    "StridedSlice",
                    &[shape, b, e, one],
                    &[("shrink_axis_mask", int(1))],
                );
                let rest = g.constant("rest", int_tensor(&[], &[-1]));
                let c = g.constant("c", int_tensor(&[], &[channels]));
                let target = g.op("target", "Pack", &[batch, rest, c], &[("N", int(3))]);
                g.op("flat", "Reshape", &[y, target], &[])
            })
        };
        assert!(flat(2).contains("x = conv.flatten(2).transpose(1, 2)"), "{}", flat(2));
        let other = flat(1);
        assert!(!other.contains("flatten(2)") && other.contains(".permute(0, 2, 3, 1)"), "{other}");
    }

    #[test]
    fn shapes_broadcast_together() {
        let mut g = TestGraph::new();
        let col = g.input("col", &[-1, 1]);
        let row = g.input("row", &[1, -1]);
        let v = g.input("v", &[-1]);
        let w = g.input("w", &[-1]);
        let (sc, sr) = (g.op("sc", "Shape", &[col], &[]), g.op("sr", "Shape", &[row], &[]));
        let both = g.op("both", "BroadcastArgs", &[sc, sr], &[]);
        let grid = g.op("grid", "BroadcastTo", &[col, both], &[]);
        let (sv, sw) = (g.op("sv", "Shape", &[v], &[]), g.op("sw", "Shape", &[w], &[]));
        let vw = g.op("vw", "BroadcastArgs", &[sv, sw], &[]);
        let line = g.op("line", "BroadcastTo", &[v, vw], &[]);
        let one = g.constant("one", weights(&[]));
        let three = g.constant("three", int_tensor(&[1], &[3]));
        let filled = g.op("filled", "BroadcastTo", &[one, three], &[]);
        let filled = g.op("filled_row", "Mul", &[filled, row], &[]);
        assert_snapshot!(g.lower(&[grid, line, filled]), @"
            ---
            x = col.expand(col.shape[0], row.shape[1])
            line = v.expand(torch.broadcast_shapes(v.shape, w.shape))
            filled_row = torch.full((3,), 0.5) * row
            return x, line, filled_row
            ");
    }

    /// Shapes known only at run time: an unranked squeeze of every unit axis, and an
    /// ExpandDims whose axis is data (one entry of a vector).
    #[test]
    fn squeeze_and_expand_dims_at_run_time() {
        let mut g = TestGraph::new();
        let x = g.unranked_input("x");
        let dim = g.typed_input("dim", &[1], crate::tensor::DType::I32);
        let a = g.op("a", "Squeeze", &[x], &[]);
        let b = g.op("b", "ExpandDims", &[a, dim], &[]);
        assert_snapshot!(g.lower(&[b]), @"
        ---
        x = x.squeeze()
        dim_sizes = dim.tolist()
        x = x.unsqueeze(dim_sizes[0])
        return x
        ");
    }

    /// A model input given an axis, read twice, keeps the input's name rather than the op's
    /// (`expand_dims`): Gemma's padding mask, which every layer reads.
    #[test]
    fn an_input_given_an_axis_keeps_its_name() {
        let mut g = TestGraph::new();
        let mask = g.input("padding_mask", &[-1, 4]);
        let axis = g.constant("axis", int_tensor(&[], &[1]));
        let wide = g.op("ExpandDims", "ExpandDims", &[mask, axis], &[]);
        let a = g.op("a", "Mul", &[wide, wide], &[]);
        let b = g.op("b", "AddV2", &[a, wide], &[]);
        assert_snapshot!(g.lower(&[b]), @"
        ---
        padding_mask_2 = padding_mask.unsqueeze(1)
        x = padding_mask_2 * padding_mask_2
        x = x + padding_mask_2
        return x
        ");
    }

    #[test]
    fn flatten_goes_back_to_tf_order() {
        assert_snapshot!(after_conv(|g, y| {
            let s = g.constant("shape", int_tensor(&[2], &[-1, 40]));
            g.op("flat", "Reshape", &[y, s], &[])
        }), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 2, 3, 1).reshape(-1, 40)
        return x
        ");
    }

    #[test]
    fn reshape_with_dynamic_batch_from_shape_arithmetic() {
        // Keras' Reshape layer: Pack(StridedSlice(Shape(x), 0), 1, 1, C). After a global
        // pool, that is the pool keeping its dims (`passes::simplify`).
        assert_snapshot!(after_conv(|g, y| {
            let m = g.constant("axes", int_tensor(&[2], &[1, 2]));
            let v = g.op("gap", "Mean", &[y, m], &[]);
            let s = g.op("se/Shape", "Shape", &[v], &[]);
            let b = g.constant("b", int_tensor(&[1], &[0]));
            let e = g.constant("e", int_tensor(&[1], &[1]));
            let st = g.constant("st", int_tensor(&[1], &[1]));
            let n = g.op("se/n", "StridedSlice", &[s, b, e, st], &[("shrink_axis_mask", int(1))]);
            let one = g.constant("one", int_tensor(&[], &[1]));
            let c = g.constant("c", int_tensor(&[], &[2]));
            let t = g.op("se/target", "Pack", &[n, one, one, c], &[("N", int(4))]);
            let r = g.op("se/Reshape", "Reshape", &[v, t], &[]);
            let w = g.constant("w2", weights(&[1, 1, 2, 2]));
            let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
            let z = g.op("se_conv", "Conv2D", &[r, w], &pad);
            g.op("scale", "Mul", &[y, z], &[])
        }), @"
        x = image.permute(0, 3, 1, 2)
        conv = self.conv(x)
        x = conv.mean((2, 3), keepdim=True)
        x = self.se_conv(x)
        x = (conv * x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn flatten_with_dynamic_batch_reads_sizes_at_run_time() {
        // tf.reshape(y, [tf.shape(y)[0], -1]): two unknown entries.
        assert_snapshot!(after_conv(|g, y| {
            let s = g.op("flat/Shape", "Shape", &[y], &[]);
            let b = g.constant("b", int_tensor(&[1], &[0]));
            let e = g.constant("e", int_tensor(&[1], &[1]));
            let st = g.constant("st", int_tensor(&[1], &[1]));
            let n = g.op("flat/n", "StridedSlice", &[s, b, e, st], &[("shrink_axis_mask", int(1))]);
            let m1 = g.constant("m1", int_tensor(&[], &[-1]));
            let t = g.op("flat/target", "Pack", &[n, m1], &[("N", int(2))]);
            g.op("flat/Reshape", "Reshape", &[y, t], &[])
        }), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 2, 3, 1).flatten(1)
        return x
        ");
    }

    /// A permutation read at run time is applied as it comes, in TF's layout.
    #[test]
    fn a_run_time_permutation() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let perm = g.typed_input("perm", &[3], crate::tensor::DType::I32);
        let y = g.op("t", "Transpose", &[x, perm], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        perm_sizes = perm.tolist()
        x = x.permute(perm_sizes)
        return x
        ");
    }

    #[test]
    fn transposes_compose_with_the_layout() {
        assert_snapshot!(after_conv(|g, y| {
            let p = g.constant("perm", int_tensor(&[4], &[0, 3, 1, 2]));
            g.op("t", "Transpose", &[y, p], &[])
        }), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        return x
        ");
        assert_snapshot!(after_conv(|g, y| {
            let p = g.constant("perm", int_tensor(&[4], &[0, 2, 1, 3]));
            g.op("t", "Transpose", &[y, p], &[])
        }), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 3, 2, 1)
        return x
        ");
    }

    /// Hugging Face's vision models take NCHW pixels and transpose them to NHWC for TF's
    /// convolution: the convolution reads the pixels as they come.
    #[test]
    fn pixels_transposed_to_channels_last_are_read_as_they_come() {
        let mut g = TestGraph::new();
        let x = g.input("pixel_values", &[-1, 3, 8, 8]);
        let p = g.constant("perm", int_tensor(&[4], &[0, 2, 3, 1]));
        let t = g.op("t", "Transpose", &[x, p], &[]);
        let w = g.constant("w", weights(&[1, 1, 3, 4]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let conv = g.op("conv", "Conv2D", &[t, w], &pad);
        assert_snapshot!(g.lower(&[conv]), @"
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        # conv.weight: [4, 3, 1, 1]
        ---
        x = self.conv(pixel_values).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Listed axes squeeze without a known rank (after a stub, a value TF left unranked).
    #[test]
    fn squeeze_of_an_unranked_value() {
        let mut g = TestGraph::new();
        let x = g.unranked_input("x");
        let y = g.op("sq", "Squeeze", &[x], &[("squeeze_dims", ints(&[0, -1]))]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.squeeze((0, -1))
        return x
        ");
    }

    #[test]
    fn squeeze_expand_slice_cast() {
        assert_snapshot!(after_conv(|g, y| {
            let m = g.constant("axes", int_tensor(&[2], &[1, 2]));
            let v = g.op("gap", "Mean", &[y, m], &[("keep_dims", boolean(true))]);
            g.op("sq", "Squeeze", &[v], &[("squeeze_dims", ints(&[1, 2]))])
        }), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.mean((2, 3), keepdim=True).squeeze((2, 3))
        return x
        ");
        assert_snapshot!(after_conv(|g, y| {
            let b = g.constant("b", int_tensor(&[4], &[0, 1, 0, 0]));
            let e = g.constant("e", int_tensor(&[4], &[0, 0, 0, 1]));
            let s = g.constant("s", int_tensor(&[4], &[1, 1, 2, 1]));
            let attrs = [("begin_mask", int(5)), ("end_mask", int(7)), ("shrink_axis_mask", int(8))];
            let sl = g.op("slice", "StridedSlice", &[y, b, e, s], &attrs);
            let d = g.constant("d", int_tensor(&[], &[-1]));
            let ex = g.op("ex", "ExpandDims", &[sl, d], &[]);
            g.op("cast", "Cast", &[ex], &[("DstT", crate::proto::AttrValue { value: Some(crate::proto::attr_value::Value::Type(3)) })])
        }), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 2, 3, 1)
        x = x[:, 1:, ::2, 0].unsqueeze(3).to(torch.int32)
        return x
        ");
    }
}
