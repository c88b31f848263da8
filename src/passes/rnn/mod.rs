//! Keras recurrent layers: a loop whose body is one step of a Keras `LSTM`, `GRU` or
//! `SimpleRNN` cell (Keras 3, Keras 2, or TF1's `dynamic_rnn` over its cells), run over every
//! time step of a `TensorList`, becomes one [`Fused::Recurrent`] node holding PyTorch-layout
//! weights, lowered to `nn.LSTM` / `nn.GRU` / `nn.RNN` or a small helper module.
//!
//! Nothing is assumed from Keras' documentation: the gate each slice of the fused kernel feeds
//! is read off the body's dataflow (which slice's sigmoid multiplies the old cell state, which is
//! squashed by tanh, ...), and the weights are permuted to PyTorch's gate order accordingly.
//! A loop that differs in any way (other activations, peepholes, ...) stays a loop.
//!
//! - `dataflow`: affine expressions (`x·K + h·R + b`) and column blocks of them;
//! - `cells`: one matcher per cell, each giving PyTorch-layout weights;
//! - `rewrite`: the loop node replaced by the recurrent layer;
//! - `unrolled`: the same cells traced step by step (`unroll=True`), as one layer.

mod cells;
mod dataflow;
mod rewrite;
mod unrolled;

use petgraph::stable_graph::NodeIndex;

use self::cells::CellMatch;
use super::pattern::{is_op, is_scalar, operands, producer};
use crate::error::Result;
use crate::ir::fused::LOOP;
use crate::ir::{Graph, ValueRef};
use crate::tensor::DType;

/// Fuses every recognised loop; returns whether any was (shapes after it may then be known).
pub fn fuse_rnn(g: &mut Graph) -> Result<bool> {
    let mut loops: Vec<(usize, NodeIndex)> =
        g.g.node_indices()
            .filter(|&n| g.node(n).op == LOOP)
            .map(|n| (g.node(n).ordinal, n))
            .collect();
    loops.sort();
    let mut fused = false;
    for (_, l) in loops {
        if let Some(m) = match_rnn(g, l) {
            // `match_rnn` checked that nothing reads the loop afterwards (`replaceable`), so
            // pruning removes it: the caller's repeat-while-fused loop ends.
            rewrite::rewrite(g, l, m);
            fused = true;
        }
    }
    Ok(unrolled::fuse_unrolled(g) | fused)
}

/// Whether the layer can take the loop's place: after the loop, only the stacked output list
/// and the recurrent states are read (a graph output naming the list itself, or a counter,
/// keeps the loop).
fn replaceable(g: &Graph, l: NodeIndex, output_list: usize, states: &[usize]) -> bool {
    (0..g.node(l).outputs.len()).all(|port| {
        let v = ValueRef { node: l, port };
        if states.contains(&port) {
            return true;
        }
        let stacked = port == output_list && !g.outputs.contains(&v);
        g.use_count(v) == 0
            || (stacked && g.consumers(v).iter().all(|&(c, _)| g.node(c).op == "TensorListStack"))
    })
}

struct Match {
    cell: CellMatch,
    /// The time-major sequence the loop reads step by step.
    seq: ValueRef,
    /// Loop-variable slots.
    output_list: usize,
    states: Vec<usize>,
    /// Keras keeps only the last output (`return_sequences=False`).
    last_only: bool,
    /// Keras masking: the time-major mask sequence.
    mask: Option<ValueRef>,
}

/// How a loop walks a sequence: the variables that are its time counter, input list and
/// output list, and the values the body reads and writes each step.
struct Walk {
    time: usize,
    input_list: usize,
    /// The tensor the input list was made from.
    seq: ValueRef,
    /// `x_t`, the step's element of the sequence.
    x_t: ValueRef,
    /// Keras masking: the mask sequence, and the step's element of it.
    mask: Option<(ValueRef, ValueRef)>,
    output_list: usize,
    /// What the step writes into the output list.
    y: ValueRef,
    last_only: bool,
}

/// Whether loop variable `slot` counts up from 0 by 1.
fn is_counter(g: &Graph, l: NodeIndex, body: &Graph, slot: usize) -> bool {
    g.const_value(g.inputs(l)[slot]).is_some_and(|t| t.to_i64() == Some(vec![0]))
        && operands(body, body.outputs[1 + slot], &["AddV2", "Add"], |a| a == body.inputs[slot])
            .is_some_and(|(_, one)| is_scalar(body, one, 1.0, 0.0))
}

fn walk(g: &Graph, l: NodeIndex, body: &Graph) -> Option<Walk> {
    let vars = body.outputs.len() - 1;
    let outer = g.inputs(l);
    let var = |slot: usize| body.inputs[slot];
    let slot_of = |v: ValueRef| body.inputs[..vars].iter().position(|&p| p == v);
    let next = |slot: usize| body.outputs[1 + slot];
    // x_t = TensorListGetItem(input list, time): the one read of the sequence, and with Keras
    // masking a second one of the (boolean) mask. (TF 1.x's own loops read TensorArrayV3s
    // instead; those loops are not fused.)
    let reads: Vec<NodeIndex> =
        body.g.node_indices().filter(|&n| body.node(n).op == "TensorListGetItem").collect();
    let is_mask = |n: NodeIndex| body.node(n).attr_type("element_dtype").ok() == Some(DType::Bool);
    let (read, mask_read) = match reads.as_slice() {
        [r] => (*r, None),
        [a, b] if is_mask(*b) && !is_mask(*a) => (*a, Some(*b)),
        [a, b] if is_mask(*a) && !is_mask(*b) => (*b, Some(*a)),
        _ => return None,
    };
    let time = slot_of(*body.inputs(read).get(1)?)?;
    if !is_counter(g, l, body, time) {
        return None;
    }
    // A list the loop reads at `time` and passes on: the tensor it was made from.
    let sequence = |read: NodeIndex| -> Option<(usize, ValueRef)> {
        let ri = body.inputs(read);
        let list = slot_of(*ri.first()?)?;
        if ri.get(1) != Some(&var(time))
            || next(list) != var(list)
            || !is_op(g, outer[list], "TensorListFromTensor")
        {
            return None;
        }
        Some((list, *g.inputs(outer[list].node).first()?))
    };
    let (input_list, seq) = sequence(read)?;
    let mask = match mask_read {
        Some(m) => Some((sequence(m)?.1, ValueRef { node: m, port: 0 })),
        None => None,
    };
    // The output list: next = TensorListSetItem(list, time | 0, y).
    let mut output = None;
    for slot in 0..vars {
        let n = next(slot);
        if is_op(body, n, "TensorListSetItem") {
            let i = body.inputs(n.node);
            let [list, index, y] = i.as_slice() else { return None };
            if *list != var(slot) || output.is_some() {
                return None;
            }
            let last_only = if *index == var(time) {
                false
            } else if is_scalar(body, *index, 0.0, 0.0) {
                true
            } else {
                return None;
            };
            output = Some((slot, *y, last_only));
        }
    }
    let (output_list, y, last_only) = output?;
    // A fresh list (its stack is then exactly what the loop wrote).
    if !is_op(g, outer[output_list], "TensorListReserve") {
        return None;
    }
    let x_t = ValueRef { node: read, port: 0 };
    Some(Walk { time, input_list, seq, x_t, mask, output_list, y, last_only })
}

fn match_rnn(g: &Graph, l: NodeIndex) -> Option<Match> {
    let body = g.node(l).loop_body()?;
    let vars = body.outputs.len() - 1;
    let var = |slot: usize| body.inputs[slot];
    let next = |slot: usize| body.outputs[1 + slot];
    let w = walk(g, l, body)?;
    // The condition: conjunction of `counter < bound`, every bound the sequence length.
    let steps = g.info(w.seq).shape.and_then(|s| s.first().copied()).flatten();
    if !cond_runs_over_sequence(g, l, body, w.time, steps) {
        return None;
    }
    // Everything else is a counter, a pass-through, or a recurrent state.
    let states: Vec<usize> = (0..vars)
        .filter(|&s| s != w.input_list && s != w.output_list && s != w.time)
        .filter(|&s| next(s) != var(s) && !is_counter(g, l, body, s))
        .collect();
    let found = |cell, states: Vec<usize>| {
        replaceable(g, l, w.output_list, &states).then(|| Match {
            cell,
            seq: w.seq,
            output_list: w.output_list,
            states,
            last_only: w.last_only,
            mask: w.mask.map(|m| m.0),
        })
    };
    if let Some((mask_seq, mask_t)) = w.mask {
        // Both batch-major before Keras made them time-major (the helper class is batch
        // first), both reversed in time or neither (`go_backwards`).
        let batch_major = |v: ValueRef| {
            let reversed = rewrite::time_reversed(g, v);
            rewrite::is_time_swap(g, reversed.unwrap_or(v)).then_some(reversed.is_some())
        };
        match (batch_major(w.seq), batch_major(mask_seq)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
        let step = cells::MaskedStep { g, l, body, x_t: w.x_t, mask_t, states: &states, y: w.y };
        let (cell, states) = cells::masked_lstm(&step).or_else(|| cells::masked_gru(&step))?;
        return found(cell, states);
    }
    match *states.as_slice() {
        [s] => {
            let (h, h_next) = (var(s), next(s));
            let cell = cells::gru_cell(body, w.x_t, h, h_next)
                .or_else(|| cells::gru_reset_before_cell(body, w.x_t, h, h_next))
                .or_else(|| cells::tf1_gru_cell(body, w.x_t, h, h_next))
                .or_else(|| cells::simple_cell(body, w.x_t, h, h_next))?;
            (h_next == w.y).then(|| found(cell, vec![s])).flatten()
        }
        [a, b] => {
            // h is the state the output is; c the other.
            let (h, c) = if next(a) == w.y { (a, b) } else { (b, a) };
            let cell = cells::lstm_cell(body, w.x_t, var(h), var(c), next(h), next(c))?;
            (next(h) == w.y).then(|| found(cell, vec![h, c])).flatten()
        }
        _ => None,
    }
}

/// The loop runs while counters are below bounds, the time counter among them, and every bound
/// is the sequence length: equal to it when it is static, a run-time value when it is not.
fn cond_runs_over_sequence(
    g: &Graph,
    l: NodeIndex,
    body: &Graph,
    time: usize,
    t: Option<usize>,
) -> bool {
    let outer = g.inputs(l);
    let vars = body.outputs.len() - 1;
    let bound_ok = |b: ValueRef| {
        let value = match body.inputs[..vars].iter().position(|&p| p == b) {
            Some(k) if body.outputs[1 + k] == b => g.const_value(outer[k]),
            Some(_) => return false,
            None => body.const_value(b),
        };
        match (value.and_then(|v| v.to_i64()), t) {
            (Some(v), Some(t)) => v == [t as i64],
            (None, None) => true,
            _ => false,
        }
    };
    let mut stack = vec![body.outputs[0]];
    let mut time_bounded = false;
    while let Some(v) = stack.pop() {
        match producer(body, v).op.as_str() {
            "LogicalAnd" => stack.extend(body.inputs(v.node)),
            "Less" => {
                let i = body.inputs(v.node);
                let [counter, bound] = i.as_slice() else { return false };
                if !bound_ok(*bound) {
                    return false;
                }
                time_bounded |= *counter == body.inputs[time];
            }
            _ => return false,
        }
    }
    time_bounded
}

#[cfg(test)]
mod tests {
    use crate::ir::Graph;
    use crate::ir::fused::Fused;
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// One step of `SimpleRNN(2)` over `[B, 5, 3]`, as Keras 3 writes the loop body: read
    /// `x_t`, `h' = tanh(x_t·K + h·R + b)`, write `h'` at `time`.
    fn simple_rnn_body() -> Graph {
        let mut b = TestGraph::new();
        let time = b.typed_input("time", &[], DType::I32);
        let inputs = b.typed_input("inputs", &[], DType::Variant);
        let outputs = b.typed_input("outputs", &[], DType::Variant);
        let h = b.input("h", &[-1, 2]);
        let shape = b.constant("element_shape", int_tensor(&[2], &[-1, 3]));
        let dtype =
            crate::proto::AttrValue { value: Some(crate::proto::attr_value::Value::Type(1)) };
        let x_t =
            b.op("read", "TensorListGetItem", &[inputs, time, shape], &[("element_dtype", dtype)]);
        let k = b.constant("kernel", weights(&[3, 2]));
        let r = b.constant("recurrent_kernel", weights(&[2, 2]));
        let bias = b.constant("bias", weights(&[2]));
        let xk = b.op("MatMul", "MatMul", &[x_t, k], &[]);
        let hr = b.op("MatMul_1", "MatMul", &[h, r], &[]);
        let sum = b.op("add", "AddV2", &[xk, hr], &[]);
        let pre = b.op("BiasAdd", "BiasAdd", &[sum, bias], &[]);
        let h1 = b.op("Tanh", "Tanh", &[pre], &[]);
        let write = b.op("write", "TensorListSetItem", &[outputs, time, h1], &[]);
        let one = b.constant("one", int_tensor(&[], &[1]));
        let time1 = b.op("time_next", "AddV2", &[time, one], &[]);
        let steps = b.constant("steps", int_tensor(&[], &[5]));
        let cond = b.op("Less", "Less", &[time, steps], &[]);
        b.build(&[cond, time1, inputs, write, h1])
    }

    #[test]
    fn a_simple_rnn_loop_is_one_recurrent_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 3]);
        let perm = g.constant("rnn/perm", int_tensor(&[3], &[1, 0, 2]));
        let time_major = g.op("rnn/transpose", "Transpose", &[x, perm], &[]);
        let shape = g.constant("rnn/element_shape", int_tensor(&[2], &[-1, 3]));
        let list = g.op("rnn/inputs", "TensorListFromTensor", &[time_major, shape], &[]);
        let n = g.constant("rnn/n", int_tensor(&[], &[5]));
        let out_shape = g.constant("rnn/out_shape", int_tensor(&[2], &[-1, 2]));
        let reserve = g.op("rnn/outputs", "TensorListReserve", &[out_shape, n], &[]);
        let zero = g.constant("rnn/zero", int_tensor(&[], &[0]));
        let h0 = g.constant("rnn/h0", Tensor::from_f32(vec![1, 2], &[0.0, 0.0]));
        let body = Fused::Loop(Box::new(simple_rnn_body()));
        let l = g.fused("rnn/while", body, &[zero, list, reserve, h0]);
        let dtype =
            crate::proto::AttrValue { value: Some(crate::proto::attr_value::Value::Type(1)) };
        let stack = g.op(
            "rnn/stack",
            "TensorListStack",
            &[TestGraph::port(l, 2), out_shape],
            &[("element_dtype", dtype)],
        );
        let y = g.op("rnn/transpose_1", "Transpose", &[stack, perm], &[]);
        let passes: [fn(&mut Graph) -> crate::error::Result<()>; 4] = [
            crate::passes::fold_and_infer,
            |g| super::fuse_rnn(g).map(|_| ()),
            crate::passes::fold_and_infer,
            crate::passes::simplify,
        ];
        assert_snapshot!(g.after_passes(&[y], &passes), @"
        inputs: x:0
        outputs: rnn/rnn:0
        x = Placeholder -> float32 [?, 5, 3]
        rnn/rnn = _RNN(x:0) {batch_first=true, last_only=false} -> float32 [?, 5, 2], float32 [?, 2]
        ");
    }
}
