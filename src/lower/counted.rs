//! Counted loops: a TF loop whose condition is `step < n` over a variable that starts at a
//! constant and only ever grows by one is a Python `for step in range(n):` (what
//! `tf.scan`, `tf.map_fn`, `dynamic_rnn` and Keras' recurrent layers trace into), instead of
//! a `while` threading the counter through as a tensor.
//!
//! `range` hands the body a Python int, so the loop is written this way only where the body
//! reads the counter as an index: a list's item (`xs[step]`, the write that sets it), a
//! slice bound (`x[:, step]`), the increment and the condition. A counter the body computes
//! with as a tensor (`step.to(torch.float32)`) keeps the `while`; so does one read after the
//! loop.

use petgraph::stable_graph::NodeIndex;

use crate::ir::{Graph, ValueRef};

/// The counter of a counted loop: loop variable `var` runs from `start` up to `bound`.
pub(super) struct Counter {
    pub var: usize,
    pub start: i64,
    pub bound: Bound,
    /// A second counter the condition also tests against the same bound and nothing else
    /// reads (TF's own iteration count beside `tf.scan`'s index): it only stops the loop
    /// where the counter does, and goes with the `while`.
    pub twin: Option<usize>,
}

/// What the counter is compared against.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Bound {
    Const(i64),
    /// Body input `k`: an invariant, or a variable the body passes on unchanged.
    Input(usize),
}

/// One `step < bound` test of a loop condition over a counter: the variable, its start and
/// the bound, and whether the body reads the counter other than to count (as an index).
struct Test {
    var: usize,
    start: i64,
    bound: Bound,
    read: bool,
}

/// The counter of loop node `n` of `outer`, whose body is `body` with `vars` variables.
pub(super) fn counter(outer: &Graph, n: NodeIndex, body: &Graph, vars: usize) -> Option<Counter> {
    let cond = *body.outputs.first()?;
    if !body.consumers(cond).is_empty() {
        return None;
    }
    let node = body.node(cond.node);
    let (test, twin) = match node.op.as_str() {
        "Less" => (test(outer, n, body, vars, cond.node)?, None),
        "LogicalAnd" => {
            let [a, b] = body.inputs(cond.node)[..] else { return None };
            let only_here = |v: ValueRef| v.port == 0 && body.use_count(v) == 1;
            if !only_here(a) || !only_here(b) || body.node(a.node).op != "Less" {
                return None;
            }
            let (a, b) = (test(outer, n, body, vars, a.node)?, test(outer, n, body, vars, b.node)?);
            let (used, other) = if b.read { (b, a) } else { (a, b) };
            // The loop runs `bound - max(starts)` times: `range(start, bound)` when the
            // counter read starts last.
            if other.read || other.var == used.var || other.bound != used.bound {
                return None;
            }
            if used.start < other.start {
                return None;
            }
            let twin = other.var;
            (used, Some(twin))
        }
        _ => return None,
    };
    if vars < 2 + usize::from(twin.is_some()) {
        return None;
    }
    if twin.is_some_and(|t| matches!(test.bound, Bound::Input(j) if j == t)) {
        return None;
    }
    Some(Counter { var: test.var, start: test.start, bound: test.bound, twin })
}

/// The test `less` (`step < bound`) makes, where `step` is a counter the body reads only as an
/// index (or not at all) and nothing after the loop reads.
fn test(outer: &Graph, n: NodeIndex, body: &Graph, vars: usize, less: NodeIndex) -> Option<Test> {
    if body.node(less).op != "Less" {
        return None;
    }
    let [lhs, rhs] = body.inputs(less)[..] else { return None };
    let var = (0..vars).find(|&k| body.inputs.get(k) == Some(&lhs))?;
    let bound = match body.inputs.iter().position(|&v| v == rhs) {
        Some(j) if j >= vars || body.outputs.get(1 + j) == Some(&rhs) => Bound::Input(j),
        Some(_) => return None,
        None => Bound::Const(scalar_int(body, rhs)?),
    };
    if matches!(bound, Bound::Input(j) if j == var) {
        return None;
    }
    let start = scalar_int(outer, *outer.inputs(n).get(var)?)?;
    // Nothing after the loop reads the final count.
    if outer.use_count(ValueRef { node: n, port: var }) > 0 {
        return None;
    }
    let next = *body.outputs.get(1 + var)?;
    if !is_increment(body, next, lhs) || body.outputs.contains(&lhs) {
        return None;
    }
    let mut read = !body.consumers(next).is_empty();
    for (m, slot) in body.consumers(lhs) {
        if m == less || m == next.node {
            continue;
        }
        if !reads_as_index(body, m, slot, lhs) {
            return None;
        }
        read = true;
    }
    Some(Test { var, start, bound, read })
}

/// `step + 1`, read by the next iteration and otherwise only as an index (a slice's end).
fn is_increment(body: &Graph, next: ValueRef, step: ValueRef) -> bool {
    let node = body.node(next.node);
    let as_index = |(m, slot)| reads_as_index(body, m, slot, next);
    // The next count of this counter only: another variable's would become an int too.
    let nexts = body.outputs.iter().skip(1).filter(|&&o| o == next).count();
    if !matches!(node.op.as_str(), "Add" | "AddV2")
        || nexts > 1
        || !body.consumers(next).into_iter().all(as_index)
    {
        return false;
    }
    let ins = body.inputs(next.node);
    let one = |v: &ValueRef| scalar_int(body, *v) == Some(1);
    matches!(ins[..], [a, b] if (a == step && one(&b)) || (b == step && one(&a)))
}

/// Whether node `m` reads `step` (in `slot`) as Python reads an index.
fn reads_as_index(body: &Graph, m: NodeIndex, slot: usize, step: ValueRef) -> bool {
    let op = body.node(m).op.as_str();
    match op {
        "TensorListGetItem" | "TensorListSetItem" => slot == 1,
        // An extra input `passes::packed_bounds` gave the slice.
        "StridedSlice" | "Slice" => slot >= own_inputs(op),
        // Bounds packed into a vector only slices read, each also reading `step` itself.
        "Pack" => {
            let packed = ValueRef { node: m, port: 0 };
            body.consumers(packed).into_iter().all(|(s, k)| {
                let op = body.node(s).op.as_str();
                matches!(op, "StridedSlice" | "Slice")
                    && (k == 1 || k == 2)
                    && body.inputs(s).iter().skip(own_inputs(op)).any(|&v| v == step)
            }) && !body.outputs.contains(&packed)
        }
        _ => false,
    }
}

/// The inputs a slice op has of its own, before the scalars its bounds pack.
fn own_inputs(op: &str) -> usize {
    if op == "Slice" { 3 } else { 4 }
}

/// The value of an integer scalar constant.
pub(super) fn scalar_int(g: &Graph, v: ValueRef) -> Option<i64> {
    match g.const_value(v)?.to_i64()?.as_slice() {
        [x] if g.const_value(v)?.shape.is_empty() => Some(*x),
        _ => None,
    }
}
