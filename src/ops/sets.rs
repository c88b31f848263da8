//! Set operations on the last axis of dense tensors (`tf.sets.difference`, `intersection`,
//! `union`: `DenseToDenseSetOperation`) → `set_operation` (templates/set_operation.py),
//! returning TF's sparse triple.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[op("DenseToDenseSetOperation", set_operation).infer(set_infer)];

/// `indices, values, dense_shape = set_operation(a, b, "a-b")`.
fn set_operation(ctx: &mut Ctx) -> OpResult<Lowered> {
    let operation = ctx.node().attr_str("set_operation")?;
    if !["a-b", "b-a", "intersection", "union"].contains(&operation.as_str()) {
        return Err(format!("unknown set operation {operation:?}").into());
    }
    if ctx.rank(0).is_some_and(|r| r < 2) || ctx.rank(0) != ctx.rank(1) {
        return Err("both sets must be tensors of one rank, at least 2".into());
    }
    ctx.require_class("set_operation", include_str!("../../templates/set_operation.py"));
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, Expr::str_lit(&operation)];
    Ok(Lowered::Multi { expr: Expr::call("set_operation", args), layout: Layout::Tf })
}

/// `[n, rank]` int64 indices, `[n]` values, `[rank]` int64 shape.
fn set_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let a = inp.infos.first()?;
    let rank = a.shape.as_ref().map(Vec::len);
    Some(vec![
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![None, rank]) },
        ValueInfo { dtype: a.dtype, shape: Some(vec![None]) },
        ValueInfo { dtype: Some(DType::I64), shape: Some(vec![rank]) },
    ])
}

#[cfg(test)]
mod tests {
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn sets_return_the_sparse_triple() {
        let mut g = TestGraph::new();
        let a = g.typed_input("a", &[-1, 5], DType::I32);
        let b = g.typed_input("b", &[-1, 5], DType::I32);
        let attrs = [("set_operation", string("a-b"))];
        let s = g.op("set", "DenseToDenseSetOperation", &[a, b], &attrs);
        let outs = [s, TestGraph::port(s, 1), TestGraph::port(s, 2)];
        assert_snapshot!(g.lower(&outs), @r#"
        ---
        x, set_1, set_2 = set_operation(a, b, "a-b")
        return x, set_1, set_2
        "#);
    }
}
