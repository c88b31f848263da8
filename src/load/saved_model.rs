//! TF2 SavedModel directories, read without TensorFlow: pick the MetaGraph and signature,
//! resolve captured variables to their values in the checkpoint, inline the functions, and
//! hand the converter a flat GraphDef with the signature's inputs and outputs
//! (tf-formats.md §2).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, Result};
use crate::natural::natural_cmp;
use crate::proto::attr_value::Value;
use crate::proto::parse_tensor_name;
use crate::proto::saved_object::Kind;
use crate::proto::{
    AttrValue, GraphDef, MetaGraphDef, NodeDef, SavedModel, SavedObjectGraph, SignatureDef,
    TensorProto, TensorShapeProto, TrackableObjectGraph, tensor_shape_proto,
};

use super::bundle::Bundle;
use super::inline::{Library, inline_calls};
use super::tf1;

/// What to read from a SavedModel.
#[derive(Debug, Clone)]
pub struct Selection {
    pub tags: Vec<String>,
    pub signature: String,
}

impl Default for Selection {
    fn default() -> Self {
        Selection { tags: vec!["serve".into()], signature: "serving_default".into() }
    }
}

/// A SavedModel flattened for conversion.
pub struct Flattened {
    pub graph: GraphDef,
    /// Tensor names of the inputs, in the serving function's argument order.
    pub inputs: Vec<String>,
    /// Tensor names of the outputs, in natural order of the signature's output keys.
    pub outputs: Vec<String>,
    /// SavedModel only: the signature's input keys (in `inputs` order) and output keys.
    pub input_keys: Vec<String>,
    pub output_keys: Vec<String>,
    /// The constants that hold variables the model keeps but does not train (a SavedModel
    /// variable's `trainable: false`, Keras' non-trainable weights): buffers, not parameters.
    pub untrained: BTreeSet<String>,
}

/// The directory of a SavedModel given as the directory or its `saved_model.pb`.
pub fn saved_model_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

fn read_saved_model(dir: &Path) -> Result<SavedModel> {
    let pb = dir.join("saved_model.pb");
    let pbtxt = dir.join("saved_model.pbtxt");
    if !pb.is_file() && pbtxt.is_file() {
        let text = std::fs::read_to_string(&pbtxt)
            .map_err(|source| Error::Io { path: pbtxt.clone(), source })?;
        return crate::proto::text::parse::<SavedModel>("tensorflow.SavedModel", &text)
            .map_err(|e| Error::msg(format!("{}: not a SavedModel ({e})", pbtxt.display())));
    }
    if !pb.is_file() {
        let why = if dir.join("saved_model.cpb").is_file() {
            "is a chunked SavedModel (saved_model.cpb, written for models over 2 GiB), which is not supported yet"
        } else {
            "has no saved_model.pb"
        };
        return Err(Error::Unsupported(format!("{}: {why}", dir.display())));
    }
    let bytes = std::fs::read(&pb).map_err(|source| Error::Io { path: pb.clone(), source })?;
    SavedModel::decode(bytes::Bytes::from(bytes))
        .map_err(|e| Error::msg(format!("{}: not a SavedModel ({e})", pb.display())))
}

fn describe_signatures(mg: &MetaGraphDef) -> String {
    let mut s = Vec::new();
    for (k, sig) in &mg.signature_def {
        if k.starts_with("__") {
            continue;
        }
        let ins: Vec<&str> = sig.inputs.keys().map(String::as_str).collect();
        let mut outs: Vec<&str> = sig.outputs.keys().map(String::as_str).collect();
        outs.sort_by(|a, b| natural_cmp(a, b));
        s.push(format!("{k}({}) -> ({})", ins.join(", "), outs.join(", ")));
    }
    s.join("; ")
}

/// Every usable signature of a SavedModel, for `inspect`.
pub fn list_signatures(path: &Path, tags: &[String]) -> Result<String> {
    let dir = saved_model_dir(path);
    let sm = read_saved_model(&dir)?;
    let mg = pick_meta_graph(&dir, &sm, tags)?;
    Ok(describe_signatures(mg))
}

fn pick_meta_graph<'a>(
    dir: &Path,
    sm: &'a SavedModel,
    tags: &[String],
) -> Result<&'a MetaGraphDef> {
    let want: BTreeSet<&str> = tags.iter().map(String::as_str).collect();
    let tags_of = |mg: &MetaGraphDef| -> BTreeSet<String> {
        mg.meta_info_def.as_ref().map(|m| m.tags.iter().cloned().collect()).unwrap_or_default()
    };
    sm.meta_graphs
        .iter()
        .find(|mg| tags_of(mg).iter().map(String::as_str).collect::<BTreeSet<_>>() == want)
        .ok_or_else(|| {
            let have: Vec<String> =
                sm.meta_graphs.iter().map(|mg| format!("{:?}", tags_of(mg))).collect();
            Error::msg(format!(
                "{}: no MetaGraph with tags {:?} (available: {})",
                dir.display(),
                tags,
                have.join(", ")
            ))
        })
}

/// SavedObjectGraph node id → checkpoint key of its `VARIABLE_VALUE`, found by walking the
/// object graph and the checkpoint's trackable graph together from the root, matching
/// children by name (as TensorFlow's loader does).
fn checkpoint_keys(
    objects: &SavedObjectGraph,
    trackable: &TrackableObjectGraph,
) -> BTreeMap<usize, String> {
    let mut keys = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![(0usize, 0usize)];
    while let Some((o, t)) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        let (Some(obj), Some(tr)) = (objects.nodes.get(o), trackable.nodes.get(t)) else {
            continue;
        };
        if let Some(a) = tr.attributes.iter().find(|a| a.name == "VARIABLE_VALUE") {
            keys.insert(o, a.checkpoint_key.clone());
        }
        for child in &obj.children {
            let tc = tr.children.iter().find(|c| c.local_name == child.local_name);
            if let Some(tc) = tc
                && let (Ok(oc), Ok(tc)) =
                    (usize::try_from(child.node_id), usize::try_from(tc.node_id))
            {
                stack.push((oc, tc));
            }
        }
    }
    keys
}

/// The order the serving function takes its inputs in: the wrapper's arguments are sorted
/// keys, but it passes them on to the traced function in the original positional order.
fn argument_order(graph: &GraphDef, call: &NodeDef, sig: &SignatureDef) -> Vec<String> {
    let mut sorted: Vec<String> = sig.inputs.keys().cloned().collect();
    sorted.sort();
    let Some(lib) = graph.library.as_ref() else {
        return sorted;
    };
    let fname = match call.attr.get("f").and_then(|a| a.value.as_ref()) {
        Some(Value::Func(f)) => f.name.clone(),
        _ => return sorted,
    };
    let Some(wrapper) =
        lib.function.iter().find(|f| f.signature.as_ref().is_some_and(|s| s.name == fname))
    else {
        return sorted;
    };
    let Some(wsig) = wrapper.signature.as_ref() else {
        return sorted;
    };
    // Wrapper arguments named after keys (`_user_specified_name` is the key too).
    let arg_key: BTreeMap<&str, &str> = wsig
        .input_arg
        .iter()
        .zip(call.input.iter().filter(|s| !s.starts_with('^')))
        .filter_map(|(a, input)| {
            let ph = parse_tensor_name(input)?.0;
            let key = sig
                .inputs
                .iter()
                .find(|(_, ti)| parse_tensor_name(&ti.name).map(|t| t.0) == Some(ph))?
                .0;
            Some((a.name.as_str(), key.as_str()))
        })
        .collect();
    for inner in wrapper.node_def.iter().filter(|n| n.op.ends_with("PartitionedCall")) {
        let order: Vec<String> = inner
            .input
            .iter()
            .filter_map(|i| arg_key.get(i.as_str()).map(|k| k.to_string()))
            .collect();
        if order.len() == sorted.len() {
            return order;
        }
    }
    sorted
}

/// The functions a MetaGraph's graph calls, with the OpDefs it carries (their defaults fill
/// the attributes TF stripped).
pub(super) fn library<'a>(graph: &'a GraphDef, mg: &'a MetaGraphDef) -> Library<'a> {
    let functions = graph.library.as_ref().map(|l| l.function.as_slice()).unwrap_or_default();
    let ops = mg
        .meta_info_def
        .as_ref()
        .and_then(|m| m.stripped_op_list.as_ref())
        .map(|l| l.op.as_slice())
        .unwrap_or_default();
    Library::new(functions, ops)
}

/// A `Const` node holding `t` (its bytes still a slice of the mapped checkpoint).
pub(super) fn const_node(name: &str, t: crate::tensor::Tensor, dtype_code: i32) -> NodeDef {
    let proto = TensorProto {
        dtype: dtype_code,
        tensor_shape: Some(TensorShapeProto {
            dim: t.shape.iter().map(|&d| tensor_shape_proto::Dim { size: d as i64 }).collect(),
            unknown_rank: false,
        }),
        tensor_content: t.data,
        ..Default::default()
    };
    let mut n = NodeDef { name: name.to_string(), op: "Const".into(), ..Default::default() };
    n.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(dtype_code)) });
    n.attr.insert("value".into(), AttrValue { value: Some(Value::Tensor(Box::new(proto))) });
    n
}

/// Reads and flattens the SavedModel at `path` (its directory or its `saved_model.pb`).
pub fn load(path: &Path, sel: &Selection) -> Result<Flattened> {
    let dir = saved_model_dir(path);
    let sm = read_saved_model(&dir)?;
    let mg = pick_meta_graph(&dir, &sm, &sel.tags)?;
    let sig = mg.signature_def.get(&sel.signature).ok_or_else(|| {
        Error::msg(format!(
            "{}: no signature '{}' (available: {})",
            dir.display(),
            sel.signature,
            describe_signatures(mg)
        ))
    })?;
    let graph = mg
        .graph_def
        .clone()
        .ok_or_else(|| Error::msg(format!("{}: MetaGraph has no graph", dir.display())))?;
    let by_name: BTreeMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();

    // Outputs in natural key order, inputs in argument order.
    let mut out_keys: Vec<&String> = sig.outputs.keys().collect();
    out_keys.sort_by(|a, b| natural_cmp(a, b));
    let outputs: Vec<String> = out_keys.iter().map(|k| sig.outputs[*k].name.clone()).collect();
    let calls: Vec<&NodeDef> = outputs
        .iter()
        .filter_map(|o| parse_tensor_name(o).and_then(|(n, _)| by_name.get(n).copied()))
        .filter(|n| n.op.ends_with("PartitionedCall"))
        .collect();
    let order = match calls.first() {
        Some(call) => argument_order(&graph, call, sig),
        None => sig.inputs.keys().cloned().collect(),
    };

    // TF2: the trailing inputs of each signature call are its captured variables. TF1: the
    // graph reads variables nodes a saver restores.
    let (replacements, untrained) = match &mg.object_graph_def {
        Some(objects) => captured_variables(&dir, objects, &calls, &by_name)?,
        None => {
            let prefix = dir.join("variables").join("variables");
            let scope = tf1::saver_scope(mg);
            let restored = tf1::restore_variables(&graph, &outputs, &prefix, scope.as_deref())?;
            let untrained = tf1::untrained(mg, restored.keys());
            (restored, untrained)
        }
    };

    // Keep what the signature needs, with variables as constants, and what fills the tables
    // it looks up in (see `table_initializers`).
    let mut roots = outputs.clone();
    roots.extend(table_initializers(&graph, &outputs, &replacements));
    let nodes = needed_nodes(&graph, &roots, &replacements);

    let (nodes, inputs) = name_inputs_by_key(&graph, sig, nodes, &order);

    let flat = inline_calls(nodes, &library(&graph, mg))?;
    Ok(Flattened {
        graph: GraphDef { node: flat, library: None, versions: graph.versions.clone() },
        inputs,
        outputs,
        input_keys: order,
        output_keys: out_keys.into_iter().cloned().collect(),
        untrained,
    })
}

/// The variables the signature's calls capture, as constant nodes named like the captured
/// inputs, with their values from the checkpoint (read only when there is one); and the
/// names of those the model does not train.
fn captured_variables(
    dir: &Path,
    objects: &SavedObjectGraph,
    calls: &[&NodeDef],
    by_name: &BTreeMap<&str, &NodeDef>,
) -> Result<(BTreeMap<String, NodeDef>, BTreeSet<String>)> {
    let prefix = dir.join("variables").join("variables");
    let mut replacements: BTreeMap<String, NodeDef> = BTreeMap::new();
    let mut untrained = BTreeSet::new();
    let mut checkpoint: Option<(Bundle, BTreeMap<usize, String>)> = None;
    for call in calls {
        let fname = match call.attr.get("f").and_then(|a| a.value.as_ref()) {
            Some(Value::Func(f)) => f.name.as_str(),
            _ => continue,
        };
        let Some(cf) = objects.concrete_functions.get(fname) else {
            continue;
        };
        let data: Vec<&String> = call.input.iter().filter(|s| !s.starts_with('^')).collect();
        let first = data.len().checked_sub(cf.bound_inputs.len()).ok_or_else(|| {
            Error::node(&call.name, &call.op, "has fewer inputs than captured values")
        })?;
        for (input, &obj) in data[first..].iter().zip(&cf.bound_inputs) {
            let Some((name, _)) = parse_tensor_name(input) else {
                continue;
            };
            let object = usize::try_from(obj).ok().and_then(|o| objects.nodes.get(o));
            match object.and_then(|o| o.kind.as_ref()) {
                Some(Kind::Variable(v)) => {
                    let (bundle, keys) = match &mut checkpoint {
                        Some(c) => c,
                        None => checkpoint.insert(open_checkpoint(&prefix, objects)?),
                    };
                    let key = keys.get(&(obj as usize)).ok_or_else(|| {
                        Error::msg(format!(
                            "{}: variable '{}' (object {obj}) has no value in the checkpoint's object graph",
                            prefix.display(),
                            v.name
                        ))
                    })?;
                    let t = bundle.tensor(key)?;
                    replacements.insert(name.to_string(), const_node(name, t, v.dtype));
                    if !v.trainable {
                        untrained.insert(name.to_string());
                    }
                }
                Some(Kind::Constant(_)) => {}
                // A lookup table (Keras' `IntegerLookup`): the graph's own `HashTableV2` node,
                // filled by the initializer call `table_initializers` keeps.
                Some(Kind::Resource(_)) if is_table(by_name, name) => {}
                _ => {
                    return Err(Error::Unsupported(format!(
                        "{}: captured input '{name}' of {fname} is neither a variable nor a constant",
                        dir.display()
                    )));
                }
            }
        }
    }
    Ok((replacements, untrained))
}

/// Ops that create a lookup table, and ops that fill one from keys and values (as
/// `passes::tables` reads them).
const TABLES: &[&str] = &["HashTableV2", "HashTable"];
const IMPORTS: &[&str] = &["LookupTableImportV2", "InitializeTableV2", "InitializeTable"];

/// Whether top-level node `name` creates a lookup table.
fn is_table(by_name: &BTreeMap<&str, &NodeDef>, name: &str) -> bool {
    by_name.get(name).is_some_and(|n| TABLES.contains(&n.op.as_str()))
}

/// What fills the tables the outputs look up in, which nothing the outputs need runs (the
/// SavedModel's init op does): TF2 saves each table's initializer as a function called with
/// the table and its keys and values (`StatefulPartitionedCall_2(hash_table, Const_1,
/// Const)`); a TF1 graph holds `LookupTableImportV2(table, keys, values)` itself. Kept beside
/// the outputs, so that `passes::tables` finds the contents; a table nothing fills stays
/// unknown.
fn table_initializers(
    graph: &GraphDef,
    outputs: &[String],
    replacements: &BTreeMap<String, NodeDef>,
) -> Vec<String> {
    // Most models have no table: no second walk of the graph for them.
    if !graph.node.iter().any(|n| TABLES.contains(&n.op.as_str())) {
        return Vec::new();
    }
    let needed = needed_nodes(graph, outputs, replacements);
    let tables: BTreeSet<&str> = needed
        .iter()
        .filter(|n| !replacements.contains_key(&n.name) && TABLES.contains(&n.op.as_str()))
        .map(|n| n.name.as_str())
        .collect();
    if tables.is_empty() {
        return Vec::new();
    }
    let needed: BTreeSet<&str> = needed.iter().map(|n| n.name.as_str()).collect();
    let reads_table = |n: &NodeDef| {
        n.input
            .iter()
            .filter(|i| !i.starts_with('^'))
            .any(|i| parse_tensor_name(i).is_some_and(|(t, _)| tables.contains(t)))
    };
    let fills = |n: &NodeDef| n.op.ends_with("PartitionedCall") || IMPORTS.contains(&n.op.as_str());
    graph
        .node
        .iter()
        .filter(|n| !needed.contains(n.name.as_str()) && fills(n) && reads_table(n))
        .map(|n| n.name.clone())
        .collect()
}

/// The variables' checkpoint, and the key of each variable object's value in it.
fn open_checkpoint(
    prefix: &Path,
    objects: &SavedObjectGraph,
) -> Result<(Bundle, BTreeMap<usize, String>)> {
    let bundle = Bundle::open(prefix)?;
    let tg_bytes = bundle.scalar_string("_CHECKPOINTABLE_OBJECT_GRAPH")?;
    let tg = TrackableObjectGraph::decode(tg_bytes).map_err(|e| {
        Error::msg(format!("{}: bad object graph in checkpoint: {e}", prefix.display()))
    })?;
    let keys = checkpoint_keys(objects, &tg);
    Ok((bundle, keys))
}

/// The nodes the outputs depend on, each replaced by its constant where it is a variable.
pub(super) fn needed_nodes(
    graph: &GraphDef,
    outputs: &[String],
    replacements: &BTreeMap<String, NodeDef>,
) -> Vec<NodeDef> {
    let by_name: BTreeMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> =
        outputs.iter().filter_map(|o| parse_tensor_name(o).map(|t| t.0)).collect();
    while let Some(n) = stack.pop() {
        if !needed.insert(n) || replacements.contains_key(n) {
            continue;
        }
        if let Some(node) = by_name.get(n) {
            stack.extend(
                node.input
                    .iter()
                    .map(|i| i.trim_start_matches('^'))
                    .filter_map(|i| parse_tensor_name(i).map(|t| t.0)),
            );
        }
    }
    graph
        .node
        .iter()
        .filter(|n| needed.contains(n.name.as_str()))
        .map(|n| replacements.get(&n.name).cloned().unwrap_or_else(|| n.clone()))
        .collect()
}

/// Placeholders take the signature's input keys as names (forward's parameter names), where
/// no other node has that name; returns the renamed nodes and the inputs in `order`.
pub(super) fn name_inputs_by_key(
    graph: &GraphDef,
    sig: &SignatureDef,
    nodes: Vec<NodeDef>,
    order: &[String],
) -> (Vec<NodeDef>, Vec<String>) {
    let taken: BTreeSet<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    let mut renames: BTreeMap<String, String> = BTreeMap::new();
    for (key, ti) in &sig.inputs {
        if let Some((ph, _)) = parse_tensor_name(&ti.name)
            && ph != key
            && !taken.contains(key.as_str())
        {
            renames.insert(ph.to_string(), key.clone());
        }
    }
    let rename = |s: &str| -> String {
        let (ctrl, rest) = s.strip_prefix('^').map_or(("", s), |r| ("^", r));
        match parse_tensor_name(rest) {
            Some((n, p)) if renames.contains_key(n) => format!("{ctrl}{}:{p}", renames[n]),
            _ => s.to_string(),
        }
    };
    let nodes: Vec<NodeDef> = nodes
        .into_iter()
        .map(|mut n| {
            if let Some(r) = renames.get(&n.name) {
                n.name = r.clone();
            }
            n.input = n.input.iter().map(|i| rename(i)).collect();
            n
        })
        .collect();
    let inputs: Vec<String> = order.iter().map(|k| rename(&sig.inputs[k].name)).collect();
    (nodes, inputs)
}
