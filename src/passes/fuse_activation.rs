//! Activation patterns TF spells out with several ops become one readable op:
//! `Mul(x, Sigmoid(x))` (Keras/TF swish) → `_SiLU(x)` → `F.silu(x)`.
//! `_SiLU` is tf2torch's own op name (TF's underscore prefix marks internal ops).

use crate::error::Result;
use crate::ir::{Graph, Node, ValueRef};

pub fn fuse_activations(g: &mut Graph) -> Result<()> {
    let nodes: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "Mul").collect();
    for n in nodes {
        let inputs = g.inputs(n);
        if inputs.len() != 2 {
            continue;
        }
        for (x, s) in [(inputs[0], inputs[1]), (inputs[1], inputs[0])] {
            let is_sigmoid_of_x = s.port == 0
                && g.node(s.node).op == "Sigmoid"
                && g.inputs(s.node).first() == Some(&x)
                && g.use_count(s) == 1;
            if !is_sigmoid_of_x {
                continue;
            }
            let old = g.node(n).clone();
            let mut silu = Node::new(old.name, "_SiLU", old.ordinal);
            silu.outputs = old.outputs;
            let new = g.add_node(silu);
            g.connect(x, new, 0);
            g.replace_uses(ValueRef { node: n, port: 0 }, ValueRef { node: new, port: 0 });
            g.g.remove_node(n);
            g.g.remove_node(s.node);
            break;
        }
    }
    Ok(())
}
