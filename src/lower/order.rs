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
            let inputs = g.inputs(n);
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
        let mut roots: Vec<NodeIndex> = g.outputs.iter().map(|v| v.node).collect();
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
        order
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
