//! Ragged tensors as TF's graphs hold them, a flat tensor of values plus row partitions:
//! `RaggedRange` (`tf.ragged.range`), `RaggedTensorToTensor` (`.to_tensor()`),
//! `RaggedGather` (`tf.gather` of rows) and `RaggedTensorToSparse` (`.to_sparse()`) → small
//! helpers (templates/ragged.py) returning plain tensors.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::torch_attr;
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("RaggedRange", ragged_range).infer(ragged_range_infer),
    op("RaggedTensorToTensor", ragged_to_dense),
    op("RaggedGather", ragged_gather).infer(ragged_gather_infer),
    op("RaggedTensorToSparse", ragged_to_sparse).infer(ragged_to_sparse_infer),
];

fn helpers(ctx: &mut Ctx) {
    ctx.require_class("ragged", include_str!("../../templates/ragged.py"));
}

/// `(rt_nested_splits, rt_dense_values) = ragged_range(starts, limits, deltas, int64)`.
fn ragged_range(ctx: &mut Ctx) -> OpResult<Lowered> {
    let splits = ctx.node().attr_type("Tsplits").unwrap_or(DType::I64);
    let name = splits.torch_name().ok_or("Tsplits must be an integer type")?;
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?, torch_attr(name)];
    helpers(ctx);
    Ok(Lowered::Multi { expr: Expr::call("ragged_range", args), layout: Layout::Tf })
}

fn ragged_range_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let splits = inp.node.attr_type("Tsplits").unwrap_or(DType::I64);
    Some(vec![
        ValueInfo { dtype: Some(splits), shape: Some(vec![None]) },
        ValueInfo { dtype: inp.infos.first()?.dtype, shape: Some(vec![None]) },
    ])
}

/// `ragged_to_dense(shape, values, default, [partitions..], [types..])`.
fn ragged_to_dense(ctx: &mut Ctx) -> OpResult<Lowered> {
    let types = ctx.node().attr_strs("row_partition_types")?;
    let known = ["ROW_SPLITS", "VALUE_ROWIDS", "FIRST_DIM_SIZE"];
    if let Some(t) = types.iter().find(|t| !known.contains(&t.as_str())) {
        return Err(format!("row partition type {t} is not supported").into());
    }
    if types.len() + 3 != ctx.num_inputs() || types.is_empty() {
        return Err("one row partition tensor per row_partition_types entry".into());
    }
    let (shape, values, default) = (ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?);
    let partitions = (3..ctx.num_inputs()).map(|i| ctx.input_tf(i)).collect::<OpResult<_>>()?;
    let types = types.iter().map(|t| Expr::str_lit(t)).collect();
    helpers(ctx);
    let args = vec![shape, values, default, Expr::List(partitions), Expr::List(types)];
    Ok(Lowered::Expr { expr: Expr::call("ragged_to_dense", args), layout: Layout::Tf })
}

/// The row splits (all inputs but the last `after`) as a list, and the rest.
fn splits_and_rest(ctx: &mut Ctx, after: usize) -> OpResult<(Expr, Vec<Expr>)> {
    let n = ctx.num_inputs();
    let ragged = n.checked_sub(after).filter(|&r| r > 0).ok_or("no row splits")?;
    let splits = (0..ragged).map(|i| ctx.input_tf(i)).collect::<OpResult<_>>()?;
    let rest = (ragged..n).map(|i| ctx.input_tf(i)).collect::<OpResult<_>>()?;
    Ok((Expr::List(splits), rest))
}

/// `*splits, values = ragged_gather([splits..], values, indices)`, indices a vector.
fn ragged_gather(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.rank(ctx.num_inputs().saturating_sub(1)).is_some_and(|r| r != 1) {
        return Err("only a vector of indices is supported".into());
    }
    let (splits, mut rest) = splits_and_rest(ctx, 2)?;
    helpers(ctx);
    let indices = rest.pop().ok_or("no indices")?;
    let values = rest.pop().ok_or("no values")?;
    let expr = Expr::call("ragged_gather", vec![splits, values, indices]);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

fn ragged_gather_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = inp.infos.len();
    let values = inp.infos.get(n.checked_sub(2)?)?;
    let mut out: Vec<ValueInfo> = inp.infos[..n - 2]
        .iter()
        .map(|s| ValueInfo { dtype: s.dtype, shape: Some(vec![None]) })
        .collect();
    let mut shape = values.shape.clone();
    if let Some(first) = shape.as_mut().and_then(|s| s.first_mut()) {
        *first = None;
    }
    out.push(ValueInfo { dtype: values.dtype, shape });
    Some(out)
}

/// `indices, values, dense_shape = ragged_to_sparse([splits..], values)`.
fn ragged_to_sparse(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (splits, mut rest) = splits_and_rest(ctx, 1)?;
    helpers(ctx);
    let values = rest.pop().ok_or("no values")?;
    let expr = Expr::call("ragged_to_sparse", vec![splits, values]);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

fn ragged_to_sparse_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = inp.infos.len();
    let values = inp.infos.get(n.checked_sub(1)?)?;
    let rank = values.shape.as_ref().map(|s| s.len() + n - 1);
    Some(vec![
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![None, rank]) },
        ValueInfo { dtype: values.dtype, shape: Some(vec![None]) },
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![rank]) },
    ])
}

#[cfg(test)]
mod tests {
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A ragged range made dense: both helpers, the partition kinds as TF names them.
    #[test]
    fn ragged_range_to_dense() {
        let mut g = TestGraph::new();
        let starts = g.typed_input("starts", &[-1], DType::I32);
        let limits = g.typed_input("limits", &[-1], DType::I32);
        let delta = g.constant("delta", int_tensor(&[], &[2]));
        let r = g.op("range", "RaggedRange", &[starts, limits, delta], &[]);
        let shape = g.constant("shape", int_tensor(&[], &[-1]));
        let default = g.constant("default", int_tensor(&[], &[0]));
        let kinds = crate::proto::AttrValue {
            value: Some(crate::proto::attr_value::Value::List(Box::new(crate::proto::ListValue {
                s: vec![b"ROW_SPLITS".to_vec()],
                ..Default::default()
            }))),
        };
        let values = TestGraph::port(r, 1);
        let y = g.op(
            "dense",
            "RaggedTensorToTensor",
            &[shape, values, default, r],
            &[("row_partition_types", kinds)],
        );
        assert_snapshot!(g.lower(&[y]), @r#"
        ---
        x, range_1 = ragged_range(starts, limits, 2, torch.int64)
        x = ragged_to_dense(-1, range_1, 0, [x], ["ROW_SPLITS"])
        return x
        "#);
    }

    /// Rows gathered and a ragged tensor made sparse: the splits go as one list.
    #[test]
    fn ragged_gather_and_to_sparse() {
        let mut g = TestGraph::new();
        let outer = g.typed_input("outer", &[-1], DType::I64);
        let inner = g.typed_input("inner", &[-1], DType::I64);
        let values = g.input("values", &[-1, 2]);
        let rows = g.typed_input("rows", &[-1], DType::I32);
        let picked = g.op("gather", "RaggedGather", &[outer, inner, values, rows], &[]);
        let sparse = g.op("sparse", "RaggedTensorToSparse", &[outer, inner, values], &[]);
        let outs = [picked, TestGraph::port(picked, 2), sparse, TestGraph::port(sparse, 2)];
        assert_snapshot!(g.lower(&outs), @"
        ---
        x, _, gather_2 = ragged_gather([outer, inner], values, rows)
        sparse, _, sparse_2 = ragged_to_sparse([outer, inner], values)
        return x, gather_2, sparse, sparse_2
        ");
    }
}
