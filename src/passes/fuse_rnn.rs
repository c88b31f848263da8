//! Keras recurrent layers: a `_Loop` whose body is one step of a Keras `LSTM`, `GRU`
//! (`reset_after=True`) or `SimpleRNN` cell, run over every time step of a `TensorList`, becomes
//! one `_LSTM` / `_GRU` / `_RNN` node holding PyTorch-layout weights, lowered to `nn.LSTM` /
//! `nn.GRU` / `nn.RNN`.
//!
//! Nothing is assumed from Keras' documentation: the gate each slice of the fused kernel feeds
//! is read off the body's dataflow (which slice's sigmoid multiplies the old cell state, which is
//! squashed by tanh, ...), and the weights are permuted to PyTorch's gate order accordingly.
//! A loop that differs in any way (masking, other activations, peepholes, `reset_after=False`)
//! stays a `_Loop`.
//!
//! The fused node's inputs are `[x, weight_ih, weight_hh, bias_ih, bias_hh]`, then the initial
//! `h` (and `c`) unless they are zeros; `x` is time-major (`[T, B, I]`) unless the `batch_first`
//! attribute is set. Its outputs are what the loop's `Exit`s fed: 0 = the stacked outputs
//! (`[T, B, H]`, batch-major if `batch_first`, or `[1, B, H]` when Keras keeps only the last),
//! 1 = the final `h`, 2 = the final `c` (LSTM).

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, Node, ValueRef};

use crate::proto::AttrValue;
use crate::proto::attr_value::Value;
use crate::tensor::{DType, Tensor};

use super::loops::LOOP;

pub const LSTM: &str = "_LSTM";
pub const GRU: &str = "_GRU";
pub const RNN: &str = "_RNN";
/// Keras' masked `LSTM`: lowered to a small module class of our own.
pub const MASKED_LSTM: &str = "_MaskedLSTM";
/// Keras' `GRU(reset_after=False)`: lowered to a small module class of our own.
pub const GRU_RESET_BEFORE: &str = "_GRUResetBefore";

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
            rewrite(g, l, m);
            fused = true;
        }
    }
    Ok(fused)
}

/// The gates of one recurrent cell, as `[rows of the fused kernel]` per PyTorch gate.
struct Cell {
    op: &'static str,
    /// PyTorch-layout `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
    weights: [Tensor; 4],
    nonlinearity: Option<&'static str>,
}

struct Match {
    cell: Cell,
    /// The time-major sequence the loop reads step by step.
    seq: ValueRef,
    /// Loop-variable slots.
    output_list: usize,
    states: Vec<usize>,
    /// Keras keeps only the last output (`return_sequences=False`).
    last_only: bool,
    /// Keras masking: the time-major mask sequence, and whether masked steps output zeros.
    mask: Option<(ValueRef, bool)>,
}

/// Output `port` of `n` in the body, looking through nothing.
fn producer(body: &Graph, v: ValueRef) -> &Node {
    body.node(v.node)
}

fn op_is(body: &Graph, v: ValueRef, op: &str) -> bool {
    producer(body, v).op == op
}

fn scalar_is(body: &Graph, v: ValueRef, x: f64) -> bool {
    body.const_value(v).is_some_and(|t| t.numel() == 1 && t.to_f64().is_some_and(|f| f[0] == x))
}

/// The two operands of a binary op, in either order, as `(a, b)` with `first(a)` true.
fn operands(
    body: &Graph,
    v: ValueRef,
    ops: &[&str],
    first: impl Fn(ValueRef) -> bool,
) -> Option<(ValueRef, ValueRef)> {
    if !ops.contains(&producer(body, v).op.as_str()) || v.port != 0 {
        return None;
    }
    let i = body.inputs(v.node);
    let [a, b] = i.as_slice() else { return None };
    if first(*a) {
        Some((*a, *b))
    } else if first(*b) {
        Some((*b, *a))
    } else {
        None
    }
}

fn unary(body: &Graph, v: ValueRef, op: &str) -> Option<ValueRef> {
    (op_is(body, v, op) && v.port == 0).then(|| body.inputs(v.node).first().copied()).flatten()
}

/// A sum of `MatMul(input, const)` terms and constant vectors, as `{input: kernel}` and the
/// summed bias. Sums are `AddV2`/`Add`/`BiasAdd` in any association.
/// `{input: kernel}` and the summed bias of an affine expression.
type Affine = (BTreeMap<ValueRef, Tensor>, Option<Vec<f32>>);

fn affine(body: &Graph, v: ValueRef) -> Option<Affine> {
    let mut terms = BTreeMap::new();
    let mut bias: Option<Vec<f32>> = None;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        let node = producer(body, v);
        if let Some(t) = const_eval(body, v) {
            let b = t.to_f32().filter(|_| t.rank() == 1)?;
            bias = Some(match bias {
                None => b,
                Some(a) if a.len() == b.len() => a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                Some(_) => return None,
            });
            continue;
        }
        match node.op.as_str() {
            "AddV2" | "Add" | "BiasAdd" if v.port == 0 => {
                if node.op == "BiasAdd" && node.attr_str_or("data_format", "NHWC").ok()? != "NHWC" {
                    return None;
                }
                stack.extend(body.inputs(v.node));
            }
            "MatMul" if v.port == 0 => {
                let ta = node.attr_bool_or("transpose_a", false).ok()?;
                let tb = node.attr_bool_or("transpose_b", false).ok()?;
                let i = body.inputs(v.node);
                let [x, w] = i.as_slice() else { return None };
                let w = body.const_value(*w)?;
                if ta || w.rank() != 2 {
                    return None;
                }
                let w = if tb { w.permute(&[1, 0]) } else { w.clone() };
                // TF1 cells multiply `concat([x, h], 1)`: each part by its rows of the kernel.
                // (One part's width may be unknown: the kernel's remaining rows.)
                let parts = concat_parts(body, *x).unwrap_or_else(|| vec![(*x, None)]);
                let known: usize = parts.iter().filter_map(|p| p.1).sum();
                let rest = w.shape[0].checked_sub(known)?;
                let mut start = 0;
                for (part, rows) in parts {
                    let rows = rows.unwrap_or(rest);
                    if terms.contains_key(&part) {
                        return None;
                    }
                    terms.insert(part, w.slice_axis(0, start, rows)?);
                    start += rows;
                }
                if start != w.shape[0] {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some((terms, bias))
}

/// A constant, or a row of one picked out by `Squeeze(Split(0, const))` (how Keras' GRU
/// separates its input and recurrent biases).
fn const_eval(body: &Graph, v: ValueRef) -> Option<Tensor> {
    if let Some(t) = body.const_value(v) {
        return Some(t.clone());
    }
    let x = unary(body, v, "Squeeze")?;
    let split = producer(body, x);
    if split.op != "Split" {
        return None;
    }
    let i = body.inputs(x.node);
    let [axis, src] = i.as_slice() else { return None };
    let t = body.const_value(*src)?;
    let parts = usize::try_from(split.attr_int("num_split").ok()?).ok()?;
    let axis = body.const_value(*axis)?.to_i64()?;
    if axis != [0] || t.rank() != 2 || t.shape[0] != parts {
        return None;
    }
    let cols = t.shape[1];
    let row = t.to_f32()?[x.port * cols..(x.port + 1) * cols].to_vec();
    Some(Tensor::from_f32(vec![cols], &row))
}

/// `ConcatV2(a, b, .., axis=-1)` of rank-2 values: `[(part, width)]`, at most one width
/// unknown.
fn concat_parts(body: &Graph, v: ValueRef) -> Option<Vec<(ValueRef, Option<usize>)>> {
    if !op_is(body, v, "ConcatV2") || v.port != 0 {
        return None;
    }
    let i = body.inputs(v.node);
    let (axis, parts) = i.split_last()?;
    if !matches!(body.const_value(*axis)?.to_i64()?.as_slice(), [1] | [-1]) {
        return None;
    }
    let widths: Vec<Option<usize>> = parts
        .iter()
        .map(|&p| body.info(p).shape.filter(|s| s.len() == 2).and_then(|s| s[1]))
        .collect();
    (widths.iter().filter(|w| w.is_none()).count() <= 1)
        .then(|| parts.iter().copied().zip(widths).collect())
}

/// `Split(axis, v)` along the last axis of a rank-2 value into `n` parts: the split input.
fn split_of(body: &Graph, parts: &[ValueRef], n: usize) -> Option<ValueRef> {
    let node = parts.first()?.node;
    if parts.iter().any(|p| p.node != node) || body.node(node).op != "Split" {
        return None;
    }
    if body.node(node).attr_int("num_split").ok()? != n as i64 {
        return None;
    }
    let i = body.inputs(node);
    let [axis, x] = i.as_slice() else { return None };
    let axis = body.const_value(*axis)?.to_i64()?;
    matches!(axis.as_slice(), [1] | [-1]).then_some(*x)
}

/// Columns `[lo, hi)` a `StridedSlice` takes from a rank-2 value (all rows): `(input, lo, hi)`.
fn column_slice(body: &Graph, v: ValueRef, width: usize) -> Option<(ValueRef, usize, usize)> {
    let node = producer(body, v);
    if node.op != "StridedSlice" || v.port != 0 {
        return None;
    }
    for m in ["ellipsis_mask", "new_axis_mask", "shrink_axis_mask"] {
        if node.attr_int_or(m, 0).ok()? != 0 {
            return None;
        }
    }
    let (bm, em) = (node.attr_int_or("begin_mask", 0).ok()?, node.attr_int_or("end_mask", 0).ok()?);
    let i = body.inputs(v.node);
    let [x, b, e, s] = i.as_slice() else { return None };
    let ints = |v: &ValueRef| body.const_value(*v).and_then(|t| t.to_i64());
    let (b, e, s) = (ints(b)?, ints(e)?, ints(s)?);
    if b.len() != 2 || e.len() != 2 || s != [1, 1] {
        return None;
    }
    let rows_full = (bm & 1 != 0 || b[0] == 0) && em & 1 != 0;
    let norm = |x: i64| if x < 0 { x + width as i64 } else { x };
    let lo = if bm & 2 != 0 { 0 } else { norm(b[1]) };
    let hi = if em & 2 != 0 { width as i64 } else { norm(e[1]).min(width as i64) };
    (rows_full && 0 <= lo && lo < hi).then_some((*x, lo as usize, hi as usize))
}

fn match_rnn(g: &Graph, l: NodeIndex) -> Option<Match> {
    let body = g.node(l).body.as_deref()?;
    let vars = body.outputs.len() - 1;
    let outer = g.inputs(l);
    let var = |slot: usize| body.inputs[slot];
    let slot_of = |v: ValueRef| body.inputs[..vars].iter().position(|&p| p == v);
    let next = |slot: usize| body.outputs[1 + slot];
    let counter = |slot: usize| {
        g.const_value(outer[slot]).is_some_and(|t| t.to_i64() == Some(vec![0]))
            && operands(body, next(slot), &["AddV2", "Add"], |a| a == var(slot))
                .is_some_and(|(_, one)| scalar_is(body, one, 1.0))
    };

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
    let ri = body.inputs(read);
    let time = slot_of(*ri.get(1)?)?;
    if !counter(time) {
        return None;
    }
    let x_t = ValueRef { node: read, port: 0 };
    // A list the loop reads at `time` and passes on: the tensor it was made from.
    let sequence = |read: NodeIndex| -> Option<(usize, ValueRef)> {
        let ri = body.inputs(read);
        let list = slot_of(*ri.first()?)?;
        if ri.get(1) != Some(&var(time))
            || next(list) != var(list)
            || !op_is(g, outer[list], "TensorListFromTensor")
        {
            return None;
        }
        Some((list, *g.inputs(outer[list].node).first()?))
    };
    let (input_list, seq) = sequence(read)?;
    let mask_list = match mask_read {
        Some(m) => Some((sequence(m)?, ValueRef { node: m, port: 0 })),
        None => None,
    };

    // The output list: next = TensorListSetItem(list, time | 0, y).
    let mut output = None;
    for slot in 0..vars {
        let n = next(slot);
        if op_is(body, n, "TensorListSetItem") {
            let i = body.inputs(n.node);
            let [list, index, y] = i.as_slice() else { return None };
            if *list != var(slot) || output.is_some() {
                return None;
            }
            let last_only = if *index == var(time) {
                false
            } else if scalar_is(body, *index, 0.0) {
                true
            } else {
                return None;
            };
            output = Some((slot, *y, last_only));
        }
    }
    let (output_list, y, last_only) = output?;
    // A fresh list (its stack is then exactly what the loop wrote).
    if !op_is(g, outer[output_list], "TensorListReserve") {
        return None;
    }

    // The condition: conjunction of `counter < bound` (bounds checked against T below).
    let steps = g.info(seq).shape.and_then(|s| s.first().copied()).flatten();
    if !cond_runs_over_sequence(g, l, body, time, steps) {
        return None;
    }

    // Everything else is a counter, a pass-through, or a recurrent state.
    let states: Vec<usize> = (0..vars)
        .filter(|&s| s != input_list && s != output_list && s != time)
        .filter(|&s| next(s) != var(s) && !counter(s))
        .collect();
    if let Some(((_, mask_seq), mask_t)) = mask_list {
        // Both batch-major before Keras made them time-major (the helper class is batch first).
        if !is_time_swap(g, seq) || !is_time_swap(g, mask_seq) {
            return None;
        }
        return masked_lstm(g, l, body, x_t, mask_t, &states, y).map(|(cell, states, zero)| {
            Match { cell, seq, output_list, states, last_only, mask: Some((mask_seq, zero)) }
        });
    }
    let cell = match states.len() {
        1 => {
            let h = var(states[0]);
            gru_cell(body, x_t, h, next(states[0]))
                .or_else(|| gru_reset_before_cell(body, x_t, h, next(states[0])))
                .or_else(|| tf1_gru_cell(body, x_t, h, next(states[0])))
                .or_else(|| simple_cell(body, x_t, h, next(states[0])))?
        }
        2 => {
            let (a, b) = (states[0], states[1]);
            // h is the state the output is; c the other.
            let (h, c) = if next(a) == y { (a, b) } else { (b, a) };
            let cell = lstm_cell(body, x_t, var(h), var(c), next(h), next(c))?;
            let states = vec![h, c];
            return (next(h) == y).then_some(Match {
                cell,
                seq,
                output_list,
                states,
                last_only,
                mask: None,
            });
        }
        _ => return None,
    };
    (next(states[0]) == y).then_some(Match {
        cell,
        seq,
        output_list,
        states,
        last_only,
        mask: None,
    })
}

/// A Keras LSTM step under a mask: each state's next value is `where(mask_t, new, old)` and
/// the output `where(mask_t, h_new, previous output | zeros)`. Returns the cell, the `[h, c]`
/// slots and whether masked steps output zeros.
fn masked_lstm(
    g: &Graph,
    l: NodeIndex,
    body: &Graph,
    x_t: ValueRef,
    mask_t: ValueRef,
    states: &[usize],
    y: ValueRef,
) -> Option<(Cell, Vec<usize>, bool)> {
    let outer = g.inputs(l);
    let vars = body.outputs.len() - 1;
    let next = |slot: usize| body.outputs[1 + slot];
    // `where(mask_t, then, else)`, the mask possibly tiled to the state's width.
    let select = |v: ValueRef| -> Option<(ValueRef, ValueRef)> {
        let n = producer(body, v);
        let i = body.inputs(v.node);
        let [cond, then, other] = i.as_slice() else { return None };
        let cond =
            if op_is(body, *cond, "Tile") { *body.inputs(cond.node).first()? } else { *cond };
        (matches!(n.op.as_str(), "Select" | "SelectV2") && cond == mask_t)
            .then_some((*then, *other))
    };
    let [a, b, o] = states else { return None };
    // The output state is the one written; its next value is the masked new `h`.
    let (out, rest) = [(*a, [*b, *o]), (*b, [*a, *o]), (*o, [*a, *b])]
        .into_iter()
        .find(|(s, _)| next(*s) == y)?;
    let (h_new, previous) = select(next(out))?;
    let zeros_outside = |v: ValueRef| {
        let k = body.inputs.iter().position(|&p| p == v)?;
        (k >= vars || body.outputs[1 + k] == v).then(|| outer[k])
    };
    let zero = |v: ValueRef| {
        body.const_value(v).is_some_and(|t| t.to_f64().is_some_and(|x| x.iter().all(|&x| x == 0.0)))
            || zeros_outside(v).is_some_and(|o| g.node(o.node).op == "ZerosLike")
    };
    let zero_output = if previous == body.inputs[out] {
        false
    } else if zero(previous) {
        true
    } else {
        return None;
    };
    // The previous output starts at zeros and is not read after the loop.
    if g.node(outer[out].node).op != "ZerosLike" || g.use_count(ValueRef { node: l, port: out }) > 0
    {
        return None;
    }
    let (h, c) = match (select(next(rest[0]))?, select(next(rest[1]))?) {
        ((t, _), _) if t == h_new => (rest[0], rest[1]),
        (_, (t, _)) if t == h_new => (rest[1], rest[0]),
        _ => return None,
    };
    let (h_then, h_old) = select(next(h))?;
    let (c_new, c_old) = select(next(c))?;
    if h_then != h_new || h_old != body.inputs[h] || c_old != body.inputs[c] {
        return None;
    }
    let cell = lstm_cell(body, x_t, body.inputs[h], body.inputs[c], h_new, c_new)?;
    Some((Cell { op: MASKED_LSTM, ..cell }, vec![h, c], zero_output))
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

/// Concatenates column blocks `[b*n, (b+1)*n)` of a `[rows, k*n]` matrix in `order`, transposed
/// to `[len(order)*n, rows]` (PyTorch's `weight_*` layout).
fn gate_rows(w: &Tensor, n: usize, order: &[usize]) -> Option<Tensor> {
    let rows = *w.shape.first()?;
    let cols = *w.shape.get(1)?;
    let v = w.to_f32()?;
    let mut out = Vec::with_capacity(order.len() * n * rows);
    for &b in order {
        for j in b * n..(b + 1) * n {
            if j >= cols {
                return None;
            }
            out.extend((0..rows).map(|r| v[r * cols + j]));
        }
    }
    Some(Tensor::from_f32(vec![order.len() * n, rows], &out))
}

fn gate_bias(b: Option<&[f32]>, n: usize, order: &[usize], width: usize) -> Tensor {
    let zeros = vec![0.0; width];
    let b = b.unwrap_or(&zeros);
    let v: Vec<f32> = order.iter().flat_map(|&k| b[k * n..(k + 1) * n].iter().copied()).collect();
    Tensor::from_f32(vec![v.len()], &v)
}

/// The weights of a `torch.nn` recurrent layer from Keras kernels `[in, k·units]` and
/// `[units, k·units]`, their gate blocks taken in PyTorch's order (`orders`), and biases (zeros
/// where Keras has none).
fn torch_layer_cell(
    op: &'static str,
    [kx, kh]: [&Tensor; 2],
    units: usize,
    [x_order, h_order]: [&[usize]; 2],
    [b_ih, b_hh]: [Option<&[f32]>; 2],
) -> Option<Cell> {
    let width = x_order.len() * units;
    Some(Cell {
        op,
        weights: [
            gate_rows(kx, units, x_order)?,
            gate_rows(kh, units, h_order)?,
            gate_bias(b_ih, units, x_order, width),
            gate_bias(b_hh, units, h_order, width),
        ],
        nonlinearity: None,
    })
}

/// Kernel `[in, k*units]` from input `x` and recurrent kernel `[units, k*units]` from `h`.
fn kernels(
    terms: &BTreeMap<ValueRef, Tensor>,
    x: ValueRef,
    h: ValueRef,
    k: usize,
) -> Option<(Tensor, Tensor, usize)> {
    let (kx, kh) = (terms.get(&x)?, terms.get(&h)?);
    let width = *kh.shape.get(1)?;
    let units = width / k;
    (terms.len() == 2 && width % k == 0 && kh.shape == [units, width] && kx.shape[1] == width)
        .then(|| (kx.clone(), kh.clone(), units))
}

/// `h' = σ(z_o)·tanh(c')`, `c' = σ(z_f)·c + σ(z_i)·tanh(z_g)`, `z = split₄(x·K + h·R + b)`.
fn lstm_cell(
    body: &Graph,
    x: ValueRef,
    h: ValueRef,
    c: ValueRef,
    h_next: ValueRef,
    c_next: ValueRef,
) -> Option<Cell> {
    let gate = |v: ValueRef| unary(body, v, "Sigmoid");
    // A gate's pre-activation, with the constant TF1 adds to one (`forget_bias`).
    let shifted = |v: ValueRef| -> Option<(ValueRef, f32)> {
        match operands(body, v, &["AddV2", "Add"], |a| op_is(body, a, "Split")) {
            Some((split, c)) => {
                let t = body.const_value(c).filter(|t| t.numel() == 1)?;
                Some((split, t.to_f32()?[0]))
            }
            None => Some((v, 0.0)),
        }
    };
    let (o, tanh_c) = operands(body, h_next, &["Mul"], |a| gate(a).is_some())?;
    if unary(body, tanh_c, "Tanh")? != c_next {
        return None;
    }
    let (keep, write) = operands(body, c_next, &["AddV2", "Add"], |a| {
        operands(body, a, &["Mul"], |m| m == c).is_some()
    })?;
    let (_, f) = operands(body, keep, &["Mul"], |m| m == c)?;
    let (i, g) = operands(body, write, &["Mul"], |a| gate(a).is_some())?;
    let shifts = [
        shifted(gate(i)?)?,
        shifted(gate(f)?)?,
        (unary(body, g, "Tanh")?, 0.0),
        shifted(gate(o)?)?,
    ];
    let parts: Vec<ValueRef> = shifts.iter().map(|s| s.0).collect();
    let z = split_of(body, &parts, 4)?;
    let order: Vec<usize> = parts.iter().map(|p| p.port).collect();
    if (0..4).any(|k| !order.contains(&k)) {
        return None;
    }
    let (terms, bias) = affine(body, z)?;
    let width = terms.values().next()?.shape.get(1).copied()?;
    let mut bias = bias.unwrap_or_else(|| vec![0.0; width]);
    if bias.len() != width || width % 4 != 0 {
        return None;
    }
    for (&(_, shift), &k) in shifts.iter().zip(&order) {
        let n = width / 4;
        bias[k * n..(k + 1) * n].iter_mut().for_each(|b| *b += shift);
    }
    let (kx, kh, units) = kernels(&terms, x, h, 4)?;
    torch_layer_cell(LSTM, [&kx, &kh], units, [&order, &order], [Some(&bias), None])
}

/// Every GRU's last step, `h' = z·h + (1−z)·n`: `(z, n)`.
fn gru_update(body: &Graph, h: ValueRef, h_next: ValueRef) -> Option<(ValueRef, ValueRef)> {
    let (keep, write) = operands(body, h_next, &["AddV2", "Add"], |a| {
        operands(body, a, &["Mul"], |m| m == h).is_some()
    })?;
    let (_, z) = operands(body, keep, &["Mul"], |m| m == h)?;
    let (one_minus_z, cand) = operands(body, write, &["Mul"], |a| op_is(body, a, "Sub"))?;
    let oz = body.inputs(one_minus_z.node);
    (oz.len() == 2 && scalar_is(body, oz[0], 1.0) && oz[1] == z).then_some((z, cand))
}

/// Keras GRU with `reset_after=True` (PyTorch's formulation):
/// `h' = z·h + (1−z)·n`, `n = tanh(x_n + r·(h·R_n + b_hn))`, `z, r = σ(x_* + h·R_* + b_h*)`.
/// Each gate's x-part and h-part is a third of `x·K + b_x` or `h·R + b_h`, taken by `Split`
/// (Keras 2) or a column slice (Keras 3).
fn gru_cell(body: &Graph, x: ValueRef, h: ValueRef, h_next: ValueRef) -> Option<Cell> {
    let gate = |v: ValueRef| unary(body, v, "Sigmoid");
    let (z, cand) = gru_update(body, h, h_next)?;
    // A gate pre-activation: (x block, h block), told apart by what their sums multiply.
    let reads =
        |b: Block, v: ValueRef| affine(body, b.src).is_some_and(|(t, _)| t.contains_key(&v));
    let pre = |v: ValueRef| -> Option<(Block, Block)> {
        let i = body.inputs(v.node);
        let [a, b] = i.as_slice() else { return None };
        if !matches!(producer(body, v).op.as_str(), "AddV2" | "Add") {
            return None;
        }
        let (a, b) = (block(body, *a)?, block(body, *b)?);
        if reads(a, x) && reads(b, h) {
            Some((a, b))
        } else if reads(b, x) && reads(a, h) {
            Some((b, a))
        } else {
            None
        }
    };
    let (xz, hz) = pre(gate(z)?)?;
    let n_in = unary(body, cand, "Tanh")?;
    let (reset_term, xn) = operands(body, n_in, &["AddV2", "Add"], |a| op_is(body, a, "Mul"))?;
    let (r, hn) = operands(body, reset_term, &["Mul"], |a| gate(a).is_some())?;
    let (xr, hr) = pre(gate(r)?)?;
    let (xn, hn) = (block(body, xn)?, block(body, hn)?);
    let (xs, hs) = ([xr, xz, xn], [hr, hz, hn]);
    if xs.iter().any(|b| b.src != xz.src) || hs.iter().any(|b| b.src != hz.src) {
        return None;
    }
    let x_order: Vec<usize> = xs.iter().map(|b| b.index).collect();
    let h_order: Vec<usize> = hs.iter().map(|b| b.index).collect();
    for order in [&x_order, &h_order] {
        if (0..3).any(|k| !order.contains(&k)) {
            return None;
        }
    }
    let (xterms, xbias) = affine(body, xz.src)?;
    let (hterms, hbias) = affine(body, hz.src)?;
    if xterms.len() != 1 || hterms.len() != 1 {
        return None;
    }
    let mut terms = xterms;
    terms.extend(hterms);
    let (kx, kh, units) = kernels(&terms, x, h, 3)?;
    let biases = [xbias.as_deref(), hbias.as_deref()];
    torch_layer_cell(GRU, [&kx, &kh], units, [&x_order, &h_order], biases)
}

/// One of three equal column blocks of a rank-2 value.
#[derive(Clone, Copy)]
struct Block {
    src: ValueRef,
    index: usize,
}

/// `Split(-1, src, 3):k`, or `src[:, k·n:(k+1)·n]` with `3n` columns (read off `src`'s kernel).
fn block(body: &Graph, v: ValueRef) -> Option<Block> {
    block_of(body, v, 3)
}

/// Like [`block`], for `parts` equal blocks.
fn block_of(body: &Graph, v: ValueRef, parts: usize) -> Option<Block> {
    if op_is(body, v, "Split") {
        let src = split_of(body, &[v], parts)?;
        return Some(Block { src, index: v.port });
    }
    let src = *body.inputs(v.node).first()?;
    let (terms, _) = affine(body, src)?;
    let width = *terms.values().next()?.shape.get(1)?;
    let (s, lo, hi) = column_slice(body, v, width)?;
    let n = width / parts;
    (s == src && width % parts == 0 && hi - lo == n && lo % n == 0)
        .then_some(Block { src, index: lo / n })
}

/// Keras GRU with `reset_after=False`, which `nn.GRU` cannot express:
/// `n = tanh(x_n + (r·h)·R_n)`, `z, r = σ(x_* + (h·R_zr)_*)`, `h' = z·h + (1−z)·n`.
/// Weights: input `[3u, in]` and its bias in PyTorch's gate order (r, z, n), `R_zr` as
/// `[2u, u]` (r, z), `R_n` as `[u, u]`.
fn gru_reset_before_cell(body: &Graph, x: ValueRef, h: ValueRef, h_next: ValueRef) -> Option<Cell> {
    let gate = |v: ValueRef| unary(body, v, "Sigmoid");
    let (z, cand) = gru_update(body, h, h_next)?;
    // (x block of three, h block of two).
    let pre = |v: ValueRef| -> Option<(Block, Block)> {
        let (a, b) = operands(body, v, &["AddV2", "Add"], |a| block(body, a).is_some())?;
        Some((block(body, a)?, block_of(body, b, 2)?))
    };
    let (xz, hz) = pre(gate(z)?)?;
    let (xn, rh_term) = operands(body, unary(body, cand, "Tanh")?, &["AddV2", "Add"], |a| {
        block(body, a).is_some()
    })?;
    let xn = block(body, xn)?;
    // (r·h)·R_n: the one term of an affine expression in r·h.
    let (rh_terms, rh_bias) = affine(body, rh_term)?;
    if rh_terms.len() != 1 {
        return None;
    }
    let (rh, r_n) = rh_terms.into_iter().next()?;
    let (r, _) = operands(body, rh, &["Mul"], |a| gate(a).is_some())?;
    if operands(body, rh, &["Mul"], |m| m == h).is_none() || rh_bias.is_some() {
        return None;
    }
    let (xr, hr) = pre(gate(r)?)?;
    let xs = [xr, xz, xn];
    if xs.iter().any(|b| b.src != xz.src) || hr.src != hz.src {
        return None;
    }
    let x_order: Vec<usize> = xs.iter().map(|b| b.index).collect();
    let h_order = [hr.index, hz.index];
    if (0..3).any(|k| !x_order.contains(&k)) || h_order[0] == h_order[1] {
        return None;
    }
    let (xterms, xbias) = affine(body, xz.src)?;
    let (hterms, hbias) = affine(body, hz.src)?;
    let (kx, kzr) = (xterms.get(&x)?, hterms.get(&h)?);
    if xterms.len() != 1 || hterms.len() != 1 || hbias.is_some() {
        return None;
    }
    let units = r_n.shape[0];
    if r_n.shape != [units, units] || kzr.shape != [units, 2 * units] || kx.shape[1] != 3 * units {
        return None;
    }
    Some(Cell {
        op: GRU_RESET_BEFORE,
        weights: [
            gate_rows(kx, units, &x_order)?,
            gate_bias(xbias.as_deref(), units, &x_order, 3 * units),
            gate_rows(kzr, units, &h_order)?,
            gate_rows(&r_n, units, &[0])?,
        ],
        nonlinearity: None,
    })
}

/// TF1's `GRUCell`: `r, u = split₂(σ([x, h]·W_g + b_g))`,
/// `h' = u·h + (1−u)·tanh([x, r·h]·W_c + b_c)`: the reset-before GRU, as [`GRU_RESET_BEFORE`].
fn tf1_gru_cell(body: &Graph, x: ValueRef, h: ValueRef, h_next: ValueRef) -> Option<Cell> {
    let (u, cand) = gru_update(body, h, h_next)?;
    let gates = unary(body, split_of(body, &[u], 2)?, "Sigmoid")?;
    let (c_terms, c_bias) = affine(body, unary(body, cand, "Tanh")?)?;
    let rh = *c_terms.keys().find(|&&k| k != x)?;
    let (r, _) = operands(body, rh, &["Mul"], |m| m != h)?;
    if operands(body, rh, &["Mul"], |m| m == h).is_none()
        || r.node != u.node
        || r.port == u.port
        || c_terms.len() != 2
    {
        return None;
    }
    let (g_terms, g_bias) = affine(body, gates)?;
    let (wg_x, wg_h) = (g_terms.get(&x)?, g_terms.get(&h)?);
    let (wc_x, wc_h) = (c_terms.get(&x)?, c_terms.get(&rh)?);
    let units = wc_h.shape[0];
    if g_terms.len() != 2 || wg_h.shape != [units, 2 * units] || wc_h.shape != [units, units] {
        return None;
    }
    let order = [r.port, u.port];
    let zeros = |n: usize| vec![0.0; n];
    let gb = g_bias.unwrap_or_else(|| zeros(2 * units));
    let cb = c_bias.unwrap_or_else(|| zeros(units));
    let input = concat_rows(&gate_rows(wg_x, units, &order)?, &gate_rows(wc_x, units, &[0])?)?;
    let mut bias: Vec<f32> =
        order.iter().flat_map(|&k| gb[k * units..(k + 1) * units].to_vec()).collect();
    bias.extend(&cb);
    Some(Cell {
        op: GRU_RESET_BEFORE,
        weights: [
            input,
            Tensor::from_f32(vec![3 * units], &bias),
            gate_rows(wg_h, units, &order)?,
            gate_rows(wc_h, units, &[0])?,
        ],
        nonlinearity: None,
    })
}

/// Two `[rows, cols]` float matrices stacked along rows.
fn concat_rows(a: &Tensor, b: &Tensor) -> Option<Tensor> {
    if a.rank() != 2 || b.rank() != 2 || a.shape[1] != b.shape[1] {
        return None;
    }
    let mut v = a.to_f32()?;
    v.extend(b.to_f32()?);
    Some(Tensor::from_f32(vec![a.shape[0] + b.shape[0], a.shape[1]], &v))
}

/// `h' = act(x·K + h·R + b)`, act tanh or relu.
fn simple_cell(body: &Graph, x: ValueRef, h: ValueRef, h_next: ValueRef) -> Option<Cell> {
    let (pre, act) = [("Tanh", "tanh"), ("Relu", "relu")]
        .into_iter()
        .find_map(|(op, name)| unary(body, h_next, op).map(|v| (v, name)))?;
    let (terms, bias) = affine(body, pre)?;
    let (kx, kh, units) = kernels(&terms, x, h, 1)?;
    let cell = torch_layer_cell(RNN, [&kx, &kh], units, [&[0], &[0]], [bias.as_deref(), None])?;
    Some(Cell { nonlinearity: Some(act), ..cell })
}

/// `Transpose(x, [1, 0, 2])`.
fn is_time_swap(g: &Graph, v: ValueRef) -> bool {
    g.node(v.node).op == "Transpose"
        && g.inputs(v.node)
            .get(1)
            .and_then(|p| g.const_value(*p))
            .and_then(|t| t.to_i64())
            .is_some_and(|p| p == [1, 0, 2])
}

/// `ReverseV2(x, [0])`: the input of the time reversal.
fn time_reversed(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let i = g.inputs(v.node);
    let axis = g.const_value(*i.get(1)?)?.to_i64()?;
    (g.node(v.node).op == "ReverseV2" && axis == [0]).then_some(i[0])
}

/// A zero initial state: `Fill(dims, 0)` or a constant of zeros.
fn is_zeros(g: &Graph, v: ValueRef) -> bool {
    let zero = |v: ValueRef| {
        g.const_value(v).is_some_and(|t| t.to_f64().is_some_and(|x| x.iter().all(|&x| x == 0.0)))
    };
    zero(v) || (g.node(v.node).op == "Fill" && g.inputs(v.node).get(1).is_some_and(|&x| zero(x)))
}

fn rewrite(g: &mut Graph, l: NodeIndex, m: Match) {
    let outer = g.inputs(l);
    let (name, ordinal) = {
        let n = g.node(l);
        // `model/lstm/while` → `model/lstm/lstm`: named like the layer's own ops.
        let layer = n.name.strip_suffix("/while").unwrap_or(&n.name);
        // Keras 2 runs the loop inside a function call: `lstm/PartitionedCall/while`.
        let mut layer = layer;
        while let Some((scope, last)) = layer.rsplit_once('/')
            && last.contains("PartitionedCall")
        {
            layer = scope;
        }
        let kind = match m.cell.op {
            LSTM | MASKED_LSTM => "lstm",
            GRU | GRU_RESET_BEFORE => "gru",
            _ => "rnn",
        };
        (format!("{layer}/{kind}"), n.ordinal)
    };
    // The sequence: the tensor the input list was made from; batch-major if Keras transposed.
    let mut seq = m.seq;
    // `go_backwards`: Keras reverses the time-major copy; reversing the batch-major input
    // along time instead lets the layer stay batch-first.
    let reversed = time_reversed(g, seq).filter(|&inner| is_time_swap(g, inner));
    if let Some(inner) = reversed {
        seq = inner;
    }
    let batch_first = is_time_swap(g, seq);
    if batch_first {
        seq = g.inputs(seq.node)[0];
    }
    if reversed.is_some() {
        let axis = Tensor::from_i32(vec![1], &[1]);
        let a = g.add_node(Node::constant(format!("{name}/reverse/axis"), axis, ordinal));
        let mut r = Node::new(format!("{name}/reverse"), "ReverseV2", ordinal);
        r.outputs = vec![g.info(seq)];
        let r = g.add_node(r);
        g.connect(seq, r, 0);
        g.connect(ValueRef { node: a, port: 0 }, r, 1);
        seq = ValueRef { node: r, port: 0 };
    }
    let seq_shape = g.info(seq).shape.filter(|s| s.len() == 3);
    let (t_axis, b_axis) = if batch_first { (1, 0) } else { (0, 1) };
    let dim = |a: usize| seq_shape.as_ref().and_then(|s| s[a]);
    let units = match m.cell.op {
        GRU_RESET_BEFORE => m.cell.weights[3].shape[0],
        _ => m.cell.weights[1].shape[1],
    };
    let mut node = Node::new(name.clone(), m.cell.op, ordinal);
    let flag = |b: bool| AttrValue { value: Some(Value::B(b)) };
    node.attrs.insert("last_only".into(), flag(m.last_only));
    node.attrs.insert("batch_first".into(), flag(batch_first));
    if let Some(act) = m.cell.nonlinearity {
        node.attrs.insert("nonlinearity".into(), AttrValue { value: Some(Value::S(act.into())) });
    }
    let dtype = g.info(seq).dtype;
    let info = |shape: Vec<Option<usize>>| crate::ir::ValueInfo { dtype, shape: Some(shape) };
    let mut seq_out = vec![dim(t_axis), dim(b_axis), Some(units)];
    if m.last_only {
        seq_out[0] = Some(1);
    } else if batch_first {
        seq_out.swap(0, 1);
    }
    node.outputs = vec![info(seq_out)];
    node.outputs.extend(m.states.iter().map(|_| info(vec![dim(b_axis), Some(units)])));
    let f = g.add_node(node);
    g.connect(seq, f, 0);
    let [w_ih, w_hh, b_ih, b_hh] = m.cell.weights;
    for (k, (suffix, t)) in
        [("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih), ("bias_hh", b_hh)]
            .into_iter()
            .enumerate()
    {
        let c = g.add_node(Node::constant(format!("{name}/{suffix}"), t, ordinal));
        g.connect(ValueRef { node: c, port: 0 }, f, 1 + k);
    }
    let mut first_state = 5;
    if let Some((mask, zero_output)) = m.mask {
        g.connect(g.inputs(mask.node)[0], f, 5);
        g.node_mut(f).attrs.insert("zero_output".into(), flag(zero_output));
        first_state = 6;
    }
    if !m.states.iter().all(|&s| is_zeros(g, outer[s])) {
        for (k, &state) in m.states.iter().enumerate() {
            g.connect(outer[state], f, first_state + k);
        }
    }
    // Readers of the stacked output list read output 0 (time-major again if need be).
    let mut stacked = ValueRef { node: f, port: 0 };
    if batch_first && !m.last_only {
        let perm = Tensor::from_i32(vec![3], &[1, 0, 2]);
        let p = g.add_node(Node::constant(format!("{name}/time_major/perm"), perm, ordinal));
        let mut t = Node::new(format!("{name}/time_major"), "Transpose", ordinal);
        t.outputs = vec![info(vec![dim(t_axis), dim(b_axis), Some(units)])];
        let t = g.add_node(t);
        g.connect(stacked, t, 0);
        g.connect(ValueRef { node: p, port: 0 }, t, 1);
        stacked = ValueRef { node: t, port: 0 };
    }
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
