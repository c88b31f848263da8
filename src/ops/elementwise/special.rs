//! Special functions, elementwise: the error function's inverse, the gamma family, the
//! Hurwitz zeta and Bessel functions (plain, modified and exponentially scaled) → `torch.special`, whose
//! definitions are TF's (`Igamma` is the regularized lower incomplete gamma, as
//! `gammainc`); and the sorted search of `tf.searchsorted` (`LowerBound`, `UpperBound`) →
//! `torch.searchsorted`.

use super::{binary_function, function};
use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{broadcast_infer, same_as_input};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("Erfinv", |c| function(c, "torch.erfinv")).infer(same_as_input),
    op("Ndtri", |c| function(c, "torch.special.ndtri")).infer(same_as_input),
    op("Lgamma", |c| function(c, "torch.lgamma")).infer(same_as_input),
    op("Digamma", |c| function(c, "torch.digamma")).infer(same_as_input),
    op("BesselI0", |c| function(c, "torch.special.i0")).infer(same_as_input),
    op("BesselI1", |c| function(c, "torch.special.i1")).infer(same_as_input),
    op("BesselI0e", |c| function(c, "torch.special.i0e")).infer(same_as_input),
    op("BesselI1e", |c| function(c, "torch.special.i1e")).infer(same_as_input),
    op("BesselJ0", |c| function(c, "torch.special.bessel_j0")).infer(same_as_input),
    op("BesselJ1", |c| function(c, "torch.special.bessel_j1")).infer(same_as_input),
    op("BesselY0", |c| function(c, "torch.special.bessel_y0")).infer(same_as_input),
    op("BesselY1", |c| function(c, "torch.special.bessel_y1")).infer(same_as_input),
    op("BesselK0", |c| function(c, "torch.special.modified_bessel_k0")).infer(same_as_input),
    op("BesselK1", |c| function(c, "torch.special.modified_bessel_k1")).infer(same_as_input),
    op("BesselK0e", |c| function(c, "torch.special.scaled_modified_bessel_k0"))
        .infer(same_as_input),
    op("BesselK1e", |c| function(c, "torch.special.scaled_modified_bessel_k1"))
        .infer(same_as_input),
    op("Igamma", |c| binary_function(c, "torch.special.gammainc")).infer(broadcast_infer),
    op("Igammac", |c| binary_function(c, "torch.special.gammaincc")).infer(broadcast_infer),
    op("Zeta", |c| binary_function(c, "torch.special.zeta")).infer(broadcast_infer),
    op("Polygamma", polygamma).infer(broadcast_infer),
    op("LowerBound", |c| search_sorted(c, false)).infer(search_infer),
    op("UpperBound", |c| search_sorted(c, true)).infer(search_infer),
];

/// `Polygamma(n, x)` of a constant order, one integer for every element (trigamma's
/// `polygamma(1, x)`): `torch.special.polygamma(n, x)`, which takes the order as a Python
/// int. Orders read at run time are not translated.
fn polygamma(ctx: &mut Ctx) -> OpResult<Lowered> {
    let order = ctx.const_input(0).ok().and_then(|t| t.to_f64());
    let order = order.ok_or("the order must be a constant")?;
    let n = match order.first() {
        Some(&n) if n >= 0.0 && n.fract() == 0.0 && order.iter().all(|&v| v == n) => n as i64,
        _ => return Err("the order must be one non-negative integer".into()),
    };
    // One order for all: it must not broadcast the input to a larger shape.
    let grows = order.len() > 1 && ctx.out_info(0).shape != ctx.info(1).shape;
    if grows || ctx.rank(0).is_some_and(|r| ctx.rank(1).is_none_or(|x| r > x)) {
        return Err("an order broadcast past the input's shape".into());
    }
    let x = ctx.input(1)?;
    let expr = Expr::call("torch.special.polygamma", vec![Expr::int(n), x.expr]);
    Ok(Lowered::Expr { expr, layout: x.layout })
}

/// Where each row of `values` would go in the same row of `sorted_inputs`: before equal
/// entries (`LowerBound`) or after them (`UpperBound`, `right=True`), in `out_type`.
fn search_sorted(ctx: &mut Ctx, right: bool) -> OpResult<Lowered> {
    let out = ctx.node().attr_type_or("out_type", DType::I32)?;
    let (sorted, values) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let mut kwargs = Vec::new();
    if right {
        kwargs.push(("right", Expr::boolean(true)));
    }
    match out {
        DType::I32 => kwargs.push(("out_int32", Expr::boolean(true))),
        DType::I64 => {}
        other => return Err(format!("out_type {other} is not an index type").into()),
    }
    let expr = Expr::call_kw("torch.searchsorted", vec![sorted, values], kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The values' shape, in `out_type`.
fn search_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let values = inp.infos.get(1)?;
    let dtype = inp.node.attr_type_or("out_type", DType::I32).ok();
    Some(vec![ValueInfo { dtype, shape: values.shape.clone() }])
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;

    /// An integer order is torch's Python int; a fractional one (NaN in TF) is refused.
    #[test]
    fn polygamma_takes_one_integer_order() {
        let lower = |order: f32| {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 3]);
            let n = g.constant("n", Tensor::from_f32(vec![], &[order]));
            let y = g.op("y", "Polygamma", &[n, x], &[]);
            g.lower(&[y])
        };
        assert!(lower(1.0).contains("torch.special.polygamma(1, x)"), "{}", lower(1.0));
        assert!(lower(1.5).contains("custom_ops.polygamma("), "{}", lower(1.5));
    }
}
