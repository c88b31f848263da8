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
        for &n in topo {
            let l = g
                .inputs(n)
                .iter()
                .map(|v| level.get(&v.node).map_or(0, |l| l + 1))
                .max()
                .unwrap_or(0);
            level.insert(n, l);
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
                let mut inputs: Vec<(usize, usize, NodeIndex)> = g
                    .inputs(n)
                    .iter()
                    .enumerate()
                    .map(|(slot, v)| {
                        (usize::MAX - level.get(&v.node).copied().unwrap_or(0), slot, v.node)
                    })
                    .collect();
                inputs.sort();
                for &(_, _, m) in inputs.iter().rev() {
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
