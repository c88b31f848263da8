//! The order statements are written in, and how many readers each value has.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use super::Lowerer;
use crate::ir::ValueRef;

impl Lowerer<'_> {
    /// Each value computed just before it is first needed: a depth-first walk from the outputs,
    /// inputs in slot order, so a layer's helper computations (masks, shapes) sit inside the
    /// layer rather than at the top of `forward`, and the order follows the data, not how a
    /// producer happened to number its nodes.
    pub(super) fn demand_order(&self, topo: &[NodeIndex]) -> Vec<NodeIndex> {
        let g = self.graph;
        // Deeper inputs first, so cheap side computations (a mask from the model input) are
        // emitted last, right before the node that needs them.
        let mut level: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        // Before depth, the number of weighted layers a value has passed through: it tells the
        // main stream from a side computation the same way in every layer of a stack (in the
        // first layer a mask or position bias built from a model input can be as deep as the
        // main stream; in the tenth it never is), so repeated layers keep one statement order
        // and stay one class.
        let mut layers: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for &n in topo {
            // A computation shared by the layers is computed before them: the layers read it
            // as they read an input, as deep in every layer (else the first layer's order
            // could differ).
            let shared = g.node(n).shared;
            let inputs: Vec<ValueRef> =
                g.inputs(n).into_iter().filter(|v| shared || !g.node(v.node).shared).collect();
            let l = inputs.iter().map(|v| level.get(&v.node).map_or(0, |l| l + 1)).max();
            level.insert(n, l.unwrap_or(0));
            let weighted = inputs.iter().any(|v| {
                g.node(v.node)
                    .value
                    .as_ref()
                    .is_some_and(|t| t.dtype.is_float() && t.shape.len() >= 2)
            });
            let l = inputs.iter().filter_map(|v| layers.get(&v.node)).max().copied();
            layers.insert(n, l.unwrap_or(0) + usize::from(weighted));
        }
        let mut done = BTreeSet::new();
        let mut order = Vec::with_capacity(topo.len());
        let mut roots: Vec<NodeIndex> = Vec::new();
        roots.extend(g.outputs.iter().map(|v| v.node));
        // Nodes no output depends on (kept by the caller's pruning choices) come last.
        roots.extend(topo.iter().copied());
        for root in roots {
            // Iterative post-order: (node, inputs pushed?)
            let mut stack = vec![(root, false)];
            while let Some((n, expanded)) = stack.pop() {
                if done.contains(&n) {
                    continue;
                }
                if expanded {
                    done.insert(n);
                    order.push(n);
                    continue;
                }
                stack.push((n, true));
                let mut inputs: Vec<(usize, usize, usize, NodeIndex)> = g
                    .inputs(n)
                    .iter()
                    .enumerate()
                    .map(|(slot, v)| {
                        let depth = level.get(&v.node).copied().unwrap_or(0);
                        let weighted = layers.get(&v.node).copied().unwrap_or(0);
                        (usize::MAX - weighted, usize::MAX - depth, slot, v.node)
                    })
                    .collect();
                inputs.sort();
                for &(_, _, _, m) in inputs.iter().rev() {
                    if !done.contains(&m) {
                        stack.push((m, false));
                    }
                }
            }
        }
        shared_first(g, order)
    }

    /// Records how many readers each value has (names are freed by them).
    pub(super) fn count_uses(&mut self, order: &[NodeIndex]) {
        for &n in order {
            for port in 0..self.graph.node(n).outputs.len().max(1) {
                let v = ValueRef { node: n, port };
                let uses = self.graph.use_count(v);
                if uses > 0 {
                    self.remaining.insert(v, uses);
                }
            }
        }
    }
}

/// `order` with each computation several scopes share (`Node::shared`) moved up to just after
/// the last value it reads: the scopes read it as an input, so it is computed before the
/// first of them rather than inside it. Shared nodes keep their order among themselves.
fn shared_first(g: &crate::ir::Graph, order: Vec<NodeIndex>) -> Vec<NodeIndex> {
    let is_shared = |n: NodeIndex| g.node(n).shared;
    if !order.iter().any(|&n| is_shared(n)) {
        return order;
    }
    let base: Vec<NodeIndex> = order.iter().copied().filter(|&n| !is_shared(n)).collect();
    // Inputs and constants are there from the start: only computed values anchor.
    let source = |n: NodeIndex| g.node(n).op == "Placeholder" || g.node(n).value.is_some();
    let position: BTreeMap<NodeIndex, usize> =
        base.iter().enumerate().filter(|&(_, &n)| !source(n)).map(|(i, &n)| (n, i + 1)).collect();
    // Shared nodes after base position `p` (0: before everything).
    let mut after: BTreeMap<usize, Vec<NodeIndex>> = BTreeMap::new();
    let mut anchor: BTreeMap<NodeIndex, usize> = BTreeMap::new();
    let shared: Vec<NodeIndex> = order.iter().copied().filter(|&n| is_shared(n)).collect();
    for &n in &shared {
        let at = g
            .inputs(n)
            .iter()
            .filter_map(|v| position.get(&v.node).or_else(|| anchor.get(&v.node)).copied())
            .max()
            .unwrap_or(0);
        anchor.insert(n, at);
    }
    // What reads only the model's inputs waits for the first shared computation that reads
    // it (the padding mask's reshape sits with the causal mask it is combined with).
    for &n in shared.iter().rev() {
        if anchor[&n] == 0 {
            let readers = g.g.neighbors_directed(n, petgraph::Direction::Outgoing);
            if let Some(first) = readers.filter_map(|r| anchor.get(&r)).min().copied() {
                anchor.insert(n, first);
            }
        }
    }
    for &n in &shared {
        after.entry(anchor[&n]).or_default().push(n);
    }
    let mut out = Vec::with_capacity(order.len());
    out.extend(after.remove(&0).unwrap_or_default());
    for (i, n) in base.into_iter().enumerate() {
        out.push(n);
        out.extend(after.remove(&(i + 1)).unwrap_or_default());
    }
    out
}
