//! A boolean mask applied in arithmetic: `x * b - c * (1 - b)` (or `x * b + c * (1 - b)`),
//! `b` the mask cast to a float (OpenAI's and Hugging Face's GPT-2 mask their attention
//! scores so) is `where(mask, x, -c)`: exactly, for a finite `x` (`x * 1 - c * 0` is `x`,
//! `x * 0 - c * 1` is `-c`). Reads as what it does, and lets `fuse_attention` see the
//! masked scores it knows.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::passes::pattern::{binary, both_orders, const_scalar, inputs_of, is_scalar};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;
use crate::tensor::{DType, Tensor};

pub fn select_by_masks(g: &mut Graph) -> Result<()> {
    let nodes: Vec<NodeIndex> = g.g.node_indices().collect();
    let mut changed = false;
    for n in nodes {
        if !g.g.contains_node(n) {
            continue;
        }
        if let Some(blend) = blend(g, ValueRef { node: n, port: 0 }) {
            install(g, n, blend);
            changed = true;
        }
    }
    // What computed the float mask and its products reads the scores no more.
    if changed {
        crate::passes::prune(g)?;
    }
    Ok(())
}

struct Blend {
    x: ValueRef,
    /// The float mask `b`.
    b: ValueRef,
    /// The boolean mask, and the `Reshape` or `ExpandDims` node that reshaped its float.
    mask: ValueRef,
    reshape: Option<NodeIndex>,
    /// What a masked element becomes.
    fill: f64,
}

fn blend(g: &Graph, v: ValueRef) -> Option<Blend> {
    let sign = match g.node(v.node).op.as_str() {
        "Sub" => -1.0,
        "Add" | "AddV2" => 1.0,
        _ => return None,
    };
    let (kept, dropped) = binary(g, v, &["Sub", "Add", "AddV2"])?;
    let float = |u: ValueRef| matches!(g.info(u).dtype, Some(DType::F32 | DType::F64));
    if !float(v) {
        return None;
    }
    // `c * (1 - b)`.
    let (c, b) = both_orders(g, dropped, &["Mul"]).into_iter().find_map(|(c, e)| {
        let c = const_scalar(g, c).filter(|c| c.is_finite())?;
        let (one, b) = binary(g, e, &["Sub"])?;
        is_scalar(g, one, 1.0, 0.0).then_some((c, b))
    })?;
    // `x * b`, the same `b`.
    let x =
        both_orders(g, kept, &["Mul"]).into_iter().find_map(|(x, b2)| (b2 == b).then_some(x))?;
    let (mask, reshape) = mask_of(g, b)?;
    Some(Blend { x, b, mask, reshape, fill: sign * c })
}

/// The boolean `m` that `b` is a float of: `Cast(m)`, maybe reshaped after.
fn mask_of(g: &Graph, b: ValueRef) -> Option<(ValueRef, Option<NodeIndex>)> {
    let is_bool = |u: ValueRef| g.info(u).dtype == Some(DType::Bool);
    let cast = |u: ValueRef| inputs_of(g, u, &["Cast"]).and_then(|i| i.first().copied());
    if let Some(m) = cast(b).filter(|&m| is_bool(m)) {
        return Some((m, None));
    }
    // A reshape reads its sizes after the tensor (a run-time size from a third input).
    let inner = *inputs_of(g, b, &["Reshape", "ExpandDims"])?.first()?;
    let m = cast(inner).filter(|&m| is_bool(m))?;
    Some((m, Some(b.node)))
}

fn install(g: &mut Graph, n: NodeIndex, blend: Blend) {
    let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
    let out = g.info(ValueRef { node: n, port: 0 });
    let mut mask = blend.mask;
    // The mask reshaped as its float was: the same op and sizes, on booleans.
    if let Some(reshape) = blend.reshape {
        let old = g.node(reshape);
        let mut node = Node::new(format!("{name}/mask"), old.op.clone(), ordinal);
        node.attrs = old.attrs.clone();
        node.set_role(0, Some("mask"));
        node.attrs.insert("T".into(), AttrValue { value: Some(Value::Type(DType::Bool.to_tf())) });
        node.outputs = vec![ValueInfo { dtype: Some(DType::Bool), shape: g.info(blend.b).shape }];
        let sizes: Vec<ValueRef> = g.inputs(reshape).into_iter().skip(1).collect();
        let r = g.add_node(node);
        g.connect(mask, r, 0);
        for (slot, v) in sizes.into_iter().enumerate() {
            g.connect(v, r, slot + 1);
        }
        mask = ValueRef { node: r, port: 0 };
    }
    let fill = match out.dtype {
        Some(DType::F64) => Tensor::from_f64(vec![], &[blend.fill]),
        _ => Tensor::from_f32(vec![], &[blend.fill as f32]),
    };
    let c = Node::constant(format!("{name}/masked"), fill, ordinal);
    let c = ValueRef { node: g.add_node(c), port: 0 };
    crate::passes::pattern::replace_with_op(g, n, "SelectV2", &[mask, blend.x, c]);
}

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    use crate::proto::AttrValue;
    use crate::proto::attr_value::Value;

    /// `x * b - c * (1 - b)` with `b` a reshaped cast of a boolean; `b` weighting something
    /// else (`y * b`) is no selection and stays.
    #[test]
    fn a_float_mask_in_arithmetic_is_a_selection() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let y = g.input("y", &[-1, 3, 4]);
        let m = g.typed_input("m", &[3, 4], DType::Bool);
        let float = AttrValue { value: Some(Value::Type(DType::F32.to_tf())) };
        let cast = g.op("b/cast", "Cast", &[m], &[("DstT", float)]);
        let to = g.constant("b/to", int_tensor(&[3], &[1, 3, 4]));
        let b = g.op("b", "Reshape", &[cast, to], &[]);
        let one = g.constant("one", Tensor::from_f32(vec![], &[1.0]));
        let big = g.constant("big", Tensor::from_f32(vec![], &[1e9]));
        let off = g.op("off", "Sub", &[one, b], &[]);
        let offset = g.op("offset", "Mul", &[big, off], &[]);
        let kept = g.op("kept", "Mul", &[x, b], &[]);
        let masked = g.op("masked", "Sub", &[kept, offset], &[]);
        let other = g.op("other", "Mul", &[y, b], &[]);
        let weighted = g.op("weighted", "Sub", &[other, y], &[]);
        assert_snapshot!(g.lower(&[masked, weighted]), @"
        ---
        mask = m.reshape(1, 3, 4)
        x = torch.where(mask, x, -1000000000.0)
        other = y * m.to(torch.float32).reshape(1, 3, 4)
        weighted = other - y
        return x, weighted
        ");
    }
}
