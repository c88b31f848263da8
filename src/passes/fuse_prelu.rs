//! PReLU as Keras (and tf.keras) writes it, `relu(x) + (-alpha) * relu(-x)`, → [`Fused::PReLU`]
//! → `nn.PReLU(C)`: a layer holding `alpha` as its trained weight. Only an `alpha` with one
//! value per channel (or one for all) is what `nn.PReLU` holds; Keras' default, one per
//! element of a fixed-size map, stays the formula (its `alpha` still a parameter: the
//! negation of a variable is not folded).

use crate::error::Result;
use crate::ir::fused::{ChannelAxis, Fused};
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{operands, replace_with_fused, sole_binary, sole_unary_input};
use crate::tensor::{DType, Tensor};

pub fn fuse_prelu(g: &mut Graph) -> Result<()> {
    let sums: Vec<_> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "Add" | "AddV2")).collect();
    for n in sums {
        if !g.g.contains_node(n) {
            continue;
        }
        if let Some((x, prelu)) = match_prelu(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, prelu, &[x]);
        }
    }
    Ok(())
}

/// `(x, PReLU)` where `sum` is `relu(x) + a * relu(-x)`, `a` being `-alpha` (a negated
/// constant, or a constant TF folded) of one value per channel of `x` or one for all.
fn match_prelu(g: &Graph, sum: ValueRef) -> Option<(ValueRef, Fused)> {
    let is_relu = |v: ValueRef| g.node(v.node).op == "Relu" && v.port == 0;
    let (pos, neg) = operands(g, sum, &["Add", "AddV2"], is_relu)?;
    let x = *g.inputs(pos.node).first()?;
    let (a, r) = sole_binary(g, neg, &["Mul"])
        .and_then(|(a, b)| if is_relu(b) { Some((a, b)) } else { is_relu(a).then_some((b, a)) })?;
    let negated = sole_unary_input(g, r, "Relu")?;
    if sole_unary_input(g, negated, "Neg")? != x {
        return None;
    }
    let alpha = match g.const_value(a) {
        Some(t) => negate(t)?,
        None => g.const_value(sole_unary_input(g, a, "Neg")?)?.clone(),
    };
    let shape = g.info(x).shape?;
    let axis = channel_axis(&alpha, &shape)?;
    let alpha = alpha.reshaped(vec![alpha.numel()]);
    Some((x, Fused::PReLU { alpha, axis }))
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
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `relu(x) - alpha * relu(-x)` of a channels-last map, alpha per channel: one
    /// `nn.PReLU` on the channels-first map; a dense layer's PReLU on its features.
    #[test]
    fn keras_prelu_is_a_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 5, 3]);
        let alpha = g.variable("p_re_lu/alpha", Tensor::from_f32(vec![1, 1, 3], &[0.1, -0.2, 0.3]));
        let pos = g.op("p_re_lu/Relu", "Relu", &[x], &[]);
        let minus_alpha = g.op("p_re_lu/Neg", "Neg", &[alpha], &[]);
        let minus_x = g.op("p_re_lu/Neg_1", "Neg", &[x], &[]);
        let r = g.op("p_re_lu/Relu_1", "Relu", &[minus_x], &[]);
        let neg = g.op("p_re_lu/mul", "Mul", &[minus_alpha, r], &[]);
        let y = g.op("p_re_lu/add", "AddV2", &[pos, neg], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.add = nn.PReLU(3)
        # add.weight: [3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.add(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Keras' default alpha, one per element of the map, is no `nn.PReLU`: the formula
    /// stays, alpha a parameter.
    #[test]
    fn an_alpha_per_element_stays_the_formula() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 2, 2, 1]);
        let alpha = g.variable("p_re_lu/alpha", weights(&[2, 2, 1]));
        let pos = g.op("p_re_lu/Relu", "Relu", &[x], &[]);
        let minus_alpha = g.op("p_re_lu/Neg", "Neg", &[alpha], &[]);
        let minus_x = g.op("p_re_lu/Neg_1", "Neg", &[x], &[]);
        let r = g.op("p_re_lu/Relu_1", "Relu", &[minus_x], &[]);
        let neg = g.op("p_re_lu/mul", "Mul", &[minus_alpha, r], &[]);
        let y = g.op("p_re_lu/add", "AddV2", &[pos, neg], &[]);
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
