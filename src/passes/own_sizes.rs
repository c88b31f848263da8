//! A reshape reads the sizes it keeps from the value it reshapes. TF code reads them from
//! wherever it had them at hand (GPT-2 makes its causal mask `[1, 1, t, t]` with the `t` of
//! the layer's input; Keras restores `[B, T, F]` from the `B` and `T` of the layer's input),
//! which the generated code would spell out as `mask.reshape(1, 1, x.shape[1], x.shape[1])`.
//! Where [`SizeForest`] proves a run-time size equal to one of the reshaped value's own, in
//! the same order, the target names that axis instead, and the reshape reads as what it
//! does: `mask[None, None]`, `x.flatten(2)`, `x.unflatten(2, (4, 4))` (see `ops::shape`).

use petgraph::stable_graph::NodeIndex;

use super::pattern::read_sizes;
use super::sizes::SizeForest;
use crate::error::Result;
use crate::ir::{Dim, Graph, Node, Partial, ValueRef};

/// The target of `n` (a Reshape whose target is read in part at run time) with its
/// run-time sizes read from the input, when each is one of the input's own, in order;
/// `None` if not, or if nothing changes.
fn own_target(g: &Graph, forest: &SizeForest, n: NodeIndex) -> Option<Vec<Dim>> {
    let inputs = g.inputs(n);
    let (x, target) = (*inputs.first()?, *inputs.get(1)?);
    let p = g.node(target.node).partial.as_ref().filter(|p| target.port == 0 && !p.scalar)?;
    let shape = g.info(x).shape?;
    let mut next = 0;
    let mut changed = false;
    let mut values = p.values.clone();
    for d in &mut values {
        match *d {
            Dim::Of(u, axis) => {
                let root = forest.root((u, axis));
                let own = (next..shape.len())
                    .find(|&k| shape[k].is_none() && forest.root((x, k)) == root);
                // All or none: `x.reshape(x.shape[0], h.shape[1], -1)` reads worse than
                // either.
                let k = own?;
                changed |= *d != Dim::Of(x, k);
                *d = Dim::Of(x, k);
                next = k + 1;
            }
            Dim::Known(v) => {
                // A known size the input has next keeps the order going.
                if shape.get(next).copied().flatten().is_some_and(|s| s as i64 == v) {
                    next += 1;
                }
            }
            Dim::Unknown => {}
        }
    }
    (changed && structural(&values, x, &shape)).then_some(values)
}

/// Whether a reshape of `x` (of `shape`) to `values` says what it does without reading a
/// size: it only inserts axes of 1, or keeps the leading axes and splits the last one or
/// merges the rest (the forms `ops::shape` writes as `x[None]`, `x.unflatten(..)`,
/// `x.flatten(..)`). Other targets read sizes all the same, and reading them from `x`
/// would only make `x` a name of its own where it was a chain's middle.
fn structural(values: &[Dim], x: ValueRef, shape: &[Option<usize>]) -> bool {
    let own = |k: usize, d: Dim| match d {
        Dim::Of(v, axis) => v == x && axis == k,
        Dim::Known(n) => shape.get(k).copied().flatten().is_some_and(|s| s as i64 == n),
        Dim::Unknown => false,
    };
    // Axes of 1 inserted: the rest are `x`'s in order.
    let mut next = 0;
    let inserted = values.iter().all(|&d| {
        if next < shape.len() && own(next, d) {
            next += 1;
            true
        } else {
            d == Dim::Known(1)
        }
    });
    if inserted && next == shape.len() {
        return true;
    }
    let kept =
        values.iter().enumerate().take_while(|&(k, &d)| k < shape.len() && own(k, d)).count();
    let rest_known = values[kept..].iter().all(|d| matches!(d, Dim::Known(_)));
    let (rest, tail) = (values.len() - kept, shape.len() - kept);
    kept > 0 && rest_known && ((tail == 1 && rest >= 2) || (rest == 1 && tail >= 2))
}

pub fn read_own_sizes(g: &mut Graph) -> Result<()> {
    let forest = SizeForest::build(g);
    let mut reshapes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Reshape").collect();
    reshapes.sort_by_key(|&n| g.node(n).ordinal);
    for n in reshapes {
        let Some(values) = own_target(g, &forest, n) else { continue };
        let target = g.inputs(n)[1];
        // A target of its own (another reshape may share this one).
        let old = g.node(target.node);
        let Some(t) = old.value.clone() else { continue };
        let c = Node::constant(format!("{}/own", old.name), t, old.ordinal);
        let c = g.add_node(c);
        g.set_partial(c, Partial { scalar: false, values: values.clone() });
        g.set_input(n, 1, ValueRef { node: c, port: 0 });
        // The values sizes are read from, after the data and the target (`ir::target_slot`).
        g.clear_inputs_from(n, 2);
        read_sizes(g, n, &values, 2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// GPT-2's causal mask: `[t, t]` made `[1, 1, t, t]` with the `t` of the layer's input,
    /// not the mask's own: read from the mask, the reshape only adds two axes.
    #[test]
    fn sizes_the_reshaped_value_has_are_read_from_it() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1]);
        let y = g.op("y", "Relu", &[x], &[]);
        let (b, t) = (g.size_of("b", x, 0), g.size_of("t", x, 1));
        let one = g.constant("one", int_tensor(&[], &[1]));
        let target = g.op("target", "Pack", &[one, b, one, t], &[("N", int(4))]);
        let out = g.op("out", "Reshape", &[y, target], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        ---
        x = F.relu(x)[None, :, None]
        return x
        ");
    }

    /// The sizes swapped (`[t, b]` of a `[b, t]`): not the value's own in that order, so read
    /// where they were.
    #[test]
    fn sizes_out_of_order_stay_where_they_are_read() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1]);
        let y = g.op("y", "Relu", &[x], &[]);
        let (b, t) = (g.size_of("b", x, 0), g.size_of("t", x, 1));
        let one = g.constant("one", int_tensor(&[], &[1]));
        let target = g.op("target", "Pack", &[one, t, b], &[("N", int(3))]);
        let out = g.op("out", "Reshape", &[y, target], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        ---
        h = F.relu(x).reshape(1, x.shape[1], x.shape[0])
        return h
        ");
    }
}
