//! Reading model files into `proto::GraphDef`.
//!
//! The file is memory-mapped and decoded from a `Bytes` that owns the map, so the large
//! `tensor_content` fields of the weights are slices of the file rather than copies.

pub mod bundle;
pub mod checkpoint;
mod control_flow;
pub mod inline;
pub mod saved_model;
pub mod tf1;

use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};
use crate::proto::GraphDef;

/// What kind of model a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    #[default]
    FrozenGraph,
    SavedModel,
    /// A TF1 checkpoint: `.meta` graph and tensor bundle.
    Checkpoint,
}

/// Names the kind of model at `path` without reading it, or says why it is neither.
pub fn detect(path: &Path) -> Result<ModelKind> {
    let saved_model = |d: &Path| {
        ["saved_model.pb", "saved_model.pbtxt", "saved_model.cpb"]
            .iter()
            .any(|f| d.join(f).is_file())
    };
    if !(path.is_dir() && saved_model(path)) && checkpoint::prefix_of(path).is_some() {
        return Ok(ModelKind::Checkpoint);
    }
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.into(), source })?;
    if meta.is_dir() {
        if saved_model(path) {
            return Ok(ModelKind::SavedModel);
        }
        return Err(Error::Unsupported(format!(
            "{}: is a directory without saved_model.pb or a checkpoint's .meta file; expected \
             a SavedModel, a TF1 checkpoint or a frozen GraphDef (.pb) file",
            path.display()
        )));
    }
    let saved_model_file = ["saved_model.pb", "saved_model.pbtxt", "saved_model.cpb"];
    if path.file_name().is_some_and(|n| saved_model_file.iter().any(|f| n == *f)) {
        return Ok(ModelKind::SavedModel);
    }
    Ok(ModelKind::FrozenGraph)
}

/// Reads a frozen GraphDef. Any other input gets an error that says what it is.
pub fn load_graph_def(path: &Path) -> Result<GraphDef> {
    let kind = detect(path)?;
    if kind != ModelKind::FrozenGraph {
        return Err(Error::Unsupported(format!(
            "{}: is a {kind:?}, not a frozen GraphDef",
            path.display()
        )));
    }
    let map = crate::mapped::map(path)?;
    if map.is_empty() {
        return Err(not_a_graph(path, "the file is empty"));
    }
    let graph = if is_text_name(path) {
        let text = std::str::from_utf8(&map)
            .map_err(|_| not_a_graph(path, "a text-format graph must be UTF-8"))?;
        crate::proto::text::parse::<GraphDef>("tensorflow.GraphDef", text)
            .map_err(|e| not_a_graph(path, &format!("text-format parsing failed: {e}")))?
    } else {
        let text = std::str::from_utf8(&map).ok().map(str::to_owned);
        match GraphDef::decode(map) {
            Ok(g) => g,
            // A text graph saved under a binary name (`graph.pb`) is read as what it is.
            Err(e) => match text
                .and_then(|t| crate::proto::text::parse::<GraphDef>("tensorflow.GraphDef", &t).ok())
            {
                Some(g) => g,
                None => {
                    return Err(not_a_graph(path, &format!("protobuf decoding failed: {e}")));
                }
            },
        }
    };
    validate(path, &graph)?;
    Ok(graph)
}

/// Inlines the function calls of a frozen GraphDef that still has a function library (Keras 3
/// models such as ConvNeXt freeze that way).
pub fn inline_library(mut gd: GraphDef) -> Result<GraphDef> {
    let Some(library) = gd.library.take() else {
        return Ok(gd);
    };
    if library.function.is_empty() {
        return Ok(gd);
    }
    let lib = inline::Library::new(&library.function, &[]);
    gd.node = inline::inline_calls(std::mem::take(&mut gd.node), &lib)?;
    Ok(gd)
}

/// Names of text-format protobuf files (`tf.io.write_graph(..., as_text=True)` writes `.pbtxt`).
pub fn is_text_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        ["pbtxt", "pbtext", "prototxt", "txt"].iter().any(|t| e.eq_ignore_ascii_case(t))
    })
}

fn not_a_graph(path: &Path, reason: &str) -> Error {
    Error::NotAGraphDef { path: path.into(), reason: reason.to_string() }
}

/// Bytes that decode as protobuf are not necessarily a GraphDef: reject what TF would reject.
fn validate(path: &Path, g: &GraphDef) -> Result<()> {
    if g.node.is_empty() {
        return Err(not_a_graph(path, "it has no nodes"));
    }
    for (i, n) in g.node.iter().enumerate() {
        if n.name.is_empty() || n.op.is_empty() {
            return Err(not_a_graph(path, &format!("node #{i} has no name or no op")));
        }
    }
    Ok(())
}
