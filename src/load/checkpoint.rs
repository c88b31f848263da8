//! TF1 checkpoints as research code released them: `model.ckpt.meta` (a MetaGraphDef of the
//! whole training graph) beside `model.ckpt.index` and `model.ckpt.data-*` (the variables'
//! values, a tensor bundle). Named by the prefix (`model.ckpt`), by any of its files, or by
//! the directory holding exactly one `.meta`.
//!
//! Such a graph rarely has a signature: the outputs are the user's `--outputs`, or the one
//! value [`tf1::candidate_outputs`] finds; the training machinery (gradients, optimizer slots,
//! savers) is pruned away with everything else the outputs do not need.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, Result};
use crate::natural::natural_cmp;
use crate::proto::{GraphDef, MetaGraphDef};

use super::inline::inline_calls;
use super::saved_model::{Flattened, Selection, library, name_inputs_by_key, needed_nodes};
use super::tf1;

/// The checkpoint prefix `path` names, if it names one: `model.ckpt` for `model.ckpt`,
/// `model.ckpt.meta`, `model.ckpt.index` or `model.ckpt.data-00000-of-00001`, or for a
/// directory with exactly one `.meta` file.
pub fn prefix_of(path: &Path) -> Option<PathBuf> {
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    if path.is_dir() {
        let mut metas: Vec<PathBuf> = std::fs::read_dir(path)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "meta") && p.is_file())
            .collect();
        return match metas.len() {
            1 => metas.pop().map(|m| m.with_extension("")),
            _ => None,
        };
    }
    let name = path.file_name()?.to_string_lossy();
    for suffix in [".meta", ".index"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return Some(path.with_file_name(stem));
        }
    }
    if let Some((stem, shard)) = name.rsplit_once(".data-")
        && shard.contains("-of-")
    {
        return Some(path.with_file_name(stem));
    }
    (!path.exists() && with(".meta").is_file()).then(|| path.to_path_buf())
}

fn meta_path(prefix: &Path) -> PathBuf {
    PathBuf::from(format!("{}.meta", prefix.display()))
}

fn read_meta_graph(prefix: &Path) -> Result<MetaGraphDef> {
    let path = meta_path(prefix);
    let bytes = std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    MetaGraphDef::decode(bytes::Bytes::from(bytes))
        .map_err(|e| Error::msg(format!("{}: not a MetaGraphDef ({e})", path.display())))
}

fn graph_of(prefix: &Path, mg: &MetaGraphDef) -> Result<GraphDef> {
    mg.graph_def.clone().filter(|g| !g.node.is_empty()).ok_or_else(|| {
        Error::msg(format!("{}: the MetaGraph has no graph", meta_path(prefix).display()))
    })
}

/// The values a user probably wants from the checkpoint at `path`, each with the placeholders
/// it reads: `probs:0 (reads images)` (for `inspect` and the error asking for `--outputs`).
pub fn candidate_outputs(path: &Path) -> Result<Vec<String>> {
    let prefix = prefix_of(path).unwrap_or_else(|| path.to_path_buf());
    let mg = read_meta_graph(&prefix)?;
    Ok(described_candidates(&graph_of(&prefix, &mg)?))
}

/// Whether the checkpoint at `path` cannot tell its outputs itself: no signature `sel` names,
/// and not exactly one candidate output.
pub fn needs_outputs(path: &Path, sel: &Selection) -> Result<bool> {
    let prefix = prefix_of(path).unwrap_or_else(|| path.to_path_buf());
    let mg = read_meta_graph(&prefix)?;
    if mg.signature_def.contains_key(&sel.signature) {
        return Ok(false);
    }
    Ok(tf1::candidate_outputs(&graph_of(&prefix, &mg)?).len() != 1)
}

fn described_candidates(graph: &GraphDef) -> Vec<String> {
    let placeholders: Vec<&str> =
        graph.node.iter().filter(|n| n.op == "Placeholder").map(|n| n.name.as_str()).collect();
    tf1::candidate_outputs(graph)
        .into_iter()
        .map(|c| {
            let cone = tf1::cone(graph, std::slice::from_ref(&c));
            let reads: Vec<&str> =
                placeholders.iter().copied().filter(|p| cone.contains(*p)).collect();
            format!("{c} (reads {})", reads.join(", "))
        })
        .collect()
}

/// Reads the checkpoint at `path` with its variables as constants, pruned to `outputs` (or to
/// the signature `sel` names, if the MetaGraph has it, or to the one candidate output).
pub fn load(path: &Path, sel: &Selection, outputs: &[String]) -> Result<Flattened> {
    let prefix = prefix_of(path).unwrap_or_else(|| path.to_path_buf());
    let mg = read_meta_graph(&prefix)?;
    let graph = graph_of(&prefix, &mg)?;
    let sig = mg.signature_def.get(&sel.signature).filter(|_| outputs.is_empty());
    let outputs: Vec<String> = match sig {
        _ if !outputs.is_empty() => outputs.to_vec(),
        Some(sig) => {
            let mut keys: Vec<&String> = sig.outputs.keys().collect();
            keys.sort_by(|a, b| natural_cmp(a, b));
            keys.iter().map(|k| sig.outputs[*k].name.clone()).collect()
        }
        None => match tf1::candidate_outputs(&graph).as_slice() {
            [one] => vec![one.clone()],
            candidates => {
                let listed = if candidates.is_empty() {
                    "none found".to_string()
                } else {
                    described_candidates(&graph).join(", ")
                };
                return Err(Error::msg(format!(
                    "{}: the checkpoint's graph has no signature saying which values are the \
                     model's outputs; name them with --outputs (candidates: {listed})",
                    path.display()
                )));
            }
        },
    };
    let replacements =
        tf1::restore_variables(&graph, &outputs, &prefix, tf1::saver_scope(&mg).as_deref())?;
    let untrained = tf1::untrained(&mg, replacements.keys());
    let nodes = needed_nodes(&graph, &outputs, &replacements);
    // A signature names the inputs by key, in key order.
    let (nodes, inputs) = match sig {
        Some(sig) => {
            let order: Vec<String> = sig.inputs.keys().cloned().collect();
            name_inputs_by_key(&graph, sig, nodes, &order)
        }
        None => (nodes, Vec::new()),
    };
    let flat = inline_calls(nodes, &library(&graph, &mg))?;
    Ok(Flattened {
        graph: GraphDef { node: flat, library: None, versions: graph.versions.clone() },
        inputs,
        outputs,
        input_keys: Vec::new(),
        output_keys: Vec::new(),
        untrained,
    })
}
