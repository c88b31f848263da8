//! Data-dependent regrouping: `DynamicPartition` splits rows by a partition id (one boolean
//! mask per output, `data[partitions == k]`), `DynamicStitch` / `ParallelDynamicStitch` put
//! rows back at their indices (a helper, `_dynamic_stitch`), and `Unique` /
//! `UniqueWithCounts` list a vector's values in order of first appearance (a helper,
//! `_unique`: `torch.unique` sorts them). TF1's
//! `embedding_lookup` on a partitioned table is exactly these two around one gather per part.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::output_count;
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("DynamicPartition", dynamic_partition).infer(dynamic_partition_infer),
    op("DynamicStitch", dynamic_stitch).infer(dynamic_stitch_infer),
    // TF leaves the winner of duplicate indices undefined here; the translation is the same.
    op("ParallelDynamicStitch", dynamic_stitch).infer(dynamic_stitch_infer),
    op("Unique", |c| unique(c, false)).infer(|i| unique_infer(i, 2)),
    op("UniqueWithCounts", |c| unique(c, true)).infer(|i| unique_infer(i, 3)),
];

/// `y, idx(, count) = _unique(x, torch.int32)` (templates/unique.py).
fn unique(ctx: &mut Ctx, counts: bool) -> OpResult<Lowered> {
    if ctx.info(0).shape.is_some_and(|s| s.len() != 1) {
        return Err("Unique takes a vector".into());
    }
    let index = if index_dtype(ctx.node()) == DType::I64 { "int64" } else { "int32" };
    let x = ctx.input_tf(0)?;
    ctx.require_class("_unique", include_str!("../../templates/unique.py"));
    let mut kwargs = Vec::new();
    if counts {
        kwargs.push(("counts", Expr::boolean(true)));
    }
    let expr = Expr::call_kw("_unique", vec![x, crate::ops::util::torch_attr(index)], kwargs);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

/// `out_idx`: int32 unless int64 is asked for.
fn index_dtype(node: &crate::ir::Node) -> DType {
    node.attr_type("out_idx").ok().filter(|&d| d == DType::I64).unwrap_or(DType::I32)
}

fn unique_infer(inp: &OpInputs, outputs: usize) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let index = index_dtype(inp.node);
    let n = x.shape.as_ref().and_then(|s| s.first().copied()).flatten();
    let mut infos = vec![
        ValueInfo { dtype: x.dtype, shape: Some(vec![None]) },
        ValueInfo { dtype: Some(index), shape: Some(vec![n]) },
    ];
    if outputs == 3 {
        infos.push(ValueInfo { dtype: Some(index), shape: Some(vec![None]) });
    }
    Some(infos)
}

/// `(data[partitions == 0], data[partitions == 1], ...)`: a mask over the leading axes keeps
/// the selected rows in order, flattened to one axis, as TF does.
fn dynamic_partition(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = output_count(ctx.node(), "num_partitions")?;
    let (data, partitions) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let parts = (0..n)
        .map(|k| data.clone().index(partitions.clone().binop(BinOp::Eq, Expr::int(k as i64))))
        .collect();
    Ok(Lowered::Multi { expr: Expr::Tuple(parts), layout: Layout::Tf })
}

/// Output `k`: `[rows of part k] + data.shape[rank(partitions):]`.
fn dynamic_partition_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = usize::try_from(inp.node.attr_int("num_partitions").ok()?).ok()?;
    let (data, parts) = (inp.infos.first()?, inp.infos.get(1)?);
    let rank = parts.shape.as_ref()?.len();
    let mut shape = vec![None];
    shape.extend(data.shape.as_ref()?.get(rank..)?.iter().copied());
    (n <= crate::ops::util::MAX_OUTPUTS)
        .then(|| vec![ValueInfo { dtype: data.dtype, shape: Some(shape) }; n])
}

/// `_dynamic_stitch([indices...], [data...])`, a helper in `model.py`
/// (templates/dynamic_stitch.py): torch has no one call that places rows at indices with
/// TF's rule for repeated ones (the last wins).
fn dynamic_stitch(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = ctx.num_inputs() / 2;
    if n == 0 || ctx.num_inputs() != 2 * n {
        return Err("needs as many data inputs as index inputs".into());
    }
    let indices = (0..n).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
    let data = (n..2 * n).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
    ctx.require_class("_dynamic_stitch", include_str!("../../templates/dynamic_stitch.py"));
    let expr = Expr::call("_dynamic_stitch", vec![Expr::List(indices), Expr::List(data)]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn dynamic_stitch_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = inp.infos.len() / 2;
    let (indices, data) = (inp.infos.first()?, inp.infos.get(n)?);
    let rank = indices.shape.as_ref()?.len();
    let mut shape = vec![None];
    shape.extend(data.shape.as_ref()?.get(rank..)?.iter().copied());
    Some(vec![ValueInfo { dtype: data.dtype, shape: Some(shape) }])
}
