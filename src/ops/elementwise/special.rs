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
    op("LowerBound", |c| search_sorted(c, false)).infer(search_infer),
    op("UpperBound", |c| search_sorted(c, true)).infer(search_infer),
];

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
