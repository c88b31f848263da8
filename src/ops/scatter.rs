//! Index tuples and segments: `GatherNd` → advanced indexing, `ScatterNd` and
//! `TensorScatterUpdate/Add/Sub` → `index_put` (`Max/Min` → `scatter_reduce`, a helper),
//! segment reductions (`SegmentSum/Mean/Max/Min/Prod`, sorted ids;
//! `UnsortedSegmentSum/Max/Min/Prod`, with a segment count) → `index_add` /
//! `scatter_reduce` over the first axis, and counts into bins (`Bincount`,
//! `DenseBincount` of a vector or by rows; `HistogramFixedWidth` with TF's bins) →
//! `torch.bincount`; flat positions as coordinates (`UnravelIndex`) → `torch.unravel_index`.
//! Sparse tensors' parts: `SparseToDense` →
//! `index_put` into a filled tensor, `SparseReshape` and `SparseFillEmptyRows` → helpers.
//!
//! Index tuples (`[..., K]`, the last axis addressing the first K axes) become
//! `tuple(indices.long().unbind(-1))`, the form torch's advanced indexing takes.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::{scalar, sizes};
use crate::ops::util::{same_as_input, torch_attr};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("GatherNd", gather_nd).infer(gather_nd_infer),
    op("ScatterNd", scatter_nd).infer(scatter_nd_infer),
    op("UnravelIndex", unravel_index).infer(unravel_index_infer),
    op("SparseToDense", sparse_to_dense).infer(sparse_to_dense_infer),
    op("SparseReshape", sparse_reshape).infer(sparse_reshape_infer),
    op("SparseFillEmptyRows", fill_empty_rows).infer(fill_empty_rows_infer),
    op("TensorScatterUpdate", |c| tensor_scatter(c, None)).infer(same_as_input),
    op("TensorScatterAdd", |c| tensor_scatter(c, Some(false))).infer(same_as_input),
    op("TensorScatterSub", |c| tensor_scatter(c, Some(true))).infer(same_as_input),
    op("TensorScatterMax", |c| tensor_scatter_reduce(c, "amax")).infer(same_as_input),
    op("TensorScatterMin", |c| tensor_scatter_reduce(c, "amin")).infer(same_as_input),
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
    op("HistogramFixedWidth", histogram).infer(histogram_infer),
    op("DenseBincount", bincount).infer(bincount_infer),
    op("SparseSegmentSum", |c| segment(c, Reduce::Sum, false)).infer(segment_infer),
    op("SparseSegmentMean", |c| segment(c, Reduce::Mean, false)).infer(segment_infer),
    op("SparseSegmentSumWithNumSegments", |c| segment(c, Reduce::Sum, true)).infer(segment_infer),
    op("SparseSegmentMeanWithNumSegments", |c| segment(c, Reduce::Mean, true)).infer(segment_infer),
    op("SparseSegmentSqrtN", |c| segment(c, Reduce::SqrtN, false)).infer(segment_infer),
    op("SparseSegmentSqrtNWithNumSegments", |c| segment(c, Reduce::SqrtN, true))
        .infer(segment_infer),
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

/// `SparseToDense(indices, shape, values, default)`: `default` everywhere but at the
/// indices (`[N, R]` tuples, or `[N]` positions of a vector, or one scalar position), which
/// take `values` (one per index, or one for all). Repeated indices keep one of their values.
/// Flat positions as coordinates in `dims`: `[len(dims)]` for one position, `[len(dims), n]`
/// for `n` (torch gives one tensor per axis).
fn unravel_index(ctx: &mut Ctx) -> OpResult<Lowered> {
    let dims = sizes(ctx, 1)?.tuple();
    // A Python int (a size, a literal) is made a tensor first.
    let ids = ctx.input(0)?;
    let ids = if ids.layout == Layout::Host || ids.expr.is_literal() {
        Expr::call("torch.as_tensor", vec![ids.expr])
    } else {
        ctx.input_tf(0)?
    };
    let dtype = ctx.info(0).dtype.and_then(|d| d.torch_name()).unwrap_or("int32");
    let axes = Expr::call("torch.unravel_index", vec![ids.method("long", vec![]), dims]);
    let expr = Expr::call("torch.stack", vec![axes]).method("to", vec![torch_attr(dtype)]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn unravel_index_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let ids = inp.infos.first()?;
    let axes = inp.infos.get(1)?.dim(0);
    let shape = ids.shape.as_ref().map(|s| [axes].into_iter().chain(s.iter().copied()).collect());
    Some(vec![ValueInfo { dtype: ids.dtype, shape }])
}

fn sparse_to_dense(ctx: &mut Ctx) -> OpResult<Lowered> {
    let shape = sizes(ctx, 1)?.tuple();
    let index = match ctx.rank(0) {
        Some(2) => index_tuple(ctx.input_tf(0)?),
        Some(0 | 1) => Expr::Tuple(vec![ctx.input_tf(0)?.method("long", vec![])]),
        _ => return Err("indices must be a scalar, a vector or a matrix".into()),
    };
    let dtype = ctx.node().attr_type("T").ok().and_then(|d| d.torch_name()).unwrap_or("float32");
    let (values, default) = (ctx.input_tf(2)?, ctx.input_tf(3)?);
    let dense =
        Expr::call_kw("torch.full", vec![shape, default], vec![("dtype", torch_attr(dtype))]);
    let expr = dense.method("index_put", vec![index, values]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn sparse_to_dense_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let dtype = inp.infos.get(2)?.dtype;
    Some(vec![ValueInfo { dtype, shape: inp.sizes(1) }])
}

/// `SparseReshape(indices, shape, new_shape)` → `new_indices, new_shape =
/// sparse_reshape(...)` (templates/sparse_reshape.py): positions re-expressed, `-1` resolved.
fn sparse_reshape(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("sparse_reshape", include_str!("../../templates/sparse_reshape.py"));
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?];
    Ok(Lowered::Multi { expr: Expr::call("sparse_reshape", args), layout: Layout::Tf })
}

/// `[n, new rank]` and `[new rank]`, int64.
fn sparse_reshape_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (n, rank) = (inp.infos.first()?.dim(0), inp.infos.get(2)?.dim(0));
    Some(vec![
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![n, rank]) },
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![rank]) },
    ])
}

/// `SparseFillEmptyRows(indices, values, dense_shape, default)` → its four outputs from
/// `sparse_fill_empty_rows(...)` (templates/sparse_fill_empty_rows.py).
fn fill_empty_rows(ctx: &mut Ctx) -> OpResult<Lowered> {
    let helper = include_str!("../../templates/sparse_fill_empty_rows.py");
    ctx.require_class("sparse_fill_empty_rows", helper);
    let args = (0..4).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
    Ok(Lowered::Multi { expr: Expr::call("sparse_fill_empty_rows", args), layout: Layout::Tf })
}

/// `[n', rank]` int64, `[n']` values, `[rows]` bool, `[n]` int64.
fn fill_empty_rows_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (n, rank) = (inp.infos.first()?.dim(0), inp.infos.first()?.dim(1));
    let rows = inp.scalar_int(2).and_then(|r| usize::try_from(r).ok());
    Some(vec![
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![None, rank]) },
        ValueInfo { dtype: inp.infos.get(1)?.dtype, shape: Some(vec![None]) },
        ValueInfo { dtype: Some(DType::Bool), shape: Some(vec![rows]) },
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![n]) },
    ])
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

/// `TensorScatterMax/Min`: each slice the max (min) of itself and the updates sent to it,
/// duplicates included, through `scatter_reduce` on the leading axes flattened (a helper).
fn tensor_scatter_reduce(ctx: &mut Ctx, reduce: &str) -> OpResult<Lowered> {
    if ctx.info(1).shape.and_then(|s| s.last().copied().flatten()) == Some(0) {
        return Err("indices of depth 0 are not supported".into());
    }
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?, Expr::str_lit(reduce)];
    ctx.require_class(
        "tensor_scatter_reduce",
        include_str!("../../templates/tensor_scatter_reduce.py"),
    );
    let expr = Expr::call("tensor_scatter_reduce", args);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

#[derive(Clone, Copy, PartialEq)]
enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    SqrtN,
}

/// Rows of `data` reduced by segment id (ids of rank 1, one per row). Sorted ops have
/// `ids[-1] + 1` segments and give empty segments 0; unsorted ones (and `...WithNumSegments`)
/// take the count as an input, drop rows with a negative id, and give empty segments the
/// reduction's identity (TF: the lowest or highest value for max and min). The sparse forms
/// first pick the rows `data[indices]`.
fn segment(ctx: &mut Ctx, reduce: Reduce, counted: bool) -> OpResult<Lowered> {
    let sparse = ctx.node().op.starts_with("Sparse");
    let (ids_at, count_at) = if sparse { (2, 3) } else { (1, 2) };
    // The data's rank may be unknown: the row shape is then read at run time.
    let rank = ctx.rank(0);
    if rank == Some(0) || ctx.rank(ids_at).is_some_and(|r| r != 1) {
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
    if rank != Some(1) {
        let rest = input.clone().attr("shape").index(Expr::slice(Some(Expr::int(1)), None, None));
        shape.push(Expr::Starred(Box::new(rest)));
    }
    let count_expr = shape[0].clone();
    let shape = Expr::Tuple(shape);
    // Each row's id, shaped to broadcast against the rows (scatter_reduce's index).
    let view = match rank {
        Some(rank) => {
            let mut view = vec![Expr::int(-1)];
            view.extend(std::iter::repeat_n(Expr::int(1), rank - 1));
            view
        }
        // `(-1,) + (1,) * (x.dim() - 1)`
        None => {
            let ones = Expr::Tuple(vec![Expr::int(1)]).binop(
                BinOp::Mul,
                input.clone().method("dim", vec![]).binop(BinOp::Sub, Expr::int(1)),
            );
            vec![Expr::Tuple(vec![Expr::int(-1)]).binop(BinOp::Add, ones)]
        }
    };
    let (name, init) = match reduce {
        Reduce::Sum | Reduce::SqrtN => {
            let zeros = input.clone().method("new_zeros", vec![shape]);
            let mut expr = zeros.method("index_add", vec![Expr::int(0), ids.clone(), rows]);
            if reduce == Reduce::SqrtN {
                // The sum over sqrt(rows in the segment); an empty segment stays 0.
                let counts =
                    Expr::call_kw("torch.bincount", vec![ids], vec![("minlength", count_expr)]);
                let root = counts
                    .method_kw("clamp", vec![], vec![("min", Expr::int(1))])
                    .method("to", vec![input.attr("dtype")])
                    .method("sqrt", vec![])
                    .method("reshape", view);
                // `.div`: a method chain lays out as ruff would; a long `/` may not.
                expr = expr.method("div", vec![root]);
            }
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
    let index = ids.method("reshape", view).method("expand_as", vec![rows.clone()]);
    let start = input.method("new_full", vec![shape, init]);
    let expr = start.method_kw(
        "scatter_reduce",
        vec![Expr::int(0), index, rows, Expr::str_lit(name)],
        vec![("include_self", Expr::boolean(false))],
    );
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// `tf.math.bincount`: how often each value in `[0, size)` occurs (or the sum of its
/// weights; 1 where it occurs with `binary_output`), of a vector or (`DenseBincount`) of each
/// row of a matrix. TF ignores values outside the range, so they are filtered first; rows are
/// counted in one `torch.bincount` by giving row `i` the bins `[i * size, (i + 1) * size)`.
/// The result has TF's dtype.
fn bincount(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let binary = node.attr_bool_or("binary_output", false)?;
    let dtype = node.attr_type("T").ok().and_then(|d| d.torch_name()).unwrap_or("int32");
    // `Bincount` counts every value whatever the shape (the mask below flattens them);
    // `DenseBincount` a vector, or each row of a matrix.
    let by_rows = match (node.op.as_str(), ctx.rank(0)) {
        ("DenseBincount", Some(2)) => true,
        ("DenseBincount", Some(1)) | ("Bincount", _) => false,
        _ => return Err("values must be a vector or a matrix".into()),
    };
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
    let (bins, minlength) = if by_rows {
        let rows = x.clone().attr("shape").index(Expr::int(0));
        let row = Expr::call_kw(
            "torch.arange",
            vec![rows.clone()],
            vec![("device", x.clone().attr("device"))],
        );
        let offset = row.method("unsqueeze", vec![Expr::int(1)]).binop(BinOp::Mul, size.clone());
        (x.method("add", vec![offset]), rows.binop(BinOp::Mul, size.clone()))
    } else {
        (x, size.clone())
    };
    kwargs.push(("minlength", minlength));
    let values = bins.index(keep).method("long", vec![]);
    let mut counts = Expr::call_kw("torch.bincount", vec![values], kwargs);
    if by_rows {
        counts = counts.method("reshape", vec![Expr::int(-1), size]);
    }
    if binary {
        counts = counts.binop(BinOp::Gt, Expr::int(0));
    }
    let expr = counts.method("to", vec![torch_attr(dtype)]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn segment_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let data = inp.infos.first()?;
    let Some(shape) = data.shape.as_ref() else {
        return Some(vec![ValueInfo { dtype: data.dtype, shape: None }]);
    };
    // The segment count is an input of the counted forms only (after the ids).
    let op = inp.node.op.as_str();
    let count_at =
        match (op.starts_with("Sparse"), op.starts_with("Unsorted") || op.ends_with("NumSegments"))
        {
            (_, false) => None,
            (true, true) => Some(3),
            (false, true) => Some(2),
        };
    let count = count_at.and_then(|i| inp.scalar_int(i)).and_then(|n| usize::try_from(n).ok());
    let mut out = vec![count];
    out.extend(shape.get(1..)?);
    Some(vec![ValueInfo { dtype: data.dtype, shape: Some(out) }])
}

/// `[size]` of a vector, `[rows, size]` of a matrix; the dtype of the weights.
/// `tf.histogram_fixed_width` → `histogram_fixed_width` (templates/): the kernel's bins,
/// counted by `torch.bincount`.
fn histogram(ctx: &mut Ctx) -> OpResult<Lowered> {
    let dtype = ctx.node().attr_type_or("dtype", DType::I32)?;
    let dtype = dtype.torch_name().ok_or("the counts' dtype has no torch equivalent")?;
    ctx.require_class(
        "histogram_fixed_width",
        include_str!("../../templates/histogram_fixed_width.py"),
    );
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, scalar(ctx, 2)?.expr, torch_attr(dtype)];
    let expr = Expr::call("histogram_fixed_width", args);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn histogram_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let bins = inp.scalar_int(2).and_then(|n| usize::try_from(n).ok());
    let dtype = inp.node.attr_type_or("dtype", DType::I32).ok();
    Some(vec![ValueInfo { dtype, shape: Some(vec![bins]) }])
}

fn bincount_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let values = inp.infos.first()?.shape.as_ref()?;
    let size = inp.scalar_int(1).and_then(|n| usize::try_from(n).ok());
    let mut shape = values[..values.len().saturating_sub(1)].to_vec();
    shape.push(size);
    Some(vec![ValueInfo { dtype: inp.infos.get(2)?.dtype, shape: Some(shape) }])
}

#[cfg(test)]
mod tests {
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn sparse_parts_reshape_and_densify() {
        let mut g = TestGraph::new();
        let idx = g.typed_input("indices", &[-1, 3], DType::I64);
        let shape = g.constant("shape", int_tensor(&[3], &[5, 3, 4]));
        let new = g.constant("new", int_tensor(&[2], &[-1, 6]));
        let r = g.op("reshape", "SparseReshape", &[idx, shape, new], &[]);
        let values = g.input("values", &[-1]);
        let default = g.input("default", &[]);
        let d = g.op("dense", "SparseToDense", &[idx, shape, values, default], &[]);
        let f = g.op("fill", "SparseFillEmptyRows", &[idx, values, shape, default], &[]);
        let outs = [r, TestGraph::port(r, 1), d, f, TestGraph::port(f, 2)];
        assert_snapshot!(g.lower(&outs), @"
        self.shape_const: [3] int32
        self.new_const: [2] int32
        # shape_const: [3]
        # new_const: [2]
        ---
        x, reshape_1 = sparse_reshape(indices, self.shape_const, self.new_const)
        dense = torch.full((5, 3, 4), default, dtype=torch.float32).index_put(
            tuple(indices.long().unbind(-1)), values
        )
        fill, _, fill_2, _ = sparse_fill_empty_rows(
            indices, values, self.shape_const, default
        )
        return x, reshape_1, dense, fill, fill_2
        ");
    }

    #[test]
    fn segments_by_sqrt_n_and_counts_by_row() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 6]);
        let rows = g.typed_input("rows", &[-1], DType::I32);
        let ids = g.typed_input("ids", &[-1], DType::I32);
        let s = g.op("sqrt_n", "SparseSegmentSqrtN", &[x, rows, ids], &[]);
        let values = g.typed_input("values", &[-1, 5], DType::I32);
        let size = g.constant("size", int_tensor(&[], &[6]));
        let none = g.constant("weights", weights(&[0]));
        let c = g.op("counts", "DenseBincount", &[values, size, none], &[]);
        assert_snapshot!(g.lower(&[s, c]), @"
        ---
        x = (
            x.new_zeros((int(ids.long()[-1]) + 1, *x.shape[1:]))
            .index_add(0, ids.long(), x[rows.long()])
            .div(
                torch.bincount(ids.long(), minlength=int(ids.long()[-1]) + 1)
                .clamp(min=1)
                .to(x.dtype)
                .sqrt()
                .reshape(-1, 1),
            )
        )
        counts = (
            torch.bincount(
                values.add(
                    torch.arange(values.shape[0], device=values.device).unsqueeze(1) * 6
                )[(values >= 0) & (values < 6)].long(),
                minlength=values.shape[0] * 6,
            )
            .reshape(-1, 6)
            .to(torch.int32)
        )
        return x, counts
        ");
    }
}
