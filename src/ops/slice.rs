//! Slicing: `StridedSlice` (masks, ellipsis, new axes, negative strides as `flip`) and `Slice`
//! → Python indexing; folds slices of shape vectors and of constant weights. `Roll` (slices
//! swapped around) → `torch.roll`.

use crate::ir::{Dim, Node, ValueInfo};
use crate::ops::contract::{
    Ctx, Layout, Lowered, OpResult, TranslateError, channels_first_rank, to_channels_first,
};
use crate::ops::sizes::{Item, is_host_value, items};
use crate::ops::{Folded, OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::{Tensor, Values};

pub const OPS: &[OpDef] = &[
    op("Roll", roll).infer(crate::ops::util::same_as_input),
    op("StridedSlice", strided_slice).infer(strided_slice_infer).fold(strided_slice_fold),
    op("Slice", slice).infer(slice_infer).fold(slice_fold),
];

/// One entry of a StridedSlice index after expanding the ellipsis (tf-formats.md §4.6);
/// bounds and strides are `i64` when known, or whatever the caller has for run-time ones.
#[derive(Debug, Clone, PartialEq)]
enum Index<T = i64> {
    Full,
    At(T),
    Range(Option<T>, Option<T>, T),
    NewAxis,
}

/// A slice operand whose value may be known at conversion time.
trait MaybeKnown {
    fn value(&self) -> Option<i64>;
}

impl MaybeKnown for i64 {
    fn value(&self) -> Option<i64> {
        Some(*self)
    }
}

impl MaybeKnown for Option<i64> {
    fn value(&self) -> Option<i64> {
        *self
    }
}

impl MaybeKnown for Item {
    fn value(&self) -> Option<i64> {
        self.known
    }
}

fn slice_spec<T: Clone + MaybeKnown>(
    node: &Node,
    rank: usize,
    begin: &[T],
    end: &[T],
    strides: &[T],
) -> OpResult<Vec<Index<T>>> {
    let mask = |a: &str| node.attr_int_or(a, 0);
    let (bm, em, elm, nam, sam) = (
        mask("begin_mask")?,
        mask("end_mask")?,
        mask("ellipsis_mask")?,
        mask("new_axis_mask")?,
        mask("shrink_axis_mask")?,
    );
    let n = begin.len();
    if end.len() != n || strides.len() != n {
        return Err("begin, end and strides differ in length".into());
    }
    let bit = |m: i64, i: usize| i < 63 && (m >> i) & 1 == 1;
    let mut entries = Vec::new();
    let mut ellipsis_at = None;
    for i in 0..n {
        if bit(elm, i) {
            if ellipsis_at.is_some() {
                return Err("more than one ellipsis".into());
            }
            ellipsis_at = Some(entries.len());
        } else if bit(nam, i) {
            entries.push(Index::NewAxis);
        } else if bit(sam, i) {
            entries.push(Index::At(begin[i].clone()));
        } else {
            if strides[i].value() == Some(0) {
                return Err("stride 0".into());
            }
            let b = (!bit(bm, i)).then(|| begin[i].clone());
            let e = (!bit(em, i)).then(|| end[i].clone());
            entries.push(Index::Range(b, e, strides[i].clone()));
        }
    }
    let consumed = entries.iter().filter(|e| !matches!(e, Index::NewAxis)).count();
    let fill =
        rank.checked_sub(consumed).ok_or("slice has more entries than the input has axes")?;
    let at = ellipsis_at.unwrap_or(entries.len());
    entries.splice(at..at, std::iter::repeat_n(Index::Full, fill));
    Ok(entries)
}

/// Python slice semantics over a dim of size `n`: the first index `range(b, e, s)` selects and
/// how many it selects, in closed form (an axis may be huge; its indices are never listed).
fn slice_range(n: i64, b: Option<i64>, e: Option<i64>, s: i64) -> (i64, usize) {
    let norm = |v: i64, lo: i64, hi: i64| if v < 0 { (v + n).max(lo) } else { v.min(hi) };
    let (first, end) = if s > 0 {
        (b.map_or(0, |b| norm(b, 0, n)), e.map_or(n, |e| norm(e, 0, n)))
    } else {
        (b.map_or(n - 1, |b| norm(b, -1, n - 1)), e.map_or(-1, |e| norm(e, -1, n - 1)))
    };
    // i128: `span + step - 1` must not overflow for any stride.
    let (span, step) = (i128::from(end) - i128::from(first), i128::from(s));
    let count = if (s > 0 && span > 0) || (s < 0 && span < 0) {
        (span + step - step.signum()) / step
    } else {
        0
    };
    (first, usize::try_from(count).unwrap_or(usize::MAX))
}

/// The indices `range(b, e, s)` selects in a dim of size `n` (for folding values, which
/// are in memory already).
fn slice_indices(n: i64, b: Option<i64>, e: Option<i64>, s: i64) -> Vec<i64> {
    let (first, count) = slice_range(n, b, e, s);
    (0..count as i64).map(|k| first + k * s).collect()
}

fn slice_consts(inp: &OpInputs) -> Option<(Vec<i64>, Vec<i64>, Vec<i64>)> {
    Some((inp.const_ints(1)?, inp.const_ints(2)?, inp.const_ints(3)?))
}

fn strided_slice(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = match ctx.const_ints(3) {
        Ok(s) => s.len(),
        Err(_) => ctx
            .info(3)
            .shape
            .and_then(|s| s.first().copied().flatten())
            .ok_or("strides of unknown length")?,
    };
    // Ends no entry reads (every one shrunk, masked, a new axis or the ellipsis) are not read
    // at run time either: reading them would leave an unused `sizes = end.tolist()`.
    let mask = |a: &str| ctx.node().attr_int_or(a, 0);
    let unread = mask("shrink_axis_mask")?
        | mask("end_mask")?
        | mask("new_axis_mask")?
        | mask("ellipsis_mask")?;
    let e = if (0..n).all(|i| i < 63 && (unread >> i) & 1 == 1) {
        vec![Item::int(0); n]
    } else {
        items(ctx, 2, n)?
    };
    let (b, strides) = (items(ctx, 1, n)?, items(ctx, 3, n)?);
    // Python ints (a shape) slice as a tuple: negative steps included.
    if is_host_value(ctx, 0) {
        if ctx.rank(0) == Some(0) {
            // A Python int given an axis (`n[tf.newaxis]`): a one-entry list.
            let spec = slice_spec(ctx.node(), 0, &b, &e, &strides)?;
            if !matches!(spec.as_slice(), [Index::NewAxis]) {
                return Err("a scalar takes only a new axis".into());
            }
            let x = ctx.input(0)?.expr;
            return Ok(Lowered::Expr { expr: Expr::List(vec![x]), layout: Layout::Host });
        }
        let spec = slice_spec(ctx.node(), 1, &b, &e, &strides)?;
        let parts = spec.into_iter().map(host_part).collect::<OpResult<Vec<_>>>()?;
        let x = ctx.input(0)?.expr;
        return Ok(Lowered::Expr { expr: x.index(Expr::index_of(parts)), layout: Layout::Host });
    }
    // Without an ellipsis the entries address the leading axes whatever the rank: slice as
    // many as they consume (Python indexing leaves the others whole, as TF does).
    let new_axes = ctx.node().attr_int_or("new_axis_mask", 0)?;
    let consumed = (ctx.node().attr_int_or("ellipsis_mask", 0)? == 0)
        .then(|| (0..n).filter(|&i| i >= 63 || (new_axes >> i) & 1 == 0).count());
    let rank = ctx.rank(0).or(consumed).ok_or(TranslateError::UnknownRank)?;
    let spec = slice_spec(ctx.node(), rank, &b, &e, &strides)?;
    // A value held channels-first (a convolution's output) is sliced as it is held: its
    // entries in its axes' order (NASNet's `[:, 1:, 1:]` of NHWC is `[:, :, 1:, 1:]`), not
    // permuted to NHWC and back around the slice.
    if channels_first_rank(Some(rank))
        && ctx.layout(0)? == Layout::ChannelsFirst
        && let Some(parts) = channels_first_parts(&spec, rank)?
    {
        let x = ctx.input_in(0, Layout::ChannelsFirst)?;
        let expr = if parts.is_empty() { x } else { x.index(Expr::index_of(parts)) };
        return Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst });
    }
    let shape = ctx.info(0).shape.unwrap_or_default();
    // A list index beside an integer one makes both advanced indices, which can move the
    // listed axis to the front: such slices stay a stub rather than come out transposed.
    let shrinks = spec.iter().any(|i| matches!(i, Index::At(_)));
    let mut x = ctx.input_tf(0)?;
    let mut parts = Vec::new();
    // Negative strides: torch has none, so such axes are flipped first and sliced forward.
    let mut flips = Vec::new();
    // An axis whose stride is known only at run time (or negative, with bounds or size known
    // only then) takes the positions Python's own slicing of a `range` picks: one such axis,
    // as a list, since several lists in one index would pair up instead of crossing.
    let mut listed = false;
    let mut dim = 0;
    for idx in spec {
        let advances = !matches!(idx, Index::NewAxis);
        parts.push(match idx {
            Index::Range(b, e, s) if s.known.is_none_or(|s| s < 0) => {
                let known = |i: &Option<Item>| i.as_ref().map(|i| i.known.ok_or(())).transpose();
                let n = shape.get(dim).copied().flatten();
                match (known(&b), known(&e), n, s.known) {
                    (Ok(b), Ok(e), Some(n), Some(s)) => {
                        flips.push(dim as i64);
                        flipped_range(n as i64, b, e, s)
                    }
                    _ if listed => {
                        return Err("run-time strides or bounds on two reversed axes".into());
                    }
                    _ if shrinks => {
                        return Err("a run-time or reversed stride beside a shrunk axis".into());
                    }
                    _ => {
                        listed = true;
                        let size = x.clone().attr("shape").index(Expr::int(dim as i64));
                        let bound = |i: Option<Item>| i.map(|i| i.expr);
                        let step = Some(s.expr);
                        let range = Expr::call("range", vec![size]);
                        let picked = range.index(Expr::slice(bound(b), bound(e), step));
                        Expr::call("list", vec![picked])
                    }
                }
            }
            idx => host_part(idx)?,
        });
        if advances {
            dim += 1;
        }
    }
    while parts.last().is_some_and(|p| *p == Expr::full_slice()) {
        parts.pop();
    }
    if !flips.is_empty() {
        x = x.method("flip", vec![Expr::ints(&flips)]);
    }
    if parts.is_empty() {
        return Ok(Lowered::Expr { expr: x, layout: Layout::Tf });
    }
    Ok(Lowered::Expr { expr: x.index(Expr::index_of(parts)), layout: Layout::Tf })
}

/// The index entries of `spec` (on a value of TF's `rank`) in channels-first order, the
/// trailing whole axes dropped: only for slices that keep every axis with a forward step
/// (`None` otherwise, for the TF-layout path).
fn channels_first_parts(spec: &[Index<Item>], rank: usize) -> OpResult<Option<Vec<Expr>>> {
    let forward = |i: &Index<Item>| match i {
        Index::Full => true,
        Index::Range(_, _, s) => s.known.is_some_and(|s| s > 0),
        _ => false,
    };
    if spec.len() > rank || !spec.iter().all(forward) {
        return Ok(None);
    }
    let mut tf_order: Vec<Index<Item>> = spec.to_vec();
    tf_order.resize(rank, Index::Full);
    let mut parts = Vec::with_capacity(rank);
    for axis in to_channels_first(rank) {
        let Some(entry) = usize::try_from(axis).ok().and_then(|a| tf_order.get(a)) else {
            return Ok(None);
        };
        parts.push(host_part(entry.clone())?);
    }
    while parts.last().is_some_and(|p| *p == Expr::full_slice()) {
        parts.pop();
    }
    Ok(Some(parts))
}

/// One index entry as Python writes it (`:`, `None`, `i`, `a:b:s`).
fn host_part(idx: Index<Item>) -> OpResult<Expr> {
    let bound = |i: Option<Item>| i.map(|i| i.expr);
    Ok(match idx {
        Index::Full => Expr::full_slice(),
        Index::NewAxis => Expr::none(),
        Index::At(i) => i.expr,
        Index::Range(b, e, s) => {
            let step = (s.known != Some(1)).then_some(s.expr);
            Expr::slice(bound(b), bound(e), step)
        }
    })
}

/// A range with a negative stride over an axis of `n`, as a forward slice of the flipped axis.
fn flipped_range(n: i64, b: Option<i64>, e: Option<i64>, s: i64) -> Expr {
    let int = |v: i64| Some(Expr::int(v));
    match slice_range(n, b, e, s) {
        (first, count) if count > 0 => {
            let last = first + (count as i64 - 1) * s;
            // `-i64::MIN` does not exist; any step that large picks one element anyway.
            let back = s.checked_neg().unwrap_or(i64::MAX);
            let step = if back == 1 { None } else { int(back) };
            Expr::slice(int(n - 1 - first), int(n - last), step)
        }
        _ => Expr::slice(int(0), int(0), None),
    }
}

fn strided_slice_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    // Bounds may be known only at run time (`None`): the rank is still known.
    let (b, e, s) = (inp.ints(1)?, inp.ints(2)?, inp.ints(3)?);
    let spec = slice_spec(inp.node, shape.len(), &b, &e, &s).ok()?;
    let mut out = Vec::new();
    let mut dim = 0;
    for idx in spec {
        match idx {
            Index::NewAxis => out.push(Some(1)),
            Index::At(_) => dim += 1,
            Index::Full => {
                out.push(*shape.get(dim)?);
                dim += 1;
            }
            Index::Range(b, e, s) => {
                let known = |v: Option<Option<i64>>| v.map(|v| v.ok_or(())).transpose();
                let size = match (known(b), known(e), s) {
                    (Ok(b), Ok(e), Some(s)) => {
                        shape.get(dim)?.map(|n| slice_range(n as i64, b, e, s).1)
                    }
                    _ => None,
                };
                out.push(size);
                dim += 1;
            }
        }
    }
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// Folds slices of constants, and of 1-D (partly) known integer vectors: the shape
/// arithmetic of TF graphs, which may start from a float constant (Keras' `gaussian_blur`
/// casts `kernel_size[0]` of a float vector to size its filter).
fn strided_slice_fold(inp: &OpInputs) -> Option<Folded> {
    if let Some(t) = inp.consts.first().copied().flatten()
        && (t.rank() > 1 || !t.dtype.is_int())
    {
        return slice_constant(inp, t).map(Folded::Tensor);
    }
    let values = inp.dims(0)?;
    let rank = inp.infos.first()?.shape.as_ref()?.len();
    let (b, e, s) = slice_consts(inp)?;
    if rank == 0 {
        // A scalar given an axis (`n[tf.newaxis]`, as `unsorted_segment_mean` writes it).
        let spec = slice_spec(inp.node, 0, &b, &e, &s).ok()?;
        return match spec.as_slice() {
            [Index::NewAxis] => crate::ops::shape::int_vector(inp.infos[0].dtype?, values, false),
            _ => None,
        };
    }
    if rank != 1 {
        return None;
    }
    let spec = slice_spec(inp.node, 1, &b, &e, &s).ok()?;
    let n = values.len() as i64;
    let (picked, scalar) = match spec.iter().find(|i| **i != Index::NewAxis)? {
        Index::At(i) => {
            let i = if *i < 0 { i + n } else { *i };
            (vec![*values.get(usize::try_from(i).ok()?)?], true)
        }
        Index::Full => (values.clone(), false),
        Index::Range(b, e, s) => {
            (slice_indices(n, *b, *e, *s).into_iter().map(|i| values[i as usize]).collect(), false)
        }
        Index::NewAxis => return None,
    };
    if spec.contains(&Index::NewAxis) {
        return None;
    }
    crate::ops::shape::int_vector(inp.infos[0].dtype?, picked, scalar)
}

/// A slice of a constant matrix or higher-rank tensor (weights a loop body slices each step).
fn slice_constant(inp: &OpInputs, t: &Tensor) -> Option<Tensor> {
    let (b, e, s) = slice_consts(inp)?;
    let spec = slice_spec(inp.node, t.rank(), &b, &e, &s).ok()?;
    if spec.len() != t.rank() {
        return None;
    }
    let mut axes: Vec<Vec<i64>> = Vec::new();
    let mut shape = Vec::new();
    for (&n, index) in t.shape.iter().zip(&spec) {
        let n = n as i64;
        match index {
            Index::Full => {
                axes.push((0..n).collect());
                shape.push(n as usize);
            }
            Index::At(i) => {
                let i = if *i < 0 { i + n } else { *i };
                if !(0..n).contains(&i) {
                    return None;
                }
                axes.push(vec![i]);
            }
            Index::Range(b, e, s) => {
                let picked = slice_indices(n, *b, *e, *s);
                shape.push(picked.len());
                axes.push(picked);
            }
            Index::NewAxis => return None,
        }
    }
    pick(t, &axes, shape)
}

/// The elements of `t` at the given indices along each axis (each index in range), as a
/// tensor of `shape`: what a slice of a constant keeps.
pub(super) fn pick(t: &Tensor, axes: &[Vec<i64>], shape: Vec<usize>) -> Option<Tensor> {
    let numel = crate::tensor::checked_numel(&shape).filter(|&n| n <= 1 << 22)?;
    let strides: Vec<usize> =
        (0..t.rank()).map(|a| t.shape[a + 1..].iter().product::<usize>()).collect();
    let mut offsets = vec![0usize];
    for (picked, &stride) in axes.iter().zip(&strides) {
        offsets = offsets
            .iter()
            .flat_map(|&o| picked.iter().map(move |&i| o + i as usize * stride))
            .collect();
    }
    if offsets.len() != numel {
        return None;
    }
    let values = match t.values()? {
        Values::F(f) => {
            Values::F(offsets.iter().map(|&o| f.get(o).copied()).collect::<Option<_>>()?)
        }
        Values::I(i) => {
            Values::I(offsets.iter().map(|&o| i.get(o).copied()).collect::<Option<_>>()?)
        }
    };
    Tensor::with_values_like(t.dtype, shape, &values)
}

/// `Slice` of a constant (`tf.linspace` slices its result, so a mel filter bank built from
/// constants is a constant): from `begin`, `size` elements per axis, `-1` to the end.
fn slice_fold(inp: &OpInputs) -> Option<Folded> {
    if inp.reads_variable() {
        return None; // a trained table sliced stays a layer (`position_embedding.weight[:n]`)
    }
    let t = inp.consts.first().copied().flatten()?;
    let (begin, size) = (inp.const_ints(1)?, inp.const_ints(2)?);
    if begin.len() != t.rank() || size.len() != t.rank() {
        return None;
    }
    let mut axes = Vec::with_capacity(t.rank());
    for ((&n, &b), &s) in t.shape.iter().zip(&begin).zip(&size) {
        let n = i64::try_from(n).ok()?;
        let end = if s == -1 { n } else { b.checked_add(s)? };
        if b < 0 || s < -1 || end > n || end < b {
            return None;
        }
        axes.push((b..end).collect::<Vec<i64>>());
    }
    let shape = axes.iter().map(Vec::len).collect();
    pick(t, &axes, shape).map(Folded::Tensor)
}

/// `Slice(x, begin, size)` → `x[b0:b0 + n0, ...]`; bounds may be read at run time (a
/// sequence length), where a size of -1 (to the end) is checked for at run time.
fn slice(ctx: &mut Ctx) -> OpResult<Lowered> {
    let rank = match ctx.rank(0) {
        Some(r) => r,
        None => ctx.const_ints(1).map(|b| b.len()).map_err(|_| TranslateError::UnknownRank)?,
    };
    let begin = items(ctx, 1, rank)?;
    let size = items(ctx, 2, rank)?;
    // A size read off a shape is never -1.
    let from_shape: Vec<bool> = (0..rank)
        .map(|k| ctx.partial(2).is_some_and(|p| matches!(p.values.get(k), Some(Dim::Of(..)))))
        .collect();
    if let Some(lowered) = position_table(ctx, &begin, &size, &from_shape)? {
        return Ok(lowered);
    }
    let mut parts = Vec::with_capacity(rank);
    for (k, (b, s)) in begin.into_iter().zip(size).enumerate() {
        let start = (b.known != Some(0)).then(|| b.expr.clone());
        parts.push(match (b.known, s.known) {
            (_, Some(-1)) => Expr::slice(start, None, None),
            (Some(b), Some(s)) => {
                let end =
                    b.checked_add(s).ok_or_else(|| format!("slice end {b} + {s} overflows"))?;
                Expr::slice(start, Some(Expr::int(end)), None)
            }
            // A run-time start and a known size: no test whether the size is -1.
            (None, Some(s)) if s >= 0 => {
                Expr::slice(start, Some(b.expr.clone().binop(BinOp::Add, Expr::int(s))), None)
            }
            // A size known only at run time may be -1 too (to the end).
            _ => {
                let end = match b.known {
                    Some(0) => s.expr.clone(),
                    _ => b.expr.binop(BinOp::Add, s.expr.clone()),
                };
                if from_shape[k] {
                    Expr::slice(start, Some(end), None)
                } else {
                    let test = s.expr.binop(BinOp::GtE, Expr::int(0));
                    Expr::slice(start, Some(end.if_else(test, Expr::none())), None)
                }
            }
        });
    }
    while parts.last().is_some_and(|p| *p == Expr::full_slice()) {
        parts.pop();
    }
    if parts.is_empty() {
        return Ok(Lowered::Alias(0));
    }
    if is_host_value(ctx, 0) {
        let x = ctx.input(0)?.expr;
        return Ok(Lowered::Expr { expr: x.index(Expr::index_of(parts)), layout: Layout::Host });
    }
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.index(Expr::index_of(parts)), layout: Layout::Tf })
}

/// A learned table of position vectors (Keras' `PositionEmbedding`: a `[positions, dim]`
/// weight) cut to the sequence length: `nn.Embedding(positions, dim)` (trainable, as the
/// original), its first rows read as `self.position_embedding.weight[:n]`.
fn position_table(
    ctx: &mut Ctx,
    begin: &[Item],
    size: &[Item],
    from_shape: &[bool],
) -> OpResult<Option<Lowered>> {
    let Ok(t) = ctx.const_input(0) else { return Ok(None) };
    let fits = t.rank() == 2
        && t.dtype == crate::tensor::DType::F32
        && begin.iter().all(|b| b.known == Some(0))
        && (from_shape[0] || size[0].known.is_some_and(|n| n >= 0))
        && matches!(size[1].known, Some(-1)) | (size[1].known == Some(t.shape[1] as i64));
    if !fits {
        return Ok(None);
    }
    let (rows, dim) = (t.shape[0] as i64, t.shape[1] as i64);
    let ctor = Expr::call("nn.Embedding", vec![Expr::int(rows), Expr::int(dim)]);
    let n = size[0].expr.clone();
    let call: crate::ops::contract::LayerUse =
        Box::new(move |layer: Expr| layer.attr("weight").index(Expr::slice(None, Some(n), None)));
    let params = vec![("weight", crate::weights::Weight::plain(t.clone()))];
    Ok(Some(Lowered::LayerWith { ctor, params, call, layout: Layout::Tf }))
}

fn slice_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let s = inp.infos.first()?.shape.clone()?;
    let (b, size) = (inp.ints(1)?, inp.ints(2)?);
    let out = s
        .iter()
        .zip(b.iter().zip(&size))
        .map(|(d, (b, n))| match (b, n) {
            (_, Some(n)) if *n >= 0 => Some(*n as usize),
            (Some(b), Some(-1)) => d.and_then(|d| d.checked_sub(*b as usize)),
            _ => None,
        })
        .collect();
    Some(vec![ValueInfo { dtype: inp.infos[0].dtype, shape: Some(out) }])
}

/// `tf.roll(x, shift, axis)`: shifts and axes scalars or vectors, constant or Python ints
/// computed at run time.
fn roll(ctx: &mut Ctx) -> OpResult<Lowered> {
    let axes = ctx.const_ints(2)?;
    let rank = ctx.rank(0);
    let axes = axes
        .into_iter()
        .map(|a| crate::ops::util::tf_layout_axis(a, rank).map(Expr::int))
        .collect::<OpResult<Vec<_>>>()?;
    let shifts = match ctx.const_ints(1) {
        Ok(s) if s.len() == axes.len() => Expr::Tuple(s.into_iter().map(Expr::int).collect()),
        Ok(_) => return Err("one shift per axis".into()),
        Err(_) => {
            let s = ctx.input_in(1, Layout::Host)?;
            if ctx.rank(1) == Some(0) { Expr::Tuple(vec![s]) } else { Expr::call("tuple", vec![s]) }
        }
    };
    let x = ctx.input_tf(0)?;
    let expr = Expr::call_kw("torch.roll", vec![x, shifts], vec![("dims", Expr::Tuple(axes))]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::fold_and_infer;
    use crate::testing::*;

    /// A constant sliced (and gathered, and padded) at constant bounds is a constant: the mel
    /// filter bank `tf.signal.linear_to_mel_weight_matrix` builds from a `tf.linspace`. A
    /// trained table stays what it was (a position embedding's first rows).
    #[test]
    fn constants_sliced_gathered_and_padded_fold_but_trained_tables_do_not() {
        let mut g = TestGraph::new();
        let table = g.constant("linspace", Tensor::from_f32(vec![2, 3], &[0., 1., 2., 3., 4., 5.]));
        let trained = g.variable("pos/embeddings", weights(&[2, 3]));
        let begin = g.constant("begin", int_tensor(&[2], &[0, 1]));
        let size = g.constant("size", int_tensor(&[2], &[-1, 2]));
        let a = g.op("a", "Slice", &[table, begin, size], &[]);
        let ids = g.constant("ids", int_tensor(&[2, 1], &[1, -2]));
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let b = g.op("b", "GatherV2", &[a, ids, axis], &[]);
        let pads = g.constant("pads", int_tensor(&[3, 2], &[0, 0, 1, 0, 0, 1]));
        let c = g.op("c", "Pad", &[b, pads], &[]);
        let t = g.op("t", "Slice", &[trained, begin, size], &[]);
        let mut g = g.build(&[c, t]);
        fold_and_infer(&mut g).unwrap();
        let value = |name: &str| g.find(name).and_then(|n| g.node(n).value.clone());
        let c = value("c").expect("folded");
        assert_eq!(c.shape, [2, 2, 3]);
        let want = [0., 0., 0., 4., 5., 0., 0., 0., 0., 1., 2., 0.];
        assert_eq!(c.to_f32().unwrap(), want);
        assert!(value("t").is_none());
    }

    #[test]
    fn python_slices() {
        assert_eq!(slice_indices(5, Some(1), None, 1), vec![1, 2, 3, 4]);
        assert_eq!(slice_indices(5, Some(-2), None, 1), vec![3, 4]);
        assert_eq!(slice_indices(5, None, None, -2), vec![4, 2, 0]);
        assert_eq!(slice_indices(5, Some(0), Some(1), 1), vec![0]);
        assert_eq!(slice_indices(5, Some(4), Some(0), 1), Vec::<i64>::new());
        assert_eq!(slice_indices(5, None, None, i64::MIN), vec![4]);
        assert_eq!(slice_indices(5, None, None, i64::MAX), vec![0]);
    }

    /// A strides vector the file declares 2^40 long (its values known only at run time)
    /// was a 2^40-entry allocation; it is a stub with a reason.
    #[test]
    fn a_huge_declared_strides_vector_is_refused() {
        use crate::testing::*;
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let b = g.typed_input("b", &[1 << 40], crate::tensor::DType::I32);
        let y = g.op("slice", "StridedSlice", &[x, b, b, b], &[]);
        assert!(g.lower(&[y]).contains("stub strided_slice"));
    }

    /// A size read from a float constant (Keras' `gaussian_blur`: `int(kernel_size[0])` of
    /// a float vector) folds, so what it sizes is known at conversion.
    #[test]
    fn a_float_constant_slice_folds_into_the_sizes_it_gives() {
        use crate::tensor::Tensor;
        use crate::testing::*;
        let mut g = TestGraph::new();
        let x = g.input("x", &[9]);
        let sizes = g.constant("sizes", Tensor::from_f32(vec![2], &[3.0, 3.0]));
        let (b, e, s) = (int_tensor(&[1], &[1]), int_tensor(&[1], &[2]), int_tensor(&[1], &[1]));
        let (b, e, s) = (g.constant("b", b), g.constant("e", e), g.constant("s", s));
        let mask = [("shrink_axis_mask", int(1))];
        let n = g.op("n", "StridedSlice", &[sizes, b, e, s], &mask);
        let i32_type = crate::proto::attr_value::Value::Type(3); // DT_INT32
        let cast = [("DstT", crate::proto::AttrValue { value: Some(i32_type) })];
        let n = g.op("cast", "Cast", &[n], &cast);
        let minus_one = g.constant("minus_one", int_tensor(&[], &[-1]));
        let shape = g.op("shape", "Pack", &[n, minus_one], &[("N", int(2))]);
        let y = g.op("y", "Reshape", &[x, shape], &[]);
        assert!(g.lower(&[y]).contains("x.reshape(3, -1)"));
    }

    /// A convolution's output (held NCHW) cropped as Keras' `Cropping2D` and NASNet's
    /// adjust path do, `[:, 1:, 1:]` in TF's NHWC, is sliced as it is held: no permutes
    /// around the slice. A shrunk axis still slices in TF's layout.
    #[test]
    fn a_channels_first_value_is_sliced_as_it_is_held() {
        use crate::testing::*;
        let crop = |shrink: i64| {
            after_conv(|g, x| {
                let b = g.constant("b", int_tensor(&[4], &[0, 1, 1, 0]));
                let e = g.constant("e", int_tensor(&[4], &[0, 0, -1, 0]));
                let s = g.constant("s", int_tensor(&[4], &[1, 1, 1, 1]));
                let masks = [
                    ("begin_mask", int(9)),
                    ("end_mask", int(11)),
                    ("shrink_axis_mask", int(shrink)),
                ];
                g.op("crop", "StridedSlice", &[x, b, e, s], &masks)
            })
        };
        insta::assert_snapshot!(crop(0), @r"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x[:, :, 1:, 1:-1].permute(0, 2, 3, 1)
        return x
        ");
        assert!(crop(2).contains("x = x[:, 1, 1:-1]\n"), "{}", crop(2));
    }

    /// Fuzzing found a shape inference listing every index of a 2^40-long axis.
    #[test]
    fn huge_axes_are_sized_without_listing_indices() {
        let n = 1i64 << 40;
        assert_eq!(slice_range(n, Some(1), None, 1), (1, (n - 1) as usize));
        assert_eq!(slice_range(n, None, None, -3), (n - 1, ((n + 2) / 3) as usize));
        assert_eq!(slice_range(i64::MAX, Some(i64::MIN), Some(i64::MAX), i64::MAX), (0, 1));
    }
}
