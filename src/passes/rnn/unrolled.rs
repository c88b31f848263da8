//! Recurrent layers traced step by step (Keras' `unroll=True`, TF 1's `static_rnn`): no loop,
//! but the sequence unstacked along time and one copy of the cell per step, each reading its
//! step's slice and the states the step before left, the first step zeros:
//!
//! ```text
//! x_0, .., x_T-1 = Unpack(Transpose(seq, [1, 0, 2]))    (or Unpack(seq, axis=1))
//! h_t, c_t = cell(x_t, h_t-1, c_t-1)                  (h_-1, c_-1 zeros)
//! Pack([h_0, .., h_T-1], axis=0 | 1), h_T-1, c_T-1
//! ```
//!
//! Every step must be the same cell with the same weights (a frozen graph may hold a copy of
//! a bias for each step) for them to be one recurrent layer: its output is the stack of the
//! steps' outputs, its final states the last step's. Steps' outputs read one by one (by the
//! next layer's steps) read the layer's output along time; any other value of a step read
//! elsewhere is still computed as it was, for that reader.

use std::collections::{BTreeSet, VecDeque};

use petgraph::stable_graph::NodeIndex;

use super::cells::{self, CellMatch};
use super::rewrite::{self, Layer};
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::passes::pattern::{operands, unary_input};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;

/// How far (in ops) past its input a step's cell may end: an LSTM's output is nine ops past
/// `x_t`, a GRU's eleven.
const STEP_DEPTH: usize = 16;
/// The most ops looked at past a step's input, whatever the graph.
const STEP_NODES: usize = 512;
/// The most zero values tried as a first step's states.
const ZERO_CANDIDATES: usize = 8;
/// How far (in ops) before the first step's ops its zero states may be.
const ZERO_DEPTH: usize = 3;

/// Fuses every unrolled layer found; returns whether any was.
pub(super) fn fuse_unrolled(g: &mut Graph) -> bool {
    let mut unpacks: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Unpack").collect();
    unpacks.sort_by_key(|&n| g.node(n).ordinal);
    let mut fused = false;
    for u in unpacks {
        if let Some(steps) = match_steps(g, u) {
            fused |= install(g, u, steps);
        }
    }
    fused
}

/// The steps of one unrolled layer.
struct Steps {
    cell: CellMatch,
    /// The zero states the first step reads.
    initial: Vec<ValueRef>,
    /// Each step's output `h_t`.
    outputs: Vec<ValueRef>,
    /// The last step's states (`h`, then `c`).
    last: Vec<ValueRef>,
    /// The steps' ops.
    nodes: BTreeSet<NodeIndex>,
    /// The steps run from the sequence's end.
    backwards: bool,
}

/// The cells a step may be: an LSTM (states `h`, `c`) or a cell of one state.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Lstm,
    OneState,
}

fn match_steps(g: &Graph, u: NodeIndex) -> Option<Steps> {
    let node = g.node(u);
    let seq = *g.inputs(u).first()?;
    let time_major = match node.attr_int_or("axis", 0).ok()? {
        // The batch-major sequence made time-major (and reversed in time: `go_backwards`).
        0 => rewrite::is_time_swap(g, rewrite::time_reversed(g, seq).unwrap_or(seq)),
        // A batch-major sequence unstacked along time (TF 1's `static_rnn` over
        // `tf.unstack(x, axis=1)`).
        1 => g.info(seq).shape.is_some_and(|s| s.len() == 3),
        _ => false,
    };
    if !time_major || node.outputs.is_empty() {
        return None;
    }
    let n = node.outputs.len();
    // Forwards, or backwards (`go_backwards` steps through the slices from the last).
    [false, true].into_iter().find_map(|backwards| {
        let order: Vec<usize> = if backwards { (0..n).rev().collect() } else { (0..n).collect() };
        let x = |t: usize| ValueRef { node: u, port: order[t] };
        steps_in_order(g, n, x).map(|steps| Steps { backwards, ..steps })
    })
}

/// The `n` steps of a layer reading `x(0)`, `x(1)`, ... in turn.
fn steps_in_order(g: &Graph, n: usize, x: impl Fn(usize) -> ValueRef) -> Option<Steps> {
    let first = cone(g, x(0));
    let zeros = zero_states(g, &first);
    let (kind, initial, (cell, mut states)) =
        [Kind::Lstm, Kind::OneState].iter().find_map(|&kind| {
            let candidates: Vec<Vec<ValueRef>> = match kind {
                Kind::Lstm => {
                    zeros.iter().flat_map(|&h| zeros.iter().map(move |&c| vec![h, c])).collect()
                }
                Kind::OneState => zeros.iter().map(|&h| vec![h]).collect(),
            };
            candidates
                .into_iter()
                .find_map(|init| step(g, kind, x(0), &init, &first).map(|s| (kind, init, s)))
        })?;
    let mut outputs = vec![states[0]];
    let mut nodes = step_nodes(g, &states, x(0), &initial);
    for t in 1..n {
        let (next_cell, next) = step(g, kind, x(t), &states, &cone(g, x(t)))?;
        if next_cell.cell != cell.cell || next_cell.weights != cell.weights {
            return None;
        }
        nodes.extend(step_nodes(g, &next, x(t), &states));
        states = next;
        outputs.push(states[0]);
    }
    Some(Steps { cell, initial, outputs, last: states, nodes, backwards: false })
}

/// The ops of one step: those between its input and states before (`x_t`, `prev`) and the
/// states it leaves (`next`), constants aside.
fn step_nodes(
    g: &Graph,
    next: &[ValueRef],
    x_t: ValueRef,
    prev: &[ValueRef],
) -> BTreeSet<NodeIndex> {
    let mut nodes = BTreeSet::new();
    let mut stack: Vec<ValueRef> = next.to_vec();
    while let Some(v) = stack.pop() {
        let stop = v == x_t || prev.contains(&v) || g.const_value(v).is_some();
        if stop || nodes.len() >= STEP_NODES || !nodes.insert(v.node) {
            continue;
        }
        stack.extend(g.inputs(v.node));
    }
    nodes
}

/// One step's cell: its weights and the states it leaves (`h`, then `c`), the cell's output
/// being one of `candidates`, its input `x_t` and its states before `prev`.
fn step(
    g: &Graph,
    kind: Kind,
    x_t: ValueRef,
    prev: &[ValueRef],
    candidates: &[ValueRef],
) -> Option<(CellMatch, Vec<ValueRef>)> {
    candidates.iter().find_map(|&h_next| match (kind, prev) {
        (Kind::Lstm, &[h, c]) => {
            // h' = σ(o)·tanh(c')
            let gate = |a: ValueRef| unary_input(g, a, "Sigmoid").is_some();
            let (_, tanh_c) = operands(g, h_next, &["Mul"], gate)?;
            let c_next = unary_input(g, tanh_c, "Tanh")?;
            let cell = cells::lstm_cell(g, x_t, h, c, h_next, c_next)?;
            Some((cell, vec![h_next, c_next]))
        }
        (Kind::OneState, &[h]) => {
            let cell = cells::gru_cell(g, x_t, h, h_next)
                .or_else(|| cells::gru_reset_before_cell(g, x_t, h, h_next))
                .or_else(|| cells::tf1_gru_cell(g, x_t, h, h_next))
                .or_else(|| cells::simple_cell(g, x_t, h, h_next))?;
            Some((cell, vec![h_next]))
        }
        _ => None,
    })
}

/// The values computed from `x` within [`STEP_DEPTH`] ops (output 0 of each op), in graph
/// order: where its step's cell ends.
fn cone(g: &Graph, x: ValueRef) -> Vec<ValueRef> {
    let mut seen: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut queue: VecDeque<(ValueRef, usize)> = VecDeque::from([(x, 0)]);
    while let Some((v, depth)) = queue.pop_front() {
        if depth == STEP_DEPTH {
            continue;
        }
        for (c, _) in g.consumers(v) {
            if seen.len() < STEP_NODES && seen.insert(c) {
                queue.push_back((ValueRef { node: c, port: 0 }, depth + 1));
            }
        }
    }
    let mut values: Vec<ValueRef> =
        seen.into_iter().map(|n| ValueRef { node: n, port: 0 }).collect();
    values.sort_by_key(|v| g.node(v.node).ordinal);
    values
}

/// Zero matrices (`Fill(dims, 0)`, constant zeros) the ops in `cone` read, directly or
/// within [`ZERO_DEPTH`] ops (`h·R` is a product of the zeros, a GRU's sliced): the first
/// step's states.
fn zero_states(g: &Graph, cone: &[ValueRef]) -> Vec<ValueRef> {
    let mut zeros: BTreeSet<ValueRef> = BTreeSet::new();
    let mut seen: BTreeSet<ValueRef> = BTreeSet::new();
    let mut frontier: Vec<ValueRef> = cone.iter().flat_map(|v| g.inputs(v.node)).collect();
    for _ in 0..ZERO_DEPTH {
        let mut next = Vec::new();
        for v in frontier {
            if !seen.insert(v) || seen.len() > STEP_NODES {
                continue;
            }
            let info = g.info(v);
            let matrix = info.shape.is_some_and(|s| s.len() == 2);
            if matrix && info.dtype.is_some_and(|d| d.is_float()) && rewrite::is_zero_state(g, v) {
                zeros.insert(v);
            } else {
                next.extend(g.inputs(v.node));
            }
        }
        frontier = next;
    }
    zeros.into_iter().take(ZERO_CANDIDATES).collect()
}

/// Installs the layer of `steps` (unstacked by `u`) where its outputs are read: the stack of
/// the steps' outputs, and the last states. Returns whether anything read them.
fn install(g: &mut Graph, u: NodeIndex, steps: Steps) -> bool {
    // The steps' outputs stacked time-major (axis 0), or batch-major (axis 1).
    let stacks: Vec<(NodeIndex, bool)> = g
        .consumers(steps.outputs[0])
        .into_iter()
        .filter_map(|(c, _)| {
            let node = g.node(c);
            let axis = node.attr_int_or("axis", 0).ok().map(|a| if a < 0 { a + 3 } else { a });
            let batch_major = match axis {
                Some(0) => false,
                Some(1) => true,
                _ => return None,
            };
            (node.op == "Pack" && g.inputs(c) == steps.outputs).then_some((c, batch_major))
        })
        .collect();
    let read = |v: ValueRef| g.use_count(v) > 0 || g.outputs.contains(&v);
    let stacks_read = stacks.iter().any(|&(p, _)| read(ValueRef { node: p, port: 0 }));
    // Once installed, the steps' values are read by nothing but each other: a second look
    // finds nothing to take over.
    if !stacks_read && !steps.last.iter().any(|&s| read(s)) {
        return false;
    }
    // Named in the scope holding the cell's (`lstm/lstm_cell_3/mul_2` → `lstm/lstm`).
    let cell_op = &g.node(steps.outputs[0].node).name;
    let cell_scope = cell_op.rsplitn(3, '/').nth(2);
    let node = g.node(u);
    let scope = cell_scope.unwrap_or_else(|| node.name.rsplit_once('/').map_or("", |p| p.0));
    let kind = steps.cell.cell.kind();
    let name = if scope.is_empty() { kind.to_string() } else { format!("{scope}/{kind}") };
    let (ordinal, mut seq) = (node.ordinal, g.inputs(u)[0]);
    if node.attr_int_or("axis", 0).ok() == Some(1) {
        // Time-major, as the layer reads it (and then sees it is batch-major).
        seq = rewrite::swap_time(g, seq, &name, ordinal);
    }
    if steps.backwards {
        // The time-major sequence reversed in time, as a loop's `go_backwards` reads it.
        seq = rewrite::reverse_in_time(g, seq, 0, &name, ordinal);
    }
    let layer = Layer { name: name.clone(), ordinal, seq, mask: None, last_only: false };
    let (f, stacked) = rewrite::install(g, layer, steps.cell, &steps.initial);
    // The sequence was batch-major (a time swap's input, or unstacked along axis 1), so the
    // layer's output 0 is too.
    for (p, batch_major) in stacks {
        let out = if batch_major { ValueRef { node: f, port: 0 } } else { stacked };
        g.replace_uses(ValueRef { node: p, port: 0 }, out);
    }
    // Each step's output read one by one (a `static_rnn` over the last one's outputs, which
    // reads the last output too): the layer's output along time, not the steps kept alive.
    let before_last = steps.outputs.len().saturating_sub(1);
    let read_alone = steps.outputs[..before_last].iter().any(|&h| {
        g.consumers(h).iter().any(|&(c, _)| !steps.nodes.contains(&c) && g.node(c).op != "Pack")
    });
    if read_alone {
        slice_outputs(g, f, &name, ordinal, &steps.outputs);
    }
    for (k, &s) in steps.last.iter().enumerate() {
        g.replace_uses(s, ValueRef { node: f, port: 1 + k });
    }
    true
}

/// Readers of the steps' `outputs` read the recurrent node `f`'s output, unstacked along time.
fn slice_outputs(g: &mut Graph, f: NodeIndex, name: &str, ordinal: usize, steps: &[ValueRef]) {
    let outputs = ValueRef { node: f, port: 0 };
    let mut slices = Node::new(format!("{name}/unstack"), "Unpack", ordinal);
    let info = g.info(outputs);
    let step = ValueInfo { dtype: info.dtype, shape: info.shape.map(|s| vec![s[0], s[2]]) };
    slices.outputs = vec![step; steps.len()];
    let n = steps.len() as i64;
    slices.attrs.insert("axis".into(), AttrValue { value: Some(Value::I(1)) });
    slices.attrs.insert("num".into(), AttrValue { value: Some(Value::I(n)) });
    let slices = g.add_node(slices);
    g.connect(outputs, slices, 0);
    for (t, &h) in steps.iter().enumerate() {
        g.replace_uses(h, ValueRef { node: slices, port: t });
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// How a test's steps read the sequence and stack their outputs.
    #[derive(Clone, Copy, PartialEq)]
    enum Form {
        /// Keras: made time-major, unstacked along axis 0, stacked time-major and made
        /// batch-major again.
        Keras,
        /// Keras' `go_backwards`: the steps take the slices from the last.
        Backwards,
        /// TF 1's `static_rnn`: unstacked along axis 1 of the batch-major sequence, the
        /// outputs stacked along axis 1.
        Static,
        /// The last step's bias differs.
        OtherBias,
    }

    /// `SimpleRNN(2, unroll=True, return_sequences=True)` over `[B, 3, 4]` in `form`, each
    /// step `h' = tanh(x_t·K + h·R + b)` from zeros.
    fn unrolled(form: Form) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let perm = g.constant("rnn/perm", int_tensor(&[3], &[1, 0, 2]));
        let (seq, axis) = match form {
            Form::Static => (x, 1),
            _ => (g.op("rnn/transpose", "Transpose", &[x, perm], &[]), 0),
        };
        let xs = g.op("rnn/unstack", "Unpack", &[seq], &[("axis", int(axis)), ("num", int(3))]);
        let k = g.constant("rnn/kernel", weights(&[4, 2]));
        let r = g.constant("rnn/recurrent_kernel", weights(&[2, 2]));
        let mut h = g.constant("rnn/zeros", Tensor::from_f32(vec![1, 2], &[0.0, 0.0]));
        let mut hs = Vec::new();
        for step in 0..3 {
            let s = format!("rnn/cell_{step}");
            let t = if form == Form::Backwards { 2 - step } else { step };
            let bias = if form == Form::OtherBias && step == 2 { 0.5 } else { 0.25 };
            let b = g.constant(&format!("{s}/bias"), Tensor::from_f32(vec![2], &[bias, 0.0]));
            let xk = g.op(&format!("{s}/MatMul"), "MatMul", &[TestGraph::port(xs, t), k], &[]);
            let hr = g.op(&format!("{s}/MatMul_1"), "MatMul", &[h, r], &[]);
            let sum = g.op(&format!("{s}/add"), "AddV2", &[xk, hr], &[]);
            let pre = g.op(&format!("{s}/BiasAdd"), "BiasAdd", &[sum, b], &[]);
            h = g.op(&format!("{s}/Tanh"), "Tanh", &[pre], &[]);
            hs.push(h);
        }
        let stack = g.op("rnn/stack", "Pack", &hs, &[("axis", int(axis)), ("N", int(3))]);
        let y = match form {
            Form::Static => stack,
            _ => g.op("rnn/transpose_1", "Transpose", &[stack, perm], &[]),
        };
        g.lower(&[y])
    }

    #[test]
    fn steps_of_one_cell_are_one_recurrent_layer() {
        assert_snapshot!(unrolled(Form::Keras), @"
        self.rnn = nn.RNN(4, 2, batch_first=True)
        # rnn.weight_ih_l0: [2, 4]
        # rnn.weight_hh_l0: [2, 2]
        # rnn.bias_ih_l0: [2]
        # rnn.bias_hh_l0: [2]
        ---
        x = self.rnn(x)[0]
        return x
        ");
    }

    #[test]
    fn steps_from_the_last_slice_run_over_the_sequence_reversed() {
        assert_snapshot!(unrolled(Form::Backwards), @"
        self.rnn = nn.RNN(4, 2, batch_first=True)
        # rnn.weight_ih_l0: [2, 4]
        # rnn.weight_hh_l0: [2, 2]
        # rnn.bias_ih_l0: [2]
        # rnn.bias_hh_l0: [2]
        ---
        x = x.flip((1,))
        x = self.rnn(x)[0]
        return x
        ");
    }

    #[test]
    fn steps_over_slices_of_the_batch_major_sequence_are_one_layer() {
        assert_snapshot!(unrolled(Form::Static), @"
        self.rnn = nn.RNN(4, 2, batch_first=True)
        # rnn.weight_ih_l0: [2, 4]
        # rnn.weight_hh_l0: [2, 2]
        # rnn.bias_ih_l0: [2]
        # rnn.bias_hh_l0: [2]
        ---
        x = self.rnn(x)[0]
        return x
        ");
    }

    /// An input unstacked as it is (no time swap, no op before it to look into).
    #[test]
    fn an_input_unstacked_is_no_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let xs = g.op("unstack", "Unpack", &[x], &[("axis", int(0)), ("num", int(2))]);
        assert_snapshot!(g.lower(&[xs, TestGraph::port(xs, 1)]), @"
        ---
        x, unstack_1 = torch.unbind(x, dim=0)
        return x, unstack_1
        ");
    }

    #[test]
    fn steps_with_other_weights_stay_steps() {
        assert_snapshot!(unrolled(Form::OtherBias), @"
        self.cell_0 = nn.Linear(4, 2, bias=False)
        self.cell_0_2 = nn.Linear(2, 2, bias=False)
        self.cell_0_bias: [2] float32
        self.cell_1_bias: [2] float32
        self.cell_2_bias: [2] float32
        # cell_0.weight: [2, 4]
        # cell_0_2.weight: [2, 2]
        # cell_0_bias: [2]
        # cell_1_bias: [2]
        # cell_2_bias: [2]
        ---
        x = x.permute(1, 0, 2)
        x, unstack_1, unstack_2 = torch.unbind(x, dim=0)
        x = self.cell_0(x)
        y = self.cell_0_2(torch.zeros((1, 2)))
        x = x + y
        x = x + self.cell_0_bias
        cell_0 = torch.tanh(x)
        x = self.cell_0_2(cell_0)
        y = self.cell_0(unstack_1)
        x = y + x
        x = x + self.cell_1_bias
        cell_1 = torch.tanh(x)
        x = self.cell_0_2(cell_1)
        y = self.cell_0(unstack_2)
        x = y + x
        x = x + self.cell_2_bias
        x = torch.tanh(x)
        x = torch.stack([cell_0, cell_1, x], dim=1)
        return x
        ");
    }
}
