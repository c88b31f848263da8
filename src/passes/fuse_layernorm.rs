//! Layer normalisation as TF writes it (`tf.nn.moments` + batch-norm arithmetic, the form
//! Keras 3's LayerNormalization takes on the TF backend):
//!
//! ```text
//! mean = Mean(x, axes, keep_dims)          var = Mean(SquaredDifference(x, mean), axes)
//! inv  = Rsqrt(var + eps) [* gamma]
//! y    = x * inv + (-mean * inv [+ beta])   (or beta - mean * inv)
//! ```
//!
//! becomes one `_LayerNorm(x, gamma, beta)` node (attrs `epsilon`, `axes`), lowered to
//! `nn.LayerNorm` with the exact epsilon, weight and bias.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, Node, ValueRef};
use crate::proto::attr_value::Value;
use crate::proto::{AttrValue, ListValue};
use crate::tensor::{DType, Tensor};

fn op_inputs(g: &Graph, v: ValueRef, ops: &[&str]) -> Option<Vec<ValueRef>> {
    (v.port == 0 && g.g.contains_node(v.node) && ops.contains(&g.node(v.node).op.as_str()))
        .then(|| g.inputs(v.node))
}

/// The two operands of a commutative op, in both orders.
fn pairs(g: &Graph, v: ValueRef, ops: &[&str]) -> Vec<(ValueRef, ValueRef)> {
    match op_inputs(g, v, ops).as_deref() {
        Some([a, b]) => vec![(*a, *b), (*b, *a)],
        _ => vec![],
    }
}

/// A per-feature f32 constant (`[C]`, `[1, .., C]`, maybe behind a constant Reshape) as `[C]`.
fn features(g: &Graph, v: ValueRef) -> Option<Tensor> {
    let t = match g.const_value(v) {
        Some(t) => t,
        None => g.const_value(*op_inputs(g, v, &["Reshape"])?.first()?)?,
    };
    let c = *t.shape.last()?;
    let ok = t.dtype == DType::F32 && t.shape.iter().rev().skip(1).all(|&d| d == 1);
    ok.then(|| t.reshaped(vec![c]))
}

struct LayerNorm {
    x: ValueRef,
    axes: Vec<i64>,
    eps: f32,
    gamma: Option<Tensor>,
    beta: Option<Tensor>,
}

/// `mean = Mean(x, axes, keep_dims=true)` → (x, axes).
fn mean_of(g: &Graph, v: ValueRef) -> Option<(ValueRef, Vec<i64>)> {
    let i = op_inputs(g, v, &["Mean"])?;
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
    gamma: Option<Tensor>,
}

/// `Rsqrt(var + eps) [* gamma]` whose variance is of `x` around `mean`.
fn inverse_std(g: &Graph, inv: ValueRef) -> Option<InverseStd> {
    let (rsqrt, gamma) = if op_inputs(g, inv, &["Rsqrt"]).is_some() {
        (inv, None)
    } else {
        pairs(g, inv, &["Mul"]).into_iter().find_map(|(r, gm)| {
            op_inputs(g, r, &["Rsqrt"]).and(features(g, gm)).map(|t| (r, Some(t)))
        })?
    };
    let add = *op_inputs(g, rsqrt, &["Rsqrt"])?.first()?;
    let (var, eps) = pairs(g, add, &["AddV2", "Add"]).into_iter().find_map(|(var, e)| {
        let eps = g.const_value(e).filter(|t| t.numel() == 1)?.scalar_f64()?;
        Some((var, eps as f32))
    })?;
    let (sd, axes) = mean_of(g, var)?;
    let sdi = op_inputs(g, sd, &["SquaredDifference"])?;
    let (x, mean) = (sdi[0], sdi[1]);
    let (mx, maxes) = mean_of(g, mean)?;
    (mx == x && maxes == axes).then_some(InverseStd { x, mean, axes, eps, gamma })
}

fn match_at(g: &Graph, out: ValueRef) -> Option<LayerNorm> {
    for (scaled, shift) in pairs(g, out, &["AddV2", "Add"]) {
        for (x, inv) in pairs(g, scaled, &["Mul"]) {
            let Some(InverseStd { x: xx, mean, axes, eps, gamma }) = inverse_std(g, inv) else {
                continue;
            };
            // nn.LayerNorm normalises trailing axes; TF's per-feature gamma/beta are on the
            // last one. Other axis sets stay as arithmetic (still exact, just not lifted).
            let rank = g.info(x).shape.map(|s| s.len() as i64);
            let last_only = matches!((axes.as_slice(), rank), ([-1], _) | ([_], None))
                || rank.is_some_and(|r| axes == [r - 1]);
            if xx != x || !last_only {
                continue;
            }
            // shift = -mean*inv [+ beta]  |  beta - mean*inv
            let neg_mean_inv = |v: ValueRef| {
                pairs(g, v, &["Mul"]).into_iter().any(|(m, i)| {
                    i == inv && op_inputs(g, m, &["Neg"]).is_some_and(|n| n.first() == Some(&mean))
                })
            };
            let mean_inv =
                |v: ValueRef| pairs(g, v, &["Mul"]).into_iter().any(|(m, i)| i == inv && m == mean);
            if neg_mean_inv(shift) {
                return Some(LayerNorm { x, axes, eps, gamma, beta: None });
            }
            for (a, b) in pairs(g, shift, &["AddV2", "Add"]) {
                if neg_mean_inv(a)
                    && let Some(beta) = features(g, b)
                {
                    return Some(LayerNorm { x, axes, eps, gamma, beta: Some(beta) });
                }
            }
            if let Some(i) = op_inputs(g, shift, &["Sub"])
                && mean_inv(i[1])
                && let Some(beta) = features(g, i[0])
            {
                return Some(LayerNorm { x, axes, eps, gamma, beta: Some(beta) });
            }
        }
    }
    None
}

pub fn fuse_layernorm(g: &mut Graph) -> Result<()> {
    let adds: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "AddV2" | "Add")).collect();
    for n in adds {
        if !g.g.contains_node(n) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        let Some(ln) = match_at(g, out) else { continue };
        let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
        let mut node = Node::new(name.clone(), "_LayerNorm", ordinal);
        node.attrs.insert("epsilon".into(), AttrValue { value: Some(Value::F(ln.eps)) });
        let axes = ListValue { i: ln.axes, ..Default::default() };
        node.attrs.insert("axes".into(), AttrValue { value: Some(Value::List(axes)) });
        node.outputs = g.node(n).outputs.clone();
        let fused = g.add_node(node);
        g.connect(ln.x, fused, 0);
        // Both affine parameters or neither (a missing one is the identity: ones / zeros).
        if ln.gamma.is_some() || ln.beta.is_some() {
            let c = ln.gamma.as_ref().or(ln.beta.as_ref()).map_or(0, |t| t.numel());
            let gamma = ln.gamma.unwrap_or_else(|| Tensor::from_f32(vec![c], &vec![1.0; c]));
            let beta = ln.beta.unwrap_or_else(|| Tensor::from_f32(vec![c], &vec![0.0; c]));
            for (slot, (suffix, t)) in [("gamma", gamma), ("beta", beta)].into_iter().enumerate() {
                let k = g.add_node(Node::constant(format!("{name}/{suffix}"), t, ordinal));
                g.connect(ValueRef { node: k, port: 0 }, fused, slot + 1);
            }
        }
        g.replace_uses(out, ValueRef { node: fused, port: 0 });
        g.g.remove_node(n);
    }
    Ok(())
}
