//! Negative indices wrapped before a gather, `where(i < 0, i + n, i)` (Keras 3's `take`, in
//! front of every `Embedding` lookup), become one [`Fused::WrapNegative`] node:
//! `torch.where(ids < 0, ids + 500, ids)` on one line instead of three temporaries.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{binary, const_scalar, replace_with_fused};

pub fn fuse_wrap(g: &mut Graph) -> Result<()> {
    let selects: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).op.as_str(), "Select" | "SelectV2"))
            .collect();
    for n in selects {
        if let Some(ids) = never_negative(g, n) {
            g.replace_uses(ValueRef { node: n, port: 0 }, ids);
        } else if let Some((ids, size)) = wrapped(g, n) {
            replace_with_fused(g, n, Fused::WrapNegative { size }, &[ids]);
        }
    }
    Ok(())
}

/// The indices `i` when node `n` is `select(i < 0, anything, i)` and no `i` can be negative
/// (an `argmax`, a size, a range up from zero: CLIP's text pooler takes the `argmax` token
/// of each row): the select is `i` itself.
fn never_negative(g: &Graph, n: NodeIndex) -> Option<ValueRef> {
    let inputs = g.inputs(n);
    let [cond, shifted, ids] = inputs.as_slice() else { return None };
    let (lhs, zero) = binary(g, *cond, &["Less"])?;
    // Nothing broadcasts `ids` larger: the other branch has its shape too (`ids + n`).
    let shape = g.info(*ids).shape?;
    let out = g.info(ValueRef { node: n, port: 0 }).shape?;
    let other = g.info(*shifted).shape?;
    let same = out == shape && (other == shape || other.is_empty());
    (lhs == *ids && const_scalar(g, zero) == Some(0.0) && same && non_negative(g, *ids, 0))
        .then_some(*ids)
}

/// Producers followed back at most this far.
const MAX_DEPTH: usize = 24;

/// Whether every value of `v` is at least zero, as its producers show.
fn non_negative(g: &Graph, v: ValueRef, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let node = g.node(v.node);
    if let Some(t) = g.const_value(v) {
        return t.to_i64().is_some_and(|v| v.iter().all(|&x| x >= 0));
    }
    let inputs = g.inputs(v.node);
    let first = |g: &Graph| inputs.first().is_some_and(|&i| non_negative(g, i, depth + 1));
    match node.op.as_str() {
        "ArgMax" | "ArgMin" | "Shape" | "Size" | "Rank" => true,
        // Moved, repeated or picked values, and integers widened (sizes and positions
        // fit an int32).
        "Identity" | "ExpandDims" | "Reshape" | "Squeeze" | "BroadcastTo" | "Tile"
        | "Transpose" | "StridedSlice" | "Slice" | "GatherV2" | "Cast" => first(g),
        "Pack" => inputs.iter().all(|&i| non_negative(g, i, depth + 1)),
        "ConcatV2" => inputs
            .split_last()
            .is_some_and(|(_, data)| data.iter().all(|&i| non_negative(g, i, depth + 1))),
        "Range" => {
            let at_least = |k: usize, m: f64| {
                inputs.get(k).and_then(|&i| const_scalar(g, i)).is_some_and(|x| x >= m)
            };
            at_least(0, 0.0) && at_least(2, 1.0)
        }
        _ => false,
    }
}

/// `(i, n)` when node `n` is `select(i < 0, i + n, i)` on integer indices with a constant `n`.
fn wrapped(g: &Graph, n: NodeIndex) -> Option<(ValueRef, i64)> {
    let inputs = g.inputs(n);
    let [cond, shifted, ids] = inputs.as_slice() else { return None };
    let (lhs, zero) = binary(g, *cond, &["Less"])?;
    let (base, size) = binary(g, *shifted, &["AddV2", "Add"])?;
    let int = g.info(*ids).dtype.is_some_and(|d| d.is_int());
    let same_shape = g.info(*ids).shape == g.info(ValueRef { node: n, port: 0 }).shape;
    let size = const_scalar(g, size)?;
    let whole = size.fract() == 0.0 && size > 0.0;
    (lhs == *ids
        && base == *ids
        && const_scalar(g, zero) == Some(0.0)
        && int
        && same_shape
        && whole)
        .then_some((*ids, size as i64))
}

#[cfg(test)]
mod tests {
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras 3's Embedding: ids counted from the end wrap before the lookup.
    #[test]
    fn negative_ids_wrap_in_one_line() {
        let mut g = TestGraph::new();
        let ids = g.typed_input("ids", &[-1, 7], DType::I32);
        let zero = g.constant("zero", int_tensor(&[], &[0]));
        let size = g.constant("size", int_tensor(&[], &[500]));
        let less = g.op("Less", "Less", &[ids, zero], &[]);
        let add = g.op("add", "AddV2", &[ids, size], &[]);
        let y = g.op("where", "SelectV2", &[less, add, ids], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = torch.where(ids < 0, ids + 500, ids)
        return x
        ");
    }

    /// CLIP's text pooler wraps the `argmax` token's index: never negative, so no wrap;
    /// an index of the input's own (`ids`) keeps it.
    #[test]
    fn indices_that_cannot_be_negative_are_not_wrapped() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, 7], DType::I32);
        let axis = g.constant("axis", int_tensor(&[], &[1]));
        let int32 = crate::proto::AttrValue {
            value: Some(crate::proto::attr_value::Value::Type(DType::I32.to_tf())),
        };
        let best = g.op("argmax", "ArgMax", &[x, axis], &[("output_type", int32)]);
        let at = g.op("at", "ExpandDims", &[best, axis], &[]);
        let zero = g.constant("zero", int_tensor(&[], &[0]));
        let seven = g.constant("seven", int_tensor(&[], &[7]));
        let less = g.op("Less", "Less", &[at, zero], &[]);
        let add = g.op("add", "AddV2", &[at, seven], &[]);
        let y = g.op("where", "SelectV2", &[less, add, at], &[]);
        let less = g.op("Less_1", "Less", &[x, zero], &[]);
        let add = g.op("add_1", "AddV2", &[x, seven], &[]);
        let z = g.op("where_1", "SelectV2", &[less, add, x], &[]);
        assert_snapshot!(g.lower(&[y, z]), @"
        ---
        h = x.argmax(1).to(torch.int32).unsqueeze(1)
        ids = torch.where(x < 0, x + 7, x)
        return h, ids
        ");
    }
}
