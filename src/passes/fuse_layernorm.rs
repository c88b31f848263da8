//! Layer normalisation as TF writes it (`tf.nn.moments` + batch-norm arithmetic, the form
//! Keras 3's LayerNormalization takes on the TF backend):
//!
//! ```text
//! mean = Mean(x, axes, keep_dims)          var = Mean(SquaredDifference(x, mean), axes)
//! inv  = Rsqrt(var + eps) [* gamma]
//! y    = x * inv + (-mean * inv [+ beta])   (or beta - mean * inv)
//! ```
//!
//! over the last axis becomes one [`Fused::LayerNorm`] node, lowered to `nn.LayerNorm` with
//! the exact epsilon, weight and bias.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::{Affine, Fused};
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{binary, both_orders, inputs_of, replace_with_fused};
use crate::tensor::Tensor;

/// A per-feature f32 constant as `[C]`: `[C]`, or `[1, .., 1, d1, .., dk]` with `k =
/// trailing` dims making up the features (a group norm's `[1, 1, G, C/G]`), or a `[C]`
/// behind a Reshape to such a shape.
pub(super) fn features(g: &Graph, v: ValueRef, trailing: usize) -> Option<Tensor> {
    let t = match g.const_value(v) {
        Some(t) => t,
        None => {
            let t = g.const_value(*inputs_of(g, v, &["Reshape"])?.first()?)?;
            let vector = t.shape.iter().filter(|&&d| d != 1).count() <= 1;
            return (t.dtype.is_float() && vector).then(|| t.reshaped(vec![t.numel()]));
        }
    };
    let split = t.shape.len().checked_sub(trailing)?;
    let c: usize = t.shape[split..].iter().product();
    let ok = t.dtype.is_float() && t.shape[..split].iter().all(|&d| d == 1);
    ok.then(|| t.reshaped(vec![c]))
}

/// `mean = Mean(x, axes, keep_dims=true)` → (x, axes).
fn mean_of(g: &Graph, v: ValueRef) -> Option<(ValueRef, Vec<i64>)> {
    let i = inputs_of(g, v, &["Mean"])?;
    let keep = g.node(v.node).attr_bool_or("keep_dims", false).ok()?;
    let axes = g.const_value(*i.get(1)?)?.to_i64()?;
    keep.then_some((i[0], axes))
}

/// What the inverse standard deviation was computed from.
struct InverseStd {
    x: ValueRef,
    mean: ValueRef,
    axes: Vec<i64>,
    eps: f32,
    gamma: Option<ValueRef>,
}

/// The squared deviation `(x - mean)²` as `SquaredDifference(x, mean)` or `Square(x - mean)`
/// (Keras 3's `ops.moments`) → (x, mean).
fn squared_deviation(g: &Graph, v: ValueRef) -> Option<(ValueRef, ValueRef)> {
    if let Some(pair) = binary(g, v, &["SquaredDifference"]) {
        return Some(pair);
    }
    let d = *inputs_of(g, v, &["Square"])?.first()?;
    binary(g, d, &["Sub"])
}

/// `Rsqrt(var + eps) [* gamma]` whose variance is of `x` around `mean`.
fn inverse_std(g: &Graph, inv: ValueRef) -> Option<InverseStd> {
    let (rsqrt, gamma) = if inputs_of(g, inv, &["Rsqrt"]).is_some() {
        (inv, None)
    } else {
        both_orders(g, inv, &["Mul"]).into_iter().find_map(|(r, gm)| {
            inputs_of(g, r, &["Rsqrt"])
                .and(
                    g.const_value(gm)
                        .or_else(|| g.const_value(*inputs_of(g, gm, &["Reshape"])?.first()?)),
                )
                .map(|_| (r, Some(gm)))
        })?
    };
    let add = *inputs_of(g, rsqrt, &["Rsqrt"])?.first()?;
    let Variance { x, mean, axes, eps } = variance_plus_eps(g, add)?;
    Some(InverseStd { x, mean, axes, eps, gamma })
}

/// A variance plus epsilon, and what it is the variance of.
struct Variance {
    x: ValueRef,
    mean: ValueRef,
    axes: Vec<i64>,
    eps: f32,
}

/// `Mean((x − mean)², axes) + eps` with `mean = Mean(x, axes)`.
fn variance_plus_eps(g: &Graph, add: ValueRef) -> Option<Variance> {
    let (var, eps) = both_orders(g, add, &["AddV2", "Add"]).into_iter().find_map(|(var, e)| {
        let eps = g.const_value(e).filter(|t| t.numel() == 1)?.scalar_f64()?;
        Some((var, eps as f32))
    })?;
    let (sd, axes) = mean_of(g, var)?;
    let (x, mean) = squared_deviation(g, sd)?;
    let (mx, maxes) = mean_of(g, mean)?;
    (mx == x && maxes == axes).then_some(Variance { x, mean, axes, eps })
}

/// `x` normalised over `axes` by its moments, then scaled and shifted by constants.
pub(super) struct Normalized {
    pub x: ValueRef,
    pub axes: Vec<i64>,
    pub eps: f32,
    /// The constant values scaling and shifting (any shape that broadcasts).
    pub gamma: Option<ValueRef>,
    pub beta: Option<ValueRef>,
}

/// `x` normalised by its moments, in either form below.
pub(super) fn normalized(g: &Graph, out: ValueRef) -> Option<Normalized> {
    batch_norm_form(g, out).or_else(|| centered_form(g, out))
}

/// `(x − mean) · Rsqrt(var + eps)` or `(x − mean) / Sqrt(var + eps)`, then `· gamma` and
/// `+ beta` (constants, each optional): the layer norm people write by hand (OpenAI's
/// GPT-2, `tf.nn` code ported from PyTorch).
fn centered_form(g: &Graph, out: ValueRef) -> Option<Normalized> {
    let peel = |v: ValueRef, ops: &[&str]| {
        both_orders(g, v, ops)
            .into_iter()
            .find(|&(_, c)| is_constant(g, c))
            .map_or((v, None), |(rest, c)| (rest, Some(c)))
    };
    let (scaled, beta) = peel(out, &["AddV2", "Add"]);
    let (core, gamma) = peel(scaled, &["Mul"]);
    let by_inverse = both_orders(g, core, &["Mul"])
        .into_iter()
        .find_map(|(c, r)| Some((c, *inputs_of(g, r, &["Rsqrt"])?.first()?)));
    let (centered, add) = by_inverse.or_else(|| {
        let (c, s) = binary(g, core, &["RealDiv"])?;
        Some((c, *inputs_of(g, s, &["Sqrt"])?.first()?))
    })?;
    let Variance { x, mean, axes, eps } = variance_plus_eps(g, add)?;
    (binary(g, centered, &["Sub"])? == (x, mean)).then_some(Normalized {
        x,
        axes,
        eps,
        gamma,
        beta,
    })
}

/// `out = x · inv + shift` with `inv = Rsqrt(var(x) + eps) [· gamma]` and `shift = -mean · inv
/// [+ beta]` or `beta - mean · inv`: what `tf.nn.batch_normalization` over moments and Keras
/// 3's LayerNormalization and GroupNormalization compute.
fn batch_norm_form(g: &Graph, out: ValueRef) -> Option<Normalized> {
    for (scaled, shift) in both_orders(g, out, &["AddV2", "Add"]) {
        for (x, inv) in both_orders(g, scaled, &["Mul"]) {
            let Some(InverseStd { x: xx, mean, axes, eps, gamma }) = inverse_std(g, inv) else {
                continue;
            };
            if xx != x {
                continue;
            }
            let neg_mean_inv = |v: ValueRef| {
                both_orders(g, v, &["Mul"]).into_iter().any(|(m, i)| {
                    i == inv && inputs_of(g, m, &["Neg"]).is_some_and(|n| n.first() == Some(&mean))
                })
            };
            let mean_inv = |v: ValueRef| {
                both_orders(g, v, &["Mul"]).into_iter().any(|(m, i)| i == inv && m == mean)
            };
            let found = |beta| Some(Normalized { x, axes: axes.clone(), eps, gamma, beta });
            if neg_mean_inv(shift) {
                return found(None);
            }
            for (a, b) in both_orders(g, shift, &["AddV2", "Add"]) {
                if neg_mean_inv(a) && is_constant(g, b) {
                    return found(Some(b));
                }
            }
            if let Some((beta, m)) = binary(g, shift, &["Sub"])
                && mean_inv(m)
                && is_constant(g, beta)
            {
                return found(Some(beta));
            }
        }
    }
    None
}

/// A constant, possibly behind a Reshape.
fn is_constant(g: &Graph, v: ValueRef) -> bool {
    g.const_value(v).is_some()
        || inputs_of(g, v, &["Reshape"])
            .is_some_and(|i| i.first().is_some_and(|&t| g.const_value(t).is_some()))
}

struct LayerNorm {
    x: ValueRef,
    eps: f32,
    gamma: Option<Tensor>,
    beta: Option<Tensor>,
}

fn match_at(g: &Graph, out: ValueRef) -> Option<LayerNorm> {
    let n = normalized(g, out)?;
    // nn.LayerNorm normalises trailing axes; TF's per-feature gamma/beta are on the last
    // one. Other axis sets stay as arithmetic (still exact, just not lifted).
    let rank = g.info(n.x).shape.map(|s| s.len() as i64);
    let last_only = matches!((n.axes.as_slice(), rank), ([-1], _) | ([_], None))
        || rank.is_some_and(|r| n.axes == [r - 1]);
    if !last_only {
        return None;
    }
    let param = |v: Option<ValueRef>| match v {
        None => Some(None),
        Some(v) => features(g, v, 1).map(Some),
    };
    Some(LayerNorm { x: n.x, eps: n.eps, gamma: param(n.gamma)?, beta: param(n.beta)? })
}

pub fn fuse_layernorm(g: &mut Graph) -> Result<()> {
    // Readers before what they read: a norm is matched at its last op (`+ beta`), before the
    // same arithmetic without its affine part (`(x − mean) · inv`) could match inside it.
    let mut order = g.topo_order().unwrap_or_else(|_| {
        let mut all: Vec<NodeIndex> = g.g.node_indices().collect();
        all.sort_by_key(|&n| g.node(n).ordinal);
        all
    });
    order.reverse();
    let ends = ["AddV2", "Add", "Mul", "RealDiv"];
    for n in order {
        if !g.g.contains_node(n) || !ends.contains(&g.node(n).op.as_str()) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        if g.use_count(out) == 0 && !g.outputs.contains(&out) {
            continue; // inside a norm fused already
        }
        let Some(ln) = match_at(g, out) else { continue };
        // A scale without a shift, or neither; a shift alone has the identity's scale (ones).
        let affine = (ln.gamma.is_some() || ln.beta.is_some()).then(|| {
            let c = ln.gamma.as_ref().or(ln.beta.as_ref()).map_or(0, |t| t.numel());
            Affine {
                gamma: ln.gamma.unwrap_or_else(|| Tensor::from_f32(vec![c], &vec![1.0; c])),
                beta: ln.beta,
            }
        });
        replace_with_fused(g, n, Fused::LayerNorm { epsilon: ln.eps, affine }, &[ln.x]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, fuse_layernorm};
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `tf.nn.moments` + `batch_normalization` over the last axis, as Keras 3 writes
    /// LayerNormalization.
    #[test]
    fn moments_arithmetic_is_one_layer_norm() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let axes = g.constant("ln/axes", int_tensor(&[1], &[-1]));
        let eps = g.constant("ln/eps", Tensor::from_f32(vec![], &[1e-6]));
        let gamma = g.constant("ln/gamma", weights(&[4]));
        let beta = g.constant("ln/beta", weights(&[4]));
        let keep = [("keep_dims", boolean(true))];
        let mean = g.op("ln/mean", "Mean", &[x, axes], &keep);
        let sd = g.op("ln/sd", "SquaredDifference", &[x, mean], &[]);
        let var = g.op("ln/var", "Mean", &[sd, axes], &keep);
        let add = g.op("ln/add", "AddV2", &[var, eps], &[]);
        let rsqrt = g.op("ln/Rsqrt", "Rsqrt", &[add], &[]);
        let inv = g.op("ln/mul", "Mul", &[rsqrt, gamma], &[]);
        let xs = g.op("ln/mul_1", "Mul", &[x, inv], &[]);
        let ms = g.op("ln/mul_2", "Mul", &[mean, inv], &[]);
        let shift = g.op("ln/sub", "Sub", &[beta, ms], &[]);
        let y = g.op("ln/add_1", "AddV2", &[xs, shift], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_layernorm]), @"
        inputs: x:0
        outputs: ln/add_1:0
        x = Placeholder -> float32 [?, 4]
        ln/add_1 = _LayerNorm(x:0) {epsilon=0.000001} -> float32 [?, 4]
        ");
    }
    /// A layer norm written out by hand, as OpenAI's GPT-2 writes it: `(x − u) ·
    /// rsqrt(mean((x − u)²) + eps) · g + b`, the centring computed twice; or divided by the
    /// square root, without scale and shift. The names are TF's op names, no scope.
    fn by_hand(divide: bool, shift: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let axes = g.constant("axes", int_tensor(&[1], &[-1]));
        let eps = g.constant("eps", Tensor::from_f32(vec![], &[1e-5]));
        let keep = [("keep_dims", boolean(true))];
        let mean = g.op("Mean", "Mean", &[x, axes], &keep);
        let centred = g.op("sub", "Sub", &[x, mean], &[]);
        let square = g.op("Square", "Square", &[centred], &[]);
        let var = g.op("Mean_1", "Mean", &[square, axes], &keep);
        let var_eps = g.op("add", "AddV2", &[var, eps], &[]);
        let centred = g.op("sub_1", "Sub", &[x, mean], &[]);
        if divide {
            let std = g.op("Sqrt", "Sqrt", &[var_eps], &[]);
            let y = g.op("truediv", "RealDiv", &[centred, std], &[]);
            return g.lower(&[y]);
        }
        let inv = g.op("Rsqrt", "Rsqrt", &[var_eps], &[]);
        let normed = g.op("mul", "Mul", &[centred, inv], &[]);
        let gamma = g.constant("g", weights(&[4]));
        let beta = g.constant("b", weights(&[4]));
        let scaled = g.op("mul_1", "Mul", &[normed, gamma], &[]);
        if !shift {
            return g.lower(&[scaled]);
        }
        let y = g.op("add_1", "AddV2", &[scaled, beta], &[]);
        g.lower(&[y])
    }

    #[test]
    fn a_layer_norm_written_by_hand_is_one_layer_norm() {
        assert_snapshot!(by_hand(false, true), @"
        self.layer_norm = nn.LayerNorm(4)
        # layer_norm.weight: [4]
        # layer_norm.bias: [4]
        ---
        x = self.layer_norm(x)
        return x
        ");
        assert_snapshot!(by_hand(true, false), @"
        self.layer_norm = nn.LayerNorm(4, elementwise_affine=False)
        ---
        x = self.layer_norm(x)
        return x
        ");
        // Keras' `center=False`: a scale to train, no shift.
        assert_snapshot!(by_hand(false, false), @"
        self.layer_norm = nn.LayerNorm(4, bias=False)
        # layer_norm.weight: [4]
        ---
        x = self.layer_norm(x)
        return x
        ");
    }
}
