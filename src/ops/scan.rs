//! Running reductions along an axis: `Cumsum` → `cumsum`, `Cumprod` → `cumprod`,
//! `CumulativeLogsumexp` → `logcumsumexp`, with TF's `exclusive` (each position leaves itself
//! out) and `reverse` (from the end).

use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{norm_axis, same_as_input};
use crate::ops::{OpDef, op};
use crate::py::{BinOp, Expr};

pub const OPS: &[OpDef] = &[
    op("Cumsum", |c| scan(c, "cumsum")).infer(same_as_input),
    op("Cumprod", |c| scan(c, "cumprod")).infer(same_as_input),
    op("CumulativeLogsumexp", |c| scan(c, "logcumsumexp")).infer(same_as_input),
];

fn scan(ctx: &mut Ctx, method: &str) -> OpResult<Lowered> {
    // In TF layout torch counts axes as TF does, a negative one too: the rank is only
    // needed to check it.
    let axis = match (ctx.const_ints(1)?.as_slice(), ctx.rank(0)) {
        ([a], Some(rank)) => norm_axis(*a, rank)? as i64,
        ([a], None) => *a,
        _ => return Err("axis must be a scalar".into()),
    };
    let exclusive = ctx.node().attr_bool_or("exclusive", false)?;
    let reverse = ctx.node().attr_bool_or("reverse", false)?;
    let mut x = ctx.input_tf(0)?;
    if reverse {
        x = x.method("flip", vec![Expr::int(axis)]);
    }
    let mut expr = x.clone().method(method, vec![Expr::int(axis)]);
    if exclusive {
        expr = if method == "cumsum" {
            expr.binop(BinOp::Sub, x)
        } else {
            // Shift by one: the identity first (1 for a product, -inf for a log-sum-exp),
            // the last value dropped. (Dividing by `x` would fail on zeros.)
            let n = x.clone().attr("shape").index(Expr::int(axis));
            let first = x.method("narrow", vec![Expr::int(axis), Expr::int(0), Expr::int(1)]);
            let head = if method == "cumprod" {
                Expr::call("torch.ones_like", vec![first])
            } else {
                Expr::call("torch.full_like", vec![first, Expr::f64(f64::NEG_INFINITY)])
            };
            let body = expr.method(
                "narrow",
                vec![Expr::int(axis), Expr::int(0), n.binop(BinOp::Sub, Expr::int(1))],
            );
            Expr::call_kw(
                "torch.cat",
                vec![Expr::List(vec![head, body])],
                vec![("dim", Expr::int(axis))],
            )
        };
    }
    if reverse {
        expr = expr.method("flip", vec![Expr::int(axis)]);
    }
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}
