//! Shape and data movement: padding, concatenation, reshapes, slicing, casts, and the
//! shape arithmetic (Shape/StridedSlice/Pack/ConcatV2) that folding turns into constants.

use crate::ir::{Dim, Node, Partial, ValueInfo};
use crate::ops::contract::{Ctx, Layout, Lowered};
use crate::ops::contract::{OpResult, TranslateError};
use crate::ops::util::{norm_axis, phys_axis, same_as_input, torch_attr};
use crate::ops::{Folded, OpDef, OpInputs, op, passthrough};
use crate::py::Expr;
use crate::tensor::{DType, Tensor, Values};

pub const OPS: &[OpDef] = &[
    passthrough("Identity").infer(same_as_input),
    passthrough("IdentityN"),
    passthrough("StopGradient").infer(same_as_input),
    passthrough("Snapshot").infer(same_as_input),
    passthrough("PreventGradient").infer(same_as_input),
    op("Pad", pad).infer(pad_infer),
    op("PadV2", pad).infer(pad_infer),
    op("MirrorPad", pad).infer(pad_infer),
    op("ConcatV2", concat).infer(concat_infer).fold(concat_fold),
    op("Reshape", reshape).infer(reshape_infer).fold(reshape_fold),
    op("Squeeze", squeeze).infer(squeeze_infer).fold(squeeze_fold),
    op("ExpandDims", expand_dims).infer(expand_infer).fold(expand_fold),
    op("Transpose", transpose).infer(transpose_infer).fold(transpose_fold),
    op("Pack", pack).infer(pack_infer).fold(pack_fold),
    op("Shape", shape_op).infer(shape_infer).fold(shape_fold),
    op("StridedSlice", strided_slice).infer(strided_slice_infer).fold(strided_slice_fold),
    op("Cast", cast).infer(cast_infer).fold(cast_fold),
    op("BroadcastTo", broadcast_to).infer(broadcast_to_infer),
];

fn list(items: Vec<Expr>) -> Expr {
    Expr::List(items)
}

// ---- Pad -------------------------------------------------------------------------------

fn pad_pairs(t: &Tensor, rank: usize) -> OpResult<Vec<(i64, i64)>> {
    let v = t.to_i64().ok_or("paddings must be integers")?;
    if t.shape != [rank, 2] || v.iter().any(|&p| p < 0) {
        return Err(format!("paddings of shape {:?} do not fit rank {rank}", t.shape).into());
    }
    Ok(v.chunks(2).map(|c| (c[0], c[1])).collect())
}

fn pad(ctx: &mut Ctx) -> OpResult<Lowered> {
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let pairs = pad_pairs(ctx.const_input(1)?, rank)?;
    let node = ctx.node();
    let mode = if node.op == "MirrorPad" { node.attr_str("mode")? } else { "CONSTANT".into() };
    let value = if node.op == "PadV2" {
        Some(ctx.const_input(2)?.scalar_f64().ok_or("constant_values must be a scalar")?)
    } else {
        None
    };
    let layout = if rank == 4 { ctx.layout(0)? } else { Layout::Tf };
    // Physical pairs, then F.pad's order: last dim first, trailing unpadded dims dropped.
    let mut phys = vec![(0, 0); rank];
    for (a, p) in pairs.iter().enumerate() {
        phys[if rank == 4 { phys_axis(a, layout) } else { a }] = *p;
    }
    let first = phys.iter().position(|&p| p != (0, 0));
    let Some(first) = first else {
        return Ok(Lowered::Alias(0));
    };
    let mut flat = Vec::new();
    for p in phys[first..].iter().rev() {
        flat.extend([p.0, p.1]);
    }
    let x = ctx.input_in(0, layout)?;
    if mode == "SYMMETRIC" {
        return symmetric_pad(ctx, x, &phys, layout);
    }
    let args = vec![x, Expr::ints(&flat)];
    let mut kwargs = Vec::new();
    match mode.as_str() {
        "CONSTANT" => {
            if let Some(v) = value.filter(|&v| v != 0.0) {
                kwargs.push(("value", Expr::f64(v)));
            }
        }
        "REFLECT" => {
            if rank - first > 3 || first + 2 > rank {
                return Err("REFLECT padding of the batch or channel axes".into());
            }
            kwargs.push(("mode", Expr::str_lit("reflect")));
        }
        other => return Err(format!("MirrorPad mode {other} is not supported").into()),
    }
    Ok(Lowered::Expr { expr: Expr::call_kw("F.pad", args, kwargs), layout })
}

/// SYMMETRIC mirror padding (edge repeated) has no torch mode: gather along each padded axis
/// with a constant index, e.g. pads (2, 1) on size 3 → indices [1, 0, 0, 1, 2, 2].
fn symmetric_pad(ctx: &mut Ctx, x: Expr, phys: &[(i64, i64)], layout: Layout) -> OpResult<Lowered> {
    let shape = ctx.info(0).shape.ok_or("input shape must be known")?;
    let mut expr = x;
    for (d, &(b, a)) in phys.iter().enumerate() {
        if (b, a) == (0, 0) {
            continue;
        }
        let tf_axis = if phys.len() == 4 && layout == Layout::Nchw { [0, 3, 1, 2][d] } else { d };
        let n = shape[tf_axis].ok_or("padded axis must have a static size")? as i64;
        if b > n || a > n {
            return Err(format!("SYMMETRIC padding ({b}, {a}) larger than the axis ({n})").into());
        }
        let idx: Vec<i64> = (0..b).rev().chain(0..n).chain((n - a..n).rev()).collect();
        let buf = ctx.buffer(&format!("pad_index_{d}"), Tensor::from_i64(vec![idx.len()], &idx))?;
        // Nested calls rather than a method chain: ruff lays these out predictably.
        expr = Expr::call("torch.index_select", vec![expr, Expr::int(d as i64), buf]);
    }
    Ok(Lowered::Expr { expr, layout })
}

fn pad_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let pairs = pad_pairs(inp.consts.get(1).copied().flatten()?, shape.len()).ok()?;
    let out = shape.iter().zip(&pairs).map(|(d, p)| d.map(|d| d + (p.0 + p.1) as usize)).collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

// ---- ConcatV2 ----------------------------------------------------------------------------

fn concat(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = ctx.num_inputs() - 1;
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let axis = norm_axis(*ctx.const_ints(n)?.first().ok_or("axis must be a scalar")?, rank)?;
    let mut layout = Layout::Tf;
    if rank == 4 {
        for i in 0..n {
            if !ctx.is_const(i) && ctx.layout(i)? == Layout::Nchw {
                layout = Layout::Nchw;
            }
        }
    }
    let items = (0..n).map(|i| ctx.input_in(i, layout)).collect::<OpResult<Vec<_>>>()?;
    let dim = if rank == 4 { phys_axis(axis, layout) } else { axis } as i64;
    let expr = Expr::call_kw("torch.cat", vec![list(items)], vec![("dim", Expr::int(dim))]);
    Ok(Lowered::Expr { expr, layout })
}

fn concat_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = inp.infos.len().checked_sub(1)?;
    let first = inp.infos.first()?;
    let rank = first.shape.as_ref()?.len();
    let axis = norm_axis(*inp.const_ints(n)?.first()?, rank).ok()?;
    let mut out = first.shape.clone()?;
    let mut total = Some(0usize);
    for info in &inp.infos[..n] {
        let s = info.shape.as_ref()?;
        total = match (total, s.get(axis).copied().flatten()) {
            (Some(t), Some(d)) => Some(t + d),
            _ => None,
        };
        for (i, d) in s.iter().enumerate() {
            if i != axis && out[i].is_none() {
                out[i] = *d;
            }
        }
    }
    out[axis] = total;
    Some(vec![ValueInfo { dtype: first.dtype, shape: Some(out) }])
}

/// Folds 1-D concatenations of (partly) known integer vectors, and constant concats.
fn concat_fold(inp: &OpInputs) -> Option<Folded> {
    let n = inp.infos.len().checked_sub(1)?;
    let all_const = inp.consts[..n].iter().all(|c| c.is_some());
    if all_const {
        let ts: Vec<&Tensor> = inp.consts[..n].iter().map(|c| c.unwrap()).collect();
        let rank = ts[0].rank();
        let axis = norm_axis(*inp.const_ints(n)?.first()?, rank).ok()?;
        if axis != 0
            || ts.iter().any(|t| t.dtype != ts[0].dtype || t.shape[1..] != ts[0].shape[1..])
        {
            return None;
        }
        let mut shape = ts[0].shape.clone();
        shape[0] = ts.iter().map(|t| t.shape[0]).sum();
        let mut data = Vec::new();
        for t in &ts {
            data.extend_from_slice(&t.data);
        }
        return Some(Folded::Tensor(Tensor { dtype: ts[0].dtype, shape, data: data.into() }));
    }
    let mut values = Vec::new();
    for i in 0..n {
        values.extend(inp.dims(i)?);
    }
    Some(Folded::Partial(Partial { scalar: false, values }))
}

// ---- Reshape -------------------------------------------------------------------------------

/// The target shape with at most one `-1`: an unknown entry (dynamic batch) becomes `-1`.
fn reshape_target(inp_target: Vec<Option<i64>>) -> OpResult<Vec<i64>> {
    let unknown = inp_target.iter().filter(|d| d.is_none() || **d == Some(-1)).count();
    if unknown > 1 {
        return Err("reshape target has more than one unknown dimension".into());
    }
    Ok(inp_target.into_iter().map(|d| d.unwrap_or(-1)).collect())
}

/// A target with several run-time entries: `x.reshape(x.shape[0], -1)`. The values whose
/// sizes are read are extra inputs of the node (see `passes::fold`).
fn reshape_symbolic(ctx: &mut Ctx, p: &Partial) -> OpResult<Lowered> {
    let args = size_exprs(ctx, p)?;
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("reshape", args), layout: Layout::Tf })
}

/// Python expressions for a size vector known in part: numbers, and `v.shape[k]` for sizes
/// read from values at run time (those values are extra inputs of the node).
pub(crate) fn size_exprs(ctx: &mut Ctx, p: &Partial) -> OpResult<Vec<Expr>> {
    let mut args = Vec::new();
    for d in &p.values {
        args.push(match *d {
            Dim::Known(v) => Expr::int(v),
            Dim::Of(v, axis) => {
                let slot = ctx.slot_of(v).ok_or("a run-time reshape size has no source")?;
                let val = ctx.input(slot)?;
                let axis =
                    if ctx.rank(slot) == Some(4) { phys_axis(axis, val.layout) } else { axis };
                val.expr.attr("shape").index(Expr::int(axis as i64))
            }
            Dim::Unknown => return Err("a size is computed at run time".into()),
        });
    }
    Ok(args)
}

/// BroadcastTo(x, shape) = `x.expand(...)` (numpy broadcasting, as TF).
fn broadcast_to(ctx: &mut Ctx) -> OpResult<Lowered> {
    let args = match ctx.partial(1) {
        Some(p) => size_exprs(ctx, p)?,
        None => ctx.const_ints(1)?.into_iter().map(Expr::int).collect(),
    };
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("expand", args), layout: Layout::Tf })
}

fn broadcast_to_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let dims = inp.ints(1)?;
    let shape = dims.into_iter().map(|d| d.filter(|&d| d >= 0).map(|d| d as usize)).collect();
    Some(vec![ValueInfo { dtype: inp.infos.first()?.dtype, shape: Some(shape) }])
}

fn reshape(ctx: &mut Ctx) -> OpResult<Lowered> {
    if let Some(p) = ctx.partial(1) {
        return reshape_symbolic(ctx, p);
    }
    let target = match ctx.const_input(1) {
        Ok(t) => t.to_i64().ok_or("shape must be integers")?.into_iter().map(Some).collect(),
        Err(_) => {
            let info = ctx.out_info(0);
            let shape = info.shape.ok_or("reshape target is computed at run time")?;
            // Shape inference resolved the target from partial values.
            shape.into_iter().map(|d| d.map(|d| d as i64)).collect()
        }
    };
    let mut target = reshape_target(target)?;
    let x = ctx.input_tf(0)?;
    // `[N, C]` → `[N, 1, 1, C]` (squeeze-and-excitation): with H = W = 1 the NCHW tensor has
    // the same memory order, so produce NCHW directly and spare the next conv a permute.
    let layout = match target.as_slice() {
        [n, 1, 1, c] if ctx.rank(0) == Some(2) => {
            target = vec![*n, *c, 1, 1];
            Layout::Nchw
        }
        _ => Layout::Tf,
    };
    let expr = x.method("reshape", target.iter().map(|&d| Expr::int(d)).collect());
    Ok(Lowered::Expr { expr, layout })
}

fn reshape_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let target = inp.ints(1)?;
    let numel: Option<usize> = x.shape.as_ref().and_then(|s| s.iter().copied().product());
    let known: i64 = target.iter().filter_map(|d| d.filter(|&d| d >= 0)).product();
    let unknown = target.iter().filter(|d| d.is_none() || **d == Some(-1)).count();
    let shape = target
        .iter()
        .map(|d| match d {
            Some(d) if *d >= 0 => Some(*d as usize),
            _ if unknown == 1 && known > 0 => numel.map(|n| n / known as usize),
            _ => None,
        })
        .collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(shape) }])
}

fn reshape_fold(inp: &OpInputs) -> Option<Folded> {
    let t = inp.consts.first().copied().flatten()?;
    let target = inp.const_ints(1)?;
    let known: i64 = target.iter().filter(|&&d| d >= 0).product();
    let shape: Option<Vec<usize>> = target
        .iter()
        .map(|&d| {
            if d >= 0 {
                Some(d as usize)
            } else if known > 0 {
                Some(t.numel() / known as usize)
            } else {
                None
            }
        })
        .collect();
    let shape = shape?;
    (crate::tensor::checked_numel(&shape) == Some(t.numel()))
        .then(|| Folded::Tensor(t.reshaped(shape)))
}

// ---- Squeeze / ExpandDims ----------------------------------------------------------------

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
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn squeeze(ctx: &mut Ctx) -> OpResult<Lowered> {
    let shape = ctx.info(0).shape.ok_or(TranslateError::UnknownRank)?;
    let axes = squeeze_axes(ctx.node(), &shape)?;
    if axes.is_empty() {
        return Ok(Lowered::Alias(0));
    }
    let layout = crate::ops::util::layout_removing(ctx, &axes, false)?;
    let x = ctx.input_in(0, layout)?;
    let mut dims: Vec<i64> = axes.iter().map(|&a| phys_axis(a, layout) as i64).collect();
    dims.sort_unstable();
    let dim = if dims.len() == 1 { Expr::int(dims[0]) } else { Expr::ints(&dims) };
    Ok(Lowered::Expr { expr: x.method("squeeze", vec![dim]), layout: Layout::Tf })
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
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let d = expand_axis(rank, *ctx.const_ints(1)?.first().ok_or("dim must be a scalar")?)?;
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("unsqueeze", vec![Expr::int(d as i64)]), layout: Layout::Tf })
}

fn expand_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let mut shape = x.shape.clone()?;
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

// ---- Transpose -------------------------------------------------------------------------------

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
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let perm = perm_of(ctx.const_ints(1)?, rank)?;
    let layout = if rank == 4 { ctx.layout(0)? } else { Layout::Tf };
    let x = ctx.input_in(0, layout)?;
    // Compose with the layout so that an NCHW input needs one permute, not two.
    let phys: Vec<i64> =
        perm.iter().map(|&p| if rank == 4 { phys_axis(p, layout) } else { p } as i64).collect();
    if phys.iter().enumerate().all(|(i, &p)| i as i64 == p) {
        return Ok(Lowered::Relabel(0, Layout::Tf));
    }
    Ok(Lowered::Expr {
        expr: x.method("permute", phys.into_iter().map(Expr::int).collect()),
        layout: Layout::Tf,
    })
}

fn transpose_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let perm = perm_of(inp.const_ints(1)?, shape.len()).ok()?;
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(perm.iter().map(|&p| shape[p]).collect()) }])
}

fn transpose_fold(inp: &OpInputs) -> Option<Folded> {
    let t = inp.consts.first().copied().flatten()?;
    let perm = perm_of(inp.const_ints(1)?, t.rank()).ok()?;
    Some(Folded::Tensor(t.permute(&perm)))
}

// ---- Pack --------------------------------------------------------------------------------

fn pack(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = ctx.num_inputs();
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let axis = norm_axis(ctx.node().attr_int_or("axis", 0)?, rank + 1)?;
    let items = (0..n).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
    let expr =
        Expr::call_kw("torch.stack", vec![list(items)], vec![("dim", Expr::int(axis as i64))]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn pack_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let first = inp.infos.first()?;
    let mut shape = first.shape.clone()?;
    let axis = norm_axis(inp.node.attr_int_or("axis", 0).ok()?, shape.len() + 1).ok()?;
    shape.insert(axis, Some(inp.infos.len()));
    Some(vec![ValueInfo { dtype: first.dtype, shape: Some(shape) }])
}

/// Packs scalars into a vector (shape arithmetic), known or partly known.
fn pack_fold(inp: &OpInputs) -> Option<Folded> {
    let mut values = Vec::new();
    for i in 0..inp.infos.len() {
        let v = inp.dims(i)?;
        if v.len() != 1 || inp.infos[i].shape.as_ref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        values.extend(v);
    }
    int_vector(inp.infos.first()?.dtype?, values, false)
}

// ---- Shape -------------------------------------------------------------------------------

fn out_int_dtype(node: &Node) -> DType {
    node.attr_type("out_type").unwrap_or(DType::I32)
}

fn shape_op(ctx: &mut Ctx) -> OpResult<Lowered> {
    let x = ctx.input_tf(0)?;
    let dtype = out_int_dtype(ctx.node()).torch_name().unwrap_or("int32");
    let expr =
        Expr::call_kw("torch.tensor", vec![x.attr("shape")], vec![("dtype", torch_attr(dtype))]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
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

// ---- StridedSlice ----------------------------------------------------------------------------

/// One entry of a StridedSlice index after expanding the ellipsis (tf-formats.md §4.6).
#[derive(Debug, Clone, PartialEq)]
enum Index {
    Full,
    At(i64),
    Range(Option<i64>, Option<i64>, i64),
    NewAxis,
}

fn slice_spec(
    node: &Node,
    rank: usize,
    begin: &[i64],
    end: &[i64],
    strides: &[i64],
) -> OpResult<Vec<Index>> {
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
            entries.push(Index::At(begin[i]));
        } else {
            if strides[i] == 0 {
                return Err("stride 0".into());
            }
            let b = (!bit(bm, i)).then_some(begin[i]);
            let e = (!bit(em, i)).then_some(end[i]);
            entries.push(Index::Range(b, e, strides[i]));
        }
    }
    let consumed = entries.iter().filter(|e| **e != Index::NewAxis).count();
    let fill =
        rank.checked_sub(consumed).ok_or("slice has more entries than the input has axes")?;
    let at = ellipsis_at.unwrap_or(entries.len());
    entries.splice(at..at, std::iter::repeat_n(Index::Full, fill));
    Ok(entries)
}

/// Python slice semantics: the indices `range(b, e, s)` selects in a dim of size `n`.
fn slice_indices(n: i64, b: Option<i64>, e: Option<i64>, s: i64) -> Vec<i64> {
    let norm = |v: i64, lo: i64, hi: i64| if v < 0 { (v + n).max(lo) } else { v.min(hi) };
    let mut out = Vec::new();
    if s > 0 {
        let (mut i, e) = (b.map_or(0, |b| norm(b, 0, n)), e.map_or(n, |e| norm(e, 0, n)));
        while i < e {
            out.push(i);
            i += s;
        }
    } else {
        let (mut i, e) =
            (b.map_or(n - 1, |b| norm(b, -1, n - 1)), e.map_or(-1, |e| norm(e, -1, n - 1)));
        while i > e {
            out.push(i);
            i += s;
        }
    }
    out
}

fn slice_consts(inp: &OpInputs) -> Option<(Vec<i64>, Vec<i64>, Vec<i64>)> {
    Some((inp.const_ints(1)?, inp.const_ints(2)?, inp.const_ints(3)?))
}

fn strided_slice(ctx: &mut Ctx) -> OpResult<Lowered> {
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let (b, e, s) = (ctx.const_ints(1)?, ctx.const_ints(2)?, ctx.const_ints(3)?);
    let spec = slice_spec(ctx.node(), rank, &b, &e, &s)?;
    let shape = ctx.info(0).shape.unwrap_or_default();
    let mut parts = Vec::new();
    // Negative strides: torch has none, so such axes are flipped first and sliced forward.
    let mut flips = Vec::new();
    let mut dim = 0;
    let int = |v: i64| Some(Expr::int(v));
    for idx in &spec {
        parts.push(match idx {
            Index::Full => Expr::full_slice(),
            Index::NewAxis => Expr::none(),
            Index::At(i) => Expr::int(*i),
            Index::Range(b, e, s) if *s < 0 => {
                let n = shape
                    .get(dim)
                    .copied()
                    .flatten()
                    .ok_or("a negative stride needs a static axis")?;
                let picked = slice_indices(n as i64, *b, *e, *s);
                flips.push(dim as i64);
                match (picked.first(), picked.last()) {
                    (Some(&first), Some(&last)) => {
                        let (start, stop) = (n as i64 - 1 - first, n as i64 - last);
                        let step = if -s == 1 { None } else { int(-s) };
                        Expr::slice(int(start), int(stop), step)
                    }
                    _ => Expr::slice(int(0), int(0), None),
                }
            }
            Index::Range(b, e, s) => {
                let step = if *s != 1 { int(*s) } else { None };
                Expr::slice(b.map(Expr::int), e.map(Expr::int), step)
            }
        });
        if *idx != Index::NewAxis {
            dim += 1;
        }
    }
    while parts.last().is_some_and(|p| *p == Expr::full_slice()) {
        parts.pop();
    }
    let mut x = ctx.input_tf(0)?;
    if !flips.is_empty() {
        x = x.method("flip", vec![Expr::ints(&flips)]);
    }
    if parts.is_empty() {
        return Ok(Lowered::Expr { expr: x, layout: Layout::Tf });
    }
    Ok(Lowered::Expr { expr: x.index(Expr::index_of(parts)), layout: Layout::Tf })
}

fn strided_slice_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let (b, e, s) = slice_consts(inp)?;
    let spec = slice_spec(inp.node, shape.len(), &b, &e, &s).ok()?;
    let mut out = Vec::new();
    let mut dim = 0;
    for idx in spec {
        match idx {
            Index::NewAxis => out.push(Some(1)),
            Index::At(_) => dim += 1,
            Index::Full => {
                out.push(shape[dim]);
                dim += 1;
            }
            Index::Range(b, e, s) => {
                out.push(shape[dim].map(|n| slice_indices(n as i64, b, e, s).len()));
                dim += 1;
            }
        }
    }
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// Folds slices of 1-D (partly) known integer vectors: the shape arithmetic of TF graphs.
fn strided_slice_fold(inp: &OpInputs) -> Option<Folded> {
    if let Some(t) = inp.consts.first().copied().flatten()
        && t.rank() > 1
    {
        return slice_constant(inp, t).map(Folded::Tensor);
    }
    let values = inp.dims(0)?;
    if inp.infos.first()?.shape.as_ref()?.len() != 1 {
        return None;
    }
    let (b, e, s) = slice_consts(inp)?;
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
    int_vector(inp.infos[0].dtype?, picked, scalar)
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
    debug_assert_eq!(offsets.len(), numel);
    let values = match t.values()? {
        Values::F(f) => Values::F(offsets.iter().map(|&o| f[o]).collect()),
        Values::I(i) => Values::I(offsets.iter().map(|&o| i[o]).collect()),
    };
    Tensor::with_values_like(t.dtype, shape, &values)
}

/// A folded integer vector (or scalar): a constant when every entry is known.
fn int_vector(dtype: DType, values: Vec<Dim>, scalar: bool) -> Option<Folded> {
    let known: Option<Vec<i64>> = values.iter().map(|d| d.known()).collect();
    match known {
        Some(v) => {
            let shape = if scalar { vec![] } else { vec![v.len()] };
            Tensor::with_values_like(dtype, shape, &Values::I(v)).map(Folded::Tensor)
        }
        None => Some(Folded::Partial(Partial { scalar, values })),
    }
}

// ---- Cast --------------------------------------------------------------------------------

fn cast(ctx: &mut Ctx) -> OpResult<Lowered> {
    let dst = ctx.node().attr_type("DstT")?;
    let name = dst.torch_name().ok_or_else(|| format!("cast to {dst:?}"))?;
    let x = ctx.input(0)?;
    let expr = x.expr.method("to", vec![torch_attr(name)]);
    Ok(Lowered::Expr { expr, layout: x.layout })
}

fn cast_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    Some(vec![ValueInfo { dtype: inp.node.attr_type("DstT").ok(), shape: x.shape.clone() }])
}

fn cast_fold(inp: &OpInputs) -> Option<Folded> {
    let dst = inp.node.attr_type("DstT").ok()?;
    if let Some(t) = inp.consts.first().copied().flatten() {
        let v = match (t.values()?, dst.is_float()) {
            (Values::F(f), false) => Values::I(f.into_iter().map(|x| x.trunc() as i64).collect()),
            (Values::I(i), true) => Values::F(i.into_iter().map(|x| x as f64).collect()),
            (v, _) => v,
        };
        return Tensor::with_values_like(dst, t.shape.clone(), &v).map(Folded::Tensor);
    }
    let p = inp.partials.first().copied().flatten()?;
    dst.is_int().then(|| Folded::Partial(p.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_slices() {
        assert_eq!(slice_indices(5, Some(1), None, 1), vec![1, 2, 3, 4]);
        assert_eq!(slice_indices(5, Some(-2), None, 1), vec![3, 4]);
        assert_eq!(slice_indices(5, None, None, -2), vec![4, 2, 0]);
        assert_eq!(slice_indices(5, Some(0), Some(1), 1), vec![0]);
    }
}

#[cfg(test)]
mod snapshots {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    fn after_conv(
        f: impl FnOnce(&mut TestGraph, crate::ir::ValueRef) -> crate::ir::ValueRef,
    ) -> String {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 4, 5, 3]);
        let w = g.constant("w", weights(&[1, 1, 3, 2]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("conv", "Conv2D", &[x, w], &pad);
        let z = f(&mut g, y);
        g.lower(&[z]).split("---\n").nth(1).unwrap_or_default().to_string()
    }

    #[test]
    fn pads_are_remapped_to_nchw() {
        let p = |g: &mut TestGraph, y, op: &str, mode: Option<&str>| {
            let c = g.constant("p", int_tensor(&[4, 2], &[0, 0, 1, 2, 3, 0, 0, 0]));
            let attrs: Vec<_> = mode.map(|m| ("mode", string(m))).into_iter().collect();
            g.op("pad", op, &[y, c], &attrs)
        };
        assert_snapshot!(after_conv(|g, y| p(g, y, "Pad", None)), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.pad(x, (3, 0, 1, 2)).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(after_conv(|g, y| p(g, y, "MirrorPad", Some("REFLECT"))), @r#"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.pad(x, (3, 0, 1, 2), mode="reflect").permute(0, 2, 3, 1)
        return x
        "#);
        assert_snapshot!(after_conv(|g, y| p(g, y, "MirrorPad", Some("SYMMETRIC"))), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = torch.index_select(
        torch.index_select(x, 2, self.pad_pad_index_2), 3, self.pad_pad_index_3
        )
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn concat_on_channels_stays_nchw() {
        assert_snapshot!(after_conv(|g, y| {
            let r = g.op("relu", "Relu", &[y], &[]);
            let a = g.constant("axis", int_tensor(&[], &[-1]));
            g.op("cat", "ConcatV2", &[y, r, a], &[("N", int(2))])
        }), @"
        x = image.permute(0, 3, 1, 2)
        conv = self.conv(x)
        x = F.relu(conv)
        x = torch.cat([conv, x], dim=1).permute(0, 2, 3, 1)
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
        // Keras' Reshape layer: Pack(StridedSlice(Shape(x), 0), 1, 1, C)
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
        x = conv.mean((2, 3)).reshape(-1, 2, 1, 1)
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
        conv = self.conv(x)
        x = conv.permute(0, 2, 3, 1).reshape(conv.shape[0], -1)
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

    #[test]
    fn pack_of_tensors() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[-1, 3]);
        let b = g.input("b", &[-1, 3]);
        let p = g.op("stack", "Pack", &[a, b], &[("axis", int(1)), ("N", int(2))]);
        let _ = Tensor::from_f32(vec![], &[0.0]);
        assert_snapshot!(g.lower(&[p]), @"
        ---
        x = torch.stack([a, b], dim=1)
        return x
        ");
    }
}
