//! Matrix structure over the last two axes: `MatrixBandPart` (keep a band around the
//! diagonal, `tf.linalg.band_part`) → `tril`/`triu`; `InvertPermutation` → `argsort`.

use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::same_as_input;
use crate::ops::{OpDef, op};
use crate::py::Expr;

pub const OPS: &[OpDef] = &[
    op("MatrixBandPart", band_part).infer(same_as_input),
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
