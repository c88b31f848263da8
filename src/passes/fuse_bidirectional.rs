//! Keras `Bidirectional(layer)`: two fused recurrent layers of one kind and size over the same
//! sequence, the second reading it reversed (`go_backwards`), their outputs concatenated
//! feature-wise (the backward sequence reversed back), become one layer with PyTorch's
//! `bidirectional=True`, whose output has exactly that layout. With `return_sequences=False`
//! Keras concatenates each direction's last output, which are PyTorch's two final states.
//!
//! The layer carries both directions' weights, forward first.

use petgraph::stable_graph::NodeIndex;

use super::pattern::{const_ints, is_op};
use crate::error::Result;
use crate::ir::fused::{Cell, Fused};
use crate::ir::{Graph, Node, ValueRef};

pub fn fuse_bidirectional(g: &mut Graph) -> Result<()> {
    let concats: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "ConcatV2").collect();
    for c in concats {
        if let Some((fwd, bwd, x)) = match_concat(g, c) {
            rewrite(g, c, fwd, bwd, x);
        }
    }
    Ok(())
}

/// `ReverseV2(x, [1])`: `x`.
fn reversed_in_time(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let i = g.inputs(v.node);
    (is_op(g, v, "ReverseV2") && const_ints(g, *i.get(1)?)? == [1]).then_some(*i.first()?)
}

/// `v[-1]` (or `v[0]`) of a `[1, B, H]` final state: the state.
fn only_step(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let n = g.node(v.node);
    let i = g.inputs(v.node);
    if n.op != "StridedSlice" || v.port != 0 || i.len() != 4 {
        return None;
    }
    for (m, want) in [("shrink_axis_mask", 1), ("ellipsis_mask", 0), ("new_axis_mask", 0)] {
        if n.attr_int_or(m, 0).ok()? != want {
            return None;
        }
    }
    let begin = const_ints(g, i[1])?;
    (matches!(begin.as_slice(), [-1] | [0]) && const_ints(g, i[3])? == [1]).then_some(i[0])
}

/// A one-direction `nn.LSTM`/`nn.GRU`/`nn.RNN` layer over a batch-first sequence, from zeros,
/// whose output 0 is read by nothing but one reader: the layer's node.
fn sole_layer(g: &Graph, v: ValueRef) -> Option<NodeIndex> {
    let n = g.node(v.node);
    let r = n.recurrent()?;
    let single = g.use_count(v) == 1
        && (1..n.outputs.len()).all(|p| g.use_count(ValueRef { node: v.node, port: p }) == 0);
    let torch_layer = matches!(r.cell, Cell::Lstm | Cell::Gru | Cell::Rnn { .. });
    (torch_layer
        && v.port == 0
        && single
        && !r.initial_state
        && !r.bidirectional()
        && r.batch_first)
        .then_some(v.node)
}

/// `(forward, backward, x)`.
fn match_concat(g: &Graph, c: NodeIndex) -> Option<(NodeIndex, NodeIndex, ValueRef)> {
    let i = g.inputs(c);
    let [a, b, axis] = i.as_slice() else { return None };
    let axis = const_ints(g, *axis)?;
    let rank = g.info(*a).shape?.len();
    if axis != [rank as i64 - 1] && axis != [-1] {
        return None;
    }
    let (fwd, bwd, last_only) = match (only_step(g, *a), only_step(g, *b)) {
        (Some(fa), Some(fb)) => (sole_layer(g, fa)?, sole_layer(g, fb)?, true),
        _ => (sole_layer(g, *a)?, sole_layer(g, reversed_in_time(g, *b)?)?, false),
    };
    let (f, b) = (g.node(fwd).recurrent()?, g.node(bwd).recurrent()?);
    let x = g.inputs(fwd)[0];
    let shapes = |r: &crate::ir::fused::Recurrent| -> Vec<Vec<usize>> {
        r.weights[0].iter().map(|t| t.shape.clone()).collect()
    };
    let same = f.cell == b.cell
        && f.last_only == b.last_only
        && f.last_only == last_only
        && shapes(f) == shapes(b);
    (same && reversed_in_time(g, g.inputs(bwd)[0]) == Some(x)).then_some((fwd, bwd, x))
}

fn rewrite(g: &mut Graph, c: NodeIndex, fwd: NodeIndex, bwd: NodeIndex, x: ValueRef) {
    // Named after the Keras layer: `model/bi/forward_lstm/lstm` → `model/bi/lstm`.
    let fname = g.node(fwd).name.clone();
    let name: Vec<&str> = fname.split('/').filter(|c| !c.starts_with("forward_")).collect();
    let (Some(f), Some(b)) = (g.node(fwd).recurrent(), g.node(bwd).recurrent()) else { return };
    let mut layer = f.clone();
    layer.weights.extend(b.weights.iter().cloned());
    let mut node = Node::fused(name.join("/"), Fused::Recurrent(layer), g.node(fwd).ordinal);
    node.outputs = vec![g.info(ValueRef { node: c, port: 0 })];
    let f = g.add_node(node);
    g.connect(x, f, 0);
    g.replace_uses(ValueRef { node: c, port: 0 }, ValueRef { node: f, port: 0 });
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::ir::fused::{Cell, Fused, Recurrent};
    use crate::testing::*;
    use insta::assert_snapshot;

    fn gru(g: &mut TestGraph, name: &str, x: ValueRef) -> ValueRef {
        let shapes: [&[usize]; 4] = [&[6, 3], &[6, 2], &[6], &[6]];
        let layer = Recurrent {
            cell: Cell::Gru,
            last_only: false,
            batch_first: true,
            weights: vec![shapes.map(weights)],
            initial_state: false,
        };
        let y = g.fused(name, Fused::Recurrent(layer), &[x]);
        g.set_shape(y, &[2, 5, 2]);
        y
    }

    /// `concat([gru(x), reverse(gru(reverse(x)))], -1)`, as Keras writes Bidirectional(GRU).
    #[test]
    fn forward_and_reversed_layers_become_one() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 5, 3]);
        let time = g.constant("bi/time", int_tensor(&[1], &[1]));
        let fwd = gru(&mut g, "bi/forward_gru/gru", x);
        let rx = g.op("bi/backward_gru/reverse", "ReverseV2", &[x, time], &[]);
        let bwd = gru(&mut g, "bi/backward_gru/gru", rx);
        let back = g.op("bi/reverse", "ReverseV2", &[bwd, time], &[]);
        let axis = g.constant("bi/axis", int_tensor(&[], &[-1]));
        let y = g.op("bi/concat", "ConcatV2", &[fwd, back, axis], &[("N", int(2))]);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 2] =
            [crate::passes::fold_and_infer, super::fuse_bidirectional];
        assert_snapshot!(g.after_passes(&[y], &passes), @"
        inputs: x:0
        outputs: bi/gru:0
        x = Placeholder -> float32 [2, 5, 3]
        bi/gru = _GRU(x:0) {batch_first=true, bidirectional=true, last_only=false} -> float32 [2, 5, 4]
        ");
    }
}
