//! Removes pass-through ops (Identity, IdentityN, StopGradient, ...): their readers read the
//! original value. Control edges were already dropped when the IR was built.

use crate::error::Result;
use crate::ir::{Graph, ValueRef};

fn is_passthrough(op: &str) -> bool {
    crate::ops::lookup(op).is_some_and(|d| d.passthrough)
}

pub fn remove_identities(g: &mut Graph) -> Result<()> {
    let nodes: Vec<_> = g.g.node_indices().filter(|&n| is_passthrough(&g.node(n).op)).collect();
    for n in nodes {
        let inputs = g.inputs(n);
        let ports = if g.node(n).op == "IdentityN" { inputs.len() } else { 1 };
        for (port, &input) in inputs.iter().enumerate().take(ports) {
            g.replace_uses(ValueRef { node: n, port }, input);
        }
        if !g.inputs.iter().chain(&g.outputs).any(|v| v.node == n) {
            g.g.remove_node(n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Readers of an IdentityN's output `k` read its input `k`; chains collapse.
    #[test]
    fn readers_read_the_original_value() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[2]);
        let b = g.input("b", &[2]);
        let both = g.op("both", "IdentityN", &[a, b], &[]);
        let id = g.op("id", "Identity", &[TestGraph::port(both, 1)], &[]);
        let stop = g.op("stop", "StopGradient", &[id], &[]);
        let y = g.op("y", "Sub", &[both, stop], &[]);
        assert_snapshot!(g.after_passes(&[y], &[super::remove_identities]), @"
        inputs: a:0, b:0
        outputs: y:0
        a = Placeholder -> float32 [2]
        b = Placeholder -> float32 [2]
        y = Sub(a:0, b:0) -> ?
        ");
    }
}
