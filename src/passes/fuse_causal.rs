//! A causal mask built from two ranges, `range(n)[:, None] >= range(n)` (Keras' and
//! keras-hub's `compute_causal_mask`, in any number type, each range on its own cast of the
//! same size), becomes one [`Fused::CausalMask`] node reading `n`:
//! `torch.ones(n, n, dtype=torch.bool).tril()`, as a person writes it.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{binary, const_ints, is_scalar, replace_with_fused};

pub fn fuse_causal(g: &mut Graph) -> Result<()> {
    let compares: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "GreaterEqual").collect();
    for n in compares {
        if let Some(size) = causal_size(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, Fused::CausalMask, &[size]);
        }
    }
    Ok(())
}

/// The integer `n` when `v` is `range(0, n, 1)` (the limit maybe cast from it).
fn range_size(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let i = g.inputs(v.node);
    if v.port != 0 || g.node(v.node).op != "Range" || i.len() != 3 {
        return None;
    }
    if !is_scalar(g, i[0], 0.0, 0.0) || !is_scalar(g, i[2], 1.0, 0.0) {
        return None;
    }
    let mut limit = i[1];
    if g.node(limit.node).op == "Cast" {
        limit = *g.inputs(limit.node).first()?;
    }
    let int = g.info(limit).dtype.is_some_and(|d| d.is_int());
    let scalar = g.info(limit).shape.is_some_and(|s| s.is_empty());
    (int && scalar).then_some(limit)
}

/// `n` when `v` is `range(n)[:, None] >= range(n)` (the right side maybe `[None, :]`).
fn causal_size(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let (rows, cols) = binary(g, v, &["GreaterEqual"])?;
    let expanded = |x: ValueRef, axes: &[i64]| -> Option<ValueRef> {
        let (inner, axis) = binary(g, x, &["ExpandDims"])?;
        let a = *const_ints(g, axis)?.first()?;
        axes.contains(&a).then_some(inner)
    };
    let n = range_size(g, expanded(rows, &[1, -1])?)?;
    let m = range_size(g, expanded(cols, &[0, -2]).unwrap_or(cols))?;
    let rank2 = g.info(v).shape.is_some_and(|s| s.len() == 2);
    (n == m && rank2).then_some(n)
}

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// keras-hub's causal mask: float ranges over a cast of the sequence length.
    #[test]
    fn ranges_compared_are_a_lower_triangle() {
        let mut g = TestGraph::new();
        let n = g.typed_input("n", &[], DType::I32);
        let range = |g: &mut TestGraph, name: &str| {
            let start = g.constant(&format!("{name}/start"), Tensor::from_f32(vec![], &[0.0]));
            let delta = g.constant(&format!("{name}/delta"), Tensor::from_f32(vec![], &[1.0]));
            let float =
                crate::proto::AttrValue { value: Some(crate::proto::attr_value::Value::Type(1)) };
            let cast = g.op(&format!("{name}/Cast"), "Cast", &[n], &[("DstT", float)]);
            g.op(name, "Range", &[start, cast, delta], &[])
        };
        let r1 = range(&mut g, "range");
        let r2 = range(&mut g, "range_1");
        let one = g.constant("dim", int_tensor(&[], &[1]));
        let rows = g.op("ExpandDims", "ExpandDims", &[r1, one], &[]);
        let y = g.op("GreaterEqual", "GreaterEqual", &[rows, r2], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        n_value = n.item()
        x = torch.ones(n_value, n_value, dtype=torch.bool).tril()
        return x
        ");
    }
}
