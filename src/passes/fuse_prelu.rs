//! PReLU as Keras (and tf.keras) writes it, `relu(x) + (-alpha) * relu(-x)`, and as TF code
//! writes it by hand (`alpha * minimum(x, 0)`, `alpha * (x - abs(x)) * 0.5` for the negative
//! part), → [`Fused::PReLU`] → `nn.PReLU(C)`: a layer holding `alpha` as its trained weight. Only an `alpha` with one
//! value per channel (or one for all) is what `nn.PReLU` holds; Keras' default, one per
//! element of a fixed-size map, stays the formula (its `alpha` still a parameter: the
//! negation of a variable is not folded).

use crate::error::Result;
use crate::ir::fused::{ChannelAxis, Fused};
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{
    inputs_of, is_scalar, operands, replace_with_fused, sole_binary, sole_unary_input, unary_input,
};
use crate::tensor::{DType, Tensor};

pub fn fuse_prelu(g: &mut Graph) -> Result<()> {
    let sums: Vec<_> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "Add" | "AddV2")).collect();
    for n in sums {
        if !g.g.contains_node(n) {
            continue;
        }
        if let Some((x, prelu)) = match_prelu(g, ValueRef { node: n, port: 0 }) {
            let fused = replace_with_fused(g, n, prelu, &[x]);
            // A PReLU written by hand outside any scope is named for what it is, not `add`.
            let name = &mut g.node_mut(fused).name;
            if !name.contains('/') {
                *name = format!("prelu_{name}");
            }
        }
    }
    Ok(())
}

/// `(x, PReLU)` where `sum` is `relu(x) + alpha * min(x, 0)` (see [`scaled_negative_part`])
/// for an `alpha` of one value per channel of `x` or one for all.
fn match_prelu(g: &Graph, sum: ValueRef) -> Option<(ValueRef, Fused)> {
    let [a, b] = inputs_of(g, sum, &["Add", "AddV2"])?[..] else { return None };
    for (pos, neg) in [(a, b), (b, a)] {
        let Some(x) = positive_part(g, pos) else { continue };
        let Some(alpha) = scaled_negative_part(g, neg, x) else { continue };
        let axis = channel_axis(&alpha, &g.info(x).shape?)?;
        let alpha = alpha.reshaped(vec![alpha.numel()]);
        return Some((x, Fused::PReLU { alpha, axis }));
    }
    None
}

/// `x` where `v` is `relu(x)` or `maximum(x, 0)`.
fn positive_part(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    if let Some(x) = unary_input(g, v, "Relu") {
        return Some(x);
    }
    let (_, x) = operands(g, v, &["Maximum"], |u| is_scalar(g, u, 0.0, 0.0))?;
    Some(x)
}

/// `alpha` where `v` is `alpha * min(x, 0)` as TF code writes it: Keras' `(-alpha) *
/// relu(-x)` (`-alpha` a negated constant, or one TF folded), and by hand `alpha *
/// minimum(x, 0)` or `alpha * (x - abs(x)) * 0.5`.
fn scaled_negative_part(g: &Graph, v: ValueRef, x: ValueRef) -> Option<Tensor> {
    let (p, q) = sole_binary(g, v, &["Mul"])?;
    for (c, rest) in [(p, q), (q, p)] {
        if let Some(minus_x) = sole_unary_input(g, rest, "Relu")
            && sole_unary_input(g, minus_x, "Neg") == Some(x)
        {
            return match g.const_value(c) {
                Some(t) => negate(t),
                None => g.const_value(sole_unary_input(g, c, "Neg")?).cloned(),
            };
        }
        if let Some(alpha) = g.const_value(c)
            && g.use_count(rest) == 1
            && let Some((_, y)) = operands(g, rest, &["Minimum"], |u| is_scalar(g, u, 0.0, 0.0))
            && y == x
        {
            return Some(alpha.clone());
        }
        // `(alpha * (x - |x|)) * 0.5`: `x - |x|` is `2x` or 0, exactly.
        if is_scalar(g, c, 0.5, 0.0)
            && let Some((a, d)) = sole_binary(g, rest, &["Mul"])
        {
            for (alpha, diff) in [(a, d), (d, a)] {
                if let Some(alpha) = g.const_value(alpha)
                    && let Some((y, abs)) = sole_binary(g, diff, &["Sub"])
                    && y == x
                    && sole_unary_input(g, abs, "Abs") == Some(x)
                {
                    return Some(alpha.clone());
                }
            }
        }
    }
    None
}

/// `-t` for a float32 constant.
fn negate(t: &Tensor) -> Option<Tensor> {
    if t.dtype != DType::F32 {
        return None;
    }
    let v: Vec<f32> = t.to_f64()?.iter().map(|&v| -(v as f32)).collect();
    Some(Tensor::from_f32(t.shape.clone(), &v))
}

/// Which axis of `x` (TF's shape `shape`) `alpha`'s values run along: all of them one value
/// (`None` axis), the last (a channels-last map, a dense layer's features) or axis 1 of a
/// map of rank 3 or more (channels first); `None` for any other layout.
fn channel_axis(alpha: &Tensor, shape: &[Option<usize>]) -> Option<ChannelAxis> {
    if alpha.dtype != DType::F32 || alpha.rank() > shape.len() || shape.len() < 2 {
        return None;
    }
    if alpha.numel() == 1 {
        return Some(ChannelAxis::All);
    }
    let lead = shape.len() - alpha.rank();
    let mut varying = alpha.shape.iter().enumerate().filter(|(_, d)| **d != 1);
    let (i, &c) = varying.next()?;
    let axis = lead + i;
    if varying.next().is_some() || shape[axis] != Some(c) {
        return None;
    }
    match axis {
        a if a == shape.len() - 1 => Some(ChannelAxis::Last),
        1 => Some(ChannelAxis::First),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras' PReLU of `x`: `relu(x) + (-alpha) * relu(-x)`.
    fn keras_prelu(g: &mut TestGraph, x: ValueRef, alpha: Tensor) -> ValueRef {
        let alpha = g.variable("p_re_lu/alpha", alpha);
        let pos = g.op("p_re_lu/Relu", "Relu", &[x], &[]);
        let minus_alpha = g.op("p_re_lu/Neg", "Neg", &[alpha], &[]);
        let minus_x = g.op("p_re_lu/Neg_1", "Neg", &[x], &[]);
        let r = g.op("p_re_lu/Relu_1", "Relu", &[minus_x], &[]);
        let neg = g.op("p_re_lu/mul", "Mul", &[minus_alpha, r], &[]);
        g.op("p_re_lu/add", "AddV2", &[pos, neg], &[])
    }

    /// Keras' PReLU of a channels-last map, alpha per channel: one `nn.PReLU` on the
    /// channels-first map.
    #[test]
    fn keras_prelu_is_a_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 5, 3]);
        let y = keras_prelu(&mut g, x, Tensor::from_f32(vec![1, 1, 3], &[0.1, -0.2, 0.3]));
        assert_snapshot!(g.lower(&[y]), @"
        self.add = nn.PReLU(3)
        # add.weight: [3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.add(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// PReLU written by hand: `maximum(x, 0) + alpha * minimum(x, 0)`, and the TF1 snippet's
    /// `relu(x) + alpha * (x - abs(x)) * 0.5`, each with one alpha per feature.
    #[test]
    fn a_hand_written_prelu_is_a_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3]);
        let zero = g.constant("zero", Tensor::from_f32(vec![], &[0.0]));
        let alpha = g.variable("a/alpha", Tensor::from_f32(vec![3], &[0.1, -0.2, 0.3]));
        let pos = g.op("a/Maximum", "Maximum", &[x, zero], &[]);
        let neg = g.op("a/Minimum", "Minimum", &[x, zero], &[]);
        let scaled = g.op("a/mul", "Mul", &[alpha, neg], &[]);
        let y = g.op("a/add", "AddV2", &[pos, scaled], &[]);
        let beta = g.variable("b/alpha", Tensor::from_f32(vec![3], &[0.4, 0.5, -0.6]));
        let half = g.constant("b/half", Tensor::from_f32(vec![], &[0.5]));
        let pos = g.op("b/Relu", "Relu", &[y], &[]);
        let abs = g.op("b/Abs", "Abs", &[y], &[]);
        let diff = g.op("b/sub", "Sub", &[y, abs], &[]);
        let scaled = g.op("b/mul", "Mul", &[beta, diff], &[]);
        let scaled = g.op("b/mul_1", "Mul", &[scaled, half], &[]);
        let z = g.op("b/add", "AddV2", &[pos, scaled], &[]);
        assert_snapshot!(g.lower(&[z]), @"
        self.a = nn.PReLU(3)
        self.b = nn.PReLU(3)
        # a.weight: [3]
        # b.weight: [3]
        ---
        x = self.a(x)
        x = self.b(x)
        return x
        ");
    }

    /// Keras' default alpha, one per element of the map, is no `nn.PReLU`: the formula
    /// stays, alpha a parameter.
    #[test]
    fn an_alpha_per_element_stays_the_formula() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 2, 2, 1]);
        let y = keras_prelu(&mut g, x, weights(&[2, 2, 1]));
        assert_snapshot!(g.lower(&[y]), @"
        self.alpha: [2, 2, 1] float32
        # alpha: [2, 2, 1]
        ---
        h = -self.alpha
        y = -x
        y = F.relu(y)
        h = h * y
        x = F.relu(x)
        h = x + h
        return h
        ");
    }
}
