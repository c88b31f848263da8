//! Keras `Bidirectional(layer)`: two fused recurrent layers of one kind and size over the same
//! sequence, the second reading it reversed (`go_backwards`), their outputs concatenated
//! feature-wise (the backward sequence reversed back), become one layer with PyTorch's
//! `bidirectional=True`, whose output has exactly that layout. With `return_sequences=False`
//! Keras concatenates each direction's last output, which are PyTorch's two final states.
//!
//! Weights stay the fused layers' inputs: slots 1..=4 forward, 5..=8 reverse.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;

use super::fuse_rnn::{GRU, LSTM, RNN};

pub fn fuse_bidirectional(g: &mut Graph) -> Result<()> {
    let concats: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "ConcatV2").collect();
    for c in concats {
        if let Some((fwd, bwd, x, last_only)) = match_concat(g, c) {
            rewrite(g, c, fwd, bwd, x, last_only);
        }
    }
    Ok(())
}

fn flag(g: &Graph, n: NodeIndex, attr: &str) -> bool {
    g.node(n).attr_bool_or(attr, false).unwrap_or(false)
}

fn const_ints(g: &Graph, v: ValueRef) -> Option<Vec<i64>> {
    g.const_value(v).and_then(|t| t.to_i64())
}

/// `ReverseV2(x, [1])`: `x`.
fn reversed_in_time(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let i = g.inputs(v.node);
    (g.node(v.node).op == "ReverseV2" && const_ints(g, *i.get(1)?)? == [1]).then_some(i[0])
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

/// A fused layer's output 0 read by nothing but `reader`, starting from zeros (5 inputs).
fn sole_layer(g: &Graph, v: ValueRef) -> Option<NodeIndex> {
    let n = g.node(v.node);
    let single = g.use_count(v) == 1
        && (1..n.outputs.len()).all(|p| g.use_count(ValueRef { node: v.node, port: p }) == 0);
    (matches!(n.op.as_str(), LSTM | GRU | RNN)
        && v.port == 0
        && single
        && g.inputs(v.node).len() == 5
        && flag(g, v.node, "batch_first"))
    .then_some(v.node)
}

/// `(forward, backward, x, last_only)`.
fn match_concat(g: &Graph, c: NodeIndex) -> Option<(NodeIndex, NodeIndex, ValueRef, bool)> {
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
    let (fnode, bnode) = (g.node(fwd), g.node(bwd));
    let x = g.inputs(fwd)[0];
    let same = fnode.op == bnode.op
        && fnode.attrs == bnode.attrs
        && flag(g, fwd, "last_only") == last_only
        && (1..5).all(|k| {
            let (p, q) = (g.inputs(fwd)[k], g.inputs(bwd)[k]);
            let (p, q) = (g.const_value(p), g.const_value(q));
            p.is_some() && p.map(|t| &t.shape) == q.map(|t| &t.shape)
        });
    (same && reversed_in_time(g, g.inputs(bwd)[0]) == Some(x)).then_some((fwd, bwd, x, last_only))
}

fn rewrite(g: &mut Graph, c: NodeIndex, fwd: NodeIndex, bwd: NodeIndex, x: ValueRef, last: bool) {
    // Named after the Keras layer: `model/bi/forward_lstm/lstm` → `model/bi/lstm`.
    let fname = g.node(fwd).name.clone();
    let name: Vec<&str> = fname.split('/').filter(|c| !c.starts_with("forward_")).collect();
    let name = name.join("/");
    let mut node = Node::new(name, g.node(fwd).op.clone(), g.node(fwd).ordinal);
    node.attrs = g.node(fwd).attrs.clone();
    node.attrs.insert("bidirectional".into(), AttrValue { value: Some(Value::B(true)) });
    let info: ValueInfo = g.info(ValueRef { node: c, port: 0 });
    node.outputs = vec![info];
    let f = g.add_node(node);
    g.connect(x, f, 0);
    let weights: Vec<ValueRef> =
        g.inputs(fwd)[1..5].iter().chain(&g.inputs(bwd)[1..5]).copied().collect();
    for (k, w) in weights.into_iter().enumerate() {
        g.connect(w, f, 1 + k);
    }
    let _ = last;
    g.replace_uses(ValueRef { node: c, port: 0 }, ValueRef { node: f, port: 0 });
}
