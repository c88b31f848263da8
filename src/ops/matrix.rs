//! Matrix structure over the last two axes: `MatrixBandPart` (keep a band around the
//! diagonal, `tf.linalg.band_part`) → `tril`/`triu`; the main diagonal (`tf.linalg.diag`,
//! `diag_part`, `set_diag`: `MatrixDiag*`, `MatrixDiagPart*`, `MatrixSetDiag*` with `k = 0`)
//! → `torch.diag_embed`, `torch.diagonal`, `diagonal_scatter`; `InvertPermutation` →
//! `argsort`.

use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::same_as_input;
use crate::ops::{OpDef, op};
use crate::py::Expr;

pub const OPS: &[OpDef] = &[
    op("MatrixBandPart", band_part).infer(same_as_input),
    op("MatrixDiag", diag),
    op("MatrixDiagV2", diag),
    op("MatrixDiagV3", diag),
    op("MatrixDiagPart", diag_part),
    op("MatrixDiagPartV2", diag_part),
    op("MatrixDiagPartV3", diag_part),
    op("MatrixSetDiag", set_diag).infer(same_as_input),
    op("MatrixSetDiagV2", set_diag).infer(same_as_input),
    op("MatrixSetDiagV3", set_diag).infer(same_as_input),
    op("InvertPermutation", |c| {
        let p = c.input_tf(0)?;
        let expr = Expr::call("torch.argsort", vec![p.clone()]).method("to", vec![p.attr("dtype")]);
        Ok(Lowered::Expr { expr, layout: Layout::Tf })
    })
    .infer(same_as_input),
];

/// Entries `(i, j)` with `i - j <= lower` and `j - i <= upper` kept (a negative count keeps
/// that whole triangle): `x.tril(upper).triu(-lower)`.
fn band_part(ctx: &mut Ctx) -> OpResult<Lowered> {
    let bound = |ctx: &Ctx, i: usize| -> OpResult<i64> {
        match ctx.const_ints(i)?.as_slice() {
            [v] => Ok(*v),
            _ => Err(format!("input #{i} must be a scalar").into()),
        }
    };
    let (lower, upper) = (bound(ctx, 1)?, bound(ctx, 2)?);
    let mut expr = ctx.input_tf(0)?;
    if upper >= 0 {
        expr = expr.method("tril", vec![Expr::int(upper)]);
    }
    if lower >= 0 {
        expr = expr.method("triu", vec![Expr::int(-lower)]);
    }
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The diagonal offset `k` at input `i` (absent in the V1 ops): only the main diagonal.
fn main_diagonal_only(ctx: &Ctx, i: usize) -> OpResult<()> {
    if i >= ctx.num_inputs() {
        return Ok(());
    }
    match ctx.const_ints(i)?.as_slice() {
        [0] | [0, 0] => Ok(()),
        k => Err(format!("diagonals other than the main one (k = {k:?})").into()),
    }
}

/// `tf.linalg.diag(v)`: square matrices with `v` on the diagonal (V2/V3: `k = 0`, sizes
/// derived, zero padding).
fn diag(ctx: &mut Ctx) -> OpResult<Lowered> {
    main_diagonal_only(ctx, 1)?;
    if ctx.num_inputs() > 2 {
        let derived = |ctx: &Ctx, i: usize| ctx.const_ints(i).is_ok_and(|v| v == [-1]);
        let zero = ctx.const_input(4).ok().and_then(|t| t.scalar_f64()) == Some(0.0);
        if !derived(ctx, 2) || !derived(ctx, 3) || !zero {
            return Err("explicit matrix sizes or a non-zero padding are not supported".into());
        }
    }
    let v = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: Expr::call("torch.diag_embed", vec![v]), layout: Layout::Tf })
}

/// `tf.linalg.diag_part(x)`: the main diagonal of each matrix.
fn diag_part(ctx: &mut Ctx) -> OpResult<Lowered> {
    main_diagonal_only(ctx, 1)?;
    let x = ctx.input_tf(0)?;
    let kwargs = vec![("dim1", Expr::int(-2)), ("dim2", Expr::int(-1))];
    Ok(Lowered::Expr { expr: Expr::call_kw("torch.diagonal", vec![x], kwargs), layout: Layout::Tf })
}

/// `tf.linalg.set_diag(x, d)`: `x` with its main diagonal replaced (a new tensor).
fn set_diag(ctx: &mut Ctx) -> OpResult<Lowered> {
    main_diagonal_only(ctx, 2)?;
    let (x, d) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let kwargs = vec![("dim1", Expr::int(-2)), ("dim2", Expr::int(-1))];
    let expr = x.method_kw("diagonal_scatter", vec![d], kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}
