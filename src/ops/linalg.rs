//! Matrix decompositions and functions over the last two axes: log-determinants
//! (`tf.linalg.slogdet`, `logdet`), symmetric eigenproblems (`eigh`, `eigvalsh`), singular
//! values (`svd`, `pinv`), LU factors, the matrix exponential, least squares and
//! tridiagonal systems →
//! `torch.linalg`, in TF's output order (`svd`, `lu` and `tridiagonal_solve` through small helpers).

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{same_as_input, torch_attr};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("LogMatrixDeterminant", |c| call(c, "torch.linalg.slogdet", true)).infer(slogdet_infer),
    // TF reads the lower triangle, as torch does by default.
    op("SelfAdjointEigV2", |c| call(c, "torch.linalg.eigh", true)).infer(eigh_infer),
    op("MatrixExponential", |c| call(c, "torch.linalg.matrix_exp", false)).infer(same_as_input),
    op("Svd", svd).infer(svd_infer),
    op("Lu", lu).infer(lu_infer),
    op("MatrixSolveLs", solve_ls).infer(solve_ls_infer),
    op("TridiagonalSolve", tridiagonal_solve).infer(tridiagonal_infer),
];

/// `tf.linalg.tridiagonal_solve` (its Python wrapper turns the other formats into the
/// compact one): the dense system, solved by `torch.linalg.solve`. TF without pivoting
/// (the Thomas algorithm) and with it agree up to rounding on the systems it solves.
fn tridiagonal_solve(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.node().attr_bool_or("perturb_singular", false)? {
        return Err("perturb_singular is not supported".into());
    }
    ctx.require_class("tridiagonal_solve", include_str!("../../templates/tridiagonal_solve.py"));
    let expr = Expr::call("tridiagonal_solve", vec![ctx.input_tf(0)?, ctx.input_tf(1)?]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn tridiagonal_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    Some(vec![inp.infos.get(1)?.clone()])
}

/// `func(x)`, one output or several.
fn call(ctx: &mut Ctx, func: &str, multi: bool) -> OpResult<Lowered> {
    let expr = Expr::call(func, vec![ctx.input_tf(0)?]);
    Ok(if multi {
        Lowered::Multi { expr, layout: Layout::Tf }
    } else {
        Lowered::Expr { expr, layout: Layout::Tf }
    })
}

fn svd(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("svd", include_str!("../../templates/svd.py"));
    let mut kwargs = Vec::new();
    if !ctx.node().attr_bool_or("compute_uv", true)? {
        kwargs.push(("compute_uv", Expr::boolean(false)));
    }
    if ctx.node().attr_bool_or("full_matrices", false)? {
        kwargs.push(("full_matrices", Expr::boolean(true)));
    }
    let expr = Expr::call_kw("svd", vec![ctx.input_tf(0)?], kwargs);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

fn lu(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("lu", include_str!("../../templates/lu.py"));
    let index = ctx.node().attr_type_or("output_idx_type", DType::I32)?;
    let mut kwargs = Vec::new();
    if index != DType::I32 {
        let name = index.torch_name().ok_or("index type")?;
        kwargs.push(("index_dtype", torch_attr(name)));
    }
    let expr = Expr::call_kw("lu", vec![ctx.input_tf(0)?], kwargs);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

/// Least squares, `fast` or not (TF's two algorithms agree up to rounding), with TF's
/// Tikhonov term `l2_regularizer` only when it is zero: torch has none.
fn solve_ls(ctx: &mut Ctx) -> OpResult<Lowered> {
    let l2 = ctx.const_input(2)?.scalar_f64().ok_or("l2_regularizer must be a scalar")?;
    if l2 != 0.0 {
        return Err(format!("l2_regularizer {l2} (only 0 is translated)").into());
    }
    let (a, b) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let expr = Expr::call("torch.linalg.lstsq", vec![a, b]).attr("solution");
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The batch axes of `x` (all but the last two), then `tail`.
fn batch_then(x: &ValueInfo, tail: &[Option<usize>]) -> Option<Vec<Option<usize>>> {
    let s = x.shape.as_ref().filter(|s| s.len() >= 2)?;
    Some(s[..s.len() - 2].iter().copied().chain(tail.iter().copied()).collect())
}

fn slogdet_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let info = ValueInfo { dtype: x.dtype, shape: batch_then(x, &[]) };
    Some(vec![info.clone(), info])
}

fn eigh_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let n = x.shape.as_ref().and_then(|s| s.last().copied()).flatten();
    let values = ValueInfo { dtype: x.dtype, shape: batch_then(x, &[n]) };
    Some(vec![values, x.clone()])
}

fn svd_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let full = inp.node.attr_bool_or("full_matrices", false).ok()?;
    let (m, n) = match x.shape.as_deref() {
        Some([.., m, n]) => (*m, *n),
        _ => (None, None),
    };
    let k = m.zip(n).map(|(m, n)| m.min(n));
    let (uc, vc) = if full { (m, n) } else { (k, k) };
    let info = |tail: &[Option<usize>]| ValueInfo { dtype: x.dtype, shape: batch_then(x, tail) };
    Some(vec![info(&[k]), info(&[m, uc]), info(&[n, vc])])
}

fn lu_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let n = x.shape.as_ref().and_then(|s| s.last().copied()).flatten();
    let index = inp.node.attr_type_or("output_idx_type", DType::I32).ok()?;
    Some(vec![x.clone(), ValueInfo { dtype: Some(index), shape: batch_then(x, &[n]) }])
}

/// `[.., n, k]` for `a [.., m, n]` and `b [.., m, k]`.
fn solve_ls_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (a, b) = (inp.infos.first()?, inp.infos.get(1)?);
    let n = a.shape.as_ref().and_then(|s| s.last().copied()).flatten();
    let k = b.shape.as_ref().and_then(|s| s.last().copied()).flatten();
    Some(vec![ValueInfo { dtype: a.dtype, shape: batch_then(a, &[n, k]) }])
}
