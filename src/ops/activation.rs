//! Activations: layout-agnostic, so they keep whatever layout their input has.

use crate::lower::{Ctx, Lowered};
use crate::ops::util::{OpResult, norm_axis, phys_axis, same_as_input};
use crate::ops::{OpDef, op};
use crate::py::PyExpr;

pub const OPS: &[OpDef] = &[
    op("Relu", |c| unary(c, "F.relu")).infer(same_as_input),
    op("Relu6", |c| unary(c, "F.relu6")).infer(same_as_input),
    op("Elu", |c| unary(c, "F.elu")).infer(same_as_input),
    op("Selu", |c| unary(c, "F.selu")).infer(same_as_input),
    op("Sigmoid", |c| unary(c, "torch.sigmoid")).infer(same_as_input),
    op("Tanh", |c| unary(c, "torch.tanh")).infer(same_as_input),
    op("Softplus", |c| unary(c, "F.softplus")).infer(same_as_input),
    op("LeakyRelu", leaky_relu).infer(same_as_input),
    op("Softmax", |c| softmax(c, "F.softmax")).infer(same_as_input),
    op("LogSoftmax", |c| softmax(c, "F.log_softmax")).infer(same_as_input),
];

fn unary(ctx: &mut Ctx, func: &str) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    Ok(Lowered::Expr {
        expr: PyExpr::call(func, vec![x.expr]),
        layout: x.layout,
    })
}

fn leaky_relu(ctx: &mut Ctx) -> OpResult<Lowered> {
    // TF's default alpha is 0.2 (and is stripped when equal to it); torch's is 0.01.
    let alpha = ctx
        .node()
        .attr_float_or("alpha", 0.2)
        .map_err(|e| e.to_string())?;
    let x = ctx.input(0)?;
    let expr = PyExpr::call("F.leaky_relu", vec![x.expr, PyExpr::f32(alpha)]);
    Ok(Lowered::Expr {
        expr,
        layout: x.layout,
    })
}

/// TF normalises over the last axis.
fn softmax(ctx: &mut Ctx, func: &str) -> OpResult<Lowered> {
    let rank = ctx.rank(0).ok_or("input rank must be known")?;
    let x = ctx.input(0)?;
    let last = norm_axis(-1, rank)?;
    let dim = if rank == 4 {
        phys_axis(last, x.layout) as i64
    } else {
        -1
    };
    let expr = PyExpr::call_kw(func, vec![x.expr], vec![("dim", PyExpr::int(dim))]);
    Ok(Lowered::Expr {
        expr,
        layout: x.layout,
    })
}
