//! Index tuples and segments: `GatherNd` → advanced indexing, `ScatterNd` and
//! `TensorScatterUpdate/Add/Sub` → `index_put`, segment reductions (`SegmentSum/Mean/Max/Min/
//! Prod`, sorted ids; `UnsortedSegmentSum/Max/Min/Prod`, with a segment count) →
//! `index_add` / `scatter_reduce` over the first axis, and counts into bins (`Bincount`,
//! `DenseBincount` of a vector) → `torch.bincount`.
//!
//! Index tuples (`[..., K]`, the last axis addressing the first K axes) become
//! `tuple(indices.long().unbind(-1))`, the form torch's advanced indexing takes.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult, TranslateError};
use crate::ops::sizes::{scalar, sizes};
use crate::ops::util::{same_as_input, torch_attr};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("GatherNd", gather_nd).infer(gather_nd_infer),
    op("ScatterNd", scatter_nd).infer(scatter_nd_infer),
    op("TensorScatterUpdate", |c| tensor_scatter(c, None)).infer(same_as_input),
    op("TensorScatterAdd", |c| tensor_scatter(c, Some(false))).infer(same_as_input),
    op("TensorScatterSub", |c| tensor_scatter(c, Some(true))).infer(same_as_input),
    op("SegmentSum", |c| segment(c, Reduce::Sum, false)).infer(segment_infer),
    op("SegmentMean", |c| segment(c, Reduce::Mean, false)).infer(segment_infer),
    op("SegmentMax", |c| segment(c, Reduce::Max, false)).infer(segment_infer),
    op("SegmentMin", |c| segment(c, Reduce::Min, false)).infer(segment_infer),
    op("SegmentProd", |c| segment(c, Reduce::Prod, false)).infer(segment_infer),
    op("UnsortedSegmentSum", |c| segment(c, Reduce::Sum, true)).infer(segment_infer),
    op("UnsortedSegmentMax", |c| segment(c, Reduce::Max, true)).infer(segment_infer),
    op("UnsortedSegmentMin", |c| segment(c, Reduce::Min, true)).infer(segment_infer),
    op("UnsortedSegmentProd", |c| segment(c, Reduce::Prod, true)).infer(segment_infer),
    op("Bincount", bincount),
    op("DenseBincount", bincount),
    op("SparseSegmentSum", |c| segment(c, Reduce::Sum, false)).infer(segment_infer),
    op("SparseSegmentMean", |c| segment(c, Reduce::Mean, false)).infer(segment_infer),
    op("SparseSegmentSumWithNumSegments", |c| segment(c, Reduce::Sum, true)).infer(segment_infer),
    op("SparseSegmentMeanWithNumSegments", |c| segment(c, Reduce::Mean, true)).infer(segment_infer),
];

/// `tuple(indices.long().unbind(-1))`.
fn index_tuple(indices: Expr) -> Expr {
    let unbound = indices.method("long", vec![]).method("unbind", vec![Expr::int(-1)]);
    Expr::call("tuple", vec![unbound])
}

fn gather_nd(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.node().attr_int_or("batch_dims", 0)? != 0 {
        return Err("batch_dims other than 0 is not supported".into());
    }
    let (params, indices) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    Ok(Lowered::Expr { expr: params.index(index_tuple(indices)), layout: Layout::Tf })
}

/// `indices.shape[:-1] + params.shape[K:]`.
fn gather_nd_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (p, i) = (inp.infos.first()?, inp.infos.get(1)?);
    let (ps, is) = (p.shape.as_ref()?, i.shape.as_ref()?);
    let k = (*is.last()?)?;
    let mut out = is[..is.len() - 1].to_vec();
    out.extend(ps.get(k..)?);
    Some(vec![ValueInfo { dtype: p.dtype, shape: Some(out) }])
}

/// `ScatterNd(indices, updates, shape)`: zeros of `shape` with the updates summed in.
fn scatter_nd(ctx: &mut Ctx) -> OpResult<Lowered> {
    let shape = sizes(ctx, 2)?.tuple();
    let dtype = ctx.info(1).dtype.and_then(|d| d.torch_name()).unwrap_or("float32");
    let zeros = Expr::call_kw("torch.zeros", vec![shape], vec![("dtype", torch_attr(dtype))]);
    let (indices, updates) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let expr = zeros.method_kw(
        "index_put",
        vec![index_tuple(indices), updates],
        vec![("accumulate", Expr::boolean(true))],
    );
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn scatter_nd_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let dtype = inp.infos.get(1)?.dtype;
    Some(vec![ValueInfo { dtype, shape: inp.sizes(2) }])
}

/// `TensorScatterUpdate` (replace), `...Add` and `...Sub` (accumulate): a new tensor, the
/// input left as it is.
fn tensor_scatter(ctx: &mut Ctx, accumulate: Option<bool>) -> OpResult<Lowered> {
    let (x, indices, mut updates) = (ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?);
    let mut kwargs = Vec::new();
    if let Some(negate) = accumulate {
        if negate {
            updates = updates.negated();
        }
        kwargs.push(("accumulate", Expr::boolean(true)));
    }
    let expr = x.method_kw("index_put", vec![index_tuple(indices), updates], kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

#[derive(Clone, Copy, PartialEq)]
enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
}

/// Rows of `data` reduced by segment id (ids of rank 1, one per row). Sorted ops have
/// `ids[-1] + 1` segments and give empty segments 0; unsorted ones (and `...WithNumSegments`)
/// take the count as an input, drop rows with a negative id, and give empty segments the
/// reduction's identity (TF: the lowest or highest value for max and min). The sparse forms
/// first pick the rows `data[indices]`.
fn segment(ctx: &mut Ctx, reduce: Reduce, counted: bool) -> OpResult<Lowered> {
    let sparse = ctx.node().op.starts_with("Sparse");
    let (ids_at, count_at) = if sparse { (2, 3) } else { (1, 2) };
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    if rank == 0 || ctx.rank(ids_at) != Some(1) {
        return Err("segment ids must be a vector (one id per row)".into());
    }
    let dtype = ctx.info(0).dtype.unwrap_or(DType::F32);
    let mut ids = ctx.input_tf(ids_at)?.method("long", vec![]);
    let unsorted = counted && !sparse;
    let known_nonnegative = ctx.const_ints(ids_at).is_ok_and(|v| v.iter().all(|&i| i >= 0));
    let known_last = ctx.const_ints(ids_at).ok().and_then(|v| v.last().copied());
    let count = if counted {
        scalar(ctx, count_at)?.expr
    } else if let Some(last) = known_last {
        Expr::int(last.saturating_add(1))
    } else {
        let last = ids.clone().index(Expr::int(-1));
        Expr::call("int", vec![last]).binop(BinOp::Add, Expr::int(1))
    };
    let input = ctx.input_tf(0)?;
    // `rows`: what is reduced; the input itself gives the output's trailing shape and dtype.
    let mut rows = input.clone();
    if sparse {
        rows = rows.index(ctx.input_tf(1)?.method("long", vec![]));
    }
    if unsorted && !known_nonnegative {
        // TF's unsorted reductions drop rows whose id is negative (a padding id of -1).
        let keep = ids.clone().binop(BinOp::GtE, Expr::int(0));
        rows = rows.index(keep.clone());
        ids = ids.index(keep);
    }
    let mut shape = vec![count];
    if rank > 1 {
        let rest = input.clone().attr("shape").index(Expr::slice(Some(Expr::int(1)), None, None));
        shape.push(Expr::Starred(Box::new(rest)));
    }
    let shape = Expr::Tuple(shape);
    let (name, init) = match reduce {
        Reduce::Sum => {
            let zeros = input.method("new_zeros", vec![shape]);
            let expr = zeros.method("index_add", vec![Expr::int(0), ids, rows]);
            return Ok(Lowered::Expr { expr, layout: Layout::Tf });
        }
        Reduce::Mean => ("mean", Expr::int(0)),
        Reduce::Prod => ("prod", Expr::int(1)),
        Reduce::Max | Reduce::Min if !unsorted => {
            (if reduce == Reduce::Max { "amax" } else { "amin" }, Expr::int(0))
        }
        Reduce::Max | Reduce::Min => {
            let info = if dtype.is_float() { "torch.finfo" } else { "torch.iinfo" };
            let limit = if reduce == Reduce::Max { "min" } else { "max" };
            let bound = Expr::call(info, vec![input.clone().attr("dtype")]).attr(limit);
            (if reduce == Reduce::Max { "amax" } else { "amin" }, bound)
        }
    };
    // scatter_reduce wants an index of the rows' shape: each row's id, broadcast.
    let mut view = vec![Expr::int(-1)];
    view.extend(std::iter::repeat_n(Expr::int(1), rank - 1));
    let index = ids.method("reshape", view).method("expand_as", vec![rows.clone()]);
    let start = input.method("new_full", vec![shape, init]);
    let expr = start.method_kw(
        "scatter_reduce",
        vec![Expr::int(0), index, rows, Expr::str_lit(name)],
        vec![("include_self", Expr::boolean(false))],
    );
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// `tf.math.bincount` of a vector: how often each value in `[0, size)` occurs (or the sum of
/// its weights; 1 where it occurs with `binary_output`). TF ignores values outside the
/// range, so they are filtered first; the result has TF's dtype.
fn bincount(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let binary = node.attr_bool_or("binary_output", false)?;
    let dtype = node.attr_type("T").ok().and_then(|d| d.torch_name()).unwrap_or("int32");
    if node.op == "DenseBincount" && ctx.rank(0) != Some(1) {
        return Err("only a vector of values is supported (a batch of rows is not)".into());
    }
    let no_weights = ctx.const_input(2).is_ok_and(|t| t.numel() == 0);
    let size = scalar(ctx, 1)?.expr;
    let x = ctx.input_tf(0)?;
    let keep = x
        .clone()
        .binop(BinOp::GtE, Expr::int(0))
        .binop(BinOp::BitAnd, x.clone().binop(BinOp::Lt, size.clone()));
    let mut kwargs = Vec::new();
    if !no_weights && !binary {
        kwargs.push(("weights", ctx.input_tf(2)?.index(keep.clone())));
    }
    kwargs.push(("minlength", size));
    let values = x.index(keep).method("long", vec![]);
    let mut counts = Expr::call_kw("torch.bincount", vec![values], kwargs);
    if binary {
        counts = counts.binop(BinOp::Gt, Expr::int(0));
    }
    let expr = counts.method("to", vec![torch_attr(dtype)]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn segment_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let data = inp.infos.first()?;
    let shape = data.shape.as_ref()?;
    let count = inp
        .consts
        .get(2)
        .copied()
        .flatten()
        .and_then(|t| t.to_i64())
        .and_then(|v| v.first().and_then(|&n| usize::try_from(n).ok()));
    let mut out = vec![count];
    out.extend(shape.get(1..)?);
    Some(vec![ValueInfo { dtype: data.dtype, shape: Some(out) }])
}
