//! TensorFlow 1.x graphs keep their weights in variables (`VariableV2`, `VarHandleOp`) that a
//! `Saver` fills from a checkpoint by key. Here they become constants holding the checkpoint's
//! values, so a TF1 SavedModel or a `.meta` + checkpoint converts like a frozen graph.
//!
//! The key of a variable is what the saver's `SaveV2` node writes it under (its
//! `tensor_names` constant, position by position with the saved tensors), which is also how
//! TensorFlow's restore finds it; a graph without a saver falls back on the variable's name,
//! the key `tf.compat.v1.train.Saver` uses by default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};
use crate::proto::attr_value::Value;
use crate::proto::{GraphDef, MetaGraphDef, NodeDef, VariableDef, parse_tensor_name};
use crate::tensor::DType;

use super::bundle::Bundle;
use super::saved_model::const_node;

/// Ops whose value lives in a checkpoint.
pub fn is_variable(op: &str) -> bool {
    matches!(op, "VariableV2" | "Variable" | "VarHandleOp")
}

/// Where the saver writes a variable: its checkpoint key and the slice of a partitioned
/// variable it holds (empty when it is the whole tensor).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SavedAs {
    key: String,
    slice: String,
}

/// The strings of a `Const` node's string tensor.
fn const_strings(node: &NodeDef) -> Option<Vec<String>> {
    if node.op != "Const" {
        return None;
    }
    match node.attr.get("value").and_then(|a| a.value.as_ref()) {
        Some(Value::Tensor(t)) => {
            Some(t.string_val.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        }
        _ => None,
    }
}

/// The variable a saved tensor reads: through `Identity` (`kernel/read`) and `ReadVariableOp`
/// (`kernel/Read/ReadVariableOp`), at most a few steps.
fn variable_behind<'a>(by_name: &BTreeMap<&str, &'a NodeDef>, tensor: &str) -> Option<&'a NodeDef> {
    let mut node = by_name.get(parse_tensor_name(tensor)?.0).copied()?;
    for _ in 0..8 {
        if is_variable(&node.op) {
            return Some(node);
        }
        if !matches!(node.op.as_str(), "Identity" | "ReadVariableOp") {
            return None;
        }
        node = by_name.get(parse_tensor_name(node.input.first()?)?.0).copied()?;
    }
    None
}

/// Variable name → where the saver puts it, from every `SaveV2` node of the graph; the
/// saver named by the MetaGraph's `SaverDef` (its scope, e.g. `save_1/`) wins where two
/// savers disagree (`simple_save` adds a second saver next to the training script's).
fn saved_keys(graph: &GraphDef, saver_scope: Option<&str>) -> BTreeMap<String, SavedAs> {
    let by_name: BTreeMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut savers: Vec<&NodeDef> = graph.node.iter().filter(|n| n.op == "SaveV2").collect();
    // The preferred saver last, so its entries overwrite the others'.
    savers.sort_by_key(|n| saver_scope.is_some_and(|s| n.name.starts_with(s)));
    let mut keys = BTreeMap::new();
    for save in savers {
        let data: Vec<&String> = save.input.iter().filter(|s| !s.starts_with('^')).collect();
        let strings = |i: usize| {
            data.get(i)
                .and_then(|s| parse_tensor_name(s))
                .and_then(|(n, _)| by_name.get(n))
                .and_then(|n| const_strings(n))
        };
        let (Some(names), slices) = (strings(1), strings(2).unwrap_or_default()) else {
            continue;
        };
        for (i, key) in names.into_iter().enumerate() {
            let Some(var) = data.get(3 + i).and_then(|t| variable_behind(&by_name, t)) else {
                continue;
            };
            let slice = slices.get(i).cloned().unwrap_or_default();
            keys.insert(var.name.clone(), SavedAs { key, slice });
        }
    }
    keys
}

/// The scope of the saver a MetaGraph's `SaverDef` names (`save_1/` for `save_1/Const:0`).
pub fn saver_scope(mg: &crate::proto::MetaGraphDef) -> Option<String> {
    let name = &mg.saver_def.as_ref()?.filename_tensor_name;
    let (scope, _) = name.rsplit_once('/')?;
    Some(format!("{scope}/"))
}

/// Of the variables `restored` (their node names), those the MetaGraph does not list as
/// trainable: its `trainable_variables` collection leaves out a `trainable=False` variable,
/// a global step, a moving average. A MetaGraph without that collection (exported stripped
/// of collections), or with an entry that does not decode, cannot tell: none is, then.
pub fn untrained<'a>(
    mg: &MetaGraphDef,
    restored: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<String> {
    let Some(list) =
        mg.collection_def.get("trainable_variables").and_then(|c| c.bytes_list.as_ref())
    else {
        return BTreeSet::new();
    };
    let trainable: Option<BTreeSet<String>> = list
        .value
        .iter()
        .map(|bytes| {
            let def = VariableDef::decode(bytes.as_slice()).ok()?;
            parse_tensor_name(&def.variable_name).map(|(name, _)| name.to_string())
        })
        .collect();
    let Some(trainable) = trainable else {
        return BTreeSet::new();
    };
    restored.into_iter().filter(|n| !trainable.contains(*n)).cloned().collect()
}

/// The names of the nodes `outputs` depend on (data and control inputs).
pub fn cone(graph: &GraphDef, outputs: &[String]) -> BTreeSet<String> {
    let by_name: BTreeMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<&str> =
        outputs.iter().filter_map(|o| parse_tensor_name(o).map(|t| t.0)).collect();
    while let Some(n) = stack.pop() {
        if !seen.insert(n.to_string()) {
            continue;
        }
        if let Some(node) = by_name.get(n) {
            stack.extend(
                node.input
                    .iter()
                    .filter_map(|i| parse_tensor_name(i.trim_start_matches('^')).map(|t| t.0)),
            );
        }
    }
    seen
}

/// The variables `outputs` read, as `Const` nodes (named like the variables) holding their
/// values from the checkpoint at `prefix`. `source` names the model in errors.
pub fn restore_variables(
    graph: &GraphDef,
    outputs: &[String],
    prefix: &Path,
    saver_scope: Option<&str>,
) -> Result<BTreeMap<String, NodeDef>> {
    let needed = cone(graph, outputs);
    let variables: Vec<&NodeDef> =
        graph.node.iter().filter(|n| is_variable(&n.op) && needed.contains(&n.name)).collect();
    let mut out = BTreeMap::new();
    if variables.is_empty() {
        return Ok(out);
    }
    let keys = saved_keys(graph, saver_scope);
    let bundle = Bundle::open(prefix)?;
    for var in variables {
        let saved = keys.get(&var.name);
        let key = saved.map_or(var.name.as_str(), |s| s.key.as_str());
        if !bundle.contains(key) {
            return Err(Error::node(
                &var.name,
                &var.op,
                format!("the checkpoint {} has no value for it (key '{key}')", prefix.display()),
            ));
        }
        // A part of a partitioned variable (`w/part_1`) is one slice of the saved `w`.
        let value = match saved.filter(|s| !s.slice.is_empty()) {
            Some(s) => bundle.tensor_slice(key, &s.slice)?,
            None => bundle.tensor(key)?,
        };
        let declared = match var.attr.get("dtype").and_then(|a| a.value.as_ref()) {
            Some(Value::Type(t)) => DType::from_tf(*t),
            _ => None,
        };
        if declared.is_some_and(|d| d != value.dtype) {
            return Err(Error::node(
                &var.name,
                &var.op,
                format!("the checkpoint holds {} for it (key '{key}')", value.dtype),
            ));
        }
        let code = value.dtype.to_tf();
        out.insert(var.name.clone(), const_node(&var.name, value, code));
    }
    Ok(out)
}

/// Ops that keep a training loop running rather than compute a model's result.
fn bookkeeping(op: &str) -> bool {
    is_variable(op)
        || op.starts_with("Apply")
        || op.starts_with("ResourceApply")
        || op.starts_with("Assign")
        || op.ends_with("Summary")
        || op.ends_with("SummaryV2")
        || matches!(
            op,
            "NoOp"
                | "Const"
                | "Placeholder"
                | "PlaceholderWithDefault"
                | "SaveV2"
                | "RestoreV2"
                | "Save"
                | "Restore"
                | "RestoreSlice"
                | "MergeV2Checkpoints"
                | "ShardedFilename"
                | "StringJoin"
                | "IsVariableInitialized"
                | "VarIsInitializedOp"
                | "Assert"
                | "Print"
                | "PrintV2"
                | "DestroyResourceOp"
        )
}

/// Scopes TF gives the backward pass and the savers: `gradients/`, `gradients_1/`, `save/`.
fn training_scope(name: &str) -> bool {
    name.split('/').any(|part| {
        let base =
            part.rsplit_once('_').filter(|(_, n)| n.parse::<u32>().is_ok()).map_or(part, |p| p.0);
        matches!(base, "gradients" | "save")
    })
}

/// What a graph without a signature probably computes for its user: values that depend on a
/// placeholder, that nothing reads, and that are not training machinery (gradients,
/// optimizer updates, savers, summaries), in file order. (A loss feeds the gradients, so it is
/// no candidate; a user who wants it names it.)
pub fn candidate_outputs(graph: &GraphDef) -> Vec<String> {
    let training = |n: &NodeDef| bookkeeping(&n.op) || training_scope(&n.name);
    let by_name: BTreeMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    // Readers of each node, and of each of its outputs.
    let mut readers: BTreeMap<&str, Vec<&NodeDef>> = BTreeMap::new();
    let mut port_readers: BTreeMap<(&str, usize), Vec<&NodeDef>> = BTreeMap::new();
    for n in &graph.node {
        for i in n.input.iter().filter(|i| !i.starts_with('^')) {
            if let Some((src, port)) = parse_tensor_name(i) {
                readers.entry(src).or_default().push(n);
                port_readers.entry((src, port)).or_default().push(n);
            }
        }
    }
    // Everything a placeholder reaches, following data edges forwards.
    let mut from_input: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> =
        graph.node.iter().filter(|n| n.op == "Placeholder").map(|n| n.name.as_str()).collect();
    while let Some(n) = stack.pop() {
        if from_input.insert(n) {
            stack.extend(readers.get(n).into_iter().flatten().map(|c| c.name.as_str()));
        }
    }
    // An `Identity` of a value the backward pass reads is a handle TF left for the gradients
    // (`cond/Identity_3` of an `If`'s intermediate), not a result.
    let feeds_training = |n: &NodeDef| {
        let mut node = n;
        for _ in 0..8 {
            if node.op != "Identity" {
                return false;
            }
            let Some((src, port)) = node.input.first().and_then(|i| parse_tensor_name(i)) else {
                return false;
            };
            let others = port_readers.get(&(src, port)).into_iter().flatten();
            if others.filter(|r| r.name != node.name).any(|r| training(r)) {
                return true;
            }
            let Some(next) = by_name.get(src) else { return false };
            node = next;
        }
        false
    };
    let metadata = |op: &str| matches!(op, "Shape" | "ShapeN" | "Size" | "Rank");
    graph
        .node
        .iter()
        .filter(|n| !training(n) && !metadata(&n.op) && from_input.contains(n.name.as_str()))
        .filter(|n| !readers.contains_key(n.name.as_str()) && !feeds_training(n))
        .map(|n| format!("{}:0", n.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_scopes_are_gradients_and_savers_with_any_suffix() {
        assert!(training_scope("gradients/dense/MatMul_grad/MatMul"));
        assert!(training_scope("tower_0/gradients_3/AddN"));
        assert!(training_scope("save_1/SaveV2"));
        assert!(!training_scope("saver_net/dense/MatMul"));
        assert!(!training_scope("gradient_clip/Relu"));
    }

    /// The variables TF1 does not list in `trainable_variables` are untrained; without the
    /// collection, or with an entry that is no `VariableDef`, none is.
    #[test]
    fn variables_left_out_of_the_trainable_collection_are_untrained() {
        use crate::proto::{BytesList, CollectionDef};
        let def = |name: &str| VariableDef { variable_name: format!("{name}:0") }.encode_to_vec();
        let meta = |entries: Vec<Vec<u8>>| {
            let mut mg = MetaGraphDef::default();
            let list = CollectionDef { bytes_list: Some(BytesList { value: entries }) };
            mg.collection_def.insert("trainable_variables".into(), list);
            mg
        };
        let restored: Vec<String> =
            ["conv/kernel", "temperature", "global_step"].map(String::from).to_vec();
        let left_out = untrained(&meta(vec![def("conv/kernel")]), &restored);
        assert_eq!(left_out.into_iter().collect::<Vec<_>>(), ["global_step", "temperature"]);
        assert!(untrained(&MetaGraphDef::default(), &restored).is_empty());
        assert!(untrained(&meta(vec![def("conv/kernel"), vec![0xff]]), &restored).is_empty());
    }
}
