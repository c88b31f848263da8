//! Conditionals whose predicate is a constant run one branch, always: TF1 models switch
//! dropout and batch norm on an `is_training` placeholder with a default of `False`, which is
//! a constant once nothing feeds it. Such a `Switch` passes its value to the branch it picks
//! and leaves the other *dead*, as TensorFlow's executor does: a node reading a dead value is
//! dead, and a `Merge` takes the one input still alive. The conditional is gone before
//! [`super::conds`] would make it a run-time `if` on a constant.

use std::collections::BTreeSet;

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, ValueRef};

/// The output a `Switch` (predicate) or `_SwitchN` (branch index) with a constant second input
/// keeps alive; `None` when the predicate is not a constant scalar.
fn alive_port(g: &Graph, n: NodeIndex) -> Option<(usize, usize)> {
    let node = g.node(n);
    let inputs = g.inputs(n);
    let t = g.const_value(*inputs.get(1)?)?;
    if !t.shape.iter().all(|&d| d == 1) {
        return None;
    }
    match node.op.as_str() {
        "Switch" => Some((usize::from(*t.data.first()? != 0), 2)),
        "_SwitchN" => {
            let outputs = match node.attrs.get("num_outs").and_then(|a| a.value.as_ref()) {
                Some(crate::proto::attr_value::Value::I(n)) => usize::try_from(*n).ok()?.max(1),
                _ => return None,
            };
            let k = *t.to_i64()?.first()?;
            // Out of range takes the last branch, as `tf.switch_case` does.
            let k = usize::try_from(k).ok().filter(|&k| k < outputs).unwrap_or(outputs - 1);
            Some((k, outputs))
        }
        _ => None,
    }
}

pub fn fold_constant_switches(g: &mut Graph) -> Result<()> {
    let switches: Vec<(NodeIndex, (usize, usize))> =
        g.g.node_indices().filter_map(|n| alive_port(g, n).map(|p| (n, p))).collect();
    if switches.is_empty() {
        return Ok(());
    }
    // Dead values, spread forwards: every output of a node reading a dead value is dead,
    // except a `Merge`'s.
    let mut dead_values: BTreeSet<ValueRef> = BTreeSet::new();
    let mut dead_nodes: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut merges: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut readers: Vec<NodeIndex> = Vec::new();
    for &(s, (alive, ports)) in &switches {
        let data = g.inputs(s)[0];
        g.replace_uses(ValueRef { node: s, port: alive }, data);
        for port in (0..ports).filter(|&p| p != alive) {
            let v = ValueRef { node: s, port };
            dead_values.insert(v);
            readers.extend(g.consumers(v).into_iter().map(|(r, _)| r));
        }
    }
    while let Some(reader) = readers.pop() {
        if g.node(reader).op == "Merge" {
            merges.insert(reader);
        } else if dead_nodes.insert(reader) {
            readers.extend(g.g.neighbors_directed(reader, petgraph::Direction::Outgoing));
        }
    }
    let is_dead = |v: &ValueRef| dead_values.contains(v) || dead_nodes.contains(&v.node);
    // A merge with one input alive is that input; its second output (which input it took) is
    // left alone when something reads it.
    let mut gone: Vec<NodeIndex> = Vec::new();
    for m in merges {
        if dead_nodes.contains(&m) || g.use_count(ValueRef { node: m, port: 1 }) > 0 {
            continue;
        }
        let alive: Vec<ValueRef> = g.inputs(m).into_iter().filter(|v| !is_dead(v)).collect();
        if let [only] = alive.as_slice() {
            g.replace_uses(ValueRef { node: m, port: 0 }, *only);
            gone.push(m);
        }
    }
    if let Some(v) = g.outputs.iter().find(|v| is_dead(v)) {
        let n = g.node(v.node);
        return Err(crate::error::Error::node(
            &n.name,
            &n.op,
            "is a model output in a branch a constant predicate never takes",
        ));
    }
    // The branches not taken go, and the switches once nothing reads them; what only they
    // read is left to pruning.
    gone.extend(dead_nodes);
    for n in gone {
        g.g.remove_node(n);
    }
    for (s, _) in switches {
        if g.g.neighbors_directed(s, petgraph::Direction::Outgoing).next().is_none() {
            g.g.remove_node(s);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `Merge(Relu(Switch(x, False):1), Tanh(Switch(x, False):0))` is `Tanh(x)`.
    #[test]
    fn a_constant_predicate_keeps_one_branch() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let training = g.constant("training", Tensor::from_bool(vec![], &[false]));
        let sw = g.op("cond/switch", "Switch", &[x, training], &[]);
        let then = g.op("cond/then", "Relu", &[TestGraph::port(sw, 1)], &[]);
        let otherwise = g.op("cond/else", "Tanh", &[sw], &[]);
        let merge = g.op("cond/merge", "Merge", &[then, otherwise], &[]);
        let y = g.op("y", "Neg", &[merge], &[]);
        assert_snapshot!(g.after_passes(&[y], &[super::fold_constant_switches]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [2]
        cond/else = Tanh(x:0) -> ?
        y = Neg(cond/else:0) -> ?
        ");
    }

    /// A run-time predicate is left to the conditional pass.
    #[test]
    fn a_run_time_predicate_stays() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let p = g.typed_input("p", &[], crate::tensor::DType::Bool);
        let sw = g.op("cond/switch", "Switch", &[x, p], &[]);
        let then = g.op("cond/then", "Relu", &[TestGraph::port(sw, 1)], &[]);
        let otherwise = g.op("cond/else", "Tanh", &[sw], &[]);
        let merge = g.op("cond/merge", "Merge", &[then, otherwise], &[]);
        assert_snapshot!(g.after_passes(&[merge], &[super::fold_constant_switches]), @"
        inputs: x:0, p:0
        outputs: cond/merge:0
        x = Placeholder -> float32 [2]
        p = Placeholder -> bool []
        cond/switch = Switch(x:0, p:0) -> ?
        cond/then = Relu(cond/switch:1) -> ?
        cond/else = Tanh(cond/switch:0) -> ?
        cond/merge = Merge(cond/then:0, cond/else:0) -> ?
        ");
    }
}
