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
