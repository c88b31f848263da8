//! tf2torch: TensorFlow graphs to readable PyTorch source.
//!
//! ```text
//! bytes ─load─▶ proto::GraphDef ─ir::build─▶ ir::Graph ─passes─▶ ir::Graph (folded, fused)
//!       ─lower─▶ py::Module ─emit (askama)─▶ model.py, custom_ops.py  ─weights─▶ model.safetensors
//! ```

pub mod emit;
pub mod error;
pub mod inspect;
pub mod ir;
pub mod load;
pub mod lower;
pub mod mapped;
pub mod natural;
pub mod ops;
pub mod output;
pub mod passes;
pub mod permute;
pub mod proto;
pub mod py;
pub mod reference;
pub mod tensor;
pub mod terminal;
#[cfg(test)]
pub mod testing;
pub mod weights;

use std::path::{Path, PathBuf};

pub use error::{Error, Result};

/// What to convert and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub input: PathBuf,
    pub out_dir: PathBuf,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub class_name: Option<String>,
    pub strict: bool,
    /// MetaGraph tags and signature, for SavedModel input.
    pub selection: load::saved_model::Selection,
    /// Weights above this many bytes are written as shards (default
    /// [`weights::DEFAULT_MAX_SHARD_BYTES`]).
    pub max_shard_bytes: Option<u64>,
}

/// What a conversion did, for the summary.
#[derive(Debug, Clone)]
pub struct Report {
    pub class_name: String,
    pub nodes: usize,
    pub layers: usize,
    pub parameters: usize,
    pub weight_bytes: usize,
    /// `model.safetensors`, or the shards and their index.
    pub weight_files: Vec<String>,
    pub forward_lines: usize,
    pub summary: lower::Summary,
    pub custom_ops_written: bool,
    pub unneeded_stubs: Vec<String>,
    /// What the user should know about the output folder (files kept aside).
    pub notes: Vec<String>,
}

/// How the original model is called in TensorFlow, for `make_reference.py`.
#[derive(Debug, Clone, Default)]
pub struct ModelIo {
    /// How `make_reference.py` opens the original: by signature keys (SavedModel) or by tensor
    /// names (frozen graph, checkpoint).
    pub kind: load::ModelKind,
    /// Frozen graph: tensor names; SavedModel: signature keys. Empty when the conversion
    /// used `--inputs/--outputs` on a SavedModel (its internal names are not callable).
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// A prepared graph and how to call its original.
pub struct Loaded {
    pub graph: ir::Graph,
    pub io: ModelIo,
}

/// Loads and prepares the graph (shared by `convert` and `inspect`).
pub fn load_graph(
    input: &Path,
    inputs: &[String],
    outputs: &[String],
    selection: &load::saved_model::Selection,
) -> Result<Loaded> {
    load_graph_observed(input, inputs, outputs, selection, &mut |_, _| {})
}

/// [`load_graph`], showing `after(pass, graph)` the graph before the passes (`"load"`) and
/// after each of them.
pub fn load_graph_observed(
    input: &Path,
    inputs: &[String],
    outputs: &[String],
    selection: &load::saved_model::Selection,
    after: &mut dyn FnMut(&str, &ir::Graph),
) -> Result<Loaded> {
    let flat = load_flat(input, selection, outputs)?;
    let kind = load::detect(input)?;
    let saved_model = !flat.input_keys.is_empty() || !flat.output_keys.is_empty();
    let overridden = !inputs.is_empty() || !outputs.is_empty();
    let inputs = if inputs.is_empty() { &flat.inputs } else { inputs };
    let outputs = if outputs.is_empty() { &flat.outputs } else { outputs };
    let mut graph = ir::build(flat.graph, inputs, outputs)?;
    graph.untrained = flat.untrained;
    // Names before the passes rewrite anything (a fused BiasAdd's output is the conv's).
    let name = |v: &ir::ValueRef| format!("{}:{}", graph.node(v.node).name, v.port);
    let io = match (saved_model, overridden) {
        (false, _) => ModelIo {
            kind,
            inputs: graph.inputs.iter().map(name).collect(),
            outputs: graph.outputs.iter().map(name).collect(),
        },
        (true, false) => ModelIo { kind, inputs: flat.input_keys, outputs: flat.output_keys },
        (true, true) => ModelIo { kind, ..ModelIo::default() },
    };
    after("load", &graph);
    passes::run_observed(&mut graph, after)?;
    Ok(Loaded { graph, io })
}

/// Any supported model as one flat GraphDef (functions inlined, variables as constants),
/// with its default inputs and outputs (empty = the GraphDef defaults).
pub fn load_flat(
    input: &Path,
    selection: &load::saved_model::Selection,
    outputs: &[String],
) -> Result<load::saved_model::Flattened> {
    match load::detect(input)? {
        load::ModelKind::FrozenGraph => Ok(load::saved_model::Flattened {
            graph: load::inline_library(load::load_graph_def(input)?)?,
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_keys: Vec::new(),
            output_keys: Vec::new(),
            // A frozen graph cannot tell: its variables are all constants alike.
            untrained: Default::default(),
        }),
        load::ModelKind::SavedModel => load::saved_model::load(input, selection),
        load::ModelKind::Checkpoint => load::checkpoint::load(input, selection, outputs),
    }
}

/// A class name from the model file name: `mobilenet_v2.pb` → `MobilenetV2`.
pub fn default_class_name(input: &Path) -> String {
    use heck::ToUpperCamelCase;
    let stem = input.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let name = py::names::identifier(&stem).to_upper_camel_case();
    if !py::names::is_valid_class_name(&name) { format!("Model{name}") } else { name }
}

/// Converts `opts.input` into `opts.out_dir`. Nothing is written unless everything succeeds.
pub fn convert(opts: &Options) -> Result<Report> {
    convert_observed(opts, &|_| {})
}

/// Where a conversion is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A stage begins: `"reading"`, `"passes"`, `"lowering"`, `"writing weights"`.
    Stage(&'static str),
    /// Bytes of weights handed to the writer so far, of `total`.
    WeightBytes { written: u64, total: u64 },
}

/// [`convert`], telling `progress` where it is.
pub fn convert_observed(opts: &Options, progress: &dyn Fn(Progress)) -> Result<Report> {
    let class_name = match &opts.class_name {
        Some(c) if py::names::is_valid_class_name(c) => c.clone(),
        Some(c) => {
            return Err(Error::msg(format!("--class-name {c:?} is not a valid Python class name")));
        }
        None => default_class_name(&opts.input),
    };
    output::Output::check(&opts.out_dir)?;
    progress(Progress::Stage("reading"));
    let mut stage = |pass: &str, _: &ir::Graph| {
        if pass == "load" {
            progress(Progress::Stage("passes"));
        }
    };
    let Loaded { graph, io } =
        load_graph_observed(&opts.input, &opts.inputs, &opts.outputs, &opts.selection, &mut stage)?;
    progress(Progress::Stage("lowering"));
    let source_name =
        opts.input.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    // Under the output's lock from here: a conversion into the same folder waits, so the
    // `custom_ops.py` read here is the one the new files replace.
    let out = output::Output::prepare(&opts.out_dir)?;
    let existing = match out.custom_ops() {
        Some(bytes) => {
            let custom_path = out.path().join(output::CUSTOM_OPS);
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| Error::CustomOps {
                path: custom_path.clone(),
                line: 1,
                message: "not UTF-8".into(),
            })?;
            let user = py::user_code::read(&text).map_err(|e| Error::CustomOps {
                path: custom_path,
                line: e.line,
                message: e.message,
            })?;
            Some((text, user))
        }
        None => None,
    };
    let user = existing.as_ref().map(|(_, u)| u.clone()).unwrap_or_default();
    let (module, summary) = lower::lower_with(&graph, &class_name, &source_name, user)?;
    if opts.strict && !summary.stubs.is_empty() {
        return Err(Error::Untranslated(summary.stubs));
    }
    let max_shard = opts.max_shard_bytes.unwrap_or(weights::DEFAULT_MAX_SHARD_BYTES);
    let sharded = weights::is_sharded(&module.weights, max_shard);
    let model_py = emit::render_model(&module, sharded)?;
    let custom = emit::render_custom_ops(&module, existing.as_ref().map(|(t, u)| (t.as_str(), u)))?;
    let unneeded =
        existing.as_ref().map(|(_, u)| emit::unneeded_stubs(&module, u)).unwrap_or_default();

    out.write("model.py", model_py.as_bytes())?;
    out.write("check.py", reference::render_check(graph.inputs.len())?.as_bytes())?;
    // A checkpoint is opened by its prefix, whichever of its files the user named.
    let model_path = match io.kind {
        load::ModelKind::Checkpoint => load::checkpoint::prefix_of(&opts.input),
        _ => None,
    }
    .unwrap_or_else(|| opts.input.clone());
    let make_reference =
        reference::render_make_reference(&graph, &io, &model_path, &opts.out_dir, &opts.selection)?;
    if let Some(m) = &make_reference {
        out.write("make_reference.py", m.as_bytes())?;
    }
    let max_shard = opts.max_shard_bytes.unwrap_or(weights::DEFAULT_MAX_SHARD_BYTES);
    progress(Progress::Stage("writing weights"));
    let total = weights::total_bytes(&module.weights) as u64;
    let written = std::cell::Cell::new(0u64);
    let on_bytes = |n: u64| {
        written.set(written.get() + n);
        progress(Progress::WeightBytes { written: written.get(), total });
    };
    let weight_files = weights::write_all(&module.weights, out.staging(), max_shard, &on_bytes)?;
    if let Some(c) = &custom {
        out.write(output::CUSTOM_OPS, c.as_bytes())?;
    }
    let notes = out.commit()?;
    Ok(Report {
        class_name,
        nodes: graph.g.node_count(),
        layers: module.layers.len(),
        parameters: module.weights.iter().map(|(_, w)| w.tensor.numel()).sum(),
        weight_bytes: weights::total_bytes(&module.weights),
        weight_files,
        forward_lines: module.forward_lines(),
        summary,
        custom_ops_written: custom.is_some(),
        unneeded_stubs: unneeded,
        notes,
    })
}
