//! Activations: layout-agnostic, so they keep whatever layout their input has.

use crate::ir::fused::{self, ChannelAxis, Fused};
use crate::ops::contract::{Ctx, Lowered};
use crate::ops::contract::{Layout, OpResult};
use crate::ops::util::{norm_axis, phys_axis, same_as_input};
use crate::ops::{OpDef, always, op};
use crate::py::Expr;
use crate::weights::Weight;

pub const OPS: &[OpDef] = &[
    op("Relu", |c| unary(c, "F.relu")).infer(same_as_input).per_row(always),
    op("Relu6", |c| unary(c, "F.relu6")).infer(same_as_input).per_row(always),
    op("Elu", |c| unary(c, "F.elu")).infer(same_as_input).per_row(always),
    op("Selu", |c| unary(c, "F.selu")).infer(same_as_input).per_row(always),
    op("Sigmoid", |c| unary(c, "torch.sigmoid")).infer(same_as_input).per_row(always),
    op("Tanh", |c| unary(c, "torch.tanh")).infer(same_as_input).per_row(always),
    op("Softplus", |c| unary(c, "F.softplus")).infer(same_as_input).per_row(always),
    op("Softsign", |c| unary(c, "F.softsign")).infer(same_as_input).per_row(always),
    // Produced by passes::fuse_activations from Mul(x, Sigmoid(x)).
    op(fused::SILU, |c| unary(c, "F.silu")).infer(same_as_input).per_row(always),
    // Produced by passes::fuse_activations from `x · tanh(softplus(x))` and `−softplus(−x)`.
    op(fused::MISH, |c| unary(c, "F.mish")).infer(same_as_input).per_row(always),
    op(fused::LOG_SIGMOID, |c| unary(c, "F.logsigmoid")).infer(same_as_input).per_row(always),
    // Produced by passes::fuse_prelu from `relu(x) + alpha * min(x, 0)` as Keras and TF code
    // write it.
    op(fused::PRELU, prelu).infer(same_as_input).per_row(always),
    // Produced by passes::fuse_activations from `relu6(x + 3) / 6` (and `x ·` it).
    op(fused::HARD_SIGMOID, |c| unary(c, "F.hardsigmoid")).infer(same_as_input).per_row(always),
    op(fused::HARD_SWISH, |c| unary(c, "F.hardswish")).infer(same_as_input).per_row(always),
    // Produced by passes::fuse_activations from TF's GELU formulas.
    op(fused::GELU, gelu).infer(same_as_input).per_row(always),
    op("LeakyRelu", leaky_relu).infer(same_as_input).per_row(always),
    // Over the last axis.
    op("Softmax", |c| softmax(c, "F.softmax")).infer(same_as_input).per_row(always),
    op("LogSoftmax", |c| softmax(c, "F.log_softmax")).infer(same_as_input),
];

fn unary(ctx: &mut Ctx, func: &str) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    Ok(Lowered::Expr { expr: Expr::call(func, vec![x.expr]), layout: x.layout })
}

fn gelu(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::Gelu { approximate } = ctx.fused()? else { return Err("not a GELU".into()) };
    let x = ctx.input(0)?;
    let kwargs = if *approximate { vec![("approximate", Expr::str_lit("tanh"))] } else { vec![] };
    Ok(Lowered::Expr { expr: Expr::call_kw("F.gelu", vec![x.expr], kwargs), layout: x.layout })
}

/// `nn.PReLU(C)` (`nn.PReLU()` for one alpha), which weighs axis 1: a channels-last map is
/// taken channels first, a `[N, C]` one as it is.
fn prelu(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::PReLU { alpha, axis } = ctx.fused()? else { return Err("not a PReLU".into()) };
    let (alpha, axis) = (alpha.clone(), *axis);
    let channels = alpha.numel();
    let args = if channels == 1 { vec![] } else { vec![Expr::int(channels as i64)] };
    let ctor = Expr::call("nn.PReLU", args);
    let params = vec![("weight", Weight::plain(alpha))];
    let (x, layout) = match axis {
        ChannelAxis::All => {
            let x = ctx.input(0)?;
            (x.expr, x.layout)
        }
        ChannelAxis::Last if ctx.rank(0) != Some(2) => {
            (ctx.input_channels_first(0)?, Layout::ChannelsFirst)
        }
        ChannelAxis::First | ChannelAxis::Last => (ctx.input_tf(0)?, Layout::Tf),
    };
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout })
}

fn leaky_relu(ctx: &mut Ctx) -> OpResult<Lowered> {
    // TF's default alpha is 0.2 (and is stripped when equal to it); torch's is 0.01.
    let alpha = ctx.node().attr_float_or("alpha", 0.2)?;
    let x = ctx.input(0)?;
    let expr = Expr::call("F.leaky_relu", vec![x.expr, Expr::f32(alpha)]);
    Ok(Lowered::Expr { expr, layout: x.layout })
}

/// TF normalises over the last axis.
fn softmax(ctx: &mut Ctx, func: &str) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    // Unknown rank (after a stub): the last axis is -1 in TF layout.
    let dim = match ctx.rank(0) {
        Some(r) if x.layout == Layout::ChannelsFirst => {
            phys_axis(norm_axis(-1, r)?, x.layout, r) as i64
        }
        Some(_) => -1,
        None => {
            let x = ctx.input_tf(0)?;
            let expr = Expr::call_kw(func, vec![x], vec![("dim", Expr::int(-1))]);
            return Ok(Lowered::Expr { expr, layout: Layout::Tf });
        }
    };
    let expr = Expr::call_kw(func, vec![x.expr], vec![("dim", Expr::int(dim))]);
    Ok(Lowered::Expr { expr, layout: x.layout })
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Each activation after a conv (NCHW inside) and on a rank-2 value.
    fn act(op: &str, attrs: &[(&str, crate::proto::AttrValue)]) -> String {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 4, 4, 3]);
        let w = g.constant("w", weights(&[1, 1, 3, 2]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("conv", "Conv2D", &[x, w], &pad);
        let y = g.op("act", op, &[y], attrs);
        let v = g.input("vec", &[-1, 5]);
        let z = g.op("act2", op, &[v], attrs);
        g.lower(&[y, z])
    }

    #[test]
    fn activations() {
        let all: Vec<String> = ["Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus"]
            .iter()
            .map(|op| {
                act(op, &[]).lines().filter(|l| l.contains("act")).collect::<Vec<_>>().join("\n")
            })
            .collect();
        assert_snapshot!(all.join("\n"), @"
        act2 = F.relu(vec)
        return x, act2
        act2 = F.relu6(vec)
        return x, act2
        act2 = F.elu(vec)
        return x, act2
        act2 = F.selu(vec)
        return x, act2
        act2 = torch.sigmoid(vec)
        return x, act2
        act2 = torch.tanh(vec)
        return x, act2
        act2 = F.softplus(vec)
        return x, act2
        ");
    }

    #[test]
    fn leaky_relu_default_alpha_is_tf_s() {
        assert_snapshot!(act("LeakyRelu", &[]), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.leaky_relu(x, 0.2, inplace=True)
        act2 = F.leaky_relu(vec, 0.2)
        x = x.permute(0, 2, 3, 1)
        return x, act2
        ");
        assert_snapshot!(act("LeakyRelu", &[("alpha", float(0.3))]), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.leaky_relu(x, 0.3, inplace=True)
        act2 = F.leaky_relu(vec, 0.3)
        x = x.permute(0, 2, 3, 1)
        return x, act2
        ");
    }

    #[test]
    fn keras_swish_is_silu_and_neutral_arithmetic_disappears() {
        // Keras 3 swish: Mul(x, Sigmoid(Mul(1.0, x))), in layer scopes named `<layer>_1`.
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 4, 4, 3]);
        let w = g.constant("w", weights(&[1, 1, 3, 2]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("model/stem_conv_1/Conv2D", "Conv2D", &[x, w], &pad);
        let one = g.constant("one", crate::tensor::Tensor::from_f32(vec![], &[1.0]));
        let b = g.op("model/stem_activation_1/mul", "Mul", &[one, y], &[]);
        let s = g.op("model/stem_activation_1/Sigmoid", "Sigmoid", &[b], &[]);
        let z = g.op("model/stem_activation_1/mul_1", "Mul", &[y, s], &[]);
        assert_snapshot!(g.lower(&[z]), @"
        self.stem_conv = nn.Conv2d(3, 2, 1, bias=False)
        # stem_conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem_conv(x)
        x = F.silu(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn softmax_on_nchw_uses_the_channel_dim() {
        assert_snapshot!(act("Softmax", &[]), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.softmax(x, dim=1)
        act2 = F.softmax(vec, dim=-1)
        x = x.permute(0, 2, 3, 1)
        return x, act2
        ");
        assert_snapshot!(act("LogSoftmax", &[]), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.log_softmax(x, dim=1)
        act2 = F.log_softmax(vec, dim=-1)
        x = x.permute(0, 2, 3, 1)
        return x, act2
        ");
    }
}
