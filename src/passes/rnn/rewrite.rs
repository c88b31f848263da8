//! The loop node replaced by the recurrent layer it computes.

use petgraph::stable_graph::NodeIndex;

use super::Match;
use crate::ir::fused::{Fused, Recurrent};
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::passes::pattern::{const_ints, is_op, is_zeros};
use crate::tensor::Tensor;

/// `Transpose(x, [1, 0, 2])`.
pub(super) fn is_time_swap(g: &Graph, v: ValueRef) -> bool {
    is_op(g, v, "Transpose")
        && g.inputs(v.node).get(1).and_then(|&p| const_ints(g, p)).is_some_and(|p| p == [1, 0, 2])
}

/// `ReverseV2(x, [0])`: the input of the time reversal.
pub(super) fn time_reversed(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let i = g.inputs(v.node);
    (is_op(g, v, "ReverseV2") && const_ints(g, *i.get(1)?)? == [0]).then_some(*i.first()?)
}

/// A zero initial state: `Fill(dims, 0)` or a constant of zeros.
pub(super) fn is_zero_state(g: &Graph, v: ValueRef) -> bool {
    is_zeros(g, v)
        || (is_op(g, v, "Fill") && g.inputs(v.node).get(1).is_some_and(|&x| is_zeros(g, x)))
}

/// `model/lstm/while` → `model/lstm/lstm`: named like the layer's own ops.
fn layer_name(g: &Graph, l: NodeIndex, kind: &str) -> String {
    let n = g.node(l);
    let mut layer = n.name.strip_suffix("/while").unwrap_or(&n.name);
    // Keras 2 runs the loop inside a function call: `lstm/PartitionedCall/while`.
    while let Some((scope, last)) = layer.rsplit_once('/')
        && last.contains("PartitionedCall")
    {
        layer = scope;
    }
    format!("{layer}/{kind}")
}

/// The layer's input: the tensor the input list was made from, batch-major if Keras transposed
/// it (then `true`). Keras' `go_backwards` reverses the time-major copy; reversing the
/// batch-major input along time instead lets the layer stay batch-first.
fn sequence(g: &mut Graph, seq: ValueRef, name: &str, ordinal: usize) -> (ValueRef, bool) {
    let mut seq = seq;
    let reversed = time_reversed(g, seq).filter(|&inner| is_time_swap(g, inner));
    if let Some(inner) = reversed {
        seq = inner;
    }
    let batch_first = is_time_swap(g, seq);
    if batch_first {
        seq = g.inputs(seq.node)[0];
    }
    if reversed.is_some() {
        seq = reverse_in_time(g, seq, 1, name, ordinal);
    }
    (seq, batch_first)
}

/// A new `ReverseV2(v, [axis])` named `NAME/reverse`: `v` reversed along its time axis.
pub(super) fn reverse_in_time(
    g: &mut Graph,
    v: ValueRef,
    axis: i32,
    name: &str,
    ordinal: usize,
) -> ValueRef {
    let axis = Tensor::from_i32(vec![1], &[axis]);
    let a = g.add_node(Node::constant(format!("{name}/reverse/axis"), axis, ordinal));
    let mut r = Node::new(format!("{name}/reverse"), "ReverseV2", ordinal);
    r.outputs = vec![g.info(v)];
    let r = g.add_node(r);
    g.connect(v, r, 0);
    g.connect(ValueRef { node: a, port: 0 }, r, 1);
    ValueRef { node: r, port: 0 }
}

/// A new `Transpose(v, [1, 0, 2])` named `NAME/time_major`: a sequence with its batch and
/// time axes swapped.
pub(super) fn swap_time(g: &mut Graph, v: ValueRef, name: &str, ordinal: usize) -> ValueRef {
    let perm = Tensor::from_i32(vec![3], &[1, 0, 2]);
    let p = g.add_node(Node::constant(format!("{name}/time_major/perm"), perm, ordinal));
    let mut t = Node::new(format!("{name}/time_major"), "Transpose", ordinal);
    let mut info = g.info(v);
    if let Some(s) = info.shape.as_mut().filter(|s| s.len() == 3) {
        s.swap(0, 1);
    }
    t.outputs = vec![info];
    let t = g.add_node(t);
    g.connect(v, t, 0);
    g.connect(ValueRef { node: p, port: 0 }, t, 1);
    ValueRef { node: t, port: 0 }
}

pub(super) fn rewrite(g: &mut Graph, l: NodeIndex, m: Match) {
    let outer = g.inputs(l);
    let ordinal = g.node(l).ordinal;
    let name = layer_name(g, l, m.cell.cell.kind());
    let states: Vec<ValueRef> = m.states.iter().map(|&s| outer[s]).collect();
    let layer = Layer { name, ordinal, seq: m.seq, mask: m.mask, last_only: m.last_only };
    let (f, stacked) = install(g, layer, m.cell, &states);
    let out_list = ValueRef { node: l, port: m.output_list };
    for (reader, _) in g.consumers(out_list) {
        if g.node(reader).op == "TensorListStack" {
            g.replace_uses(ValueRef { node: reader, port: 0 }, stacked);
        }
    }
    for (k, &state) in m.states.iter().enumerate() {
        g.replace_uses(ValueRef { node: l, port: state }, ValueRef { node: f, port: 1 + k });
    }
}

/// Where a recurrent layer goes and what it reads: its node's name and ordinal, the
/// time-major sequence, Keras' mask sequence, and whether Keras keeps only the last output.
pub(super) struct Layer {
    pub name: String,
    pub ordinal: usize,
    pub seq: ValueRef,
    pub mask: Option<ValueRef>,
    pub last_only: bool,
}

/// Adds the recurrent node of `cell` reading `layer`'s sequence, from `states` (inputs only
/// where they are not zeros). Returns the node (output `1 + k` is state `k`'s last value) and
/// its outputs time-major, as the steps' stack is.
pub(super) fn install(
    g: &mut Graph,
    layer: Layer,
    cell: super::cells::CellMatch,
    states: &[ValueRef],
) -> (NodeIndex, ValueRef) {
    let Layer { name, ordinal, seq, mask, last_only } = layer;
    let (seq, batch_first) = sequence(g, seq, &name, ordinal);
    let initial_state = !states.iter().all(|&s| is_zero_state(g, s));
    let layer = Recurrent {
        cell: cell.cell,
        last_only,
        batch_first,
        weights: vec![cell.weights],
        initial_state,
    };
    let units = layer.units();
    let seq_shape = g.info(seq).shape.filter(|s| s.len() == 3);
    let (t_axis, b_axis) = if batch_first { (1, 0) } else { (0, 1) };
    let dim = |a: usize| seq_shape.as_ref().and_then(|s| s[a]);
    let dtype = g.info(seq).dtype;
    let info = |shape: Vec<Option<usize>>| ValueInfo { dtype, shape: Some(shape) };
    let mut seq_out = vec![dim(t_axis), dim(b_axis), Some(units)];
    if last_only {
        seq_out[0] = Some(1);
    } else if batch_first {
        seq_out.swap(0, 1);
    }
    let mut node = Node::fused(name.clone(), Fused::Recurrent(layer), ordinal);
    node.outputs = vec![info(seq_out)];
    node.outputs.extend(states.iter().map(|_| info(vec![dim(b_axis), Some(units)])));
    let f = g.add_node(node);
    g.connect(seq, f, 0);
    let mut slot = 1;
    if let Some(mask) = mask {
        // Batch-major, and reversed in time as the sequence is (`go_backwards`).
        let (mask, _) = sequence(g, mask, &format!("{name}/mask"), ordinal);
        g.connect(mask, f, slot);
        slot += 1;
    }
    if initial_state {
        for &state in states {
            g.connect(state, f, slot);
            slot += 1;
        }
    }
    // Readers of the stacked outputs read output 0 (time-major again if need be).
    let mut stacked = ValueRef { node: f, port: 0 };
    if batch_first && !last_only {
        stacked = swap_time(g, stacked, &name, ordinal);
    }
    (f, stacked)
}
