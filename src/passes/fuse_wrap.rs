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
        if let Some((ids, size)) = wrapped(g, n) {
            replace_with_fused(g, n, Fused::WrapNegative { size }, &[ids]);
        }
    }
    Ok(())
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
}
