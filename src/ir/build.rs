//! `proto::GraphDef` → `ir::Graph`.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use crate::error::{Error, Result};
use crate::proto::{GraphDef, parse_tensor_name};
use crate::tensor::{DType, MAX_EXPANDED_BYTES, Tensor};

use super::{Graph, Node, ValueInfo, ValueRef};

/// Ops that produce no value a model output could be (sinks of bookkeeping).
fn never_an_output(op: &str) -> bool {
    matches!(
        op,
        "NoOp" | "Const" | "Placeholder" | "Assert" | "SaveV2" | "RestoreV2" | "Exit" | "LoopCond"
    )
}

/// TF's control-flow lowering leaves a `Placeholder` named `unused_control_flow_input*` per
/// loop input it rewired; nothing reads them and they are not model inputs.
fn unused_lowering_artifact(graph: &Graph, n: petgraph::stable_graph::NodeIndex) -> bool {
    graph.g[n].name.starts_with("unused_control_flow_input")
        && graph.g.neighbors_directed(n, petgraph::Direction::Outgoing).next().is_none()
}

/// Builds the IR. `inputs`/`outputs` are tensor names (`name` or `name:k`); empty means the
/// defaults: every `Placeholder` in file order, and every value nothing consumes.
pub fn build(mut gd: GraphDef, inputs: &[String], outputs: &[String]) -> Result<Graph> {
    super::constant_conds::select_constant_merges(&mut gd.node);
    let mut graph = Graph::default();
    let mut by_name: BTreeMap<String, NodeIndex> = BTreeMap::new();
    let mut pending: Vec<(NodeIndex, Vec<String>)> = Vec::new();
    for (ordinal, nd) in gd.node.into_iter().enumerate() {
        let nodes = match splat_fill(&nd, ordinal, &graph.budget)? {
            Some(fill) => fill,
            None => vec![(ir_node(nd.name, nd.op, nd.attr, ordinal)?, nd.input)],
        };
        for (node, inputs) in nodes {
            if by_name.contains_key(&node.name) {
                return Err(Error::node(&node.name, &node.op, "a second node has this name"));
            }
            let name = node.name.clone();
            let idx = graph.add_node(node);
            by_name.insert(name, idx);
            pending.push((idx, inputs));
        }
    }
    connect_inputs(&mut graph, &by_name, &pending)?;
    mark_variables(&mut graph);
    let lookup = |what: &str, s: &String| -> Result<ValueRef> {
        let (name, port) = parse_tensor_name(s)
            .ok_or_else(|| Error::msg(format!("{what} '{s}' is not a tensor name")))?;
        let node = by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::msg(format!("{what} '{s}' is not a node of the graph")))?;
        Ok(ValueRef { node, port })
    };
    graph.inputs = if inputs.is_empty() {
        default_inputs(&graph)
    } else {
        inputs.iter().map(|s| lookup("input", s)).collect::<Result<_>>()?
    };
    for (k, v) in graph.inputs.iter().enumerate() {
        if graph.inputs[..k].contains(v) {
            let n = graph.node(v.node);
            return Err(Error::msg(format!("input '{}:{}' is given twice", n.name, v.port)));
        }
    }
    graph.outputs = if outputs.is_empty() {
        // Nodes something waits for (`^name`) are bookkeeping, not results, when nothing
        // reads them.
        let awaited: BTreeSet<NodeIndex> = pending
            .iter()
            .flat_map(|(_, inputs)| inputs.iter().filter_map(|s| s.strip_prefix('^')))
            .filter_map(|s| by_name.get(s).copied())
            .collect();
        default_outputs(&graph, &awaited)
    } else {
        outputs.iter().map(|s| lookup("output", s)).collect::<Result<_>>()?
    };
    if graph.outputs.is_empty() {
        return Err(Error::msg(
            "the graph has no outputs (every value is consumed); name them with --outputs",
        ));
    }
    cut_at_inputs(&mut graph);
    Ok(graph)
}

/// A node and the names of its inputs.
type NodeWithInputs = (Node, Vec<String>);

/// A constant TF stores as one value for a larger shape, as the fill it is: `Fill(dims, value)`
/// under the constant's name (with its inputs), when expanding it would take more than
/// [`MAX_EXPANDED_BYTES`] or more than what is left of the budget. `torch.full` then makes it at
/// run time, and the file's few bytes never become gigabytes of weights.
fn splat_fill(
    nd: &crate::proto::NodeDef,
    ordinal: usize,
    budget: &super::ExpansionBudget,
) -> Result<Option<Vec<NodeWithInputs>>> {
    use crate::proto::attr_value::Value;
    let proto = match nd.attr.get("value").and_then(|a| a.value.as_ref()) {
        Some(Value::Tensor(t)) if nd.op == "Const" => t,
        _ => return Ok(None),
    };
    let err = |e: Error| Error::node(&nd.name, &nd.op, format!("attribute 'value': {e}"));
    let Some((shape, value)) = Tensor::splat_of(proto).map_err(err)? else { return Ok(None) };
    let bytes = shape.iter().product::<usize>().saturating_mul(value.data.len());
    if bytes <= MAX_EXPANDED_BYTES && budget.take(bytes) {
        return Ok(None);
    }
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let (dims_name, value_name) =
        (format!("{}/fill_dims", nd.name), format!("{}/fill_value", nd.name));
    let dims = Node::constant(&dims_name, Tensor::from_i64(vec![dims.len()], &dims), ordinal);
    let value = Node::constant(&value_name, value, ordinal);
    let fill = Node::new(&nd.name, "Fill", ordinal);
    Ok(Some(vec![(dims, vec![]), (value, vec![]), (fill, vec![dims_name, value_name])]))
}

/// A node as the IR holds it: constants decoded, placeholders with their declared type.
fn ir_node(
    name: String,
    op: String,
    attrs: BTreeMap<String, crate::proto::AttrValue>,
    ordinal: usize,
) -> Result<Node> {
    let mut node = Node::new(name, op, ordinal);
    node.attrs = attrs;
    if node.op == "Const" {
        let value = node.attr_tensor("value")?;
        node.attrs.remove("value");
        node = Node { attrs: node.attrs.clone(), ..Node::constant(node.name, value, ordinal) };
    } else if node.op == "Placeholder" {
        let dtype = node.attr_type("dtype")?;
        let shape = node.attr_shape("shape")?;
        node.outputs = vec![ValueInfo { dtype: Some(dtype), shape }];
    }
    Ok(node)
}

/// Data edges from each node's input list (control inputs are dropped).
fn connect_inputs(
    graph: &mut Graph,
    by_name: &BTreeMap<String, NodeIndex>,
    pending: &[(NodeIndex, Vec<String>)],
) -> Result<()> {
    for (idx, input_names) in pending {
        let idx = *idx;
        for (slot, s) in input_names.iter().filter(|s| !s.starts_with('^')).enumerate() {
            let (src, port) = parse_tensor_name(s).expect("control inputs were filtered out");
            let Some(&src_idx) = by_name.get(src) else {
                let n = &graph.g[idx];
                return Err(Error::node(
                    &n.name,
                    &n.op,
                    format!("input '{s}' names no node of the graph"),
                ));
            };
            graph.connect(ValueRef { node: src_idx, port }, idx, slot);
        }
    }
    Ok(())
}

/// Marks the float constants that were variables: TF reads a variable through
/// `ReadVariableOp` (an `Identity` of that name once frozen, or once a SavedModel's
/// variables are loaded as constants) or, in TF1, through `<variable>/read`; a branch of a
/// conditional reads it so too, after the `Switch` (and the function input's `Identity`) that
/// bring it in. A weight the model trained is no table it computes, whatever its size.
fn mark_variables(graph: &mut Graph) {
    let variables: Vec<NodeIndex> = graph
        .g
        .node_indices()
        .filter(|&n| {
            let node = &graph.g[n];
            node.op == "Const"
                && node.value.as_ref().is_some_and(|t| t.dtype.is_float())
                && read_as_variable(graph, n, &node.name, 4)
        })
        .collect();
    for n in variables {
        let node = &mut graph.g[n];
        node.variable = true;
        node.generated = false;
    }
}

/// Whether a reader of `n` (or, `depth` steps deep, of a `Switch` or `Identity` passing it on)
/// reads it as the variable `name`.
fn read_as_variable(graph: &Graph, n: NodeIndex, name: &str, depth: usize) -> bool {
    graph.g.neighbors_directed(n, petgraph::Direction::Outgoing).any(|r| {
        let reader = &graph.g[r];
        reads_variable(reader, name)
            || (depth > 0
                && matches!(reader.op.as_str(), "Switch" | "Identity")
                && read_as_variable(graph, r, name, depth - 1))
    })
}

/// Whether `reader` is how TF reads the variable `name` (see [`mark_variables`]).
fn reads_variable(reader: &Node, name: &str) -> bool {
    let leaf = reader.name.rsplit('/').next().unwrap_or_default();
    matches!(reader.op.as_str(), "Identity" | "ReadVariableOp")
        && (leaf.starts_with("ReadVariableOp") || reader.name.strip_prefix(name) == Some("/read"))
}

/// Every Placeholder, in file order, but a table's handle: a frozen graph keeps a lookup
/// table as a `Placeholder` of a resource (freezing drops its contents), which no tensor can
/// stand for. (A variable's handle stays an input: the weights can be fed.)
fn default_inputs(graph: &Graph) -> Vec<ValueRef> {
    let handle = |n: NodeIndex| {
        let mut readers = graph.g.neighbors_directed(n, petgraph::Direction::Outgoing).peekable();
        graph.g[n].attr_type("dtype").is_ok_and(|d| d == DType::Resource)
            && readers.peek().is_some()
            && readers.all(|r| graph.g[r].op.starts_with("LookupTable"))
    };
    let mut v: Vec<_> = graph
        .g
        .node_indices()
        .filter(|&n| {
            graph.g[n].op == "Placeholder" && !unused_lowering_artifact(graph, n) && !handle(n)
        })
        .map(|n| (graph.g[n].ordinal, ValueRef { node: n, port: 0 }))
        .collect();
    v.sort();
    v.into_iter().map(|(_, r)| r).collect()
}

/// Every value nothing reads, in file order, but bookkeeping and what a function body
/// computed for nothing (unless that is all there is).
fn default_outputs(graph: &Graph, awaited: &BTreeSet<NodeIndex>) -> Vec<ValueRef> {
    let mut v: Vec<_> = graph
        .g
        .node_indices()
        .filter(|&n| {
            !never_an_output(&graph.g[n].op)
                && !awaited.contains(&n)
                && graph.g.neighbors_directed(n, petgraph::Direction::Outgoing).next().is_none()
        })
        .map(|n| (graph.g[n].ordinal, ValueRef { node: n, port: 0 }))
        .collect();
    v.sort();
    let inlined = |r: &ValueRef| graph.node(r.node).has_attr(crate::proto::INLINED_ATTR);
    if v.iter().any(|(_, r)| !inlined(r)) {
        v.retain(|(_, r)| !inlined(r));
    }
    v.into_iter().map(|(_, r)| r).collect()
}

/// A requested input that is not a Placeholder becomes one: the graph is cut there. It
/// declares no `dtype` attribute (the file's placeholders do): lowering names it after its
/// layer rather than by its whole TF name.
fn cut_at_inputs(graph: &mut Graph) {
    for &v in &graph.inputs.clone() {
        let n = graph.node(v.node);
        if n.op != "Placeholder" {
            // Its declared dtype and shape where it has them (PlaceholderWithDefault does), or
            // the dtype its op says it makes (a table lookup's `Tout`, a cast's `DstT`).
            let dtype = n.output_type().unwrap_or(DType::F32);
            let written = || match n.attrs.get("_output_shapes").and_then(|a| a.value.as_ref()) {
                Some(crate::proto::attr_value::Value::List(l)) => l
                    .shape
                    .first()
                    .filter(|s| !s.unknown_rank)
                    .and_then(|s| crate::tensor::shape_from_proto(Some(s)).ok()),
                _ => None,
            };
            let shape = n.attr_shape("shape").ok().flatten().or_else(written);
            let info = ValueInfo { dtype: Some(dtype), shape };
            let mut ph = Node::new(n.name.clone(), "Placeholder", n.ordinal);
            ph.outputs = vec![info];
            let new = graph.add_node(ph);
            graph.replace_uses(v, ValueRef { node: new, port: 0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::attr_value::Value;
    use crate::proto::{AttrValue, GraphDef, NodeDef, TensorProto, TensorShapeProto};

    fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// A float32 scalar constant (DT_FLOAT is 1).
    fn scalar(name: &str, v: f32) -> NodeDef {
        let mut n = node(name, "Const", &[]);
        let t = TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShapeProto::default()),
            float_val: vec![v],
            ..Default::default()
        };
        n.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(1)) });
        n.attr.insert("value".into(), AttrValue { value: Some(Value::Tensor(Box::new(t))) });
        n
    }

    /// Variables as TF2 freezes them (read through an `Identity` named `ReadVariableOp`, in a
    /// conditional's branch too) and as TF1 does (`<name>/read`) are marked; a constant read
    /// otherwise is not.
    #[test]
    fn variables_are_told_from_constants_by_how_they_are_read() {
        let mut x = node("x", "Placeholder", &[]);
        x.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(1)) });
        let mut p = node("p", "Placeholder", &[]);
        p.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(10)) });
        let gd = GraphDef {
            node: vec![
                x,
                p,
                scalar("lab/Mul/ReadVariableOp/resource", 2.0),
                node("lab/Mul/ReadVariableOp", "Identity", &["lab/Mul/ReadVariableOp/resource"]),
                node("lab/Mul", "Mul", &["lab/Mul/ReadVariableOp", "x"]),
                scalar("conv1/weights", 3.0),
                node("conv1/weights/read", "Identity", &["conv1/weights"]),
                node("conv1/Mul", "Mul", &["conv1/weights/read", "lab/Mul"]),
                scalar("half", 0.5),
                node("half_copy", "Identity", &["half"]),
                node("y", "Mul", &["half_copy", "conv1/Mul"]),
                // Read in a branch of a conditional: through its `Switch` and the branch
                // function's input.
                scalar("emb/table", 4.0),
                node("emb/Switch", "Switch", &["emb/table", "p"]),
                node("Func/cond/then/_0/input/_1", "Identity", &["emb/Switch:1"]),
                node(
                    "cond/then/_0/emb/ReadVariableOp",
                    "Identity",
                    &["Func/cond/then/_0/input/_1"],
                ),
                node("cond/then/_0/emb/Mul", "Mul", &["cond/then/_0/emb/ReadVariableOp", "x"]),
            ],
            ..Default::default()
        };
        let g = super::build(gd, &[], &[]).unwrap();
        let flag = |name: &str| {
            let n = g.g.node_indices().find(|&n| g.node(n).name == name).unwrap();
            (g.node(n).variable, g.node(n).generated)
        };
        assert_eq!(flag("lab/Mul/ReadVariableOp/resource"), (true, false));
        assert_eq!(flag("conv1/weights"), (true, false));
        assert_eq!(flag("half"), (false, true));
        assert_eq!(flag("emb/table"), (true, false));
    }

    /// A frozen table's handle is no input (no tensor stands for it); an unfrozen variable's
    /// handle is one (its weights can be fed).
    #[test]
    fn a_table_handle_is_no_input_but_a_variable_handle_is() {
        let placeholder = |name: &str, dtype: i32| {
            let mut n = node(name, "Placeholder", &[]);
            n.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(dtype)) });
            n
        };
        let gd = GraphDef {
            node: vec![
                placeholder("ids", 9),
                placeholder("table", 20),
                placeholder("weights", 20),
                scalar("default", 0.0),
                node("found", "LookupTableFindV2", &["table", "ids", "default"]),
                node("read", "ReadVariableOp", &["weights"]),
                node("y", "Mul", &["found", "read"]),
            ],
            ..Default::default()
        };
        let g = super::build(gd, &[], &[]).unwrap();
        let names: Vec<&str> = g.inputs.iter().map(|v| g.node(v.node).name.as_str()).collect();
        assert_eq!(names, ["ids", "weights"]);
    }
}
