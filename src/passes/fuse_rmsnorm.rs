//! Root-mean-square normalisation (Llama, Gemma, Mistral, T5) as TF writes it:
//!
//! ```text
//! y = x * Rsqrt(Mean(x², last axis, keep_dims) + eps) [* gamma]
//! ```
//!
//! with `x²` as `Square(x)` or `Pow(x, 2)` and the inverse root also as `1 / Sqrt` or a
//! division by `Sqrt` (Gemma), becomes one [`Fused::RmsNorm`] node, lowered to
//! `nn.RMSNorm` with the exact epsilon and weight.

use petgraph::stable_graph::NodeIndex;

use super::fuse_layernorm::features;
use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{
    binary, both_orders, inputs_of, is_scalar, replace_with_fused, squared,
};
use crate::tensor::Tensor;

/// `Rsqrt(ms)`, `Reciprocal(Sqrt(ms))` (Gemma) or `Pow(ms, -0.5)` (Gemma 4) → `ms`.
fn inverse_sqrt(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    if let Some(i) = inputs_of(g, v, &["Rsqrt"]) {
        return i.first().copied();
    }
    if let Some((ms, p)) = binary(g, v, &["Pow"]) {
        return is_scalar(g, p, -0.5, 0.0).then_some(ms);
    }
    let s = *inputs_of(g, v, &["Reciprocal", "Inv"])?.first()?;
    inputs_of(g, s, &["Sqrt"])?.first().copied()
}

/// `Mean(x², last axis, keep_dims) + eps` → (x, eps).
fn mean_square(g: &Graph, add: ValueRef) -> Option<(ValueRef, f32)> {
    let (mean, eps) = both_orders(g, add, &["AddV2", "Add"]).into_iter().find_map(|(m, e)| {
        let eps = g.const_value(e).filter(|t| t.numel() == 1)?.scalar_f64()?;
        Some((m, eps as f32))
    })?;
    let i = inputs_of(g, mean, &["Mean"])?;
    if !g.node(mean.node).attr_bool_or("keep_dims", false).ok()? {
        return None;
    }
    let x = squared(g, *i.first()?)?;
    let axes = g.const_value(*i.get(1)?)?.to_i64()?;
    let rank = g.info(x).shape.map(|s| s.len() as i64);
    let last = matches!((axes.as_slice(), rank), ([-1], _) | ([_], None))
        || rank.is_some_and(|r| axes == [r - 1]);
    last.then_some((x, eps))
}

/// `x * inverse_sqrt(mean_square(x))` or `x / Sqrt(mean_square(x))` → (x, eps).
fn normalised(g: &Graph, v: ValueRef) -> Option<(ValueRef, f32)> {
    if let Some((num, den)) = binary(g, v, &["RealDiv"]) {
        let (x, eps) = mean_square(g, *inputs_of(g, den, &["Sqrt"])?.first()?)?;
        return (x == num).then_some((x, eps));
    }
    both_orders(g, v, &["Mul"]).into_iter().find_map(|(x, inv)| {
        let (xx, eps) = mean_square(g, inverse_sqrt(g, inv)?)?;
        (xx == x).then_some((x, eps))
    })
}

struct RmsNorm {
    x: ValueRef,
    eps: f32,
    weight: Option<Tensor>,
}

fn with_weight(g: &Graph, out: ValueRef) -> Option<RmsNorm> {
    both_orders(g, out, &["Mul"]).into_iter().find_map(|(n, w)| {
        let weight = features(g, w, 1)?;
        let (x, eps) = normalised(g, n)?;
        let c = g.info(x).shape.and_then(|s| s.last().copied().flatten());
        (c == Some(weight.numel())).then_some(RmsNorm { x, eps, weight: Some(weight) })
    })
}

pub fn fuse_rmsnorm(g: &mut Graph) -> Result<()> {
    let mut muls: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).op.as_str(), "Mul" | "RealDiv"))
            .collect();
    muls.sort_by_key(|&n| g.node(n).ordinal);
    // Scaled ones first, so that a normalisation is fused with its weight.
    for scaled in [true, false] {
        for &n in &muls {
            if !g.g.contains_node(n) {
                continue;
            }
            let out = ValueRef { node: n, port: 0 };
            let found = if scaled {
                with_weight(g, out)
            } else {
                normalised(g, out).map(|(x, eps)| RmsNorm { x, eps, weight: None })
            };
            let Some(rms) = found else { continue };
            let op = Fused::RmsNorm { epsilon: rms.eps, weight: rms.weight };
            replace_with_fused(g, n, op, &[rms.x]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// keras-hub's Llama norm: `x * rsqrt(mean(x ** 2, -1) + eps) * scale`.
    #[test]
    fn rms_arithmetic_is_one_rms_norm() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 7, 8]);
        let two = g.constant("norm/two", Tensor::from_f32(vec![], &[2.0]));
        let sq = g.op("norm/Pow", "Pow", &[x, two], &[]);
        let axes = g.constant("norm/axes", int_tensor(&[1], &[-1]));
        let mean = g.op("norm/Mean", "Mean", &[sq, axes], &[("keep_dims", boolean(true))]);
        let eps = g.constant("norm/eps", Tensor::from_f32(vec![], &[1e-6]));
        let add = g.op("norm/add", "AddV2", &[mean, eps], &[]);
        let rsqrt = g.op("norm/Rsqrt", "Rsqrt", &[add], &[]);
        let normed = g.op("norm/mul", "Mul", &[x, rsqrt], &[]);
        let scale = g.constant("norm/scale", weights(&[8]));
        let y = g.op("norm/mul_1", "Mul", &[normed, scale], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.rms_norm = nn.RMSNorm(8, eps=1e-6)
        # rms_norm.weight: [8]
        ---
        x = self.rms_norm(x)
        return x
        ");
    }

    /// Gemma 4's query norm: `x * pow(mean(square(x), -1) + eps, -0.5)`, no weight.
    #[test]
    fn power_minus_half_is_an_inverse_root() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 7, 2, 16]);
        let sq = g.op("norm/Square", "Square", &[x], &[]);
        let axes = g.constant("norm/axes", int_tensor(&[1], &[3]));
        let mean = g.op("norm/Mean", "Mean", &[sq, axes], &[("keep_dims", boolean(true))]);
        let eps = g.constant("norm/eps", Tensor::from_f32(vec![], &[1e-6]));
        let add = g.op("norm/add", "AddV2", &[mean, eps], &[]);
        let half = g.constant("norm/half", Tensor::from_f32(vec![], &[-0.5]));
        let inv = g.op("norm/Pow", "Pow", &[add, half], &[]);
        let y = g.op("norm/mul", "Mul", &[x, inv], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.rms_norm = nn.RMSNorm(16, eps=1e-6, elementwise_affine=False)
        ---
        x = self.rms_norm(x)
        return x
        ");
    }
}
