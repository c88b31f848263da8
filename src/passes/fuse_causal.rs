//! A causal mask built from two ranges, `range(n)[:, None] >= range(n)` (Keras' and
//! keras-hub's `compute_causal_mask`, in any number type, each range on its own cast of the
//! same size), becomes one [`Fused::CausalMask`] node reading `n`:
//! `torch.ones(n, n, dtype=torch.bool).tril()`, as a person writes it. GPT-2's mask of `n`
//! queries over `m` keys, `range(n)[:, None] >= range(m) - m + n`, reads `n` and `m`:
//! `torch.ones(n, m, dtype=torch.bool).tril(m - n)`.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{binary, const_ints, is_scalar, replace_with_fused};

pub fn fuse_causal(g: &mut Graph) -> Result<()> {
    let compares: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "GreaterEqual").collect();
    for n in compares {
        if let Some(sizes) = causal_sizes(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, Fused::CausalMask, &sizes);
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

/// The sizes when `v` is `range(n)[:, None] >= range(n)` (the right side maybe `[None, :]`):
/// `[n]`; or when it is `range(n)[:, None] >= range(m) - m + n` (GPT-2's mask of `n` new
/// queries over `m` keys, the last `n` of which are theirs): `[n, m]`.
fn causal_sizes(g: &Graph, v: ValueRef) -> Option<Vec<ValueRef>> {
    let (rows, cols) = binary(g, v, &["GreaterEqual"])?;
    let expanded = |x: ValueRef, axes: &[i64]| -> Option<ValueRef> {
        let (inner, axis) = binary(g, x, &["ExpandDims"])?;
        let a = *const_ints(g, axis)?.first()?;
        axes.contains(&a).then_some(inner)
    };
    if g.info(v).shape.is_none_or(|s| s.len() != 2) {
        return None;
    }
    // `x[:, None]` is a strided slice adding axis 1 (all of axis 0, strides 1).
    let column = |x: ValueRef| -> Option<ValueRef> {
        let node = g.node(x.node);
        let i = g.inputs(x.node);
        let attr = |k: &str| node.attr_int_or(k, 0).ok();
        let masks =
            ["begin_mask", "end_mask", "new_axis_mask", "shrink_axis_mask", "ellipsis_mask"];
        let ok = node.op == "StridedSlice"
            && i.len() == 4
            && masks.map(attr) == [Some(1), Some(1), Some(2), Some(0), Some(0)]
            && const_ints(g, i[3]).is_some_and(|s| s.iter().all(|&s| s == 1));
        ok.then(|| i[0])
    };
    let n = range_size(g, expanded(rows, &[1, -1]).or_else(|| column(rows))?)?;
    let cols = expanded(cols, &[0, -2]).unwrap_or(cols);
    if let Some(m) = range_size(g, cols) {
        return (n == m).then(|| vec![n]);
    }
    // `(range(m) - m) + n`.
    let (shifted, plus) = binary(g, cols, &["Add", "AddV2"])?;
    let (keys, minus) = binary(g, shifted, &["Sub"])?;
    let m = range_size(g, keys)?;
    (minus == m && plus == n).then(|| vec![n, m])
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
    /// GPT-2's mask of `n` queries over `m` keys: `range(n)[:, None] >= range(m) - m + n`,
    /// the column made by a strided slice (`[:, None]`).
    #[test]
    fn queries_over_more_keys_are_a_shifted_triangle() {
        let mut g = TestGraph::new();
        let n = g.typed_input("n", &[], DType::I32);
        let m = g.typed_input("m", &[], DType::I32);
        let range = |g: &mut TestGraph, name: &str, limit| {
            let start = g.constant(&format!("{name}/start"), int_tensor(&[], &[0]));
            let delta = g.constant(&format!("{name}/delta"), int_tensor(&[], &[1]));
            g.op(name, "Range", &[start, limit, delta], &[])
        };
        let rows = range(&mut g, "rows", n);
        let (b, e, st) = (
            g.constant("b", int_tensor(&[2], &[0, 0])),
            g.constant("e", int_tensor(&[2], &[0, 0])),
            g.constant("st", int_tensor(&[2], &[1, 1])),
        );
        let masks = [("begin_mask", int(1)), ("end_mask", int(1)), ("new_axis_mask", int(2))];
        let column = g.op("column", "StridedSlice", &[rows, b, e, st], &masks);
        let cols = range(&mut g, "cols", m);
        let back = g.op("back", "Sub", &[cols, m], &[]);
        let shifted = g.op("shifted", "AddV2", &[back, n], &[]);
        let y = g.op("mask", "GreaterEqual", &[column, shifted], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        n_value = n.item()
        m_value = m.item()
        x = torch.ones(n_value, m_value, dtype=torch.bool).tril(m_value - n_value)
        return x
        ");
    }
    /// Any other comparison stays one (its operands made by ops without inputs, which the
    /// matcher must not index into).
    #[test]
    fn a_comparison_of_inputs_is_no_mask() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[2, 3]);
        let b = g.input("b", &[2, 3]);
        let y = g.op("y", "GreaterEqual", &[a, b], &[]);
        assert!(g.lower(&[y]).contains("x = a >= b"));
    }
}
