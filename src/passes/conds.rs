//! `tf.cond` and `tf.switch_case`: TF lowers a conditional to `Switch` (or, for a case,
//! `_SwitchN`) and `Merge` nodes (frozen graphs hold that form; the loader brings `If` and
//! `Case` ops to it). Each value a branch reads goes through a `Switch(value, pred)`, whose
//! output 1 is alive when the predicate holds and output 0 when it does not (`_SwitchN`:
//! output `k` when the index is `k`); a `Merge` takes whichever of its inputs is alive. Each
//! conditional becomes one `_Cond` node holding its branches as graphs of their own ([`Cond`],
//! branch `k` the one a switch's output `k` feeds):
//!
//! - `_Cond` inputs: the predicate, then each value the branches read (through a `Switch`, or
//!   directly); branch inputs: one `Placeholder` per value read (constants are copied in);
//! - branch outputs and `_Cond` outputs: one per `Merge`.
//!
//! A `Merge`'s inputs are told apart by the `Switch` outputs they depend on (TF1 and TF2 order
//! them differently). Merges whose branches share nodes are one conditional (a `tf.cond` with
//! several results). A conditional is extracted once nothing inside its branches is another
//! unextracted conditional or loop, so inner ones go first.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use crate::error::{Error, Result};
use crate::ir::fused::{COND, Cond, Fused};
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::natural::natural_cmp;
use crate::tensor::Tensor;

fn is_switch(op: &str) -> bool {
    matches!(op, "Switch" | "_SwitchN")
}

/// Frame ops other than switches: reaching one means an inner conditional or loop that is not
/// extracted yet.
fn blocks(op: &str) -> bool {
    matches!(op, "Merge" | "Enter" | "Exit" | "NextIteration" | "LoopCond")
}

/// What one input of a `Merge` depends on.
#[derive(Default)]
struct Side {
    /// The `Switch` outputs reached (stopping there).
    switches: BTreeSet<ValueRef>,
    /// The nodes between them and the `Merge` input.
    nodes: BTreeSet<NodeIndex>,
}

/// Walks back from `v` to the `Switch` outputs it depends on; `None` if an unextracted frame
/// is in the way.
fn trace(g: &Graph, v: ValueRef) -> Option<Side> {
    let mut side = Side::default();
    let mut stack = vec![v];
    while let Some(u) = stack.pop() {
        let op = g.node(u.node).op.as_str();
        if is_switch(op) {
            side.switches.insert(u);
            continue;
        }
        if blocks(op) {
            return None;
        }
        if side.nodes.insert(u.node) {
            stack.extend(g.inputs(u.node));
        }
    }
    Some(side)
}

/// One `Merge` with its inputs told apart by branch.
struct Merged {
    merge: NodeIndex,
    pred: ValueRef,
    /// Per branch, the `Merge` input alive when that branch runs.
    inputs: Vec<ValueRef>,
    sides: Vec<Side>,
}

fn classify(g: &Graph, merge: NodeIndex) -> Option<Merged> {
    let inputs = g.inputs(merge);
    if inputs.len() < 2 {
        return None;
    }
    let sides: Vec<Side> = inputs.iter().map(|&v| trace(g, v)).collect::<Option<_>>()?;
    let switches: Vec<&ValueRef> = sides.iter().flat_map(|s| &s.switches).collect();
    let first = switches.first()?.node;
    let pred = *g.inputs(first).get(1)?;
    let op = &g.node(first).op;
    if switches.iter().any(|s| g.inputs(s.node).get(1) != Some(&pred) || &g.node(s.node).op != op) {
        return None;
    }
    // Each side's branch: the one switch output it depends on.
    let mut branch: Vec<Option<usize>> = Vec::new();
    for side in &sides {
        let ports: BTreeSet<usize> = side.switches.iter().map(|v| v.port).collect();
        match ports.len() {
            0 => branch.push(None),
            1 => branch.push(ports.first().copied()),
            _ => return None,
        }
    }
    // A side without a switch (a constant result) takes the one branch left.
    let unused: Vec<usize> = (0..inputs.len()).filter(|p| !branch.contains(&Some(*p))).collect();
    if let (1, [missing]) = (branch.iter().filter(|b| b.is_none()).count(), unused.as_slice()) {
        branch = branch.into_iter().map(|b| b.or(Some(*missing))).collect();
    }
    let branch: Vec<usize> = branch.into_iter().collect::<Option<_>>()?;
    let mut by_branch: Vec<Option<(ValueRef, Side)>> = (0..inputs.len()).map(|_| None).collect();
    for ((&v, side), b) in inputs.iter().zip(sides).zip(branch) {
        match by_branch.get_mut(b)? {
            slot @ None => *slot = Some((v, side)),
            Some(_) => return None,
        }
    }
    let (inputs, sides) = by_branch.into_iter().map(|x| x.expect("each branch once")).unzip();
    Some(Merged { merge, pred, inputs, sides })
}

/// A conditional: its merges (in result order) and, per branch, the nodes only it runs.
struct Conditional {
    pred: ValueRef,
    merges: Vec<Merged>,
    members: Vec<BTreeSet<NodeIndex>>,
    switches: BTreeSet<NodeIndex>,
}

/// The nodes of `side` that depend on one of its switch outputs (the rest are computed outside
/// the conditional and only read in it).
fn dependent(g: &Graph, side: &Side) -> BTreeSet<NodeIndex> {
    let mut dep = BTreeSet::new();
    loop {
        let before = dep.len();
        for &n in &side.nodes {
            if !dep.contains(&n)
                && g.inputs(n).iter().any(|u| side.switches.contains(u) || dep.contains(&u.node))
            {
                dep.insert(n);
            }
        }
        if dep.len() == before {
            return dep;
        }
    }
}

/// Groups the classified merges into conditionals: merges whose branches share a node or a
/// switch are one.
fn group(g: &Graph, merged: Vec<Merged>) -> Vec<Conditional> {
    let mut out: Vec<Conditional> = Vec::new();
    for m in merged {
        let members: Vec<BTreeSet<NodeIndex>> = m.sides.iter().map(|s| dependent(g, s)).collect();
        let switches: BTreeSet<NodeIndex> =
            m.sides.iter().flat_map(|s| s.switches.iter().map(|v| v.node)).collect();
        let joins = |c: &Conditional| {
            c.pred == m.pred
                && c.members.len() == members.len()
                && (!c.switches.is_disjoint(&switches)
                    || c.members.iter().zip(&members).any(|(a, b)| !a.is_disjoint(b)))
        };
        match out.iter_mut().find(|c| joins(c)) {
            Some(c) => {
                for (mine, theirs) in c.members.iter_mut().zip(&members) {
                    mine.extend(theirs);
                }
                c.switches.extend(switches);
                c.merges.push(m);
            }
            None => out.push(Conditional { pred: m.pred, merges: vec![m], members, switches }),
        }
    }
    for c in &mut out {
        c.merges.sort_by(|a, b| natural_cmp(&g.node(a.merge).name, &g.node(b.merge).name));
    }
    out
}

fn err(g: &Graph, n: NodeIndex, msg: impl Into<String>) -> Error {
    let node = g.node(n);
    Error::node(&node.name, &node.op, msg)
}

/// Why `c` cannot be one node: a branch value read outside its branch, a `Merge`'s second
/// output (which branch ran) read, a switch output read by the wrong branch.
fn obstacle(g: &Graph, c: &Conditional) -> Option<String> {
    let merges: BTreeSet<NodeIndex> = c.merges.iter().map(|m| m.merge).collect();
    for m in &merges {
        if g.use_count(ValueRef { node: *m, port: 1 }) > 0 {
            return Some(format!(
                "{} reports which branch ran; that is not supported",
                g.node(*m).name
            ));
        }
    }
    for k in 0..c.members.len() {
        for &n in &c.members[k] {
            let outside =
                g.g.neighbors_directed(n, petgraph::Direction::Outgoing)
                    .any(|r| !c.members[k].contains(&r) && !merges.contains(&r));
            if outside || g.outputs.iter().any(|v| v.node == n) {
                return Some(format!("{} is read outside its branch", g.node(n).name));
            }
        }
    }
    for &s in &c.switches {
        for port in 0..c.members.len() {
            for (r, _) in g.consumers(ValueRef { node: s, port }) {
                if !c.members[port].contains(&r) && !merges.contains(&r) {
                    return Some(format!("{} feeds the other branch", g.node(s).name));
                }
            }
        }
    }
    None
}

/// Extracts every conditional that is ready; returns whether any was.
pub fn extract_conds(g: &mut Graph) -> Result<bool> {
    let merges: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&m| {
                g.node(m).op == "Merge"
                    && !g
                        .inputs(m)
                        .iter()
                        .any(|v| matches!(g.node(v.node).op.as_str(), "Enter" | "NextIteration"))
            })
            .collect();
    // A result nobody reads (the gradient intermediates a training graph's `If` returns)
    // needs no conditional; its branch nodes are pruned later.
    let (read, unread): (Vec<NodeIndex>, Vec<NodeIndex>) = merges.into_iter().partition(|&m| {
        g.g.neighbors_directed(m, petgraph::Direction::Outgoing).next().is_some()
            || g.outputs.iter().any(|v| v.node == m)
    });
    super::prune::remove_unread(g, unread);
    let mut merges = read;
    merges.sort_by_key(|&m| g.node(m).ordinal);
    let classified: Vec<Merged> = merges.iter().filter_map(|&m| classify(g, m)).collect();
    let mut progressed = false;
    // The nodes extraction removed or made this round (StableGraph reuses indices).
    let mut touched = BTreeSet::new();
    for c in group(g, classified) {
        // Extracting one conditional removes its nodes, which another may read (Swin's
        // predicate computed from an earlier conditional's result): that one waits for the
        // next round, which finds it on the graph as it is then.
        if referenced(&c).any(|n| touched.contains(&n)) {
            break;
        }
        if let Some(why) = obstacle(g, &c) {
            return Err(err(
                g,
                c.merges[0].merge,
                format!("a conditional that cannot be extracted: {why}"),
            ));
        }
        touched.extend(extract(g, c)?);
        progressed = true;
    }
    Ok(progressed)
}

/// Every node `c` names.
fn referenced(c: &Conditional) -> impl Iterator<Item = NodeIndex> + '_ {
    let merges = c.merges.iter().flat_map(|m| {
        let inputs = m.inputs.iter().map(|v| v.node);
        std::iter::once(m.merge).chain(std::iter::once(m.pred.node)).chain(inputs)
    });
    let members = c.members.iter().flatten().copied();
    std::iter::once(c.pred.node).chain(merges).chain(c.switches.iter().copied()).chain(members)
}

/// `cond/output/_6` → `cond`; TF1's `cond/Merge` → `cond`; a case's
/// `switch_case/indexed_case/merge/_8` → `switch_case/indexed_case`.
fn cond_name(g: &Graph, merge: NodeIndex) -> String {
    let name = &g.node(merge).name;
    let mut scope = name.rsplit_once('/').map_or(name.as_str(), |(p, _)| p);
    for suffix in ["/output", "/merge"] {
        if let Some(s) = scope.strip_suffix(suffix) {
            scope = s;
        }
    }
    scope.to_string()
}

/// Replaces `c` by one node: the nodes it removed and the one it made.
fn extract(g: &mut Graph, c: Conditional) -> Result<Vec<NodeIndex>> {
    // The values the branches read: switch inputs and values read directly, in a stable order.
    let mut args: Vec<ValueRef> = Vec::new();
    let read = |v: ValueRef, args: &mut Vec<ValueRef>| {
        if !args.contains(&v) {
            args.push(v);
        }
    };
    let mut switches: Vec<NodeIndex> = c.switches.iter().copied().collect();
    switches.sort_by_key(|&s| g.node(s).ordinal);
    for &s in &switches {
        let data = *g.inputs(s).first().ok_or_else(|| err(g, s, "has no input"))?;
        if g.const_value(data).is_none() {
            read(data, &mut args);
        }
    }
    for k in 0..c.members.len() {
        let mut members: Vec<NodeIndex> = c.members[k].iter().copied().collect();
        members.sort_by_key(|&n| g.node(n).ordinal);
        for n in members {
            for v in g.inputs(n) {
                let inside = c.members[k].contains(&v.node) || c.switches.contains(&v.node);
                if !inside && g.const_value(v).is_none() {
                    read(v, &mut args);
                }
            }
        }
    }
    let name = cond_name(g, c.merges[0].merge);
    let branches =
        (0..c.members.len()).map(|k| branch(g, &c, k, &args, &name)).collect::<Result<_>>()?;
    let ordinal = c.merges.iter().map(|m| g.node(m.merge).ordinal).min().unwrap_or(0);
    let cond = Fused::Cond(Box::new(Cond { branches }));
    let mut node = Node::fused(name, cond, ordinal);
    node.outputs = vec![ValueInfo::default(); c.merges.len()];
    let n = g.add_node(node);
    g.connect(c.pred, n, 0);
    for (slot, &v) in args.iter().enumerate() {
        g.connect(v, n, 1 + slot);
    }
    for (port, m) in c.merges.iter().enumerate() {
        g.replace_uses(ValueRef { node: m.merge, port: 0 }, ValueRef { node: n, port });
    }
    let gone: Vec<NodeIndex> = c
        .merges
        .iter()
        .map(|m| m.merge)
        .chain(switches)
        .chain(c.members.iter().flatten().copied())
        .collect();
    for &gone in &gone {
        g.g.remove_node(gone);
    }
    Ok(gone.into_iter().chain([n]).collect())
}

/// Branch `side` (for a bool: 1 then, 0 else) as a graph over `args`.
fn branch(g: &Graph, c: &Conditional, side: usize, args: &[ValueRef], name: &str) -> Result<Graph> {
    let label = match (c.members.len(), side) {
        (2, 1) => "then".to_string(),
        (2, 0) => "else".to_string(),
        (_, k) => format!("branch_{k}"),
    };
    let mut b = Graph::default();
    b.budget = g.budget.clone();
    b.untrained.clone_from(&g.untrained);
    let mut map: BTreeMap<ValueRef, ValueRef> = BTreeMap::new();
    let mut ordinal = 0;
    for (k, &v) in args.iter().enumerate() {
        let mut p = Node::new(format!("{name}/{label}/input_{k}"), "Placeholder", ordinal);
        p.outputs = vec![g.info(v)];
        ordinal += 1;
        let p = ValueRef { node: b.add_node(p), port: 0 };
        b.inputs.push(p);
        map.insert(v, p);
    }
    // A switch output is the value switched (a constant is copied in).
    let mut consts: BTreeMap<ValueRef, ValueRef> = BTreeMap::new();
    let mut resolve = |b: &mut Graph, v: ValueRef, ordinal: &mut usize| -> Result<ValueRef> {
        let v = if c.switches.contains(&v.node) {
            *g.inputs(v.node).first().ok_or_else(|| err(g, v.node, "has no input"))?
        } else {
            v
        };
        if let Some(&m) = map.get(&v) {
            return Ok(m);
        }
        if let Some(&m) = consts.get(&v) {
            return Ok(m);
        }
        let t = g
            .const_value(v)
            .ok_or_else(|| err(g, v.node, "is read in a branch without a switch"))?;
        let mut node = g.node(v.node).clone();
        node.ordinal = *ordinal;
        *ordinal += 1;
        let m = ValueRef { node: b.add_node(Node { value: Some(t.clone()), ..node }), port: 0 };
        consts.insert(v, m);
        Ok(m)
    };
    let mut members: Vec<NodeIndex> = c.members[side].iter().copied().collect();
    members.sort_by_key(|&n| g.node(n).ordinal);
    let mut index = BTreeMap::new();
    for &n in &members {
        let mut node = g.node(n).clone();
        node.ordinal += args.len() + 1;
        index.insert(n, b.add_node(node));
    }
    for &n in &members {
        for (slot, v) in g.inputs(n).into_iter().enumerate() {
            let src = match index.get(&v.node) {
                Some(&m) => ValueRef { node: m, port: v.port },
                None => resolve(&mut b, v, &mut ordinal)?,
            };
            b.connect(src, index[&n], slot);
        }
    }
    for m in &c.merges {
        let v = m.inputs[side];
        let out = match index.get(&v.node) {
            Some(&n) => ValueRef { node: n, port: v.port },
            None => resolve(&mut b, v, &mut ordinal)?,
        };
        b.outputs.push(out);
    }
    Ok(b)
}

/// Values the branches read that folding made constants a person writes where they are used
/// (a number; a table computed from single values, `torch.arange(8)`, that nothing else reads
/// and one branch only) move into the branches: the branch method reads them itself instead
/// of taking them as parameters. A trained or stored constant read elsewhere too stays a
/// parameter, stored once. A moved constant keeps its name, which names its buffer.
pub fn sink_constants(g: &mut Graph, n: NodeIndex) {
    let inputs = g.inputs(n);
    let Some(c) = g.node(n).cond() else { return };
    let reading = |slot: usize| {
        let read = |b: &Graph| b.inputs.get(slot - 1).is_some_and(|&p| b.use_count(p) > 0);
        c.branches.iter().filter(|&b| read(b)).count()
    };
    // Per moved input slot: its value, and the name and origin of the constant holding it.
    let mut sunk: BTreeMap<usize, (Tensor, String, bool)> = BTreeMap::new();
    for (slot, &v) in inputs.iter().enumerate().skip(1) {
        let node = g.node(v.node);
        let Some(t) = g.const_value(v) else { continue };
        let only_here = g.consumers(v).iter().all(|&(m, _)| m == n) && !g.outputs.contains(&v);
        let written = t.numel() == 1 || (node.generated && only_here && reading(slot) <= 1);
        if written && !node.is_trained() {
            sunk.insert(slot, (t.clone(), node.name.clone(), node.generated));
        }
    }
    if sunk.is_empty() {
        return;
    }
    let Some(c) = g.node_mut(n).cond_mut() else { return };
    for b in &mut c.branches {
        for (slot, (t, name, generated)) in &sunk {
            if let Some(&input) = b.inputs.get(slot - 1) {
                b.make_const(input.node, t.clone(), *generated);
                b.node_mut(input.node).name.clone_from(name);
            }
        }
        let mut slot = 0;
        b.inputs.retain(|_| {
            slot += 1;
            !sunk.contains_key(&slot)
        });
    }
    g.clear_inputs(n);
    let kept = inputs.into_iter().enumerate().filter(|(slot, _)| !sunk.contains_key(slot));
    for (slot, (_, v)) in kept.enumerate() {
        g.connect(v, n, slot);
    }
}

/// Shape inference inside both branches, given what is known of the inputs (the predicate
/// first); returns the `_Cond`'s output infos: what the branches agree on.
pub fn infer_cond(node: &mut Node, infos: &[ValueInfo]) -> Result<Vec<ValueInfo>> {
    let (name, op) = (node.name.clone(), node.op.clone());
    let Some(c) = node.cond_mut() else {
        return Err(Error::node(&name, &op, "a conditional without branches"));
    };
    let mut outs: Vec<Vec<ValueInfo>> = Vec::new();
    for b in &mut c.branches {
        if b.inputs.len() + 1 != infos.len() {
            return Err(Error::node(&name, &op, "inputs and branch inputs disagree"));
        }
        for (k, input) in b.inputs.clone().into_iter().enumerate() {
            b.node_mut(input.node).outputs = vec![infos[k + 1].clone()];
        }
        super::remove_identities(b)?;
        super::fold_and_infer(b)?;
        outs.push(b.outputs.iter().map(|&v| b.info(v)).collect());
    }
    let first = outs.first().cloned().unwrap_or_default();
    Ok(outs
        .iter()
        .skip(1)
        .fold(first, |acc, o| acc.iter().zip(o).map(|(a, b)| super::loops::merge(a, b)).collect()))
}

/// The node op for conditionals.
pub fn is_cond(node: &Node) -> bool {
    node.op == COND
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::passes::{extract_control_flow, fold_and_infer, prune, remove_identities};
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// TF1's form: `Merge(else, then)`, each branch reading `x` through a `Switch` of its own,
    /// a constant inside a branch.
    pub(crate) fn tf1_cond(g: &mut TestGraph) -> crate::ir::ValueRef {
        let x = g.input("x", &[-1, 4]);
        let zero = g.constant("zero", weights(&[]));
        let p = g.op("p", "Greater", &[x, zero], &[]);
        g.set_shape(p, &[]);
        let st = g.op("cond/Relu/Switch", "Switch", &[x, p], &[]);
        let relu = g.op("cond/Relu", "Relu", &[TestGraph::port(st, 1)], &[]);
        let sf = g.op("cond/Tanh/Switch", "Switch", &[x, p], &[]);
        let tanh = g.op("cond/Tanh", "Tanh", &[TestGraph::port(sf, 0)], &[]);
        let two = g.constant("cond/two", weights(&[]));
        let scaled = g.op("cond/mul", "Mul", &[tanh, two], &[]);
        g.op("cond/Merge", "Merge", &[scaled, relu], &[])
    }

    #[test]
    fn a_switch_merge_conditional_becomes_one_node() {
        let mut g = TestGraph::new();
        let merged = tf1_cond(&mut g);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 4] =
            [prune, remove_identities, extract_control_flow, fold_and_infer];
        assert_snapshot!(g.after_passes(&[merged], &passes), @"
        inputs: x:0
        outputs: cond:0
        x = Placeholder -> float32 [?, 4]
        zero = Const -> float32 []
        p = Greater(x:0, zero:0) -> bool [?, 4]
        cond = _Cond(p:0, x:0) -> float32 [?, 4]
          branch 0:
            inputs: cond/else/input_0:0
            outputs: cond/mul:0
            cond/else/input_0 = Placeholder -> float32 [?, 4]
            cond/two = Const -> float32 []
            cond/Tanh = Tanh(cond/else/input_0:0) -> float32 [?, 4]
            cond/mul = Mul(cond/Tanh:0, cond/two:0) -> float32 [?, 4]
          branch 1:
            inputs: cond/then/input_0:0
            outputs: cond/Relu:0
            cond/then/input_0 = Placeholder -> float32 [?, 4]
            cond/Relu = Relu(cond/then/input_0:0) -> float32 [?, 4]
        ");
    }

    #[test]
    fn a_conditional_is_a_method_with_an_if() {
        let mut g = TestGraph::new();
        let merged = tf1_cond(&mut g);
        assert_snapshot!(g.lower(&[merged]), @r#"
        ---
        h = x > 0.5
        h = self.cond(h, x)
        return h
        def cond(self, pred, x):
            """TF conditional `cond`: the first branch runs when `pred` holds."""
            if pred:
                x = F.relu(x)
                return x
            x = torch.tanh(x)
            x = x * 0.5
            return x
        "#);
    }

    /// What the graph computes outside the conditional from single values (a number, a
    /// range only the branch reads) is written in the branch, not passed to its method.
    #[test]
    fn constants_computed_outside_are_written_in_the_branch() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let p = g.typed_input("p", &[], DType::Bool);
        let int = |g: &mut TestGraph, name: &str, v: i64| g.constant(name, int_tensor(&[], &[v]));
        let (start, limit, delta) =
            (int(&mut g, "r/s", 0), int(&mut g, "r/l", 4), int(&mut g, "r/d", 1));
        let range = g.op("r", "Range", &[start, limit, delta], &[]);
        let positions = g.op("f", "Cast", &[range], &[("DstT", dtype(DType::F32))]);
        let two = g.constant("two", weights(&[]));
        let sx = g.op("c/sx", "Switch", &[x, p], &[]);
        let sr = g.op("c/sr", "Switch", &[positions, p], &[]);
        let s2 = g.op("c/s2", "Switch", &[two, p], &[]);
        let a = g.op("c/a", "Add", &[TestGraph::port(sx, 1), TestGraph::port(sr, 1)], &[]);
        let b = g.op("c/b", "Mul", &[TestGraph::port(sx, 0), TestGraph::port(s2, 0)], &[]);
        let m = g.op("c/m", "Merge", &[b, a], &[]);
        assert_snapshot!(g.lower(&[m]), @r#"
        ---
        x = self.c_cond(p, x)
        return x
        def c_cond(self, pred, x):
            """TF conditional `c`: the first branch runs when `pred` holds."""
            if pred:
                x = x + torch.arange(4, dtype=torch.float32)
                return x
            x = x * 0.5
            return x
        "#);
    }

    /// Two results of one `tf.cond` (their branches share the switch) are one node.
    #[test]
    fn merges_sharing_a_switch_are_one_conditional() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let p = g.typed_input("p", &[], DType::Bool);
        let s = g.op("c/s", "Switch", &[x, p], &[]);
        let a = g.op("c/a", "Relu", &[TestGraph::port(s, 1)], &[]);
        let b = g.op("c/b", "Neg", &[TestGraph::port(s, 1)], &[]);
        let m0 = g.op("c/m0", "Merge", &[a, TestGraph::port(s, 0)], &[]);
        let m1 = g.op("c/m1", "Merge", &[TestGraph::port(s, 0), b], &[]);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 2] =
            [extract_control_flow, fold_and_infer];
        assert_snapshot!(g.after_passes(&[m0, m1], &passes), @"
        inputs: x:0, p:0
        outputs: c:0, c:1
        x = Placeholder -> float32 [?, 4]
        p = Placeholder -> bool []
        c = _Cond(p:0, x:0) -> float32 [?, 4], float32 [?, 4]
          branch 0:
            inputs: c/else/input_0:0
            outputs: c/else/input_0:0, c/else/input_0:0
            c/else/input_0 = Placeholder -> float32 [?, 4]
          branch 1:
            inputs: c/then/input_0:0
            outputs: c/a:0, c/b:0
            c/then/input_0 = Placeholder -> float32 [?, 4]
            c/a = Relu(c/then/input_0:0) -> float32 [?, 4]
            c/b = Neg(c/then/input_0:0) -> float32 [?, 4]
        ");
    }

    /// A branch value read outside the conditional is a malformed graph: a clear error.
    #[test]
    fn a_branch_value_read_outside_is_an_error() {
        let mut g = TestGraph::new();
        let merged = tf1_cond(&mut g);
        let mut graph = g.build(&[merged]);
        let relu = graph.find("cond/Relu").expect("the then branch");
        let leak = graph.add_node(crate::ir::Node::new("leak", "Relu", 999));
        graph.connect(crate::ir::ValueRef { node: relu, port: 0 }, leak, 0);
        graph.outputs.push(crate::ir::ValueRef { node: leak, port: 0 });
        let err = extract_control_flow(&mut graph).unwrap_err().to_string();
        assert_eq!(
            err,
            "node 'cond/Merge' (Merge): a conditional that cannot be extracted: cond/Relu is \
             read outside its branch"
        );
    }
}
