//! `tf.repeat(x, k, axis=a)` as TF spells it: `ExpandDims(x, a + 1) → Tile([1, …, k, …, 1])
//! → Reshape` merging axes `a` and `a + 1` (Keras' `UpSampling1D`, `ops.repeat`, Llama's
//! grouped-query attention repeating key/value heads). One [`Fused::RepeatInterleave`]
//! replaces the three: `x.repeat_interleave(k, dim=a)`, as a person writes it.
//!
//! The Reshape must merge exactly those two axes. Its target is checked entry by entry against
//! `x`'s sizes (equal known sizes, or `x.shape[i]` read at run time); one entry may stay
//! unproven, as the element count then fixes it.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Dim, Graph, Node, ValueRef};
use crate::passes::pattern::{const_ints, single_consumer};

pub fn fuse_repeat(g: &mut Graph) -> Result<()> {
    let mut reshapes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Reshape").collect();
    reshapes.sort_by_key(|&n| g.node(n).ordinal);
    for n in reshapes {
        if let Some((x, axis, repeats)) = plan(g, n) {
            let node = g.node(n);
            let fused = Fused::RepeatInterleave { axis, repeats };
            let mut r = Node::fused(node.name.clone(), fused, node.ordinal);
            r.outputs = node.outputs.clone();
            let r = g.add_node(r);
            g.connect(x, r, 0);
            g.replace_uses(ValueRef { node: n, port: 0 }, ValueRef { node: r, port: 0 });
            g.g.remove_node(n);
        }
    }
    Ok(())
}

/// `(x, axis, repeats)` when Reshape `n` ends an expand–tile–merge.
fn plan(g: &Graph, n: NodeIndex) -> Option<(ValueRef, usize, i64)> {
    let ins = g.inputs(n);
    let tiled = *ins.first()?;
    if g.node(tiled.node).op != "Tile" || single_consumer(g, tiled)? != n {
        return None;
    }
    let t_ins = g.inputs(tiled.node);
    let expanded = *t_ins.first()?;
    if g.node(expanded.node).op != "ExpandDims" || single_consumer(g, expanded)? != tiled.node {
        return None;
    }
    let e_ins = g.inputs(expanded.node);
    let x = *e_ins.first()?;
    let sizes = g.info(x).shape?;
    let rank = sizes.len();
    let dim = match const_ints(g, *e_ins.get(1)?)?.as_slice() {
        &[d] => d,
        _ => return None,
    };
    let dim = if dim < 0 { dim + rank as i64 + 1 } else { dim };
    if !(1..=rank as i64).contains(&dim) {
        return None;
    }
    let axis = dim as usize - 1;
    // Multiples: ones except `k` on the new axis.
    let multiples = const_ints(g, *t_ins.get(1)?)?;
    let k = *multiples.get(axis + 1)?;
    let ones = multiples.iter().enumerate().all(|(i, &m)| i == axis + 1 || m == 1);
    if multiples.len() != rank + 1 || !ones || k < 1 {
        return None;
    }
    // The target, entry by entry.
    let target = *ins.get(1)?;
    let values: Vec<Dim> = match &g.node(target.node).partial {
        Some(p) => p.values.clone(),
        None => const_ints(g, target)?.into_iter().map(Dim::Known).collect(),
    };
    if values.len() != rank {
        return None;
    }
    let unproven = values
        .iter()
        .enumerate()
        .filter(|&(i, d)| {
            let want = sizes[i]
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| if i == axis { s * k } else { s });
            let proven = match *d {
                Dim::Known(v) => want == Some(v),
                Dim::Of(v, j) => v == x && j == i && i != axis,
                Dim::Unknown => false,
            };
            !proven
        })
        .count();
    (unproven <= 1).then_some((x, axis, k))
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras `UpSampling1D(3)`: ExpandDims(axis 2) → Tile [1, 1, 3, 1] → Reshape to [b, 3·t, c].
    fn upsample(g: &mut TestGraph, multiples: &[i64]) -> crate::ir::ValueRef {
        let x = g.input("x", &[-1, 4, 2]);
        let axis = g.constant("up/axis", int_tensor(&[], &[2]));
        let e = g.op("up/ExpandDims", "ExpandDims", &[x, axis], &[]);
        let m = g.constant("up/multiples", int_tensor(&[4], multiples));
        let t = g.op("up/Tile", "Tile", &[e, m], &[]);
        let shape = g.constant("up/shape", int_tensor(&[3], &[-1, 12, 2]));
        g.op("up/Reshape", "Reshape", &[t, shape], &[])
    }

    #[test]
    fn expand_tile_reshape_is_repeat_interleave() {
        let mut g = TestGraph::new();
        let y = upsample(&mut g, &[1, 1, 3, 1]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.repeat_interleave(3, dim=1)
        return x
        ");
    }

    #[test]
    fn a_reshape_that_does_not_merge_the_copies_is_left_alone() {
        // Tiling the new axis 3 times and merging it with the *channel* axis is a different
        // interleaving ([b, 4, 6]): not a repeat along time.
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 2]);
        let axis = g.constant("up/axis", int_tensor(&[], &[2]));
        let e = g.op("up/ExpandDims", "ExpandDims", &[x, axis], &[]);
        let m = g.constant("up/multiples", int_tensor(&[4], &[1, 1, 3, 1]));
        let t = g.op("up/Tile", "Tile", &[e, m], &[]);
        let shape = g.constant("up/shape", int_tensor(&[3], &[-1, 4, 6]));
        let y = g.op("up/Reshape", "Reshape", &[t, shape], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.unsqueeze(2)
        x = x.repeat(1, 1, 3, 1).reshape(-1, 4, 6)
        return x
        ");
    }
}
