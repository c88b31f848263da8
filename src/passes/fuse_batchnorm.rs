//! Recognises batch normalisation written out as arithmetic, as `tf.nn.batch_normalization`
//! (and so Keras 3's BatchNormalization) emits it:
//!
//! ```text
//! inv = Rsqrt(AddV2(variance, eps)) [* gamma]
//! y   = AddV2(Mul(x, inv), Sub(beta, Mul(mean, inv)))
//! ```
//!
//! and rewrites it to one `FusedBatchNormV3(is_training=false)` node, so that the statistics,
//! scale, offset and epsilon survive exactly (as `nn.BatchNorm2d`) instead of being folded
//! into two opaque constants.

use crate::error::Result;
use crate::ir::{Graph, Node, ValueRef};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;
use crate::tensor::{DType, Tensor};
use petgraph::stable_graph::NodeIndex;

fn is_op(g: &Graph, v: ValueRef, ops: &[&str]) -> bool {
    v.port == 0 && g.g.contains_node(v.node) && ops.contains(&g.node(v.node).op.as_str())
}

fn binary_inputs(g: &Graph, v: ValueRef, ops: &[&str]) -> Option<(ValueRef, ValueRef)> {
    if !is_op(g, v, ops) {
        return None;
    }
    let i = g.inputs(v.node);
    (i.len() == 2).then(|| (i[0], i[1]))
}

fn const_f32_vector(g: &Graph, v: ValueRef) -> Option<&Tensor> {
    g.const_value(v)
        .filter(|t| t.dtype == DType::F32 && t.rank() == 1)
}

/// `inv` = `Rsqrt(var + eps) [* gamma]` → `(var, eps, gamma)`.
fn match_inv(g: &Graph, inv: ValueRef) -> Option<(ValueRef, f32, Option<ValueRef>)> {
    let (rsqrt, gamma) = if let Some((a, b)) = binary_inputs(g, inv, &["Mul"]) {
        if is_op(g, a, &["Rsqrt"]) {
            (a, Some(b))
        } else if is_op(g, b, &["Rsqrt"]) {
            (b, Some(a))
        } else {
            return None;
        }
    } else if is_op(g, inv, &["Rsqrt"]) {
        (inv, None)
    } else {
        return None;
    };
    if let Some(gm) = gamma {
        const_f32_vector(g, gm)?;
    }
    let add = *g.inputs(rsqrt.node).first()?;
    let (a, b) = binary_inputs(g, add, &["AddV2", "Add"])?;
    let (var, eps) = if const_f32_vector(g, a).is_some() {
        (a, b)
    } else {
        (b, a)
    };
    const_f32_vector(g, var)?;
    let eps = g
        .const_value(eps)
        .filter(|t| t.numel() == 1 && t.dtype == DType::F32)?
        .scalar_f64()? as f32;
    Some((var, eps, gamma))
}

struct BatchNorm {
    x: ValueRef,
    gamma: Option<ValueRef>,
    beta: ValueRef,
    mean: ValueRef,
    var: ValueRef,
    eps: f32,
}

fn match_at(g: &Graph, out: ValueRef) -> Option<BatchNorm> {
    let (p, q) = binary_inputs(g, out, &["AddV2", "Add"])?;
    for (scaled, shifted) in [(p, q), (q, p)] {
        let Some((m0, m1)) = binary_inputs(g, scaled, &["Mul"]) else {
            continue;
        };
        let Some((beta, mean_inv)) = binary_inputs(g, shifted, &["Sub"]) else {
            continue;
        };
        let Some((n0, n1)) = binary_inputs(g, mean_inv, &["Mul"]) else {
            continue;
        };
        for (x, inv) in [(m0, m1), (m1, m0)] {
            let mean = if n1 == inv {
                n0
            } else if n0 == inv {
                n1
            } else {
                continue;
            };
            let Some((var, eps, gamma)) = match_inv(g, inv) else {
                continue;
            };
            if const_f32_vector(g, mean).is_none() || const_f32_vector(g, beta).is_none() {
                continue;
            }
            return Some(BatchNorm {
                x,
                gamma,
                beta,
                mean,
                var,
                eps,
            });
        }
    }
    None
}

fn attr(v: Value) -> AttrValue {
    AttrValue { value: Some(v) }
}

pub fn fuse_batchnorm(g: &mut Graph) -> Result<()> {
    let candidates: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).op.as_str(), "AddV2" | "Add"))
            .collect();
    for n in candidates {
        let out = ValueRef { node: n, port: 0 };
        let Some(bn) = match_at(g, out) else { continue };
        let channels = g.const_value(bn.var).map_or(0, |t| t.numel());
        let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
        let gamma = match bn.gamma {
            Some(v) => v,
            None => {
                let ones = Tensor::from_f32(vec![channels], &vec![1.0; channels]);
                let c = g.add_node(Node::constant(format!("{name}/gamma"), ones, ordinal));
                ValueRef { node: c, port: 0 }
            }
        };
        let mut node = Node::new(name, "FusedBatchNormV3", ordinal);
        node.attrs.insert("epsilon".into(), attr(Value::F(bn.eps)));
        node.attrs
            .insert("is_training".into(), attr(Value::B(false)));
        node.attrs
            .insert("data_format".into(), attr(Value::S(b"NHWC".to_vec())));
        let fused = g.add_node(node);
        for (slot, v) in [bn.x, gamma, bn.beta, bn.mean, bn.var]
            .into_iter()
            .enumerate()
        {
            g.connect(v, fused, slot);
        }
        g.replace_uses(
            out,
            ValueRef {
                node: fused,
                port: 0,
            },
        );
        g.g.remove_node(n);
    }
    Ok(())
}
