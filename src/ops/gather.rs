//! Indexing and repetition: GatherV2 (a constant table → `nn.Embedding`), Tile and the
//! synthetic repeat-interleave,
//! Split/SplitV/Unpack, ArgMax/ArgMin, OneHot, Fill, Range, BatchMatMul.

use crate::ir::fused::{self, Fused};
use crate::ir::{Dim, ValueInfo};
use crate::ops::contract::{Access, Ctx, Layout, Lowered};
use crate::ops::contract::{OpResult, TranslateError};
use crate::ops::sizes::{scalar, sizes};
use crate::ops::util::{norm_axis, output_count, same_as_input, tf_layout_axis, torch_attr};
use crate::ops::{Folded, OpDef, OpInputs, op};
use crate::py::{BinOp, Expr, Lit};
use crate::tensor::{DType, Tensor, Values};
use crate::weights::Weight;

pub const OPS: &[OpDef] = &[
    op("GatherV2", gather).infer(gather_infer).fold(gather_fold),
    op("Tile", tile).infer(tile_infer).neutral(&[1], 1.0),
    op(fused::REPEAT_INTERLEAVE, repeat_interleave).infer(repeat_interleave_infer),
    op("Split", split).infer(split_infer).fold(split_fold),
    op("SplitV", split).infer(split_infer).fold(split_fold),
    op("Unpack", unpack).infer(unpack_infer).fold(split_fold),
    op("ArgMax", |c| arg_reduce(c, "argmax")).infer(arg_infer),
    op("ArgMin", |c| arg_reduce(c, "argmin")).infer(arg_infer),
    op("OneHot", one_hot).infer(one_hot_infer),
    // Produced by passes::fuse_wrap.
    op(fused::WRAP_NEGATIVE, wrap_negative).infer(same_as_input),
    op("Fill", fill).infer(fill_infer).fold(fill_fold),
    op("ZerosLike", |c| like(c, "zeros_like")).infer(same_as_input),
    op("OnesLike", |c| like(c, "ones_like")).infer(same_as_input),
    op("Range", range).infer(range_infer).fold(range_fold),
    op("BatchMatMulV2", batch_matmul).infer(batch_matmul_infer).bias_slot(2),
    op("BatchMatMulV3", batch_matmul).infer(batch_matmul_infer).bias_slot(2),
    op("Einsum", einsum).infer(einsum_infer).bias_slot(2),
    op("TopKV2", top_k).infer(top_k_infer),
    op("Where", where_indices),
];

fn scalar_int(ctx: &Ctx, i: usize, what: &str) -> OpResult<i64> {
    Ok(ctx.const_ints(i)?.first().copied().ok_or_else(|| format!("{what} must be a scalar"))?)
}

/// Output info when input `i`'s shape is known: computed by `f`.
fn shape_of(inp: &OpInputs, i: usize) -> Option<Vec<Option<usize>>> {
    inp.infos.get(i)?.shape.clone()
}

/// `batch_dims`, made non-negative against the indices' rank.
fn batch_dims(node: &crate::ir::Node, ids_rank: usize) -> OpResult<usize> {
    let b = node.attr_int_or("batch_dims", 0)?;
    let b = if b < 0 { b + ids_rank as i64 } else { b };
    usize::try_from(b)
        .ok()
        .filter(|&b| b <= ids_rank)
        .ok_or_else(|| format!("batch_dims {b}").into())
}

/// GatherV2 with batch dimensions: each batch entry picks from its own slice. Along the last
/// axis with indices of the params' rank (`take_along_axis`, DeBERTa's relative positions)
/// that is `torch.gather`; otherwise the batch axes (and any axes between them and the gather
/// axis) are indexed with aranges.
fn batched_gather(ctx: &mut Ctx, b: usize, axis: usize, rank: usize) -> OpResult<Lowered> {
    let ids_rank = ctx.rank(1).ok_or("indices rank must be known")?;
    let params = ctx.input_tf(0)?;
    // `torch.gather` takes int64 indices only.
    let ids = match ctx.info(1).dtype {
        Some(DType::I64) => ctx.input_tf(1)?,
        _ => ctx.input_tf(1)?.method("long", vec![]),
    };
    let between = axis.checked_sub(b).ok_or("batch_dims past the gather axis")?;
    if between > 0 {
        // Axes between the batch axes and the gather axis are indexed by aranges too, the
        // indices given room for them: `params[b0, b1, p2, ids[:, :, None]]`.
        let dims = ids_rank + between;
        let mut index: Vec<Expr> = (0..axis).map(|i| axis_range(&params, i, dims)).collect();
        let mut room = vec![Expr::full_slice(); b];
        room.extend(std::iter::repeat_n(Expr::none(), between));
        index.push(ids.index(Expr::index_of(room)));
        return Ok(Lowered::Expr { expr: params.index(Expr::index_of(index)), layout: Layout::Tf });
    }
    if axis + 1 == rank && ids_rank == rank {
        let expr = Expr::call("torch.gather", vec![params, Expr::int(axis as i64), ids]);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    Ok(Lowered::Expr { expr: batch_indexed(params, ids, b, ids_rank), layout: Layout::Tf })
}

/// `params[arange(n0)[:, None, ..], ..., ids]`: batch entry `i` picks from `params[i]` along
/// the axis right after the `b` batch axes.
fn batch_indexed(params: Expr, ids: Expr, b: usize, ids_rank: usize) -> Expr {
    let mut index: Vec<Expr> = (0..b).map(|i| axis_range(&params, i, ids_rank)).collect();
    index.push(ids);
    params.index(Expr::index_of(index))
}

/// `torch.arange(x.shape[i])` shaped to run along axis `i` of `dims` broadcast axes.
fn axis_range(x: &Expr, i: usize, dims: usize) -> Expr {
    let mut shape = vec![Expr::int(1); dims];
    shape[i] = Expr::int(-1);
    let n = x.clone().attr("shape").index(Expr::int(i as i64));
    Expr::call("torch.arange", vec![n]).method("reshape", shape)
}

fn gather(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Some(rank) = ctx.rank(0) else { return gather_unranked(ctx) };
    let axis = norm_axis(scalar_int(ctx, 2, "axis")?, rank)?;
    if ctx.node().attr_int_or("batch_dims", 0)? != 0 {
        let ids_rank = ctx.rank(1).ok_or("indices rank must be known")?;
        let b = batch_dims(ctx.node(), ids_rank)?;
        if b > 0 {
            return batched_gather(ctx, b, axis, rank);
        }
    }
    if axis == 0 && rank == 2 && ctx.is_const(0) {
        // A lookup in a constant table is an embedding layer.
        let table = ctx.const_input(0)?.clone();
        let ctor = Expr::call(
            "nn.Embedding",
            vec![Expr::int(table.shape[0] as i64), Expr::int(table.shape[1] as i64)],
        );
        let params = vec![("weight", Weight::plain(table.clone()))];
        if let Some(index) = first_rows(ctx, table.shape[0]) {
            // Every position's vector in order: the table itself, no lookup of a stored
            // `arange` (ViT's and SigLIP's learned position embeddings).
            let call: crate::ops::contract::LayerUse = Box::new(move |layer: Expr| {
                let weight = layer.attr("weight");
                if index.is_empty() { weight } else { weight.index(Expr::index_of(index)) }
            });
            return Ok(Lowered::LayerWith { ctor, params, call, layout: Layout::Tf });
        }
        let ids = index_ids(ctx)?;
        return Ok(Lowered::Layer {
            post: vec![],
            ctor,
            params,
            args: vec![ids],
            layout: Layout::Tf,
        });
    }
    let params = ctx.input_tf(0)?;
    let ids = index_ids(ctx)?;
    let mut index = vec![Expr::full_slice(); axis];
    index.push(ids);
    Ok(Lowered::Expr { expr: params.index(Expr::index_of(index)), layout: Layout::Tf })
}

/// The indices (input 1) as a lookup or an index takes them: int32 and int64 as they are
/// (`self.token_embedding(token_ids)`), other integers widened (`.long()`).
fn index_ids(ctx: &mut Ctx) -> OpResult<Expr> {
    let ids = ctx.input_tf(1)?;
    Ok(match ctx.info(1).dtype {
        Some(DType::I32 | DType::I64) => ids,
        _ => ids.method("long", vec![]),
    })
}

/// When the indices are the constant `0, 1, .., k - 1` (of a table of `rows` rows), shaped
/// `[1, .., 1, k]`: the index that reads those rows off the table (`[None, :k]`; none for
/// the whole table under no new axis).
fn first_rows(ctx: &Ctx, rows: usize) -> Option<Vec<Expr>> {
    let ids = ctx.const_input(1).ok()?;
    let (&k, leading) = ids.shape.split_last()?;
    let values = ids.to_i64()?;
    let in_order = values.iter().enumerate().all(|(i, &v)| i64::try_from(i) == Ok(v));
    if !in_order || k == 0 || k > rows || leading.iter().any(|&d| d != 1) {
        return None;
    }
    let mut index = vec![Expr::none(); leading.len()];
    if k < rows {
        index.push(Expr::slice(None, Some(Expr::int(k as i64)), None));
    }
    Some(index)
}

/// Params of unknown rank: the axis counted from the front (`x[:, ids]`) or from the end
/// (`x[..., ids, :]`) needs no rank.
fn gather_unranked(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.node().attr_int_or("batch_dims", 0)? != 0 {
        return Err("params rank must be known for batch_dims".into());
    }
    let axis = tf_layout_axis(scalar_int(ctx, 2, "axis")?, None)?;
    let params = ctx.input_tf(0)?;
    let ids = index_ids(ctx)?;
    let index = if axis >= 0 {
        let mut index = vec![Expr::full_slice(); axis as usize];
        index.push(ids);
        index
    } else {
        let mut index = vec![Expr::Lit(Lit::Ellipsis), ids];
        index.extend(std::iter::repeat_n(Expr::full_slice(), (-axis - 1) as usize));
        index
    };
    Ok(Lowered::Expr { expr: params.index(Expr::index_of(index)), layout: Layout::Tf })
}

fn gather_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let p = shape_of(inp, 0)?;
    let ids = shape_of(inp, 1)?;
    let axis = norm_axis(*inp.const_ints(2)?.first()?, p.len()).ok()?;
    // The batch axes are the params' (and the indices'): counted once.
    let b = batch_dims(inp.node, ids.len()).ok()?.min(axis);
    let mut out = p[..axis].to_vec();
    out.extend(&ids[b..]);
    out.extend(&p[axis + 1..]);
    Some(vec![ValueInfo { dtype: inp.infos[0].dtype, shape: Some(out) }])
}

/// The most elements of a constant table a gather of constant indices is folded from: a
/// mel filter bank's band edges, not a model's embedding table (which stays a layer).
const MAX_FOLDED_TABLE: usize = 4096;

/// Gathers from a (partly) known integer vector: shape arithmetic (`tf.tensordot` picks the
/// free dimensions out of `Shape(x)`); and small constant tables at constant indices.
fn gather_fold(inp: &OpInputs) -> Option<Folded> {
    if let (Some(table), Some(idx)) =
        (inp.consts.first().copied().flatten(), inp.consts.get(1).copied().flatten())
        && (table.rank() > 1 || !table.dtype.is_int())
    {
        return gather_constant(inp, table, idx).map(Folded::Tensor);
    }
    let values = inp.dims(0)?;
    if inp.infos.first()?.shape.as_ref()?.len() != 1 || *inp.const_ints(2)?.first()? != 0 {
        return None;
    }
    let idx = inp.consts.get(1).copied().flatten()?;
    let picked: Vec<crate::ir::Dim> = idx
        .to_i64()?
        .iter()
        .map(|&i| {
            let i = if i < 0 { i + values.len() as i64 } else { i };
            usize::try_from(i).ok().and_then(|i| values.get(i).copied())
        })
        .collect::<Option<_>>()?;
    let dtype = inp.infos[0].dtype?;
    let scalar = idx.rank() == 0;
    let known: Option<Vec<i64>> = picked.iter().map(|d| d.known()).collect();
    match known {
        Some(v) => {
            let shape = if scalar { vec![] } else { vec![v.len()] };
            Tensor::with_values_like(dtype, shape, &Values::I(v)).map(Folded::Tensor)
        }
        None => Some(Folded::Partial(crate::ir::Partial { scalar, values: picked })),
    }
}

/// `table` gathered at `idx` along a constant axis (no batch axes), for a small table.
fn gather_constant(inp: &OpInputs, table: &Tensor, idx: &Tensor) -> Option<Tensor> {
    // A trained table (Swin's relative position biases) stays a layer.
    if inp.reads_variable()
        || table.numel() > MAX_FOLDED_TABLE
        || batch_dims(inp.node, idx.rank()).ok()? != 0
    {
        return None;
    }
    let axis = norm_axis(*inp.const_ints(2)?.first()?, table.rank()).ok()?;
    let n = i64::try_from(table.shape[axis]).ok()?;
    let picked: Vec<i64> = idx
        .to_i64()?
        .into_iter()
        .map(|i| Some(if i < 0 { i + n } else { i }).filter(|i| (0..n).contains(i)))
        .collect::<Option<_>>()?;
    let mut axes: Vec<Vec<i64>> = table.shape.iter().map(|&d| (0..d as i64).collect()).collect();
    let mut flat = table.shape.clone();
    flat[axis] = picked.len();
    axes[axis] = picked;
    let mut shape = table.shape[..axis].to_vec();
    shape.extend(&idx.shape);
    shape.extend(&table.shape[axis + 1..]);
    Some(super::slice::pick(table, &axes, flat)?.reshaped(shape))
}

/// `x.repeat(multiples)`; multiples may be read at run time (a token tiled to the batch).
fn tile(ctx: &mut Ctx) -> OpResult<Lowered> {
    let reps = sizes(ctx, 1)?.args();
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("repeat", reps), layout: Layout::Tf })
}

fn tile_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let s = shape_of(inp, 0)?;
    // The rank is the input's, whatever is known of the multiples.
    let reps = inp.sizes(1).unwrap_or_else(|| vec![None; s.len()]);
    if reps.len() != s.len() {
        return None;
    }
    let out = s.iter().zip(&reps).map(|(d, r)| d.and_then(|d| d.checked_mul((*r)?))).collect();
    Some(vec![ValueInfo { dtype: inp.infos[0].dtype, shape: Some(out) }])
}

/// `x.repeat_interleave(k, dim=d)`, in whatever layout `x` is held (the axis mapped to it).
fn repeat_interleave(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::RepeatInterleave { axis, repeats } = *ctx.fused()? else {
        return Err("not a repeat".into());
    };
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let x = ctx.input(0)?;
    let layout = if x.layout == Layout::Host { Layout::Tf } else { x.layout };
    let expr = ctx.input_in(0, layout)?;
    let dim = crate::ops::util::phys_axis(axis, layout, rank);
    let args = vec![Expr::int(repeats)];
    let expr = expr.method_kw("repeat_interleave", args, vec![("dim", Expr::int(dim as i64))]);
    Ok(Lowered::Expr { expr, layout })
}

fn repeat_interleave_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let Some(Fused::RepeatInterleave { axis, repeats }) = inp.node.fused else { return None };
    let mut s = shape_of(inp, 0)?;
    let k = usize::try_from(repeats).ok()?;
    let d = s.get_mut(axis)?;
    *d = d.and_then(|d| d.checked_mul(k));
    Some(vec![ValueInfo { dtype: inp.infos[0].dtype, shape: Some(s) }])
}

/// Split (split_dim, value) and SplitV (value, size_splits, split_dim).
fn split_args(op: &str) -> (usize, usize) {
    if op == "Split" { (1, 0) } else { (0, 2) }
}

fn split(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (v, a) = split_args(&ctx.node().op);
    let dim = tf_layout_axis(scalar_int(ctx, a, "split_dim")?, ctx.rank(v))?;
    // The axis's size, where the rank (and so `dim` >= 0) and the size are known.
    let axis_size = ctx.info(v).shape.and_then(|s| s.get(usize::try_from(dim).ok()?).copied()?);
    let sizes = if ctx.node().op == "SplitV" {
        let Ok(s) = ctx.const_ints(1) else {
            // Sizes computed at run time are taken as they come: TF's one `-1` ("the rest")
            // is not resolved there, and torch.split rejects it with a clear error.
            let sizes = sizes(ctx, 1)?.tuple();
            let x = ctx.input_tf(v)?;
            let expr = Expr::call_kw("torch.split", vec![x, sizes], vec![("dim", Expr::int(dim))]);
            return Ok(Lowered::Multi { expr, layout: Layout::Tf });
        };
        if s.contains(&-1) {
            let total = axis_size.ok_or("split size -1 needs a static axis")?;
            let known: i64 = s.iter().filter(|&&x| x >= 0).sum();
            s.iter().map(|&x| if x < 0 { total as i64 - known } else { x }).collect()
        } else {
            s
        }
    } else {
        let n = output_count(ctx.node(), "num_split")?;
        let Some(total) = axis_size else {
            // TF requires equal parts, which is what `chunk` makes of a size it divides.
            let x = ctx.input_tf(v)?;
            let expr =
                x.method_kw("chunk", vec![Expr::int(n as i64)], vec![("dim", Expr::int(dim))]);
            return Ok(Lowered::Multi { expr, layout: Layout::Tf });
        };
        if total % n != 0 {
            return Err(format!("cannot split {total} into {n} parts").into());
        }
        vec![(total / n) as i64; n]
    };
    let x = ctx.input_tf(v)?;
    let expr = Expr::call_kw(
        "torch.split",
        vec![x, Expr::List(sizes.iter().map(|&s| Expr::int(s)).collect())],
        vec![("dim", Expr::int(dim))],
    );
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

fn split_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (v, a) = split_args(&inp.node.op);
    let Some(s) = shape_of(inp, v) else {
        // Still `num_split` outputs: what `forward` unpacks.
        let n = output_count(inp.node, "num_split").ok()?;
        return Some(vec![ValueInfo { dtype: inp.infos.get(v)?.dtype, shape: None }; n]);
    };
    let axis = norm_axis(*inp.const_ints(a)?.first()?, s.len()).ok()?;
    let sizes: Vec<Option<usize>> = if inp.node.op == "SplitV" {
        let total = s[axis];
        match inp.const_ints(1) {
            Some(raw) => {
                let known: i64 = raw.iter().filter(|&&x| x >= 0).sum();
                raw.iter()
                    .map(|&x| match usize::try_from(x) {
                        Ok(x) => Some(x),
                        Err(_) => total?.checked_sub(usize::try_from(known).ok()?),
                    })
                    .collect()
            }
            // Sizes computed at run time: each output's size where known.
            None => {
                let n = output_count(inp.node, "num_split").ok()?;
                let part = inp.ints(1).unwrap_or_else(|| vec![None; n]);
                part.into_iter().map(|d| d.and_then(|d| usize::try_from(d).ok())).collect()
            }
        }
    } else {
        let n = output_count(inp.node, "num_split").ok()?;
        vec![s[axis].map(|t| t / n); n]
    };
    Some(
        sizes
            .into_iter()
            .map(|d| {
                let mut o = s.clone();
                o[axis] = d;
                ValueInfo { dtype: inp.infos[v].dtype, shape: Some(o) }
            })
            .collect(),
    )
}

/// Split, SplitV and Unpack of a constant (weights a layer splits, e.g. Keras' GRU biases):
/// one constant per output, sized as shape inference found.
fn split_fold(inp: &OpInputs) -> Option<Folded> {
    let unpack = inp.node.op == "Unpack";
    let v = if unpack { 0 } else { split_args(&inp.node.op).0 };
    let t = inp.consts.get(v).copied().flatten()?;
    if t.numel() > 1 << 22 {
        return None;
    }
    let infos = if unpack { unpack_infer(inp)? } else { split_infer(inp)? };
    let axis = if unpack {
        norm_axis(inp.node.attr_int_or("axis", 0).ok()?, t.rank()).ok()?
    } else {
        norm_axis(*inp.const_ints(split_args(&inp.node.op).1)?.first()?, t.rank()).ok()?
    };
    let mut start = 0;
    let mut out = Vec::with_capacity(infos.len());
    for info in infos {
        let shape: Vec<usize> = info.shape?.into_iter().collect::<Option<_>>()?;
        let len = if unpack { 1 } else { shape[axis] };
        out.push(t.slice_axis(axis, start, len)?.reshaped(shape));
        start += len;
    }
    (start == t.shape[axis]).then_some(Folded::Outputs(out))
}

fn unpack(ctx: &mut Ctx) -> OpResult<Lowered> {
    let axis = tf_layout_axis(ctx.node().attr_int_or("axis", 0)?, ctx.rank(0))?;
    let x = ctx.input_tf(0)?;
    let expr = Expr::call_kw("torch.unbind", vec![x], vec![("dim", Expr::int(axis))]);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

fn unpack_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = output_count(inp.node, "num").ok()?;
    let Some(s) = shape_of(inp, 0) else {
        return Some(vec![ValueInfo { dtype: inp.infos.first()?.dtype, shape: None }; n]);
    };
    let axis = norm_axis(inp.node.attr_int_or("axis", 0).ok()?, s.len()).ok()?;
    if s[axis].is_some_and(|d| d != n) {
        return None;
    }
    let mut o = s.clone();
    o.remove(axis);
    Some(vec![ValueInfo { dtype: inp.infos[0].dtype, shape: Some(o) }; n])
}

fn out_type(node: &crate::ir::Node) -> DType {
    node.attr_type("output_type").unwrap_or(DType::I64)
}

fn arg_reduce(ctx: &mut Ctx, method: &str) -> OpResult<Lowered> {
    let axis = tf_layout_axis(scalar_int(ctx, 1, "dimension")?, ctx.rank(0))?;
    let dtype = out_type(ctx.node());
    let x = ctx.input_tf(0)?;
    let mut expr = x.method(method, vec![Expr::int(axis)]);
    if dtype != DType::I64 {
        expr = expr.method("to", vec![torch_attr(dtype.torch_name().unwrap_or("int64"))]);
    }
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn arg_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let mut s = shape_of(inp, 0)?;
    let axis = norm_axis(*inp.const_ints(1)?.first()?, s.len()).ok()?;
    s.remove(axis);
    Some(vec![ValueInfo { dtype: Some(out_type(inp.node)), shape: Some(s) }])
}

/// `torch.where(ids < 0, ids + n, ids)`: indices counted from the end made non-negative.
fn wrap_negative(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::WrapNegative { size } = *ctx.fused()? else {
        return Err("expected a WrapNegative node".into());
    };
    let ids = ctx.input_tf(0)?;
    let negative = ids.clone().binop(BinOp::Lt, Expr::int(0));
    let shifted = ids.clone().binop(BinOp::Add, Expr::int(size));
    let expr = Expr::call("torch.where", vec![negative, shifted, ids]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn one_hot(ctx: &mut Ctx) -> OpResult<Lowered> {
    // Another axis than the last: the new axis moved there (`.movedim(-1, axis)`).
    let axis = match ctx.node().attr_int_or("axis", -1)? {
        -1 => None,
        a => {
            let rank = ctx.rank(0).ok_or("OneHot on another axis than the last needs the rank")?;
            Some(crate::ops::util::norm_axis(a, rank + 1)?).filter(|&a| a != rank)
        }
    };
    // The depth may be data (`tf.reduce_max(ids) + 1`): a Python int.
    let depth = crate::ops::sizes::scalar(ctx, 1)?.expr;
    let dtype = ctx.out_info(0).dtype.or(ctx.info(2).dtype).unwrap_or(DType::F32);
    let dtype_name = torch_attr(dtype.torch_name().unwrap_or("float32"));
    // Compared with every class rather than `F.one_hot`, which rejects what TF turns into a
    // row of `off` values: ids out of range, such as -1 for padding.
    let ids = ctx.input_tf(0)?.method("unsqueeze", vec![Expr::int(-1)]);
    let hot = ids.binop(BinOp::Eq, Expr::call("torch.arange", vec![depth]));
    let value = |ctx: &mut Ctx, i: usize| -> OpResult<Expr> {
        match ctx.const_input(i).ok().and_then(|t| t.scalar_f64()) {
            Some(v) if dtype.is_float() => Ok(Expr::f64(v)),
            Some(v) => Ok(Expr::int(v as i64)),
            None => ctx.input_tf(i),
        }
    };
    let (on, off) = (value(ctx, 2)?, value(ctx, 3)?);
    let plain = crate::py::printer::flat(&on) == "1.0" && crate::py::printer::flat(&off) == "0.0";
    let mut expr = if plain {
        hot.method("to", vec![dtype_name])
    } else {
        let picked = Expr::call("torch.where", vec![hot, on, off]);
        // Python numbers make float32 or int64 tensors.
        if dtype == DType::F32 { picked } else { picked.method("to", vec![dtype_name]) }
    };
    if let Some(a) = axis {
        expr = expr.method("movedim", vec![Expr::int(-1), Expr::int(a as i64)]);
    }
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn one_hot_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let mut s = shape_of(inp, 0)?;
    let depth = inp.const_ints(1).and_then(|d| usize::try_from(*d.first()?).ok());
    let axis = inp.node.attr_int_or("axis", -1).ok()?;
    let at =
        if axis == -1 { s.len() } else { usize::try_from(axis).ok().filter(|&a| a <= s.len())? };
    s.insert(at, depth);
    Some(vec![ValueInfo { dtype: inp.infos.get(2)?.dtype, shape: Some(s) }])
}

/// `torch.zeros_like(x)` / `torch.ones_like(x)`, in `x`'s layout.
fn like(ctx: &mut Ctx, f: &str) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    Ok(Lowered::Expr { expr: torch_attr(f).called(vec![x.expr], vec![]), layout: x.layout })
}

fn fill(ctx: &mut Ctx) -> OpResult<Lowered> {
    // Sizes known only at run time (a zero state sized by the batch) read them from shapes.
    let dims = crate::ops::sizes::sizes(ctx, 0)?.tuple();
    let v = match bool_scalar(ctx, 1) {
        Some(b) => Expr::boolean(b),
        None => ctx.input_tf(1)?,
    };
    if let Some(lowered) = filled_like(ctx, &v)? {
        return Ok(lowered);
    }
    let expr = crate::ops::util::filled(dims, v, ctx.info(1).dtype)?;
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// Input `i` as a constant boolean scalar: a literal where a value fills a tensor (a causal
/// mask's `torch.ones(..., dtype=torch.bool)`), not a buffer holding `True`. Other scalars
/// are literals already; a bool one is not everywhere, as `torch.where` wants a tensor.
fn bool_scalar(ctx: &Ctx, i: usize) -> Option<bool> {
    let t = ctx.const_input(i).ok().filter(|t| t.dtype == DType::Bool && t.rank() == 0)?;
    Some(t.to_i64()?.first()? != &0)
}

/// A fill the size of a tensor it reads the shape of, in that tensor's dtype:
/// `torch.zeros_like(input_ids)` (BERT's token types), `ones_like`, `full_like`.
fn filled_like(ctx: &mut Ctx, value: &Expr) -> OpResult<Option<Lowered>> {
    let Some(p) = ctx.partial(0) else { return Ok(None) };
    let Some(Dim::Of(source, _)) = p.values.first().copied() else { return Ok(None) };
    let whole = p.values.iter().enumerate().all(|(k, d)| *d == Dim::Of(source, k));
    let Some(slot) = ctx.slot_of(source) else { return Ok(None) };
    let info = ctx.info(slot);
    let same = info.shape.as_ref().is_some_and(|s| s.len() == p.values.len())
        && info.dtype.is_some()
        && info.dtype == ctx.info(1).dtype;
    if !whole || !same || !value.is_literal() {
        return Ok(None);
    }
    let number = value.as_number().filter(|_| !crate::ops::util::is_negative_zero(value));
    let x = ctx.input(slot)?;
    let expr = match number {
        Some(0.0) => torch_attr("zeros_like").called(vec![x.expr], vec![]),
        Some(1.0) => torch_attr("ones_like").called(vec![x.expr], vec![]),
        _ => torch_attr("full_like").called(vec![x.expr, value.clone()], vec![]),
    };
    Ok(Some(Lowered::Expr { expr, layout: x.layout }))
}

fn fill_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    Some(vec![ValueInfo { dtype: inp.infos.get(1)?.dtype, shape: Some(inp.sizes(0)?) }])
}

fn fill_fold(inp: &OpInputs) -> Option<Folded> {
    let dims: Vec<usize> =
        inp.const_ints(0)?.into_iter().map(|d| usize::try_from(d).ok()).collect::<Option<_>>()?;
    let v = inp.consts.get(1).copied().flatten()?;
    v.filled(dims).map(Folded::Tensor)
}

/// `torch.arange(start, limit, delta)` with Python numbers (bounds may be data), in TF's
/// dtype where torch would pick another (it makes int64 of ints).
fn range(ctx: &mut Ctx) -> OpResult<Lowered> {
    let args = (0..3).map(|i| Ok(scalar(ctx, i)?.expr)).collect::<OpResult<Vec<_>>>()?;
    let dtype = ctx.out_info(0).dtype;
    let mut kwargs = Vec::new();
    if let Some(d) = dtype.filter(|d| !matches!(d, DType::I64 | DType::F32)) {
        kwargs.push(("dtype", torch_attr(d.torch_name().ok_or("Range of an unusual dtype")?)));
    } else if dtype == Some(DType::F32)
        && (0..3).all(|i| ctx.info(i).dtype.is_some_and(|d| d.is_int()))
    {
        kwargs.push(("dtype", torch_attr("float32")));
    }
    let args = arange_args(args, !kwargs.is_empty());
    Ok(Lowered::Expr { expr: Expr::call_kw("torch.arange", args, kwargs), layout: Layout::Tf })
}

/// `torch.arange(start, limit, delta)` without what it takes by default, as a person writes
/// it (`torch.arange(n)`): a delta of 1, then a start of 0, where dropping them leaves the
/// dtype `torch.arange` infers (a float 1.0 or 0.0 makes it float unless a dtype is given or
/// another argument is a float).
fn arange_args(mut args: Vec<Expr>, dtype_given: bool) -> Vec<Expr> {
    use crate::py::Lit;
    let float = |e: &Expr| match e {
        Expr::Lit(Lit::F32(_) | Lit::F64(_)) => true,
        Expr::Call(c) => c.func.as_name() == Some("float"),
        _ => false,
    };
    let [start, limit, delta] = &args[..] else { return args };
    // Whether the call stays float (or keeps its dtype) without `e`.
    let typed_without =
        |e: &Expr, others: &[&Expr]| !float(e) || dtype_given || others.iter().any(|o| float(o));
    let value = |e: &Expr| e.as_number().filter(|_| !matches!(e, Expr::Lit(Lit::Bool(_))));
    if value(delta) == Some(1.0) && typed_without(delta, &[start, limit]) {
        args.pop();
        let [start, limit] = &args[..] else { return args };
        if value(start) == Some(0.0)
            && !crate::ops::util::is_negative_zero(start)
            && typed_without(start, &[limit])
        {
            args.remove(0);
        }
    }
    args
}

fn range_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = range_values(inp).map(|v| v.len());
    Some(vec![ValueInfo { dtype: inp.infos.first()?.dtype, shape: Some(vec![n]) }])
}

fn range_values(inp: &OpInputs) -> Option<Vec<f64>> {
    let get = |i: usize| inp.consts.get(i).copied().flatten().and_then(|t| t.scalar_f64());
    let (start, limit, delta) = (get(0)?, get(1)?, get(2)?);
    if delta == 0.0 {
        return None;
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > (1 << 20) as f64 {
        return None;
    }
    Some((0..n as usize).map(|k| start + k as f64 * delta).collect())
}

fn range_fold(inp: &OpInputs) -> Option<Folded> {
    let v = range_values(inp)?;
    let dtype = inp.infos.first()?.dtype?;
    let values = if dtype.is_float() {
        Values::F(v)
    } else {
        Values::I(v.iter().map(|&x| x as i64).collect())
    };
    let n = match &values {
        Values::F(f) => f.len(),
        Values::I(i) => i.len(),
    };
    Tensor::with_values_like(dtype, vec![n], &values).map(Folded::Tensor)
}

fn batch_matmul(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let adj_x = node.attr_bool_or("adj_x", false)?;
    let adj_y = node.attr_bool_or("adj_y", false)?;
    // `x @ W` with a constant matrix (Keras EinsumDense, attention projections) is a Linear
    // layer on the last axis.
    if !adj_x
        && let Ok(w) = ctx.const_input(1)
        && w.rank() == 2
        && w.dtype.is_float()
    {
        let w = w.clone();
        return crate::ops::util::linear_layer(ctx, w, adj_y);
    }
    if ctx.has_bias() {
        return Err("fused bias on a BatchMatMul of two tensors".into());
    }
    let mut a = ctx.input_tf(0)?;
    let mut b = ctx.input_tf(1)?;
    // An output type of its own (Keras' int8 layers multiply int8 by int8 into int32): the
    // operands are widened first, as torch's product keeps its operands' type (and int8
    // sums would wrap).
    if let Ok(out) = ctx.node().attr_type("Tout") {
        let dtype = out.torch_name().ok_or_else(|| format!("a product of type {out:?}"))?;
        for (i, x) in [(0, &mut a), (1, &mut b)] {
            if ctx.info(i).dtype != Some(out) {
                *x = x.clone().method("to", vec![torch_attr(dtype)]);
            }
        }
    }
    if adj_x {
        a = a.method("transpose", vec![Expr::int(-2), Expr::int(-1)]);
    }
    if adj_y {
        b = b.method("transpose", vec![Expr::int(-2), Expr::int(-1)]);
    }
    Ok(Lowered::Expr { expr: a.binop(BinOp::MatMul, b), layout: Layout::Tf })
}

fn batch_matmul_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (a, b) = (shape_of(inp, 0)?, shape_of(inp, 1)?);
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let adj_x = inp.node.attr_bool_or("adj_x", false).ok()?;
    let adj_y = inp.node.attr_bool_or("adj_y", false).ok()?;
    let m = if adj_x { a[a.len() - 1] } else { a[a.len() - 2] };
    let n = if adj_y { b[b.len() - 2] } else { b[b.len() - 1] };
    let batch = crate::ops::util::broadcast(
        &Some(a[..a.len() - 2].to_vec()),
        &Some(b[..b.len() - 2].to_vec()),
    )?;
    let mut out = batch;
    out.extend([m, n]);
    let dtype = inp.node.attr_type("Tout").ok().or(inp.infos[0].dtype);
    Some(vec![ValueInfo { dtype, shape: Some(out) }])
}

/// `(inputs, output)` subscripts of an einsum equation without ellipses.
fn einsum_parts(eq: &str) -> Option<(Vec<&str>, &str)> {
    let (lhs, out) = eq.split_once("->")?;
    if eq.contains("...") {
        return None;
    }
    Some((lhs.split(',').collect(), out))
}

/// The projection form of an einsum (Keras EinsumDense): `A C, K -> A D`, `x`'s trailing
/// axes `C` contracted with the kernel, whose axes are `C` and `D` in any order, `D`
/// appended to `x`'s leading axes (`abc,cd->abd`; multi-head `abc,cde->abde`, or with the
/// heads first in the kernel as Gemma has it, `abc,dce->abde`; back to the model width
/// `abcd,cde->abe`). `(|C|, |D|)`, or `None` for any other equation.
pub fn einsum_dense_form(eq: &str) -> Option<(usize, usize)> {
    let (c, order) = einsum_projection(eq)?;
    Some((c, order.len() - c))
}

/// [`einsum_dense_form`] with the kernel's axes in the order `[C (x's order).., D (the
/// output's order)..]`: `(|C|, order)`.
fn einsum_projection(eq: &str) -> Option<(usize, Vec<usize>)> {
    let (ins, out) = einsum_parts(eq)?;
    let [x, w] = ins[..] else { return None };
    let distinct = |s: &str| s.chars().collect::<std::collections::BTreeSet<_>>().len() == s.len();
    if !(distinct(x) && distinct(w) && distinct(out)) {
        return None;
    }
    (1..x.len()).find_map(|c| {
        let (lead, contracted) = x.split_at(x.len() - c);
        let free = out.strip_prefix(lead)?;
        let axes: String = [contracted, free].concat();
        if free.is_empty() || axes.len() != w.len() || !distinct(&axes) {
            return None;
        }
        let order: Option<Vec<usize>> = axes.chars().map(|a| w.find(a)).collect();
        order.map(|o| (c, o))
    })
}

/// Einsum; the projection form with a constant kernel is `nn.Linear` on `x`'s contracted
/// axes (flattened when several), its output unflattened into the kernel's other axes:
/// `self.query(x).unflatten(-1, (heads, dim))`.
fn einsum(ctx: &mut Ctx) -> OpResult<Lowered> {
    let eq = ctx.node().attr_str("equation")?;
    if !eq.chars().all(|c| c.is_ascii_alphabetic() || ",.->".contains(c)) {
        return Err(format!("unexpected einsum equation {eq:?}").into());
    }
    if let Some((c, order)) = einsum_projection(&eq)
        && (ctx.is_weight(1) || ctx.has_bias())
        && let Ok(t) = ctx.const_input(1)
        && t.rank() == order.len()
        && t.dtype.is_float()
    {
        let t = t.clone();
        return einsum_linear(ctx, t, c, &order);
    }
    if ctx.has_bias() {
        return Err("a fused bias on an einsum that is not a projection".into());
    }
    let mut args = vec![Expr::str_lit(&eq)];
    for i in 0..ctx.num_inputs() {
        args.push(ctx.input_tf(i)?);
    }
    Ok(Lowered::Expr { expr: Expr::call("torch.einsum", args), layout: Layout::Tf })
}

/// `nn.Linear(prod C, prod D)` for kernel `w` contracting `c` axes, its axes `order`ed as
/// `[C.., D..]` (see [`einsum_projection`]).
fn einsum_linear(ctx: &mut Ctx, w: Tensor, c: usize, order: &[usize]) -> OpResult<Lowered> {
    let in_f: usize = order[..c].iter().map(|&a| w.shape[a]).product();
    let out_dims: Vec<usize> = order[c..].iter().map(|&a| w.shape[a]).collect();
    let out_f: usize = out_dims.iter().product();
    let bias = ctx.bias(out_f)?;
    let mut kwargs = Vec::new();
    if bias.is_none() {
        kwargs.push(("bias", Expr::boolean(false)));
    }
    let ctor =
        Expr::call_kw("nn.Linear", vec![Expr::int(in_f as i64), Expr::int(out_f as i64)], kwargs);
    // torch's weight is [out, in]: the kernel's free axes first, then both groups flattened.
    let permute: Vec<usize> = order[c..].iter().chain(&order[..c]).copied().collect();
    let weight = Weight { tensor: w, permute: Some(permute), reshape: Some(vec![out_f, in_f]) };
    let mut params = vec![("weight", weight)];
    if let Some(b) = bias {
        params.push(("bias", Weight::plain(b)));
    }
    let mut x = ctx.input_tf(0)?;
    if c > 1 {
        x = x.method("flatten", vec![Expr::int(-(c as i64))]);
    }
    let post = if out_dims.len() > 1 {
        let sizes = Expr::Tuple(out_dims.iter().map(|&d| Expr::int(d as i64)).collect());
        vec![Access::Method("unflatten", vec![Expr::int(-1), sizes])]
    } else {
        vec![]
    };
    Ok(Lowered::Layer { post, ctor, params, args: vec![x], layout: Layout::Tf })
}

fn einsum_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let eq = inp.node.attr_str("equation").ok()?;
    let (lhs, out) = eq.split_once("->")?;
    let mut size: std::collections::BTreeMap<char, Option<usize>> =
        std::collections::BTreeMap::new();
    // The axes `...` stands for in each input broadcast together (aligned at the right).
    let mut ellipsis: Option<Vec<Option<usize>>> = None;
    for (k, sub) in lhs.split(',').enumerate() {
        let s = shape_of(inp, k)?;
        let (before, after) = sub.split_once("...").unwrap_or((sub, ""));
        let labels = before.len() + after.len();
        if sub.contains("...") {
            let dims = s.get(before.len()..s.len().checked_sub(after.len())?)?;
            ellipsis = crate::ops::util::broadcast(
                &Some(ellipsis.unwrap_or_default()),
                &Some(dims.to_vec()),
            );
        } else if s.len() != labels {
            return None;
        }
        let tail = &s[s.len() - after.len()..];
        for (ch, d) in before.chars().zip(&s).chain(after.chars().zip(tail)) {
            let e = size.entry(ch).or_insert(*d);
            if e.is_none() {
                *e = *d;
            }
        }
    }
    let (before, after) = out.split_once("...").unwrap_or((out, ""));
    let label = |c: char| size.get(&c).copied().flatten();
    let mut shape: Vec<Option<usize>> = before.chars().map(label).collect();
    if out.contains("...") {
        shape.extend(ellipsis?);
    }
    shape.extend(after.chars().map(label));
    Some(vec![ValueInfo { dtype: inp.infos.first()?.dtype, shape: Some(shape) }])
}

/// TopKV2(input, k) → (values, indices int32) along the last axis, largest first. TF breaks
/// ties by position (the first of equal values first); `torch.topk` does not say how it
/// does (it differs on CPU), so where the indices are read the order is a stable sort's:
/// `torch.sort(x, descending=True, stable=True)` where `k` is the whole axis (`tf.argsort`,
/// `tf.sort`), else its first `k` (templates/top_k.py).
fn top_k(ctx: &mut Ctx) -> OpResult<Lowered> {
    // k may be data: a Python int.
    let k = crate::ops::sizes::scalar(ctx, 1)?.expr;
    let sorted = ctx.node().attr_bool_or("sorted", true)?;
    let x = ctx.input_tf(0)?;
    // torch's indices are int64; TF's int32 unless the node says (`passes::simplify` widens
    // those the graph casts to int64 anyway).
    let index_type = top_k_index_type(ctx.node());
    let index_view = match index_type.torch_name() {
        Some(name) if index_type != DType::I64 => {
            vec![Access::Method("to", vec![torch_attr(name)])]
        }
        _ => vec![],
    };
    if !ctx.output_used(1) {
        // The values are the same whichever equal element comes first.
        let kwargs = if sorted { vec![] } else { vec![("sorted", Expr::boolean(false))] };
        let expr = Expr::call_kw("torch.topk", vec![x, k], kwargs);
        return Ok(Lowered::MultiViews { expr, views: vec![vec![], index_view] });
    }
    let expr = if whole_last_axis(ctx, &x, &k) {
        let kwargs = vec![("descending", Expr::boolean(true)), ("stable", Expr::boolean(true))];
        Expr::call_kw("torch.sort", vec![x], kwargs)
    } else {
        ctx.require_class("top_k", include_str!("../../templates/top_k.py"));
        Expr::call("top_k", vec![x, k])
    };
    Ok(Lowered::MultiViews { expr, views: vec![vec![], index_view] })
}

/// The dtype of TopKV2's indices: its `index_type`, int32 by default.
fn top_k_index_type(node: &crate::ir::Node) -> DType {
    node.attr_type("index_type").unwrap_or(DType::I32)
}

/// Whether `k` is the size of `x`'s last axis: the same constant, or `x.shape[-1]` read at
/// run time.
fn whole_last_axis(ctx: &Ctx, x: &Expr, k: &Expr) -> bool {
    let last = ctx.info(0).shape.and_then(|s| s.last().copied().flatten());
    let known = |e: &Expr| e.as_int().and_then(|v| usize::try_from(v).ok());
    if let (Some(n), Some(k)) = (last, known(k)) {
        return n == k;
    }
    let rank = ctx.rank(0);
    let read = |axis: i64| x.clone().attr("shape").index(Expr::int(axis));
    *k == read(-1) || rank.is_some_and(|r| *k == read(r as i64 - 1))
}

fn top_k_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    // Two outputs whatever is known of the shape (an input of unknown rank too).
    let s = shape_of(inp, 0).and_then(|mut s| {
        *s.last_mut()? = inp.const_ints(1).and_then(|k| usize::try_from(*k.first()?).ok());
        Some(s)
    });
    Some(vec![
        ValueInfo { dtype: inp.infos.first()?.dtype, shape: s.clone() },
        ValueInfo { dtype: Some(top_k_index_type(inp.node)), shape: s },
    ])
}

/// Where(condition) with one input: the coordinates of true (non-zero) elements, int64.
fn where_indices(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.num_inputs() != 1 {
        return Err("Where with several inputs is SelectV2".into());
    }
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: Expr::call("torch.nonzero", vec![x]), layout: Layout::Tf })
}

#[cfg(test)]
mod tests {
    use super::einsum_dense_form;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `torch.arange` without its default start and step, where that keeps its dtype.
    #[test]
    fn aranges_without_their_defaults() {
        use crate::py::{Expr, printer::flat};
        let n = || Expr::name("n");
        let float_n = || Expr::call("float", vec![n()]);
        let show = |args: Vec<Expr>, dtype| {
            flat(&Expr::call("torch.arange", super::arange_args(args, dtype)))
        };
        assert_eq!(show(vec![Expr::int(0), n(), Expr::int(1)], true), "torch.arange(n)");
        assert_eq!(
            show(vec![Expr::f64(0.0), float_n(), Expr::f64(1.0)], false),
            "torch.arange(float(n))"
        );
        // A float start or step is what makes `arange(0.0, n, 1.0)` float.
        assert_eq!(show(vec![Expr::f64(0.0), n(), Expr::f64(1.0)], false), "torch.arange(0.0, n)");
        assert_eq!(show(vec![Expr::int(2), n(), Expr::int(1)], false), "torch.arange(2, n)");
        assert_eq!(show(vec![Expr::int(0), n(), Expr::int(2)], false), "torch.arange(0, n, 2)");
    }

    /// A router's one-hot, computed in its MoE block's scope (`moe/one_hot`): a comparison
    /// with every class (TF gives out-of-range ids all zeros, where `F.one_hot` raises),
    /// named `one_hot` rather than after the block.
    #[test]
    fn a_one_hot_is_named_so() {
        use crate::tensor::{DType, Tensor};
        let mut g = TestGraph::new();
        let ids = g.typed_input("ids", &[-1, 2], DType::I32);
        let x = g.input("x", &[-1, 8]);
        let kernel = g.variable("m/embed/kernel", weights(&[8, 8]));
        let x = g.op("m/embed/MatMul", "MatMul", &[x, kernel], &[]);
        // The block's own layer: values computed in its scope outside it take its name.
        let kernel = g.variable("m/moe/router/kernel", weights(&[8, 2]));
        let w = g.op("m/moe/router/MatMul", "MatMul", &[x, kernel], &[]);
        let depth = g.constant("m/moe/depth", Tensor::from_i32(vec![], &[4]));
        let on = g.constant("m/moe/on", Tensor::from_f32(vec![], &[1.0]));
        let off = g.constant("m/moe/off", Tensor::from_f32(vec![], &[0.0]));
        let hot = g.op("m/moe/one_hot", "OneHot", &[ids, depth, on, off], &[("axis", int(-1))]);
        let axis = g.constant("m/moe/axis", Tensor::from_i32(vec![], &[-1]));
        let weights = g.op("m/moe/ExpandDims", "ExpandDims", &[w, axis], &[]);
        let product = g.op("m/moe/mul", "Mul", &[hot, weights], &[]);
        let code = g.lower(&[product, hot]);
        assert!(code.contains("one_hot = (ids.unsqueeze(-1) == torch.arange(4"), "{code}");
    }

    /// A tensor filled with zeros or ones is `torch.zeros`/`torch.ones`, of the fill's dtype;
    /// another value is `torch.full`; one of another tensor's shape and dtype `zeros_like`.
    #[test]
    fn fills_of_zeros_and_ones() {
        use crate::tensor::Tensor;
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let shape = g.op("shape", "Shape", &[x], &[]);
        let mut outs = Vec::new();
        for (name, value) in [
            ("zero", Tensor::from_f32(vec![], &[0.0])),
            ("one", Tensor::from_i32(vec![], &[1])),
            ("half", Tensor::from_f32(vec![], &[0.5])),
        ] {
            let v = g.constant(&format!("{name}/value"), value);
            outs.push(g.op(name, "Fill", &[shape, v], &[]));
        }
        // BERT's token types: zeros of the ids' shape and dtype.
        let ids = g.typed_input("ids", &[-1, -1], crate::tensor::DType::I32);
        let shape = g.op("ids_shape", "Shape", &[ids], &[]);
        let zero = g.constant("types/value", Tensor::from_i32(vec![], &[0]));
        outs.push(g.op("types", "Fill", &[shape, zero], &[]));
        assert_snapshot!(g.lower(&outs), @"
        ---
        h = torch.zeros((x.shape[0], 4))
        one = torch.ones((x.shape[0], 4), dtype=torch.int32)
        half = torch.full((x.shape[0], 4), 0.5)
        types = torch.zeros_like(ids)
        return h, one, half, types
        ");
    }

    /// Keras' int8 layers multiply int8 by int8 into int32 (`BatchMatMulV3` with `Tout`):
    /// torch's product keeps its operands' type, where int8 sums wrap, so both are widened.
    #[test]
    fn an_int8_product_into_int32_widens_its_operands() {
        use crate::tensor::DType;
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, 4], DType::I8);
        let w = g.typed_input("w", &[4, 3], DType::I8);
        let a = [("Ta", dtype(DType::I8)), ("Tb", dtype(DType::I8)), ("Tout", dtype(DType::I32))];
        let y = g.op("dense/MatMul", "BatchMatMulV3", &[x, w], &a);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.to(torch.int32) @ w.to(torch.int32)
        return x
        ");
    }

    /// CLIP's causal mask fills `[n, n]` with a constant `True` and keeps the lower
    /// triangle: `torch.ones(..., dtype=torch.bool).tril()`, no buffer holding `True`.
    #[test]
    fn a_causal_mask_of_a_true_fill() {
        use crate::tensor::Tensor;
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 8]);
        let shape = g.op("shape", "Shape", &[x], &[]);
        let b = g.constant("b", int_tensor(&[1], &[1]));
        let e = g.constant("e", int_tensor(&[1], &[2]));
        let st = g.constant("st", int_tensor(&[1], &[1]));
        let n = g.op("n", "StridedSlice", &[shape, b, e, st], &[("shrink_axis_mask", int(1))]);
        let sizes = g.op("sizes", "Pack", &[n, n], &[("N", int(2))]);
        let t = g.constant("mask/value", Tensor::from_bool(vec![], &[true]));
        let fill = g.op("mask/fill", "Fill", &[sizes, t], &[]);
        let lower = g.constant("lower", Tensor::from_i64(vec![], &[-1]));
        let upper = g.constant("upper", Tensor::from_i64(vec![], &[0]));
        let mask = g.op("mask", "MatrixBandPart", &[fill, lower, upper], &[]);
        assert_snapshot!(g.lower(&[mask]), @"
        ---
        x = torch.ones((x.shape[1], x.shape[1]), dtype=torch.bool)
        x = x.tril()
        return x
        ");
    }

    /// Keras' learned position embedding reads its table at a stored `arange` (`[1, 17]` of
    /// 17 rows): that is the table itself, `weight[None]`, and the stored indices go; the
    /// first 5 rows are `weight[None, :5]`; indices in another order stay a lookup.
    #[test]
    fn a_lookup_of_every_row_in_order_is_the_table() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 17, 8]);
        let table = g.variable("pos/embeddings", weights(&[17, 8]));
        let axis = g.constant("pos/axis", int_tensor(&[], &[0]));
        let all: Vec<i64> = (0..17).collect();
        let ids = g.constant("pos/ids", int_tensor(&[1, 17], &all));
        let rows = g.op("pos/GatherV2", "GatherV2", &[table, ids, axis], &[]);
        let y = g.op("add", "AddV2", &[x, rows], &[]);
        let first = g.constant("pos/first", int_tensor(&[1, 5], &[0, 1, 2, 3, 4]));
        let head = g.op("head/GatherV2", "GatherV2", &[table, first, axis], &[]);
        let odd = g.constant("pos/odd", int_tensor(&[2], &[1, 0]));
        let swapped = g.op("odd/GatherV2", "GatherV2", &[table, odd, axis], &[]);
        assert_snapshot!(g.lower(&[y, head, swapped]), @"
        self.pos = nn.Embedding(17, 8)
        self.pos_const: [2] int32
        # pos.weight: [17, 8]
        # pos_const: [2]
        ---
        pos = self.pos.weight[None]
        x = x + pos
        head = self.pos.weight[None, :5]
        odd = self.pos(self.pos_const)
        return x, head, odd
        ");
    }

    #[test]
    fn projection_forms() {
        assert_eq!(einsum_dense_form("abc,cd->abd"), Some((1, 1)));
        assert_eq!(einsum_dense_form("abc,cde->abde"), Some((1, 2)));
        assert_eq!(einsum_dense_form("abcd,cde->abe"), Some((2, 1)));
        assert_eq!(einsum_dense_form("abc,dce->abde"), Some((1, 2)), "heads first in the kernel");
        assert_eq!(einsum_dense_form("abc,dc->abd"), Some((1, 1)), "the kernel's axes swapped");
        assert_eq!(einsum_dense_form("abc,dcf->abde"), None, "a kernel axis nowhere else");
        assert_eq!(einsum_dense_form("abc,cd->adb"), None, "the output reordered");
        assert_eq!(einsum_dense_form("abcd,acd->ab"), None, "a batch axis in the kernel");
    }

    /// Keras EinsumDense into heads with a `[heads, dim]` bias, then back to the model width:
    /// `nn.Linear` layers, the heads split with `unflatten` and merged with `flatten`.
    #[test]
    fn multi_head_projections_are_linear_layers() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 32]);
        let w = g.constant("query/kernel", weights(&[32, 2, 16]));
        let eq = |e: &str| ("equation", string(e));
        let q = g.op("query/einsum", "Einsum", &[x, w], &[eq("abc,cde->abde"), ("N", int(2))]);
        let b = g.constant("query/bias", weights(&[2, 16]));
        let qb = g.op("query/add", "AddV2", &[q, b], &[]);
        let wo = g.constant("output/kernel", weights(&[2, 16, 32]));
        let y = g.op("output/einsum", "Einsum", &[qb, wo], &[eq("abcd,cde->abe"), ("N", int(2))]);
        assert_snapshot!(g.lower(&[y]), @"
        self.query = nn.Linear(32, 32)
        self.output = nn.Linear(32, 32, bias=False)
        # query.weight: [32, 32]
        # query.bias: [32]
        # output.weight: [32, 32]
        ---
        x = self.query(x).unflatten(-1, (2, 16))
        x = self.output(x.flatten(-2))
        return x
        ");
    }

    /// Params of unknown rank: gathers, arg-reductions and splits on an axis counted from
    /// either end, in TF's layout, where torch counts it the same way.
    #[test]
    fn axes_of_inputs_of_unknown_rank() {
        let mut g = TestGraph::new();
        let x = g.unranked_input("x");
        let ids = g.constant("ids", int_tensor(&[2], &[2, 0]));
        let at = |g: &mut TestGraph, a: i64| g.constant(&format!("axis{a}"), int_tensor(&[], &[a]));
        let (back, front) = (at(&mut g, -2), at(&mut g, 1));
        let a = g.op("a", "GatherV2", &[x, ids, back], &[]);
        let b = g.op("b", "GatherV2", &[x, ids, front], &[]);
        let c = g.op("c", "ArgMax", &[x, back], &[]);
        let sizes = g.constant("sizes", int_tensor(&[2], &[1, 2]));
        let d = g.op("d", "SplitV", &[x, sizes, back], &[("num_split", int(2))]);
        assert_snapshot!(g.lower(&[a, b, c, d]), @"
        self.ids_const: [2] int32
        # ids_const: [2]
        ---
        h = x[..., self.ids_const, :]
        b = x[:, self.ids_const]
        c = x.argmax(-2)
        d, _ = torch.split(x, [1, 2], dim=-2)
        return h, b, c, d
        ");
    }

    /// `...` in an equation stands for the axes the inputs broadcast together (RoFormer's
    /// positions times frequencies, `...,a->...a`): the result's rank is known.
    #[test]
    fn einsum_with_an_ellipsis_has_a_shape() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5]);
        let f = g.constant("f", weights(&[3]));
        let eq = ("equation", string("...,a->...a"));
        let y = g.op("outer", "Einsum", &[x, f], &[eq, ("N", int(2))]);
        let eq = ("equation", string("a...c,c->...a"));
        let z = g.op("lead", "Einsum", &[y, f], &[eq, ("N", int(2))]);
        let fold = crate::passes::fold_and_infer;
        assert_snapshot!(g.after_passes(&[y, z], &[fold]), @r#"
        inputs: x:0
        outputs: outer:0, lead:0
        x = Placeholder -> float32 [?, 5]
        f = Const -> float32 [3]
        outer = Einsum(x:0, f:0) {N=2, equation="...,a->...a"} -> float32 [?, 5, 3]
        lead = Einsum(outer:0, f:0) {N=2, equation="a...c,c->...a"} -> float32 [5, ?]
        "#);
    }

    /// Per batch entry, with an axis between the batch axis and the gather axis: that axis is
    /// indexed by an arange too, the indices given room for it.
    #[test]
    fn batched_gather_past_a_kept_axis() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 4, 5]);
        let ids = g.typed_input("ids", &[2, 3], crate::tensor::DType::I32);
        let axis = g.constant("axis", int_tensor(&[], &[2]));
        let y = g.op("gather", "GatherV2", &[x, ids, axis], &[("batch_dims", int(1))]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x[
            torch.arange(x.shape[0]).reshape(-1, 1, 1),
            torch.arange(x.shape[1]).reshape(1, -1, 1),
            ids.long()[:, None],
        ]
        return x
        ");
    }
}
