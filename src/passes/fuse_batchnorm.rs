//! Recognises batch normalisation written out as arithmetic, as `tf.nn.batch_normalization`
//! (and so Keras 3's BatchNormalization) emits it:
//!
//! ```text
//! inv = Rsqrt(AddV2(variance, eps)) [* gamma]
//! y   = AddV2(Mul(x, inv), Sub(beta, Mul(mean, inv)))   // or Mul(Neg(mean), inv): no beta
//! ```
//!
//! and rewrites it to one `FusedBatchNormV3(is_training=false)` node, so that the statistics,
//! scale, offset and epsilon survive exactly (as `nn.BatchNorm2d`) instead of being folded
//! into two opaque constants. With neither scale nor offset it is a
//! [`Fused::BatchNormStatistics`], a layer with no affine parameters. Parameters may sit
//! behind a Reshape of a constant (Keras reshapes them to `[1, 1, 1, C]` for broadcasting).

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, Node, ValueRef};
use crate::passes::pattern::{binary, is_one_of, unary_input};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;
use crate::tensor::{DType, Tensor};

/// Where a per-channel constant broadcasts: along the last axis, or along axis 1 of a value
/// of this rank (Keras' `BatchNormalization(axis=1)` on channels-first data).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Channels {
    Last,
    First(usize),
}

/// A per-channel f32 constant (`[C]` or `[1, .., 1, C]`, maybe behind a constant Reshape to
/// such a shape or to `[1, C, 1, 1]`), returned as `[C]`, with the axis it broadcasts along.
fn channel_vector(g: &Graph, v: ValueRef) -> Option<ChannelVector> {
    let (t, shape) = match g.const_value(v) {
        Some(t) => (t, t.shape.clone()),
        None if is_one_of(g, v, &["Reshape"]) => {
            let inputs = g.inputs(v.node);
            let t = g.const_value(*inputs.first()?)?;
            let target = g.const_value(*inputs.get(1)?)?.to_i64()?;
            let target: Vec<usize> =
                target.iter().map(|&d| if d == -1 { t.numel() } else { d as usize }).collect();
            (t, target)
        }
        None => return None,
    };
    let c = t.numel();
    let ones = |dims: &[usize]| dims.iter().all(|&d| d == 1);
    let channels = match shape.as_slice() {
        [rest @ .., last] if *last == c && ones(rest) => Channels::Last,
        [1, k, rest @ ..] if *k == c && ones(rest) && matches!(shape.len(), 4 | 5) => {
            Channels::First(shape.len())
        }
        _ => return None,
    };
    (t.dtype == DType::F32 && c > 0).then(|| (t.reshaped(vec![c]), channels))
}

struct BatchNorm {
    x: ValueRef,
    channels: Channels,
    gamma: Option<Tensor>,
    beta: Option<Tensor>,
    mean: Tensor,
    var: Tensor,
    eps: f32,
}

/// A per-channel constant and the axis it broadcasts along.
type ChannelVector = (Tensor, Channels);

/// `inv` = `Rsqrt(var + eps) [* gamma]` → `(var, eps, gamma)`.
fn match_inv(g: &Graph, inv: ValueRef) -> Option<(ChannelVector, f32, Option<ChannelVector>)> {
    let (rsqrt, gamma) = if let Some((a, b)) = binary(g, inv, &["Mul"]) {
        if is_one_of(g, a, &["Rsqrt"]) {
            (a, Some(b))
        } else if is_one_of(g, b, &["Rsqrt"]) {
            (b, Some(a))
        } else {
            return None;
        }
    } else if is_one_of(g, inv, &["Rsqrt"]) {
        (inv, None)
    } else {
        return None;
    };
    let gamma = match gamma {
        Some(v) => Some(channel_vector(g, v)?),
        None => None,
    };
    let add = *g.inputs(rsqrt.node).first()?;
    let (a, b) = binary(g, add, &["AddV2", "Add"])?;
    let (var, eps) = if channel_vector(g, a).is_some() { (a, b) } else { (b, a) };
    let var = channel_vector(g, var)?;
    let eps = g.const_value(eps).filter(|t| t.numel() == 1 && t.dtype == DType::F32)?;
    Some((var, eps.scalar_f64()? as f32, gamma))
}

/// The shift `beta - mean * inv`, or `-mean * inv` without an offset (`center=False`):
/// `(beta, mean)`.
fn match_shift(
    g: &Graph,
    shifted: ValueRef,
    inv: ValueRef,
) -> Option<(Option<ValueRef>, ValueRef)> {
    let other = |v: ValueRef| {
        let (a, b) = binary(g, v, &["Mul"])?;
        if b == inv {
            Some(a)
        } else if a == inv {
            Some(b)
        } else {
            None
        }
    };
    if let Some((beta, mean_inv)) = binary(g, shifted, &["Sub"]) {
        return Some((Some(beta), other(mean_inv)?));
    }
    // `-mean * inv` as TF 2 writes it, or `-(mean * inv)`.
    if let Some(neg) = other(shifted) {
        return Some((None, unary_input(g, neg, "Neg")?));
    }
    Some((None, other(unary_input(g, shifted, "Neg")?)?))
}

fn match_at(g: &Graph, out: ValueRef) -> Option<BatchNorm> {
    let (p, q) = binary(g, out, &["AddV2", "Add"])?;
    for (scaled, shifted) in [(p, q), (q, p)] {
        let Some((m0, m1)) = binary(g, scaled, &["Mul"]) else {
            continue;
        };
        for (x, inv) in [(m0, m1), (m1, m0)] {
            let Some((beta, mean)) = match_shift(g, shifted, inv) else {
                continue;
            };
            let Some((var, eps, gamma)) = match_inv(g, inv) else {
                continue;
            };
            let Some(mean) = channel_vector(g, mean) else {
                continue;
            };
            let beta = match beta {
                Some(b) => match channel_vector(g, b) {
                    Some(b) => Some(b),
                    None => continue,
                },
                None => None,
            };
            let (var, channels) = var;
            let c = var.numel();
            let agree = |(t, at): &(Tensor, Channels)| t.numel() == c && *at == channels;
            if agree(&mean) && beta.as_ref().is_none_or(agree) && gamma.as_ref().is_none_or(agree) {
                let (gamma, beta, mean) = (gamma.map(|g| g.0), beta.map(|b| b.0), mean.0);
                return Some(BatchNorm { x, channels, gamma, beta, mean, var, eps });
            }
        }
    }
    None
}

fn attr(v: Value) -> AttrValue {
    AttrValue { value: Some(v) }
}

pub fn fuse_batchnorm(g: &mut Graph) -> Result<()> {
    let candidates: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "AddV2" | "Add")).collect();
    for n in candidates {
        let out = ValueRef { node: n, port: 0 };
        let Some(bn) = match_at(g, out) else { continue };
        let fused = if bn.gamma.is_none() && bn.beta.is_none() && bn.channels == Channels::Last {
            statistics_only(g, n, bn)
        } else {
            batch_norm(g, n, bn)
        };
        g.replace_uses(out, ValueRef { node: fused, port: 0 });
        g.g.remove_node(n);
    }
    Ok(())
}

/// New constants `name/suffix` for the parameters, in order.
fn constants(g: &mut Graph, n: NodeIndex, params: Vec<(&str, Tensor)>) -> Vec<ValueRef> {
    let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
    params
        .into_iter()
        .map(|(suffix, t)| {
            let c = g.add_node(Node::constant(format!("{name}/{suffix}"), t, ordinal));
            ValueRef { node: c, port: 0 }
        })
        .collect()
}

/// Adds `node`, reading `inputs` in order.
fn add_reading(g: &mut Graph, node: Node, inputs: impl IntoIterator<Item = ValueRef>) -> NodeIndex {
    let fused = g.add_node(node);
    for (slot, v) in inputs.into_iter().enumerate() {
        g.connect(v, fused, slot);
    }
    fused
}

/// With neither scale nor offset: normalised by the statistics alone, a layer without affine
/// parameters (`nn.BatchNorm2d(c, affine=False)`) rather than one holding ones and zeros a
/// person would then train.
fn statistics_only(g: &mut Graph, n: NodeIndex, bn: BatchNorm) -> NodeIndex {
    let stats = constants(g, n, vec![("mean", bn.mean), ("variance", bn.var)]);
    let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
    let node = Node::fused(name, Fused::BatchNormStatistics { epsilon: bn.eps }, ordinal);
    add_reading(g, node, std::iter::once(bn.x).chain(stats))
}

fn batch_norm(g: &mut Graph, n: NodeIndex, bn: BatchNorm) -> NodeIndex {
    let channels = bn.var.numel();
    let gamma = bn.gamma.unwrap_or_else(|| Tensor::from_f32(vec![channels], &vec![1.0; channels]));
    let beta = bn.beta.unwrap_or_else(|| Tensor::from_f32(vec![channels], &vec![0.0; channels]));
    let params = constants(
        g,
        n,
        vec![("gamma", gamma), ("beta", beta), ("mean", bn.mean), ("variance", bn.var)],
    );
    let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
    let mut node = Node::new(name, "FusedBatchNormV3", ordinal);
    node.attrs.insert("epsilon".into(), attr(Value::F(bn.eps)));
    node.attrs.insert("is_training".into(), attr(Value::B(false)));
    // A channels-first one is made channels-last by `passes::channels_first`, next.
    let format: &[u8] = match bn.channels {
        Channels::Last => b"NHWC",
        Channels::First(4) => b"NCHW",
        Channels::First(_) => b"NCDHW",
    };
    node.attrs.insert("data_format".into(), attr(Value::S(format.to_vec())));
    add_reading(g, node, std::iter::once(bn.x).chain(params))
}

#[cfg(test)]
mod tests {
    use crate::passes::fuse_batchnorm;
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `tf.nn.batch_normalization` as Keras 3 writes it: the statistics, scale, offset and
    /// epsilon come back out exactly.
    #[test]
    fn arithmetic_becomes_one_batch_norm() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4, 2]);
        let var = g.constant("bn/var", Tensor::from_f32(vec![2], &[1.5, 0.5]));
        let eps = g.constant("bn/eps", Tensor::from_f32(vec![], &[0.001]));
        let gamma = g.constant("bn/gamma", Tensor::from_f32(vec![2], &[2.0, 3.0]));
        let beta = g.constant("bn/beta", Tensor::from_f32(vec![2], &[0.1, 0.2]));
        let mean = g.constant("bn/mean", Tensor::from_f32(vec![2], &[0.3, 0.4]));
        let add = g.op("bn/add", "AddV2", &[var, eps], &[]);
        let rsqrt = g.op("bn/Rsqrt", "Rsqrt", &[add], &[]);
        let inv = g.op("bn/mul", "Mul", &[rsqrt, gamma], &[]);
        let xs = g.op("bn/mul_1", "Mul", &[x, inv], &[]);
        let ms = g.op("bn/mul_2", "Mul", &[mean, inv], &[]);
        let shift = g.op("bn/sub", "Sub", &[beta, ms], &[]);
        let y = g.op("bn/add_1", "AddV2", &[xs, shift], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fuse_batchnorm]), @r#"
        inputs: x:0
        outputs: bn/add_1:0
        x = Placeholder -> float32 [?, 4, 4, 2]
        bn/add_1/gamma = Const -> float32 [2]
        bn/add_1/beta = Const -> float32 [2]
        bn/add_1/mean = Const -> float32 [2]
        bn/add_1/variance = Const -> float32 [2]
        bn/add_1 = FusedBatchNormV3(x:0, bn/add_1/gamma:0, bn/add_1/beta:0, bn/add_1/mean:0, bn/add_1/variance:0) {data_format="NHWC", epsilon=0.001, is_training=false} -> ?
        "#);
    }

    /// Keras' `BatchNormalization(center=False, scale=False)`: `x * inv + (-mean) * inv`, a
    /// layer by the statistics alone, not one holding ones and zeros a person would train.
    #[test]
    fn without_scale_or_offset_it_has_no_affine_parameters() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4, 2]);
        let var = g.constant("bn/var", Tensor::from_f32(vec![2], &[1.5, 0.5]));
        let eps = g.constant("bn/eps", Tensor::from_f32(vec![], &[0.001]));
        let mean = g.constant("bn/mean", Tensor::from_f32(vec![2], &[0.3, 0.4]));
        let add = g.op("bn/add", "AddV2", &[var, eps], &[]);
        let inv = g.op("bn/Rsqrt", "Rsqrt", &[add], &[]);
        let xs = g.op("bn/mul", "Mul", &[x, inv], &[]);
        let neg = g.op("bn/Neg", "Neg", &[mean], &[]);
        let shift = g.op("bn/mul_1", "Mul", &[neg, inv], &[]);
        let y = g.op("bn/add_1", "AddV2", &[xs, shift], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.bn = nn.BatchNorm2d(2, eps=0.001, affine=False)
        # bn.running_mean: [2]
        # bn.running_var: [2]
        # bn.num_batches_tracked: []
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.bn(x).permute(0, 2, 3, 1)
        return x
        ");
    }
}
