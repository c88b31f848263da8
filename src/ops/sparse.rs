//! Sparse tensors as TF passes them between ops (`indices [n, rank]`, `values [n]`,
//! `dense_shape [rank]`): a sparse-dense matrix product (graph networks' adjacency
//! matrices) and putting entries in canonical order. Each is a small helper in `model.py`.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;

pub const OPS: &[OpDef] = &[
    op("SparseTensorDenseMatMul", dense_matmul).infer(dense_matmul_infer),
    op("SparseReorder", reorder).infer(reorder_infer),
];

/// `SparseTensorDenseMatMul(a_indices, a_values, a_shape, b)` →
/// `sparse_dense_matmul(...)` (templates/sparse_dense_matmul.py).
fn dense_matmul(ctx: &mut Ctx) -> OpResult<Lowered> {
    let helper = include_str!("../../templates/sparse_dense_matmul.py");
    ctx.require_class("sparse_dense_matmul", helper);
    let args = (0..4).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
    let mut kwargs = Vec::new();
    for flag in ["adjoint_a", "adjoint_b"] {
        if ctx.node().attr_bool_or(flag, false)? {
            kwargs.push((flag, Expr::boolean(true)));
        }
    }
    let expr = Expr::call_kw("sparse_dense_matmul", args, kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// `[rows of a (or its columns when adjoint), columns of b (or its rows)]`, b's dtype.
fn dense_matmul_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let flag = |f: &str| inp.node.attr_bool_or(f, false).unwrap_or(false);
    let a = inp.sizes(2);
    let rows = a.and_then(|s| s.get(usize::from(flag("adjoint_a"))).copied().flatten());
    let b = inp.infos.get(3)?;
    let cols = b.dim(usize::from(!flag("adjoint_b")));
    Some(vec![ValueInfo { dtype: b.dtype, shape: Some(vec![rows, cols]) }])
}

/// `SparseReorder(indices, values, shape)` → `sparse_reorder(...)`
/// (templates/sparse_reorder.py): both outputs.
fn reorder(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("sparse_reorder", include_str!("../../templates/sparse_reorder.py"));
    let args = (0..3).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
    Ok(Lowered::Multi { expr: Expr::call("sparse_reorder", args), layout: Layout::Tf })
}

/// The same shapes and dtypes as the inputs.
fn reorder_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    Some(vec![inp.infos.first()?.clone(), inp.infos.get(1)?.clone()])
}
