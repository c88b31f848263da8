//! Reductions over constant axes (or axes read at run time, in TF layout). An NCHW input stays NCHW: the axes are remapped, and when
//! the kept axes are in the same order in both layouts (global pooling: NHWC [1, 2] → NCHW
//! [2, 3]) the result is already in TF layout.

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Fused};
use crate::ops::contract::OpResult;
use crate::ops::contract::{Ctx, Layout, Lowered};
use crate::ops::sizes::{Sizes, scalar, sizes};
use crate::ops::util::{norm_axis, phys_axis};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("Mean", |c| reduce(c, "mean")).infer(reduce_infer),
    op("Sum", |c| reduce(c, "sum")).infer(reduce_infer),
    op("Max", |c| reduce(c, "amax")).infer(reduce_infer).fold(|i| extreme_fold(i, true)),
    op("Min", |c| reduce(c, "amin")).infer(reduce_infer).fold(|i| extreme_fold(i, false)),
    op("Prod", |c| reduce(c, "prod")).infer(reduce_infer).fold(prod_fold),
    // Logical and / or over axes (tf.case ORs its conditions with these).
    op("All", |c| reduce(c, "all")).infer(reduce_infer),
    op("Any", |c| reduce(c, "any")).infer(reduce_infer),
    op(fused::LOG_SUM_EXP, |c| reduce(c, "logsumexp")).infer(reduce_infer),
    // `tf.math.reduce_euclidean_norm`: the square root of the sum of squares.
    op("EuclideanNorm", |c| reduce(c, VECTOR_NORM)).infer(reduce_infer),
];

/// The reduction written as a function of the input rather than one of its methods.
const VECTOR_NORM: &str = "torch.linalg.vector_norm";

/// `x.sum(dim, keepdim=True)`, or `torch.linalg.vector_norm(x, dim, ...)`.
fn reduction(x: Expr, method: &str, dim: Expr, kwargs: Vec<(&str, Expr)>) -> Expr {
    if method == VECTOR_NORM {
        // Its second parameter is the order: the axes go by name.
        let mut kwargs = kwargs;
        kwargs.insert(0, ("dim", dim));
        Expr::call_kw(method, vec![x], kwargs)
    } else {
        x.method_kw(method, vec![dim], kwargs)
    }
}

/// A reduction's axes (TF's, negative from the end) from 0, sorted, each once.
pub(super) fn axes(raw: &[i64], rank: usize) -> OpResult<Vec<usize>> {
    let mut v = raw.iter().map(|&a| norm_axis(a, rank)).collect::<OpResult<Vec<_>>>()?;
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn keep_dims(node: &crate::ir::Node) -> OpResult<bool> {
    if let Some(Fused::LogSumExp { keep_dims }) = node.fused {
        return Ok(keep_dims);
    }
    Ok(node.attr_bool_or("keep_dims", false)?)
}

/// `x.sum(axes)` and the like. torch sums and multiplies integers narrower than 64 bits
/// into int64; TF keeps their type (wrapping as the int64 result truncated does): cast back.
fn reduce(ctx: &mut Ctx, method: &str) -> OpResult<Lowered> {
    let lowered = reduce_in_torch_type(ctx, method)?;
    let dtype = ctx.info(0).dtype.filter(|d| d.is_int() && *d != DType::I64);
    match (lowered, dtype) {
        (Lowered::Expr { expr, layout }, Some(d)) if matches!(method, "sum" | "prod") => {
            let name = d.torch_name().ok_or("an integer of unknown type")?;
            let expr = expr.method("to", vec![crate::ops::util::torch_attr(name)]);
            Ok(Lowered::Expr { expr, layout })
        }
        (other, _) => Ok(other),
    }
}

fn reduce_in_torch_type(ctx: &mut Ctx, method: &str) -> OpResult<Lowered> {
    if !ctx.is_const(1) {
        return reduce_run_time_axes(ctx, method);
    }
    let raw = ctx.const_ints(1)?;
    // Without a known rank (e.g. after a stub) non-negative axes still work in TF layout.
    let rank = match ctx.rank(0) {
        Some(r) => r,
        None if raw.iter().all(|&a| a >= 0) => raw.iter().max().map_or(0, |&m| m as usize + 1),
        None if raw.iter().all(|&a| a < 0) => return reduce_from_the_end(ctx, method, &raw),
        None => return Err("axes of both signs on an input of unknown rank".into()),
    };
    let axes = axes(&raw, rank)?;
    let keep = keep_dims(ctx.node())?;
    if axes.is_empty() {
        return Ok(Lowered::Alias(0));
    }
    let layout = crate::ops::util::layout_removing(ctx, &axes, keep)?;
    let x = ctx.input_in(0, layout)?;
    let mut dims: Vec<i64> = axes.iter().map(|&a| phys_axis(a, layout, rank) as i64).collect();
    dims.sort_unstable();
    let mut kwargs = Vec::new();
    if keep {
        kwargs.push(("keepdim", Expr::boolean(true)));
    }
    let expr = if method == "prod" && dims.len() == rank && !keep {
        x.method("prod", vec![])
    } else if method == "prod" {
        // torch's prod takes one axis: one call per axis, the last first so that the
        // others keep their numbers.
        dims.iter().rev().fold(x, |e, &d| e.method_kw("prod", vec![Expr::int(d)], kwargs.clone()))
    } else {
        let dim = if dims.len() == 1 { Expr::int(dims[0]) } else { Expr::ints(&dims) };
        reduction(x, method, dim, kwargs)
    };
    let out_layout = if keep { layout } else { Layout::Tf };
    Ok(Lowered::Expr { expr, layout: out_layout })
}

/// Negative axes of an input of unknown rank: torch counts them from the end as TF does, in
/// TF's layout.
fn reduce_from_the_end(ctx: &mut Ctx, method: &str, raw: &[i64]) -> OpResult<Lowered> {
    let mut dims =
        raw.iter().map(|&a| crate::ops::util::unranked_axis(a)).collect::<OpResult<Vec<_>>>()?;
    dims.sort_unstable();
    dims.dedup();
    let keep = keep_dims(ctx.node())?;
    let kwargs = if keep { vec![("keepdim", Expr::boolean(true))] } else { vec![] };
    let x = ctx.input_tf(0)?;
    let expr = if method == "prod" {
        // One axis per call, the one farthest from the end first: the others keep their
        // numbers counted from the end.
        dims.iter().fold(x, |e, &d| e.method_kw("prod", vec![Expr::int(d)], kwargs.clone()))
    } else {
        let dim = if dims.len() == 1 { Expr::int(dims[0]) } else { Expr::ints(&dims) };
        reduction(x, method, dim, kwargs)
    };
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// Axes read at run time, in TF's layout: `x.sum(axes)`, where TF's empty list of axes
/// reduces nothing (torch's would reduce everything): `x.sum(axes) if axes else x`.
fn reduce_run_time_axes(ctx: &mut Ctx, method: &str) -> OpResult<Lowered> {
    if method == "prod" {
        return Err("Prod over axes read at run time is not supported".into());
    }
    let keep = keep_dims(ctx.node())?;
    // A vector of known length needs no test for emptiness; a scalar is one axis.
    let (axes, maybe_empty) = match ctx.rank(1) {
        Some(0) => (scalar(ctx, 1)?.expr, false),
        _ => match sizes(ctx, 1)? {
            Sizes::Items(v) if v.is_empty() => return Ok(Lowered::Alias(0)),
            Sizes::Items(v) => (Expr::Tuple(v.into_iter().map(|i| i.expr).collect()), false),
            Sizes::Whole(e) => {
                let length = ctx.info(1).shape.and_then(|s| s.first().copied().flatten());
                (e, length.is_none_or(|n| n == 0))
            }
        },
    };
    let x = ctx.input_tf(0)?;
    let kwargs = if keep { vec![("keepdim", Expr::boolean(true))] } else { vec![] };
    let reduced = reduction(x.clone(), method, axes.clone(), kwargs);
    let expr = if maybe_empty { reduced.if_else(axes, x) } else { reduced };
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn reduce_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let keep = keep_dims(inp.node).ok()?;
    let Some(raw) = inp.const_ints(1) else {
        // Axes read at run time: with keep_dims the rank stays.
        let out = keep.then(|| vec![None; shape.len()]);
        return Some(vec![ValueInfo { dtype: x.dtype, shape: out }]);
    };
    let axes = axes(&raw, shape.len()).ok()?;
    let out = shape
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| {
            if axes.contains(&i) { if keep { Some(Some(1)) } else { None } } else { Some(d) }
        })
        .collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// The product of a (partly) known integer vector, as shape arithmetic computes sizes.
/// Max/Min of integer shape arithmetic over every axis (Keras' `max_iterations`): the
/// extreme when all values are known; a scalar reduces to itself, known or not.
fn extreme_fold(inp: &OpInputs, max: bool) -> Option<crate::ops::Folded> {
    let rank = inp.infos.first()?.shape.as_ref()?.len();
    if rank > 1 || keep_dims(inp.node).ok()? {
        return None;
    }
    let dims = inp.dims(0)?;
    if rank == 0 {
        let p = inp.partials.first().copied().flatten();
        return match (inp.consts.first().copied().flatten(), p) {
            (Some(t), _) => Some(crate::ops::Folded::Tensor(t.clone())),
            (None, Some(p)) => Some(crate::ops::Folded::Partial(p.clone())),
            _ => None,
        };
    }
    if inp.const_ints(1)?.iter().any(|&a| a != 0 && a != -1) {
        return None;
    }
    let known: Vec<i64> = dims.iter().map(|d| d.known()).collect::<Option<_>>()?;
    let v = if max { known.into_iter().max()? } else { known.into_iter().min()? };
    crate::tensor::Tensor::with_values_like(
        inp.infos[0].dtype?,
        vec![],
        &crate::tensor::Values::I(vec![v]),
    )
    .map(crate::ops::Folded::Tensor)
}

fn prod_fold(inp: &OpInputs) -> Option<crate::ops::Folded> {
    let dims = inp.dims(0)?;
    if inp.infos.first()?.shape.as_ref()?.len() != 1
        || inp.const_ints(1)? != [0]
        || keep_dims(inp.node).ok()?
    {
        return None;
    }
    let dtype = inp.infos[0].dtype?;
    let known: Option<Vec<i64>> = dims.iter().map(|d| d.known()).collect();
    match known {
        Some(v) => {
            let p = v.iter().try_fold(1i64, |a, &b| a.checked_mul(b))?;
            crate::tensor::Tensor::with_values_like(
                dtype,
                vec![],
                &crate::tensor::Values::I(vec![p]),
            )
            .map(crate::ops::Folded::Tensor)
        }
        // A product with a run-time factor is a run-time size.
        None => Some(crate::ops::Folded::Partial(crate::ir::Partial {
            scalar: true,
            values: vec![crate::ir::Dim::Unknown],
        })),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Axes counted from the end need no rank: torch counts them as TF does; a product over
    /// two takes the one farthest from the end first.
    #[test]
    fn negative_axes_of_an_input_of_unknown_rank() {
        let mut g = TestGraph::new();
        let x = g.unranked_input("x");
        let axes = g.constant("axes", int_tensor(&[2], &[-1, -3]));
        let s = g.op("sum", "Sum", &[x, axes], &[]);
        let p = g.op("prod", "Prod", &[x, axes], &[]);
        assert_snapshot!(g.lower(&[s, p]), @"
        ---
        h = x.sum((-3, -1))
        prod = x.prod(-3).prod(-1)
        return h, prod
        ");
    }

    /// torch sums and multiplies int32 into int64; TF keeps int32 (a count of boxes kept
    /// stays int32): cast back.
    #[test]
    fn integer_sums_keep_their_type() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, 4], crate::tensor::DType::I32);
        let axes = g.constant("axes", int_tensor(&[1], &[1]));
        let s = g.op("sum", "Sum", &[x, axes], &[]);
        let p = g.op("prod", "Prod", &[x, axes], &[]);
        assert_snapshot!(g.lower(&[s, p]), @"
            ---
            h = x.sum(1).to(torch.int32)
            prod = x.prod(1).to(torch.int32)
            return h, prod
            ");
    }

    fn reduce(op: &str, axes: &[i64], keep: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 4, 4, 3]);
        let w = g.constant("w", weights(&[1, 1, 3, 2]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("conv", "Conv2D", &[x, w], &pad);
        let a = g.constant("axes", int_tensor(&[axes.len()], axes));
        let z = g.op("r", op, &[y, a], &[("keep_dims", boolean(keep))]);
        g.lower(&[z]).split("---\n").nth(1).unwrap_or_default().to_string()
    }

    #[test]
    fn global_pooling_needs_no_permute() {
        assert_snapshot!(reduce("Mean", &[1, 2], false), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.mean((2, 3))
        return x
        ");
        assert_snapshot!(reduce("Mean", &[1, 2], true), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.mean((2, 3), keepdim=True).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// torch's prod takes one axis: one call per axis, the last first; all of them, one call.
    #[test]
    fn prod_over_several_axes() {
        assert_snapshot!(reduce("Prod", &[1, 3], false), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.prod(2).prod(1)
        return x
        ");
        assert_snapshot!(reduce("Prod", &[0, 1, 2, 3], false), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.prod()
        return x
        ");
    }

    /// Axes that are data: an empty vector reduces nothing in TF (everything in torch).
    #[test]
    fn axes_read_at_run_time() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 3]);
        let axes = g.typed_input("axes", &[-1], crate::tensor::DType::I32);
        let axis = g.typed_input("axis", &[], crate::tensor::DType::I32);
        let a = g.op("a", "Sum", &[x, axes], &[("keep_dims", boolean(true))]);
        let b = g.op("b", "Any", &[x, axis], &[]);
        assert_snapshot!(g.lower(&[a, b]), @"
        ---
        axes_sizes = axes.tolist()
        h = x.sum(axes_sizes, keepdim=True) if axes_sizes else x
        axis_value = axis.item()
        b = x.any(axis_value)
        return h, b
        ");
    }

    #[test]
    fn other_axes() {
        assert_snapshot!(reduce("Sum", &[-1], false), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.sum(1)
        return x
        ");
        assert_snapshot!(reduce("Max", &[2], false), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 2, 3, 1)
        x = x.amax(2)
        return x
        ");
        assert_snapshot!(reduce("Min", &[0, 3], true), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.amin((0, 1), keepdim=True).permute(0, 2, 3, 1)
        return x
        ");
    }
}
