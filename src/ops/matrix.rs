//! Matrix structure over the last two axes: `MatrixBandPart` (keep a band around the
//! diagonal, `tf.linalg.band_part`) → `tril`/`triu`; the main diagonal (`tf.linalg.diag`,
//! `diag_part`, `set_diag`: `MatrixDiag*`, `MatrixDiagPart*`, `MatrixSetDiag*` with `k = 0`)
//! → `torch.diag_embed`, `torch.diagonal`, `diagonal_scatter`; any other diagonals, sizes,
//! padding or alignment (V2/V3), and bounds known only at run time, → small helpers
//! (templates/matrix_diag.py) with TF's exact layout; `MatrixInverse`, `MatrixDeterminant`,
//! `Cholesky`, `Qr`, `MatrixSolve`, `MatrixTriangularSolve` and `Cross` → `torch.linalg`;
//! `InvertPermutation` → `argsort`; `Diag`/`DiagPart` (`tf.linalg.tensor_diag`, of any even
//! rank) → `torch.diag`/`torch.diagonal`.

use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::scalar;
use crate::ops::util::same_as_input;
use crate::ops::{OpDef, op};
use crate::py::Expr;

pub const OPS: &[OpDef] = &[
    op("MatrixBandPart", band_part).infer(same_as_input),
    op("MatrixDiag", diag).infer(diag_infer),
    op("MatrixDiagV2", diag).infer(diag_infer),
    op("MatrixDiagV3", diag).infer(diag_infer),
    op("MatrixDiagPart", diag_part),
    op("MatrixDiagPartV2", diag_part),
    op("MatrixDiagPartV3", diag_part),
    op("MatrixSetDiag", set_diag).infer(same_as_input),
    op("MatrixSetDiagV2", set_diag).infer(same_as_input),
    op("MatrixSetDiagV3", set_diag).infer(same_as_input),
    // Square matrices over the last two axes.
    op("MatrixInverse", |c| {
        if c.node().attr_bool_or("adjoint", false)? {
            return Err("adjoint=true is not supported".into());
        }
        let x = c.input_tf(0)?;
        Ok(Lowered::Expr { expr: Expr::call("torch.linalg.inv", vec![x]), layout: Layout::Tf })
    })
    .infer(same_as_input),
    op("MatrixDeterminant", |c| {
        let x = c.input_tf(0)?;
        Ok(Lowered::Expr { expr: Expr::call("torch.linalg.det", vec![x]), layout: Layout::Tf })
    })
    .infer(det_infer),
    // TF's Cholesky factor is the lower one, as torch's.
    op("Cholesky", |c| {
        let x = c.input_tf(0)?;
        let expr = Expr::call("torch.linalg.cholesky", vec![x]);
        Ok(Lowered::Expr { expr, layout: Layout::Tf })
    })
    .infer(same_as_input),
    // Householder reflections, as Eigen's (TF's) and LAPACK's (torch's): the same signs.
    op("Qr", |c| {
        let full = c.node().attr_bool_or("full_matrices", false)?;
        let mode = Expr::str_lit(if full { "complete" } else { "reduced" });
        let expr = Expr::call_kw("torch.linalg.qr", vec![c.input_tf(0)?], vec![("mode", mode)]);
        Ok(Lowered::Multi { expr, layout: Layout::Tf })
    })
    .infer(qr_infer),
    op("MatrixSolve", solve).infer(solve_infer),
    op("MatrixTriangularSolve", triangular_solve).infer(solve_infer),
    op("Cross", |c| {
        let (a, b) = (c.input_tf(0)?, c.input_tf(1)?);
        let expr = Expr::call_kw("torch.linalg.cross", vec![a, b], vec![("dim", Expr::int(-1))]);
        Ok(Lowered::Expr { expr, layout: Layout::Tf })
    })
    .infer(same_as_input),
    op("Diag", tensor_diag).infer(tensor_diag_infer),
    op("DiagPart", tensor_diag_part).infer(tensor_diag_part_infer),
    op("InvertPermutation", |c| {
        let p = c.input_tf(0)?;
        let expr = Expr::call("torch.argsort", vec![p.clone()]).method("to", vec![p.attr("dtype")]);
        Ok(Lowered::Expr { expr, layout: Layout::Tf })
    })
    .infer(same_as_input),
];

/// `tf.linalg.tensor_diag`: a tensor of shape `s` on the diagonal of one of shape `s + s`
/// (`torch.diag` of a vector; of its flattening, reshaped, for higher ranks).
fn tensor_diag(ctx: &mut Ctx) -> OpResult<Lowered> {
    let x = ctx.input_tf(0)?;
    let expr = if ctx.rank(0) == Some(1) {
        Expr::call("torch.diag", vec![x])
    } else {
        let shape = x.clone().attr("shape");
        let both = shape.clone().binop(crate::py::BinOp::Add, shape);
        Expr::call("torch.diag", vec![x.method("flatten", vec![])]).method("reshape", vec![both])
    };
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn tensor_diag_infer(inp: &crate::ops::OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref().map(|s| s.iter().chain(s).copied().collect());
    Some(vec![crate::ir::ValueInfo { dtype: x.dtype, shape }])
}

/// `tf.linalg.tensor_diag_part`, the inverse: of a tensor of shape `s + s`, the entries at
/// `[i.., i..]`, shape `s`.
fn tensor_diag_part(ctx: &mut Ctx) -> OpResult<Lowered> {
    let rank = ctx.rank(0).ok_or("input rank must be known")?;
    if rank % 2 != 0 || rank == 0 {
        return Err(format!("input rank {rank} is not even").into());
    }
    let x = ctx.input_tf(0)?;
    let expr = if rank == 2 {
        Expr::call("torch.diagonal", vec![x])
    } else {
        let half = x.clone().attr("shape").index(Expr::slice(
            None,
            Some(Expr::int(rank as i64 / 2)),
            None,
        ));
        let side = half.clone().method("numel", vec![]);
        let square = x.method("reshape", vec![side.clone(), side]);
        Expr::call("torch.diagonal", vec![square]).method("reshape", vec![half])
    };
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn tensor_diag_part_infer(inp: &crate::ops::OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref().map(|s| s[..s.len() / 2].to_vec());
    Some(vec![crate::ir::ValueInfo { dtype: x.dtype, shape }])
}

/// `matrix @ x = rhs` (`adjoint`: `matrix^H @ x = rhs`) → `torch.linalg.solve`.
fn solve(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (mut a, b) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    if ctx.node().attr_bool_or("adjoint", false)? {
        a = a.attr("mH");
    }
    Ok(Lowered::Expr { expr: Expr::call("torch.linalg.solve", vec![a, b]), layout: Layout::Tf })
}

/// The same with a triangular matrix, of which TF reads only the `lower` (or upper)
/// triangle, as torch does: the adjoint of a lower matrix is an upper one.
fn triangular_solve(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (mut a, b) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let lower = ctx.node().attr_bool_or("lower", true)?;
    let adjoint = ctx.node().attr_bool_or("adjoint", false)?;
    if adjoint {
        a = a.attr("mH");
    }
    let upper = Expr::boolean(lower == adjoint);
    let expr = Expr::call_kw("torch.linalg.solve_triangular", vec![a, b], vec![("upper", upper)]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The right-hand side's matrices, over the batch axes of both broadcast.
fn solve_infer(inp: &crate::ops::OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let (a, b) = (inp.infos.first()?, inp.infos.get(1)?);
    let shape = match (&a.shape, &b.shape) {
        (Some(sa), Some(sb)) if sa.len() >= 2 && sb.len() >= 2 => {
            let batch = |s: &[Option<usize>]| Some(s[..s.len() - 2].to_vec());
            crate::ops::util::broadcast(&batch(sa), &batch(sb)).map(|mut out| {
                out.extend_from_slice(&sb[sb.len() - 2..]);
                out
            })
        }
        _ => None,
    };
    Some(vec![crate::ir::ValueInfo { dtype: b.dtype, shape }])
}

/// `Q [.., M, K]` and `R [.., K, N]` of `[.., M, N]`, `K` being `M` for full matrices and
/// `min(M, N)` otherwise.
fn qr_infer(inp: &crate::ops::OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let x = inp.infos.first()?;
    let full = inp.node.attr_bool_or("full_matrices", false).ok()?;
    let shapes = x.shape.as_ref().filter(|s| s.len() >= 2).map(|s| {
        let (batch, m, n) = (&s[..s.len() - 2], s[s.len() - 2], s[s.len() - 1]);
        let k = if full { m } else { m.zip(n).map(|(m, n)| m.min(n)) };
        let with = |a, b| batch.iter().copied().chain([a, b]).collect::<Vec<_>>();
        (with(m, k), with(k, n))
    });
    let (q, r) = shapes.map_or((None, None), |(q, r)| (Some(q), Some(r)));
    let info = |shape| crate::ir::ValueInfo { dtype: x.dtype, shape };
    Some(vec![info(q), info(r)])
}

/// A determinant per matrix: the two matrix axes dropped.
fn det_infer(inp: &crate::ops::OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref().filter(|s| s.len() >= 2).map(|s| s[..s.len() - 2].to_vec());
    Some(vec![crate::ir::ValueInfo { dtype: x.dtype, shape }])
}

/// Entries `(i, j)` with `i - j <= lower` and `j - i <= upper` kept (a negative count keeps
/// that whole triangle): `x.tril(upper).triu(-lower)`; bounds known only at run time go to
/// the `band_part` helper.
fn band_part(ctx: &mut Ctx) -> OpResult<Lowered> {
    let bound = |ctx: &Ctx, i: usize| -> Option<i64> {
        match ctx.const_ints(i).ok()?.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    };
    let (Some(lower), Some(upper)) = (bound(ctx, 1), bound(ctx, 2)) else {
        let x = ctx.input_tf(0)?;
        let (lower, upper) = (scalar(ctx, 1)?.expr, scalar(ctx, 2)?.expr);
        return helper(ctx, "band_part", vec![x, lower, upper], vec![]);
    };
    // The main diagonal is `tril`'s and `triu`'s default: `x.tril()`.
    let diagonal = |d: i64| if d == 0 { vec![] } else { vec![Expr::int(d)] };
    let mut expr = ctx.input_tf(0)?;
    if upper >= 0 {
        expr = expr.method("tril", diagonal(upper));
    }
    if lower >= 0 {
        expr = expr.method("triu", diagonal(-lower));
    }
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// A call of one of the diagonal helpers (templates/matrix_diag.py, emitted once).
fn helper(
    ctx: &mut Ctx,
    name: &str,
    args: Vec<Expr>,
    kwargs: Vec<(&str, Expr)>,
) -> OpResult<Lowered> {
    ctx.require_class("matrix_diag", include_str!("../../templates/matrix_diag.py"));
    Ok(Lowered::Expr { expr: Expr::call_kw(name, args, kwargs), layout: Layout::Tf })
}

/// Whether the diagonal offsets `k` at input `i` are the main diagonal's (absent in the V1
/// ops).
fn main_diagonal(ctx: &Ctx, i: usize) -> bool {
    i >= ctx.num_inputs() || ctx.const_ints(i).is_ok_and(|k| matches!(k.as_slice(), [0] | [0, 0]))
}

/// The offsets `k` as the helpers take them: `1`, `(-1, 2)`, or the run-time value.
fn offsets(ctx: &mut Ctx, i: usize) -> OpResult<Expr> {
    if let Ok(k) = ctx.const_ints(i) {
        return match k.as_slice() {
            [k] => Ok(Expr::int(*k)),
            [lo, hi] => Ok(Expr::Tuple(vec![Expr::int(*lo), Expr::int(*hi)])),
            _ => Err(format!("input #{i} must have one or two entries").into()),
        };
    }
    ctx.input_in(i, Layout::Host)
}

/// TF's `align` (V3; V2 behaves as "LEFT_LEFT", the helpers' default) as a keyword.
fn align(ctx: &Ctx) -> OpResult<Vec<(&'static str, Expr)>> {
    if !ctx.node().op.ends_with("V3") {
        return Ok(vec![]);
    }
    let align = ctx.node().attr_str_or("align", "RIGHT_LEFT")?;
    if !["LEFT_LEFT", "LEFT_RIGHT", "RIGHT_LEFT", "RIGHT_RIGHT"].contains(&align.as_str()) {
        return Err(format!("unknown align {align:?}").into());
    }
    Ok(if align == "LEFT_LEFT" { vec![] } else { vec![("align", Expr::str_lit(&align))] })
}

/// `tf.linalg.diag(v)`: square matrices with `v` on the diagonal, `torch.diag_embed`; other
/// diagonals, sizes or padding (V2/V3) → the `matrix_diag` helper.
fn diag(ctx: &mut Ctx) -> OpResult<Lowered> {
    let derived = |ctx: &Ctx, i: usize| ctx.const_ints(i).is_ok_and(|v| v == [-1]);
    let plain = ctx.num_inputs() <= 2
        || (derived(ctx, 2)
            && derived(ctx, 3)
            && ctx.const_input(4).ok().and_then(|t| t.scalar_f64()) == Some(0.0));
    let v = ctx.input_tf(0)?;
    if main_diagonal(ctx, 1) && plain {
        return Ok(Lowered::Expr {
            expr: Expr::call("torch.diag_embed", vec![v]),
            layout: Layout::Tf,
        });
    }
    if ctx.num_inputs() != 5 {
        return Err("expected diagonal, k, num_rows, num_cols and padding_value".into());
    }
    let k = offsets(ctx, 1)?;
    let (rows, cols) = (scalar(ctx, 2)?.expr, scalar(ctx, 3)?.expr);
    let padding = ctx.input_tf(4)?;
    let kwargs = align(ctx)?;
    helper(ctx, "matrix_diag", vec![v, k, rows, cols, padding], kwargs)
}

/// Matrices from diagonals: one diagonal `k` of `[.., n]` gives `[.., rows, cols]`, a band
/// `(lo, hi)` of `[.., d, n]` the same; the sizes are the given ones, or for `tf.eye` and
/// `tf.linalg.diag` (both derived) the square that holds the diagonal, `n + |k|`. A rank is
/// kept where sizes are known only at run time (XLNet's `tf.eye(n)`), so what follows it has
/// one too.
fn diag_infer(inp: &crate::ops::OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let k = if inp.infos.len() > 1 { inp.const_ints(1)? } else { vec![0] };
    let (batch, n, single) = match k.as_slice() {
        [k] => (shape.len().checked_sub(1)?, Some(*k), true),
        [lo, hi] if lo == hi => (shape.len().checked_sub(1)?, Some(*lo), true),
        [_, _] => (shape.len().checked_sub(2)?, None, false),
        _ => return None,
    };
    let given = |i: usize| inp.scalar_int(i).filter(|&v| v >= 0).map(|v| v as usize);
    let derived = |i: usize| inp.infos.len() <= i || inp.scalar_int(i) == Some(-1);
    let square = match (single, n, shape.last().copied().flatten()) {
        (true, Some(k), Some(len)) if derived(2) && derived(3) => {
            len.checked_add(usize::try_from(k.unsigned_abs()).ok()?)
        }
        _ => None,
    };
    let rows = given(2).or(square);
    let cols = given(3).or(square);
    let mut out = shape[..batch].to_vec();
    out.extend([rows, cols]);
    Some(vec![crate::ir::ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// `tf.linalg.diag_part(x)`: the main diagonal of each matrix, `torch.diagonal`; other
/// diagonals (V2/V3) → the `matrix_diag_part` helper.
fn diag_part(ctx: &mut Ctx) -> OpResult<Lowered> {
    let x = ctx.input_tf(0)?;
    if main_diagonal(ctx, 1) {
        let kwargs = vec![("dim1", Expr::int(-2)), ("dim2", Expr::int(-1))];
        let expr = Expr::call_kw("torch.diagonal", vec![x], kwargs);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    let k = offsets(ctx, 1)?;
    let padding = ctx.input_tf(2)?;
    let kwargs = align(ctx)?;
    helper(ctx, "matrix_diag_part", vec![x, k, padding], kwargs)
}

/// `tf.linalg.set_diag(x, d)`: `x` with its main diagonal replaced (a new tensor); other
/// diagonals (V2/V3) → the `matrix_set_diag` helper.
fn set_diag(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (x, d) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    if main_diagonal(ctx, 2) {
        let kwargs = vec![("dim1", Expr::int(-2)), ("dim2", Expr::int(-1))];
        let expr = x.method_kw("diagonal_scatter", vec![d], kwargs);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    let k = offsets(ctx, 2)?;
    let kwargs = align(ctx)?;
    helper(ctx, "matrix_set_diag", vec![x, d, k], kwargs)
}
