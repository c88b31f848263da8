//! Conditionals whose predicate is a constant run one branch, always: TF1 models switch
//! dropout and batch norm on an `is_training` placeholder with a default of `False`, which is
//! a constant once nothing feeds it. Such a `Switch` passes its value to the branch it picks
//! and leaves the other *dead*, as TensorFlow's executor does: a node reading a dead value is
//! dead, and a `Merge` takes the one input still alive. A branch that reads nothing (it
//! returns a constant) is never dead that way: beside the branch taken, such an input is the
//! branch not taken. The conditional is gone before [`super::conds`] would make it a run-time
//! `if` on a constant.

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
    // What the branches taken compute (nodes reading an alive output, and the values passed
    // through): told apart from values no switch feeds (a branch returning a constant).
    let mut taken: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut passed: BTreeSet<ValueRef> = BTreeSet::new();
    for &(s, (alive, _)) in &switches {
        let mut stack: Vec<NodeIndex> =
            g.consumers(ValueRef { node: s, port: alive }).into_iter().map(|(r, _)| r).collect();
        while let Some(n) = stack.pop() {
            // An inner conditional's switch starts branches of its own: not followed.
            let op = g.node(n).op.as_str();
            if op == "Merge" {
                merges.insert(n);
            } else if !matches!(op, "Switch" | "_SwitchN") && taken.insert(n) {
                stack.extend(g.g.neighbors_directed(n, petgraph::Direction::Outgoing));
            }
        }
        passed.insert(g.inputs(s)[0]);
    }
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
        // Beside a branch taken, an input no switch feeds is the other branch's constant.
        let from_taken: Vec<ValueRef> = alive
            .iter()
            .copied()
            .filter(|v| taken.contains(&v.node) || passed.contains(v))
            .collect();
        let only = match (alive.as_slice(), from_taken.as_slice()) {
            ([only], _) | (_, [only]) => *only,
            _ => continue,
        };
        g.replace_uses(ValueRef { node: m, port: 0 }, only);
        gone.push(m);
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

    /// `tf.cond(True, lambda: x + 1, lambda: const)`: the branch not taken reads nothing, so
    /// nothing marks it dead; the branch taken wins the merge.
    #[test]
    fn a_constant_branch_not_taken_goes() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let yes = g.constant("yes", Tensor::from_bool(vec![], &[true]));
        let sw = g.op("cond/switch", "Switch", &[x, yes], &[]);
        let then = g.op("cond/then", "Relu", &[TestGraph::port(sw, 1)], &[]);
        let otherwise = g.constant("cond/else", Tensor::from_f32(vec![2], &[2.0, 1.0]));
        let merge = g.op("cond/merge", "Merge", &[then, otherwise], &[]);
        assert_snapshot!(g.after_passes(&[merge], &[super::fold_constant_switches]), @"
        inputs: x:0
        outputs: cond/then:0
        x = Placeholder -> float32 [2]
        cond/then = Relu(x:0) -> ?
        ");
    }

    /// Inside the branch taken, a conditional on a run-time predicate whose other branch is a
    /// constant stays a conditional.
    #[test]
    fn an_inner_run_time_conditional_stays() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let p = g.typed_input("p", &[], crate::tensor::DType::Bool);
        let yes = g.constant("yes", Tensor::from_bool(vec![], &[true]));
        let sw = g.op("outer/switch", "Switch", &[x, yes], &[]);
        let inner = g.op("inner/switch", "Switch", &[TestGraph::port(sw, 1), p], &[]);
        let then = g.op("inner/then", "Relu", &[TestGraph::port(inner, 1)], &[]);
        let otherwise = g.constant("inner/else", Tensor::from_f32(vec![2], &[2.0, 1.0]));
        let merge = g.op("inner/merge", "Merge", &[then, otherwise], &[]);
        let text = g.after_passes(&[merge], &[super::fold_constant_switches]);
        assert!(text.contains("inner/merge = Merge(inner/then:0, inner/else:0)"), "{text}");
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
