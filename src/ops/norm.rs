//! Normalisation layers: batch norm in inference mode → `nn.BatchNorm1d/2d/3d` over the
//! channels of `[N, C]`, `[N, W, C]`, NHWC or NDHWC values (statistics as buffers), layer norm
//! → `nn.LayerNorm`, RMS norm → `nn.RMSNorm`, group norm → `nn.GroupNorm` (channels first), LRN →
//! `nn.LocalResponseNorm`.

use crate::ir::fused::{self, Fused};
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult, TranslateError};
use crate::ops::util::{norm_axis, phys_axis, same_as_input};
use crate::ops::window::layer;
use crate::ops::{OpDef, op};
use crate::py::Expr;
use crate::tensor::{DType, Tensor};
use crate::weights::Weight;

pub const OPS: &[OpDef] = &[
    op("FusedBatchNorm", batch_norm).infer(same_as_input),
    op("FusedBatchNormV3", batch_norm).infer(same_as_input),
    op("LRN", lrn).infer(same_as_input),
    // Produced by passes::fuse_batchnorm.
    op(fused::BATCH_NORM_STATISTICS, batch_norm_statistics).infer(same_as_input),
    // Produced by passes::fuse_layernorm.
    op(fused::LAYER_NORM, layer_norm).infer(same_as_input),
    // Produced by passes::fuse_rmsnorm.
    op(fused::RMS_NORM, rms_norm).infer(same_as_input),
    // Produced by passes::fuse_groupnorm.
    op(fused::GROUP_NORM, group_norm).infer(same_as_input),
    // Produced by passes::fuse_l2norm.
    op(fused::L2_NORMALIZE, l2_normalize).infer(same_as_input),
];

/// `F.normalize(x, dim=d, eps=e)`: `x` over its L2 norm along one axis, the norm at least
/// `e`; in `x`'s layout.
fn l2_normalize(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::L2Normalize { epsilon } = *ctx.fused()? else {
        return Err("expected an L2Normalize node".into());
    };
    let axis = match ctx.const_ints(1)?[..] {
        [a] => a,
        _ => return Err("L2 normalisation along more than one axis".into()),
    };
    let x = ctx.input(0)?;
    let dim = match ctx.rank(0) {
        Some(rank) => phys_axis(norm_axis(axis, rank)?, x.layout, rank) as i64,
        None if axis < 0 && x.layout == Layout::Tf => axis,
        None => return Err("L2 normalisation of an input of unknown rank".into()),
    };
    let kwargs = vec![("dim", Expr::int(dim)), ("eps", Expr::f32(epsilon))];
    Ok(Lowered::Expr { expr: Expr::call_kw("F.normalize", vec![x.expr], kwargs), layout: x.layout })
}

fn batch_norm(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let training = node.attr_bool_or("is_training", true)?;
    if training || (1..=4).any(|i| !ctx.is_const(i)) {
        return batch_norm_functional(ctx, training);
    }
    // Channels last, whatever the rank (passes::fuse_batchnorm writes NHWC for all).
    let df = node.attr_str_or("data_format", "NHWC")?;
    if !matches!(df.as_str(), "NWC" | "NHWC" | "NDHWC") {
        return Err(format!("data_format {df} is not supported").into());
    }
    let eps = node.attr_float_or("epsilon", 1e-4)?;
    let mut params = Vec::new();
    let mut channels = 0;
    for (i, name) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
        let t = ctx.const_input(i)?;
        if t.rank() != 1 || t.dtype != DType::F32 {
            return Err(format!("{name} (input #{i}) must be a float32 vector").into());
        }
        channels = t.numel();
        params.push((name, Weight::plain(t.clone())));
    }
    batch_norm_layer(ctx, channels, eps, params, vec![])
}

/// `nn.BatchNormNd(c, affine=False)`: the moving statistics alone.
fn batch_norm_statistics(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::BatchNormStatistics { epsilon } = *ctx.fused()? else {
        return Err("expected a batch norm by its statistics".into());
    };
    let mut params = Vec::new();
    let mut channels = 0;
    for (i, name) in [(1, "running_mean"), (2, "running_var")] {
        let t = ctx.const_input(i)?;
        if t.rank() != 1 || t.dtype != DType::F32 {
            return Err(format!("{name} (input #{i}) must be a float32 vector").into());
        }
        channels = t.numel();
        params.push((name, Weight::plain(t.clone())));
    }
    batch_norm_layer(ctx, channels, epsilon, params, vec![("affine", Expr::boolean(false))])
}

/// The batch norm layer over input 0's channels (the last TF axis), holding `params`.
fn batch_norm_layer(
    ctx: &mut Ctx,
    channels: usize,
    eps: f32,
    mut params: Vec<(&'static str, Weight)>,
    extra: Vec<(&'static str, Expr)>,
) -> OpResult<Lowered> {
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    params.push(("num_batches_tracked", Weight::plain(Tensor::from_i64(vec![], &[0]))));
    let (class, x, layout) = match rank {
        // Channels last at rank 2 is already torch's [N, C].
        2 => ("nn.BatchNorm1d".to_string(), ctx.input_tf(0)?, Layout::Tf),
        3..=5 => {
            (layer("BatchNorm", rank - 2), ctx.input_channels_first(0)?, Layout::ChannelsFirst)
        }
        _ => return Err(format!("batch norm of a rank-{rank} input").into()),
    };
    let mut kwargs = Vec::new();
    if eps != 1e-5 {
        kwargs.push(("eps", Expr::f32(eps)));
    }
    kwargs.extend(extra);
    let ctor = Expr::call_kw(&class, vec![Expr::int(channels as i64)], kwargs);
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout })
}

/// `F.batch_norm` where there is no layer to make: statistics that are data (inputs of the
/// graph), or a graph exported in training mode, which normalizes by the batch's own
/// statistics (only its normalized output is translated; TF's batch mean and variance
/// outputs are not).
fn batch_norm_functional(ctx: &mut Ctx, training: bool) -> OpResult<Lowered> {
    if training && (1..5).any(|p| ctx.output_used(p)) {
        return Err("the batch statistics of a training-mode batch norm are not translated".into());
    }
    let node = ctx.node();
    let df = node.attr_str_or("data_format", "NHWC")?;
    if !matches!(df.as_str(), "NWC" | "NHWC" | "NDHWC") {
        return Err(format!("data_format {df} is not supported").into());
    }
    let eps = node.attr_float_or("epsilon", 1e-4)?;
    let (x, layout) = match ctx.rank(0).ok_or(TranslateError::UnknownRank)? {
        2 => (ctx.input_tf(0)?, Layout::Tf),
        3..=5 => (ctx.input_channels_first(0)?, Layout::ChannelsFirst),
        rank => return Err(format!("batch norm of a rank-{rank} input").into()),
    };
    let (weight, bias) = (ctx.input_tf(1)?, ctx.input_tf(2)?);
    let (mean, var) =
        if training { (Expr::none(), Expr::none()) } else { (ctx.input_tf(3)?, ctx.input_tf(4)?) };
    let mut kwargs = vec![("weight", weight), ("bias", bias)];
    if training {
        kwargs.push(("training", Expr::boolean(true)));
    }
    kwargs.push(("eps", Expr::f32(eps)));
    let expr = Expr::call_kw("F.batch_norm", vec![x, mean, var], kwargs);
    Ok(Lowered::Expr { expr, layout })
}

/// `nn.RMSNorm` over the last axis.
fn rms_norm(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::RmsNorm { epsilon: eps, weight } = ctx.fused()? else {
        return Err("not an RMS norm".into());
    };
    let (eps, weight) = (*eps, weight.clone());
    let shape = ctx.info(0).shape.ok_or(TranslateError::UnknownRank)?;
    let c = shape.last().copied().flatten().ok_or("the normalised axis must have a static size")?;
    // nn.RMSNorm's default epsilon depends on the dtype: always written.
    let mut kwargs = vec![("eps", Expr::f32(eps))];
    let mut params = Vec::new();
    match weight {
        Some(w) => params.push(("weight", Weight::plain(w))),
        None => kwargs.push(("elementwise_affine", Expr::boolean(false))),
    }
    let ctor = Expr::call_kw("nn.RMSNorm", vec![Expr::int(c as i64)], kwargs);
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout: Layout::Tf })
}

/// `nn.GroupNorm` over the channels of `[N, C]` or a channels-first feature map.
fn group_norm(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::GroupNorm { groups, epsilon: eps, affine } = ctx.fused()? else {
        return Err("not a group norm".into());
    };
    let (groups, eps, affine) = (*groups, *eps, affine.clone());
    let shape = ctx.info(0).shape.ok_or(TranslateError::UnknownRank)?;
    let c = shape.last().copied().flatten().ok_or("the channel axis must have a static size")?;
    let mut kwargs = Vec::new();
    if eps != 1e-5 {
        kwargs.push(("eps", Expr::f32(eps)));
    }
    let mut params = Vec::new();
    if let Some(a) = affine {
        // nn.GroupNorm has no `bias=False`: a missing shift is a bias of zeros.
        let c = a.gamma.numel();
        let beta = a.beta.unwrap_or_else(|| Tensor::from_f32(vec![c], &vec![0.0; c]));
        params.push(("weight", Weight::plain(a.gamma)));
        params.push(("bias", Weight::plain(beta)));
    } else {
        kwargs.push(("affine", Expr::boolean(false)));
    }
    let ctor =
        Expr::call_kw("nn.GroupNorm", vec![Expr::int(groups as i64), Expr::int(c as i64)], kwargs);
    let (x, layout) = match shape.len() {
        2 => (ctx.input_tf(0)?, Layout::Tf),
        3..=5 => (ctx.input_channels_first(0)?, Layout::ChannelsFirst),
        r => return Err(format!("group norm of a rank-{r} input").into()),
    };
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout })
}

fn layer_norm(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::LayerNorm { epsilon: eps, affine } = ctx.fused()? else {
        return Err("not a layer norm".into());
    };
    let eps = *eps;
    let shape = ctx.info(0).shape.ok_or(TranslateError::UnknownRank)?;
    let c = shape.last().copied().flatten().ok_or("the normalised axis must have a static size")?;
    let mut kwargs = Vec::new();
    if eps != 1e-5 {
        kwargs.push(("eps", Expr::f32(eps)));
    }
    let mut params = Vec::new();
    if let Some(a) = affine {
        params.push(("weight", Weight::plain(a.gamma.clone())));
        match &a.beta {
            Some(beta) => params.push(("bias", Weight::plain(beta.clone()))),
            None => kwargs.push(("bias", Expr::boolean(false))),
        }
    } else {
        kwargs.push(("elementwise_affine", Expr::boolean(false)));
    }
    let ctor = Expr::call_kw("nn.LayerNorm", vec![Expr::int(c as i64)], kwargs);
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout: Layout::Tf })
}

fn lrn(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let r = node.attr_int_or("depth_radius", 5)?;
    let bias = node.attr_float_or("bias", 1.0)?;
    let alpha = node.attr_float_or("alpha", 1.0)?;
    let beta = node.attr_float_or("beta", 0.5)?;
    let size = r
        .checked_mul(2)
        .and_then(|d| d.checked_add(1))
        .filter(|_| r >= 0)
        .ok_or_else(|| format!("depth_radius {r} is not a window radius"))?;
    // TF sums squares over the window; torch averages them: torch alpha = TF alpha · size.
    let ctor = Expr::call_kw(
        "nn.LocalResponseNorm",
        vec![Expr::int(size)],
        vec![
            // From alpha's shortest decimal (`0.001` · 5 = `0.005`, as a person writes it).
            (
                "alpha",
                Expr::f64(
                    format!("{alpha:?}").parse::<f64>().unwrap_or(alpha as f64) * size as f64,
                ),
            ),
            ("beta", Expr::f32(beta)),
            ("k", Expr::f32(bias)),
        ],
    );
    let x = ctx.input_channels_first(0)?;
    Ok(Lowered::Layer {
        post: vec![],
        ctor,
        params: vec![],
        args: vec![x],
        layout: Layout::ChannelsFirst,
    })
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    fn batch_norm(input: &[i64], training: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", input);
        let c = *input.last().unwrap() as usize;
        let p: Vec<_> = ["scale", "offset", "mean", "var"]
            .iter()
            .map(|n| g.constant(n, weights(&[c])))
            .collect();
        let a = [("epsilon", float(0.001)), ("is_training", boolean(training))];
        let y = g.op("bn", "FusedBatchNormV3", &[x, p[0], p[1], p[2], p[3]], &a);
        g.lower(&[y])
    }

    /// Training mode: the batch's own statistics, by `F.batch_norm(training=True)`.
    #[test]
    fn batch_norm_in_training_mode_is_functional() {
        assert_snapshot!(batch_norm(&[-1, 4, 4, 3], true), @"
        self.scale_const: [3] float32
        self.offset_const: [3] float32
        # scale_const: [3]
        # offset_const: [3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = F.batch_norm(
            x,
            None,
            None,
            weight=self.scale_const,
            bias=self.offset_const,
            training=True,
            eps=0.001,
        )
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn batch_norm_2d_and_1d() {
        assert_snapshot!(batch_norm(&[-1, 4, 4, 3], false), @"
        self.bn = nn.BatchNorm2d(3, eps=0.001)
        # bn.weight: [3]
        # bn.bias: [3]
        # bn.running_mean: [3]
        # bn.running_var: [3]
        # bn.num_batches_tracked: []
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.bn(x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(batch_norm(&[-1, 3], false), @"
        self.bn = nn.BatchNorm1d(3, eps=0.001)
        # bn.weight: [3]
        # bn.bias: [3]
        # bn.running_mean: [3]
        # bn.running_var: [3]
        # bn.num_batches_tracked: []
        ---
        x = self.bn(x)
        return x
        ");
    }

    #[test]
    fn lrn() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4, 8]);
        let a = [
            ("depth_radius", int(2)),
            ("alpha", float(0.001)),
            ("beta", float(0.75)),
            ("bias", float(2.0)),
        ];
        let y = g.op("lrn", "LRN", &[x], &a);
        assert_snapshot!(g.lower(&[y]), @"
        self.lrn = nn.LocalResponseNorm(5, alpha=0.005, beta=0.75, k=2.0)
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.lrn(x).permute(0, 2, 3, 1)
        return x
        ");
    }
}
