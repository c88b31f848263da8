//! Keeps only what the requested outputs depend on (plus the requested inputs).

use std::collections::BTreeSet;

use petgraph::Direction;
use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::Graph;

pub fn prune(g: &mut Graph) -> Result<()> {
    let mut keep = BTreeSet::new();
    let mut stack: Vec<_> = g.outputs.iter().chain(&g.inputs).map(|v| v.node).collect();
    while let Some(n) = stack.pop() {
        if keep.insert(n) {
            stack.extend(g.g.neighbors_directed(n, Direction::Incoming));
        }
    }
    let dead: Vec<_> = g.g.node_indices().filter(|n| !keep.contains(n)).collect();
    for n in dead {
        g.g.remove_node(n);
    }
    Ok(())
}

/// Removes each of `nodes` that nothing reads (and is no graph input or output), then the
/// nodes only it read, and so on: pruning limited to what those nodes computed.
pub fn remove_unread(g: &mut Graph, nodes: Vec<NodeIndex>) {
    let mut stack = nodes;
    while let Some(n) = stack.pop() {
        let read = g.g.contains_node(n)
            && (g.g.neighbors_directed(n, Direction::Outgoing).next().is_some()
                || g.outputs.iter().chain(&g.inputs).any(|v| v.node == n));
        if read || !g.g.contains_node(n) {
            continue;
        }
        let sources: Vec<NodeIndex> = g.g.neighbors_directed(n, Direction::Incoming).collect();
        g.g.remove_node(n);
        stack.extend(sources);
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn keeps_only_what_the_outputs_need() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let y = g.op("y", "Relu", &[x], &[]);
        let _unused = g.op("unused", "Tanh", &[x], &[]);
        assert_snapshot!(g.after_passes(&[y], &[]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [2]
        y = Relu(x:0) -> ?
        ");
    }
}
