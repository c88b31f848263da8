//! Random sampling: `RandomUniform`, `RandomStandardNormal`, `TruncatedNormal`,
//! `RandomUniformInt`, `Multinomial`, `RandomShuffle` and the stateless `...V2` forms Keras 3
//! writes. Each becomes torch's sampler of the same distribution and shape (`torch.rand`,
//! `torch.randn`, `trunc_normal_` on two standard deviations, `torch.randint`,
//! `torch.multinomial`, `randperm`); the samples are torch's own, so they never equal
//! TensorFlow's, stateless seeds included (the key and counter derived from a seed are not
//! used).

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::sizes;
use crate::ops::util::{same_as_input, torch_attr};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("RandomUniform", |c| sample(c, "torch.rand")).infer(sampled_infer),
    op("StatelessRandomUniformV2", |c| sample(c, "torch.rand")).infer(sampled_infer),
    op("RandomStandardNormal", |c| sample(c, "torch.randn")).infer(sampled_infer),
    op("StatelessRandomNormalV2", |c| sample(c, "torch.randn")).infer(sampled_infer),
    op("TruncatedNormal", truncated_normal).infer(sampled_infer),
    op("StatelessTruncatedNormalV2", truncated_normal).infer(sampled_infer),
    op("RandomUniformInt", uniform_int).infer(sampled_infer),
    op("Multinomial", multinomial),
    // The key and counter stateless samplers read, which torch's samplers do without: the
    // seed stands in for both (never read, so dropped from `forward`).
    op("StatelessRandomGetKeyCounter", |c| {
        let seed = c.input_tf(0)?;
        Ok(Lowered::Multi { expr: Expr::Tuple(vec![seed.clone(), seed]), layout: Layout::Tf })
    }),
    op("RandomShuffle", |c| {
        let x = c.input_tf(0)?;
        let perm = Expr::call("torch.randperm", vec![x.clone().attr("shape").index(Expr::int(0))]);
        Ok(Lowered::Expr { expr: x.index(perm), layout: Layout::Tf })
    })
    .infer(same_as_input),
];

/// The samples' dtype: the `dtype` attribute (`Tout` for the integer sampler).
fn dtype_of(ctx: &Ctx) -> DType {
    let node = ctx.node();
    node.attr_type("dtype").or_else(|_| node.attr_type("Tout")).unwrap_or(DType::F32)
}

fn dtype_kwarg(d: DType) -> Vec<(&'static str, Expr)> {
    match d.torch_name() {
        Some(name) if d != DType::F32 => vec![("dtype", torch_attr(name))],
        _ => vec![],
    }
}

/// `torch.rand(shape)` / `torch.randn(shape)`.
fn sample(ctx: &mut Ctx, func: &str) -> OpResult<Lowered> {
    let d = dtype_of(ctx);
    if !d.is_float() {
        return Err(format!("{d:?} samples are not supported").into());
    }
    let shape = sizes(ctx, 0)?.tuple();
    Ok(Lowered::Expr { expr: Expr::call_kw(func, vec![shape], dtype_kwarg(d)), layout: Layout::Tf })
}

/// TF redraws values beyond two standard deviations; `trunc_normal_` samples the same
/// distribution.
fn truncated_normal(ctx: &mut Ctx) -> OpResult<Lowered> {
    let d = dtype_of(ctx);
    let shape = sizes(ctx, 0)?.tuple();
    let empty = Expr::call_kw("torch.empty", vec![shape], dtype_kwarg(d));
    let expr = Expr::call_kw(
        "nn.init.trunc_normal_",
        vec![empty],
        vec![("a", Expr::f32(-2.0)), ("b", Expr::f32(2.0))],
    );
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// `RandomUniformInt(shape, minval, maxval)`: integers in `[minval, maxval)`.
fn uniform_int(ctx: &mut Ctx) -> OpResult<Lowered> {
    let d = dtype_of(ctx);
    let shape = sizes(ctx, 0)?.tuple();
    let (lo, hi) =
        (crate::ops::sizes::scalar(ctx, 1)?.expr, crate::ops::sizes::scalar(ctx, 2)?.expr);
    let kwargs = vec![("dtype", torch_attr(d.torch_name().unwrap_or("int64")))];
    Ok(Lowered::Expr {
        expr: Expr::call_kw("torch.randint", vec![lo, hi, shape], kwargs),
        layout: Layout::Tf,
    })
}

/// `Multinomial(logits [batch, classes], num_samples)`: class indices drawn from
/// `softmax(logits)`, with replacement.
fn multinomial(ctx: &mut Ctx) -> OpResult<Lowered> {
    let logits = ctx.input_tf(0)?;
    let n = crate::ops::sizes::scalar(ctx, 1)?.expr;
    let probs = Expr::call_kw("torch.softmax", vec![logits], vec![("dim", Expr::int(-1))]);
    let out = ctx.node().attr_type("output_dtype").unwrap_or(DType::I64);
    let draws = Expr::call_kw(
        "torch.multinomial",
        vec![probs, n],
        vec![("replacement", Expr::boolean(true))],
    );
    let expr = match out.torch_name() {
        Some(name) if out != DType::I64 => draws.method("to", vec![torch_attr(name)]),
        _ => draws,
    };
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// Samples of the shape input 0 holds.
fn sampled_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let node = inp.node;
    let dtype = node.attr_type("dtype").or_else(|_| node.attr_type("Tout")).ok();
    Some(vec![ValueInfo { dtype, shape: inp.sizes(0) }])
}
