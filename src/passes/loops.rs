//! Loops: each TF loop frame (`Enter` → `Merge` → `Switch` → body → `NextIteration` → back to
//! the `Merge`; `Switch:0` → `Exit`; the condition into `LoopCond`) becomes one `_Loop` node
//! whose [`Node::body`] is a graph of its own:
//!
//! - body inputs: one `Placeholder` per loop variable (its value at the start of an iteration),
//!   then one per loop-invariant input that is not a constant;
//! - body outputs: the condition, then each variable's next value;
//! - `_Loop` inputs: each variable's initial value, then the invariant inputs;
//! - `_Loop` outputs: each variable's final value (what its `Exit` gave).
//!
//! Frozen graphs hold loops in this frame form; SavedModels' `While` ops are brought to it by the
//! loader, so both reach the passes as `_Loop`. Inner loops are extracted before outer ones.
//! Shape inference runs inside the body to a fixpoint over the variables' shapes, so a value
//! that grows across iterations never has its first iteration's shape folded in.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::Direction;
use petgraph::stable_graph::NodeIndex;

use crate::error::{Error, Result};
use crate::ir::fused::{Fused, LOOP};
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::natural::natural_cmp;

/// Ops that delimit a frame; reaching one that is not this frame's means an inner loop.
fn is_frame_op(op: &str) -> bool {
    matches!(op, "Enter" | "Merge" | "Switch" | "NextIteration" | "Exit" | "LoopCond")
}

struct Var {
    merge: NodeIndex,
    enter: NodeIndex,
    next: NodeIndex,
    /// Gone when only the condition reads the variable (pruned with its `Exit`).
    switch: Option<NodeIndex>,
    exit: Option<NodeIndex>,
}

struct Frame {
    cond: NodeIndex,
    vars: Vec<Var>,
    /// `Enter` nodes the body or condition reads directly (loop invariants).
    invariants: Vec<NodeIndex>,
    body: BTreeSet<NodeIndex>,
}

/// Extracts every loop frame that holds no other unextracted frame (nor conditional); returns
/// whether any was.
pub fn extract_loops(g: &mut Graph) -> Result<bool> {
    let mut conds: Vec<(usize, NodeIndex)> =
        g.g.node_indices()
            .filter(|&n| g.node(n).op == "LoopCond")
            .map(|n| (g.node(n).ordinal, n))
            .collect();
    conds.sort();
    let mut progressed = false;
    for &(_, lc) in &conds {
        if g.g.contains_node(lc)
            && let Some(frame) = frame_of(g, lc)?
        {
            extract(g, frame)?;
            progressed = true;
        }
    }
    Ok(progressed)
}

/// A loop frame no round of extraction could take apart.
pub fn check_no_frames_left(g: &Graph) -> Result<()> {
    match g
        .g
        .node_indices()
        .filter(|&n| g.node(n).op == "LoopCond")
        .min_by_key(|&n| g.node(n).ordinal)
    {
        Some(n) => Err(err(g, n, "loop frames are interleaved")),
        None => Ok(()),
    }
}

fn err(g: &Graph, n: NodeIndex, msg: impl Into<String>) -> Error {
    let node = g.node(n);
    Error::node(&node.name, &node.op, msg)
}

/// The frame `LoopCond` `lc` controls; `None` while it still contains an inner loop.
/// The `Enter` and `NextIteration` feeding a loop `Merge`.
fn merge_inputs(g: &Graph, merge: NodeIndex) -> Result<(NodeIndex, NodeIndex)> {
    let m = g.inputs(merge);
    let find = |op: &str| m.iter().find(|v| g.node(v.node).op == op).map(|v| v.node);
    match (find("Enter"), find("NextIteration"), m.len()) {
        (Some(enter), Some(next), 2) => Ok((enter, next)),
        _ => Err(err(g, merge, "a loop Merge needs one Enter and one NextIteration")),
    }
}

fn frame_name(g: &Graph, enter: NodeIndex) -> String {
    g.node(enter).attr_str("frame_name").unwrap_or_default()
}

fn frame_of(g: &Graph, lc: NodeIndex) -> Result<Option<Frame>> {
    let mut vars = Vec::new();
    for (sw, slot) in g.consumers(ValueRef { node: lc, port: 0 }) {
        if g.node(sw).op != "Switch" || slot != 1 {
            return Err(err(g, sw, "reads a loop condition but is not a Switch's predicate"));
        }
        let Some(&merge) = g.inputs(sw).first() else {
            return Err(err(g, sw, "has no input"));
        };
        if g.node(merge.node).op != "Merge" {
            return Err(err(g, sw, "a loop Switch whose input is not a Merge"));
        }
        let (enter, next) = merge_inputs(g, merge.node)?;
        let exit = g
            .consumers(ValueRef { node: sw, port: 0 })
            .into_iter()
            .map(|(c, _)| c)
            .find(|&c| g.node(c).op == "Exit");
        vars.push(Var { merge: merge.node, enter, next, switch: Some(sw), exit });
    }
    if vars.is_empty() {
        return Err(err(g, lc, "controls no loop variable"));
    }
    // Variables only the condition reads have lost their Switch: find them by frame.
    let frame = frame_name(g, vars[0].enter);
    let known: BTreeSet<NodeIndex> = vars.iter().map(|v| v.merge).collect();
    // (A cond's Merge has no Enter input.)
    let is_loop_merge = |m: NodeIndex| g.inputs(m).iter().any(|v| g.node(v.node).op == "Enter");
    let mut orphans: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&m| g.node(m).op == "Merge" && !known.contains(&m) && is_loop_merge(m))
            .collect();
    orphans.sort_by_key(|&m| g.node(m).ordinal);
    for m in orphans {
        let (enter, next) = merge_inputs(g, m)?;
        if !frame.is_empty() && frame_name(g, enter) == frame {
            vars.push(Var { merge: m, enter, next, switch: None, exit: None });
        }
    }
    vars.sort_by(|a, b| natural_cmp(&g.node(a.merge).name, &g.node(b.merge).name));
    let merges: BTreeSet<NodeIndex> = vars.iter().map(|v| v.merge).collect();
    let switches: BTreeSet<NodeIndex> = vars.iter().filter_map(|v| v.switch).collect();

    // Backward from the condition and the next values, up to the variables and invariants.
    let mut body = BTreeSet::new();
    let mut invariants = BTreeSet::new();
    let mut stack: Vec<NodeIndex> = g.inputs(lc).iter().map(|v| v.node).collect();
    for v in &vars {
        stack.extend(g.inputs(v.next).iter().map(|v| v.node));
    }
    while let Some(n) = stack.pop() {
        if merges.contains(&n) || switches.contains(&n) || body.contains(&n) {
            continue;
        }
        let op = g.node(n).op.as_str();
        if op == "Enter" {
            invariants.insert(n);
            continue;
        }
        if is_frame_op(op) {
            return Ok(None);
        }
        body.insert(n);
        stack.extend(g.inputs(n).iter().map(|v| v.node));
    }

    let mut invariants: Vec<NodeIndex> = invariants.into_iter().collect();
    invariants.sort_by_key(|&n| g.node(n).ordinal);
    Ok(Some(Frame { cond: lc, vars, invariants, body }))
}

/// The `_Loop` node's name: the frame's scope (`model/lstm/while`).
fn loop_name(g: &Graph, lc: NodeIndex) -> String {
    let name = &g.node(lc).name;
    let parent = name.rsplit_once('/').map_or(name.as_str(), |(p, _)| p);
    parent.strip_suffix("/LoopCond").unwrap_or(parent).to_string()
}

/// Loops nested deeper than this are refused: shape inference runs each body to a fixpoint,
/// which nesting multiplies.
const MAX_NESTING: usize = 8;

pub(super) fn nesting(g: &Graph) -> usize {
    g.g.node_weights().flat_map(|n| n.subgraphs()).map(|b| 1 + nesting(b)).max().unwrap_or(0)
}

fn extract(g: &mut Graph, f: Frame) -> Result<()> {
    let name = loop_name(g, f.cond);
    let (body, inputs, members) = build_body(g, &f, &name)?;
    // Body values read outside the frame would be a malformed graph.
    let frame_nodes = frame_nodes(&f);
    check_contained(g, &f, &members, &frame_nodes)?;
    if nesting(&body) >= MAX_NESTING {
        return Err(err(g, f.cond, format!("loops nest deeper than {MAX_NESTING}")));
    }
    let mut node = Node::fused(name, Fused::Loop(Box::new(body)), g.node(f.cond).ordinal);
    node.outputs = vec![ValueInfo::default(); f.vars.len()];
    let l = g.add_node(node);
    for (slot, v) in inputs.into_iter().enumerate() {
        g.connect(v, l, slot);
    }
    for (i, v) in f.vars.iter().enumerate() {
        if let Some(exit) = v.exit {
            g.replace_uses(ValueRef { node: exit, port: 0 }, ValueRef { node: l, port: i });
        }
    }
    for &n in frame_nodes.iter().chain(&members) {
        if g.outputs.iter().chain(&g.inputs).any(|v| v.node == n) {
            return Err(err(
                g,
                n,
                "a model input or output inside a loop (only Exit values leave it)",
            ));
        }
    }
    for n in frame_nodes {
        g.g.remove_node(n);
    }
    // The body now lives in the loop; only constants shared with the outside stay.
    let shared: Vec<bool> = members
        .iter()
        .map(|&n| g.g.neighbors_directed(n, Direction::Outgoing).any(|c| !f.body.contains(&c)))
        .collect();
    for (n, shared) in members.into_iter().zip(shared) {
        if !shared {
            g.g.remove_node(n);
        }
    }
    Ok(())
}

/// The frame's own nodes: its `Enter`, `Merge`, `Switch`, `NextIteration`, `Exit` and
/// `LoopCond` nodes.
fn frame_nodes(f: &Frame) -> BTreeSet<NodeIndex> {
    f.vars
        .iter()
        .flat_map(|v| [v.merge, v.enter, v.next])
        .chain(f.vars.iter().filter_map(|v| v.switch))
        .chain(f.vars.iter().filter_map(|v| v.exit))
        .chain(f.invariants.iter().copied())
        .chain([f.cond])
        .collect()
}

/// Nothing outside the frame reads a body value, except constants shared with the outside.
fn check_contained(
    g: &Graph,
    f: &Frame,
    members: &[NodeIndex],
    frame_nodes: &BTreeSet<NodeIndex>,
) -> Result<()> {
    for &n in members {
        for c in g.g.neighbors_directed(n, Direction::Outgoing) {
            if !f.body.contains(&c) && !frame_nodes.contains(&c) && g.node(n).op != "Const" {
                return Err(err(g, c, "reads a value from inside a loop without an Exit"));
            }
        }
    }

    Ok(())
}

/// The loop's body as a graph of its own (see the module docs), the outer values that feed
/// the loop node, and the outer nodes copied into the body.
fn build_body(g: &Graph, f: &Frame, name: &str) -> Result<(Graph, Vec<ValueRef>, Vec<NodeIndex>)> {
    let mut body = Graph::default();
    body.budget = g.budget.clone();
    body.untrained.clone_from(&g.untrained);
    // Where each outer value is in the body.
    let mut map: BTreeMap<ValueRef, ValueRef> = BTreeMap::new();
    let mut inputs: Vec<ValueRef> = Vec::new();
    let mut ordinal = 0;
    let placeholder = |body: &mut Graph, name: String, ordinal: &mut usize| {
        let n = body.add_node(Node::new(name, "Placeholder", *ordinal));
        *ordinal += 1;
        body.g[n].outputs = vec![ValueInfo::default()];
        ValueRef { node: n, port: 0 }
    };
    for (i, v) in f.vars.iter().enumerate() {
        let p = placeholder(&mut body, format!("{name}/var_{i}"), &mut ordinal);
        body.inputs.push(p);
        map.insert(ValueRef { node: v.merge, port: 0 }, p);
        if let Some(sw) = v.switch {
            map.insert(ValueRef { node: sw, port: 1 }, p);
        }
        inputs.push(enter_input(g, v.enter)?);
    }
    for (k, &e) in f.invariants.iter().enumerate() {
        let p = placeholder(&mut body, format!("{name}/invariant_{k}"), &mut ordinal);
        body.inputs.push(p);
        map.insert(ValueRef { node: e, port: 0 }, p);
        inputs.push(enter_input(g, e)?);
    }
    let mut members: Vec<NodeIndex> = f.body.iter().copied().collect();
    members.sort_by_key(|&n| g.node(n).ordinal);
    let mut new_index = BTreeMap::new();
    for &n in &members {
        let mut node = g.node(n).clone();
        node.ordinal += ordinal;
        new_index.insert(n, body.add_node(node));
    }
    let resolve = |v: ValueRef, body_map: &BTreeMap<ValueRef, ValueRef>| -> Result<ValueRef> {
        if let Some(&b) = body_map.get(&v) {
            return Ok(b);
        }
        match new_index.get(&v.node) {
            Some(&n) => Ok(ValueRef { node: n, port: v.port }),
            None => Err(err(g, v.node, "is read inside a loop without entering it")),
        }
    };
    for &n in &members {
        for (slot, v) in g.inputs(n).into_iter().enumerate() {
            let src = resolve(v, &map)?;
            body.connect(src, new_index[&n], slot);
        }
    }
    let cond_in = *g.inputs(f.cond).first().ok_or_else(|| err(g, f.cond, "has no input"))?;
    body.outputs.push(resolve(cond_in, &map)?);
    for v in &f.vars {
        let next_in = *g.inputs(v.next).first().ok_or_else(|| err(g, v.next, "has no input"))?;
        body.outputs.push(resolve(next_in, &map)?);
    }
    Ok((body, inputs, members))
}

fn enter_input(g: &Graph, enter: NodeIndex) -> Result<ValueRef> {
    g.inputs(enter).first().copied().ok_or_else(|| err(g, enter, "has no input"))
}

/// Shape inference (and folding) inside a `_Loop`, given what is known of its inputs; returns
/// the loop's output infos. Constant invariants (weights, still trained ones where `trained`
/// names their variable) are moved into the body, so the body's own passes see them.
/// Variables start with their initial value's shape; any dimension the body changes is
/// relaxed to unknown and the body re-inferred, until the shapes agree.
pub fn infer_loop(
    node: &mut Node,
    infos: &[ValueInfo],
    consts: &[Option<&crate::tensor::Tensor>],
    trained: &[Option<String>],
    lists: &[bool],
) -> Result<Vec<ValueInfo>> {
    let (name, op) = (node.name.clone(), node.op.clone());
    let Some(body) = node.loop_body_mut() else {
        return Err(Error::node(&name, &op, "a loop without a body"));
    };
    let vars = body.outputs.len() - 1;
    if infos.len() != body.inputs.len() || consts.len() != infos.len() || body.inputs.len() < vars {
        return Err(Error::node(&name, &op, "loop inputs and body inputs disagree"));
    }
    super::remove_identities(body)?;
    // Invariant constants, and variables the body passes through unchanged, become constants.
    for (slot, &input) in body.inputs.clone().iter().enumerate() {
        let pass_through = slot >= vars || body.outputs[1 + slot] == input;
        if let (true, Some(Some(t))) = (pass_through, consts.get(slot)) {
            body.make_const(input.node, (*t).clone(), false);
            // A trained one keeps its variable's name, which names its parameter and scope.
            if let Some(Some(name)) = trained.get(slot) {
                let node = body.node_mut(input.node);
                node.name.clone_from(name);
                node.trained_from = Some(name.clone());
            }
        }
    }
    let mut var_infos: Vec<ValueInfo> = infos[..vars].to_vec();
    for _ in 0..=8 {
        let mut trial = body.clone();
        for (slot, input) in trial.inputs.clone().into_iter().enumerate() {
            if trial.node(input.node).op == "Placeholder" {
                let info = if slot < vars { var_infos[slot].clone() } else { infos[slot].clone() };
                trial.node_mut(input.node).outputs = vec![info];
            }
        }
        super::remove_identities(&mut trial)?;
        super::fold_and_infer(&mut trial)?;
        super::simplify(&mut trial)?;
        let next: Vec<ValueInfo> = trial.outputs[1..].iter().map(|&v| trial.info(v)).collect();
        // A list reserved with no element rank: its first known stack shape is the start.
        let unranked = |k: usize| lists.get(k) == Some(&true) && var_infos[k].shape.is_none();
        let merged: Vec<ValueInfo> = var_infos
            .iter()
            .zip(&next)
            .enumerate()
            .map(|(k, (a, b))| if unranked(k) { b.clone() } else { merge(a, b) })
            .collect();
        if merged == var_infos {
            *body = trial;
            return Ok(var_infos);
        }
        var_infos = merged;
    }
    Err(Error::node(&name, &op, "loop variable shapes do not settle"))
}

/// Runs the pass pipeline inside every remaining `_Loop` (its body becomes Python code), and
/// keeps as loop variables only what changes and is needed: a variable the body passes on
/// unchanged is an invariant (its final value is its initial one), and one neither read after
/// the loop nor needed by the condition or another variable is dropped (TF's own counters).
pub fn optimize_bodies(g: &mut Graph) -> Result<()> {
    // A conditional's branches get the whole pipeline too.
    let conds: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).cond().is_some()).collect();
    for c in conds {
        if let Some(cond) = g.node_mut(c).cond_mut() {
            let mut branches = std::mem::take(cond);
            let result = branches.branches.iter_mut().try_for_each(super::run_all);
            if let Some(cond) = g.node_mut(c).cond_mut() {
                *cond = branches;
            }
            result?;
        }
    }
    let loops: Vec<NodeIndex> = g.g.node_indices().filter(|&n| g.node(n).op == LOOP).collect();
    for l in loops {
        if let Some(mut body) = g.node_mut(l).take_loop_body() {
            let mut result = super::run_all(&mut body);
            if result.is_ok() && merge_twins(g, l, &mut body) {
                // Their duplicate conditions and steps are one now.
                result = super::run_all(&mut body);
            }
            g.node_mut(l).set_loop_body(body);
            result?;
            trim_variables(g, l)?;
        }
    }
    Ok(())
}

/// Makes the body read one of each pair of twins: invariants fed the same outer value (TF's
/// `map_fn` and `scan` pass their length twice), and counters that start from the same value
/// and step by the same constant (the user's `i` beside `while_loop`'s own iteration count).
/// Their conditions (`i < n and step < n`) then are one, and [`trim_variables`] drops the
/// twin no one reads. Returns whether any pair was merged.
fn merge_twins(g: &mut Graph, l: NodeIndex, body: &mut Graph) -> bool {
    let vars = body.outputs.len() - 1;
    let outer = g.inputs(l);
    if outer.len() != body.inputs.len() {
        return false;
    }
    let same = |a: usize, b: usize| {
        outer[a] == outer[b]
            || matches!((g.const_value(outer[a]), g.const_value(outer[b])),
                (Some(x), Some(y)) if x.dtype == y.dtype && x.shape == y.shape && x.data == y.data)
    };
    let n = outer.len();
    let starts: Vec<Vec<bool>> = (0..n).map(|a| (0..n).map(|b| same(a, b)).collect()).collect();
    let same_start = |a: usize, b: usize| starts[a][b];
    // `input + c` as the next value of variable `k`: the constant step `c`.
    let step = |body: &Graph, k: usize| -> Option<f64> {
        let next = body.outputs[1 + k];
        let n = body.node(next.node);
        let i = body.inputs(next.node);
        let adds = matches!(n.op.as_str(), "AddV2" | "Add") && next.port == 0 && i.len() == 2;
        let c =
            [(i.first()?, i.get(1)?), (i.get(1)?, i.first()?)].into_iter().find_map(|(v, c)| {
                (*v == body.inputs[k]).then(|| body.const_value(*c)?.scalar_f64()).flatten()
            });
        adds.then_some(c).flatten()
    };
    let mut merged = false;
    let mut read_as = |body: &mut Graph, from: usize, to: usize| {
        let inputs = body.inputs.clone();
        // A variable passed on unchanged stays so (it is an invariant to be).
        let passed_on = from < vars && body.outputs[1 + from] == inputs[from];
        body.replace_uses(inputs[from], inputs[to]);
        body.inputs = inputs;
        if passed_on {
            body.outputs[1 + from] = body.inputs[from];
        }
        merged = true;
    };
    // Invariants, and variables the body passes on unchanged (invariants to be).
    let fixed: Vec<usize> = (0..body.inputs.len())
        .filter(|&k| k >= vars || body.outputs[1 + k] == body.inputs[k])
        .collect();
    for (i, &k) in fixed.iter().enumerate() {
        if let Some(&j) = fixed[..i].iter().find(|&&j| same_start(j, k)) {
            read_as(body, k, j);
            if k < vars && j < vars {
                g.replace_uses(ValueRef { node: l, port: k }, ValueRef { node: l, port: j });
            }
        }
    }
    for k in 0..vars {
        let Some(s) = step(body, k) else { continue };
        if let Some(j) = (0..k).find(|&j| same_start(j, k) && step(body, j) == Some(s)) {
            read_as(body, k, j);
            g.replace_uses(ValueRef { node: l, port: k }, ValueRef { node: l, port: j });
        }
    }
    merged
}

fn trim_variables(g: &mut Graph, l: NodeIndex) -> Result<()> {
    let Some(mut body) = g.node_mut(l).take_loop_body() else { return Ok(()) };
    let vars = body.outputs.len() - 1;
    let outer = g.inputs(l);
    let pass_through: Vec<bool> =
        (0..vars).map(|k| body.outputs[1 + k] == body.inputs[k]).collect();
    for k in (0..vars).filter(|&k| pass_through[k]) {
        g.replace_uses(ValueRef { node: l, port: k }, outer[k]);
    }
    // Live: read after the loop, or needed (transitively) by the condition or a live variable.
    let mut live: Vec<bool> = (0..vars)
        .map(|k| !pass_through[k] && g.use_count(ValueRef { node: l, port: k }) > 0)
        .collect();
    let needed = loop {
        let mut roots = vec![body.outputs[0].node];
        roots.extend((0..vars).filter(|&k| live[k]).map(|k| body.outputs[1 + k].node));
        let mut seen = BTreeSet::new();
        while let Some(n) = roots.pop() {
            if seen.insert(n) {
                roots.extend(body.inputs(n).iter().map(|v| v.node));
            }
        }
        let mut changed = false;
        for k in 0..vars {
            if !live[k] && !pass_through[k] && seen.contains(&body.inputs[k].node) {
                live[k] = true;
                changed = true;
            }
        }
        if !changed {
            break seen;
        }
    };
    // New order: live variables, then invariants (old ones and passed-through ones) that the
    // body reads as run-time values; constants were moved into the body.
    let kept_vars: Vec<usize> = (0..vars).filter(|&k| live[k]).collect();
    let mut kept_inputs: Vec<usize> = kept_vars.clone();
    kept_inputs.extend(
        (vars..body.inputs.len()).chain((0..vars).filter(|&k| pass_through[k])).filter(|&k| {
            let n = body.inputs[k].node;
            needed.contains(&n) && body.node(n).op == "Placeholder"
        }),
    );
    if kept_vars.len() == vars && kept_inputs.len() == body.inputs.len() {
        g.node_mut(l).set_loop_body(body);
        return Ok(());
    }
    let old = g.node(l);
    let outputs =
        kept_vars.iter().map(|&k| old.outputs.get(k).cloned().unwrap_or_default()).collect();
    let (name, ordinal) = (old.name.clone(), old.ordinal);
    let mut body_outputs = vec![body.outputs[0]];
    body_outputs.extend(kept_vars.iter().map(|&k| body.outputs[1 + k]));
    body.outputs = body_outputs;
    body.inputs = kept_inputs.iter().map(|&k| body.inputs[k]).collect();
    super::prune(&mut body)?;
    let mut node = Node::fused(name, Fused::Loop(Box::new(body)), ordinal);
    node.outputs = outputs;
    let new = g.add_node(node);
    for (slot, &k) in kept_inputs.iter().enumerate() {
        g.connect(outer[k], new, slot);
    }
    for (port, &k) in kept_vars.iter().enumerate() {
        g.replace_uses(ValueRef { node: l, port: k }, ValueRef { node: new, port });
    }
    g.g.remove_node(l);
    Ok(())
}

/// What is known of a value that is either `a` or `b`.
pub(super) fn merge(a: &ValueInfo, b: &ValueInfo) -> ValueInfo {
    let dtype = if a.dtype == b.dtype { a.dtype } else { None };
    let shape = match (&a.shape, &b.shape) {
        (Some(x), Some(y)) if x.len() == y.len() => {
            Some(x.iter().zip(y).map(|(p, q)| if p == q { *p } else { None }).collect())
        }
        _ => None,
    };
    ValueInfo { dtype, shape }
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, prune, remove_identities};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// The frame becomes one loop node: its inputs are the variables' initial values, its body
    /// a graph from the variables to the condition and their next values.
    #[test]
    fn a_frame_becomes_one_loop_node() {
        let (g, out) = tf1_frame("Mul");
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 5] = [
            prune,
            remove_identities,
            crate::passes::extract_control_flow,
            fold_and_infer,
            super::optimize_bodies,
        ];
        assert_snapshot!(g.after_passes(&[out], &passes), @"
        inputs: x:0
        outputs: loop:1
        x = Placeholder -> float32 [?, 4]
        zero = Const -> int32 []
        loop = _Loop(zero:0, x:0) -> int32 [], float32 [?, 4]
          body:
            inputs: loop/var_0:0, loop/var_1:0
            outputs: loop/Less:0, loop/add:0, loop/mul:0
            loop/var_0 = Placeholder -> int32 []
            loop/var_1 = Placeholder -> float32 [?, 4]
            loop/three = Const -> int32 []
            loop/Less = Less(loop/var_0:0, loop/three:0) -> bool []
            loop/one = Const -> int32 []
            loop/add = AddV2(loop/var_0:0, loop/one:0) -> int32 []
            loop/two = Const -> float32 []
            loop/mul = Mul(loop/var_1:0, loop/two:0) -> float32 [?, 4]
        ");
    }

    /// A body value read outside the frame without an `Exit` is a malformed graph: a clear
    /// error naming the node, never a panic or a wrong loop.
    #[test]
    fn a_value_leaking_out_of_the_body_is_an_error() {
        let (g, out) = tf1_frame("Mul");
        let mut graph = g.build(&[out]);
        let mul = graph.find("loop/mul").expect("the step");
        let leak = graph.add_node(crate::ir::Node::new("leak", "Relu", 999));
        graph.connect(crate::ir::ValueRef { node: mul, port: 0 }, leak, 0);
        graph.outputs.push(crate::ir::ValueRef { node: leak, port: 0 });
        let err = super::extract_loops(&mut graph).unwrap_err().to_string();
        assert_eq!(err, "node 'leak' (Relu): reads a value from inside a loop without an Exit");
    }
}
