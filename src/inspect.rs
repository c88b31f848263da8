//! `tf2torch inspect`: what a model holds and what a conversion would do with it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::error::Result;
use crate::ir::ValueRef;
use crate::terminal::printable;

/// How many nodes of each op the graph (and the graphs nested in it) still has.
fn count_ops<'g>(g: &'g crate::ir::Graph, out: &mut BTreeMap<&'g str, usize>) {
    for n in g.g.node_weights() {
        *out.entry(n.op.as_str()).or_default() += 1;
        for sub in n.subgraphs() {
            count_ops(sub, out);
        }
    }
}

fn describe(g: &crate::ir::Graph, v: ValueRef) -> String {
    let n = g.node(v.node);
    let info = g.info(v);
    let dtype = info.dtype.map_or("?".into(), |d| d.to_string());
    let shape = info.shape.map_or("unknown rank".into(), |s| {
        format!(
            "[{}]",
            s.iter()
                .map(|d| d.map_or("?".into(), |d| d.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    format!("{}:{}  {dtype} {shape}", printable(&n.name), v.port)
}

/// For a checkpoint whose outputs are not settled: the values a user could name.
fn checkpoint_candidates(input: &Path) -> Result<String> {
    let candidates = crate::load::checkpoint::candidate_outputs(input)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: TF1 checkpoint without a signature; choose its outputs with --outputs",
        printable(&input.display().to_string())
    );
    let _ = writeln!(s, "candidate outputs (values nothing reads, training machinery left out):");
    for c in &candidates {
        let _ = writeln!(s, "  {}", printable(c));
    }
    if candidates.is_empty() {
        let _ = writeln!(s, "  (none found: name the tensors with --outputs NODE:0,...)");
    }
    Ok(s)
}

/// The report `inspect` prints.
pub fn inspect(
    input: &Path,
    inputs: &[String],
    outputs: &[String],
    selection: &crate::load::saved_model::Selection,
) -> Result<String> {
    if outputs.is_empty()
        && crate::load::detect(input)? == crate::load::ModelKind::Checkpoint
        && crate::load::checkpoint::needs_outputs(input, selection)?
    {
        return checkpoint_candidates(input);
    }
    let flat = crate::load_flat(input, selection, outputs)?;
    let kind = match crate::load::detect(input)? {
        crate::load::ModelKind::FrozenGraph => "frozen GraphDef".to_string(),
        crate::load::ModelKind::Checkpoint => {
            "TF1 checkpoint (.meta graph and variables)".to_string()
        }
        crate::load::ModelKind::SavedModel => format!(
            "SavedModel, signature '{}' of: {}",
            selection.signature,
            crate::load::saved_model::list_signatures(input, &selection.tags)?
        ),
    };
    let inputs = if inputs.is_empty() { &flat.inputs } else { inputs };
    let outputs = if outputs.is_empty() { &flat.outputs } else { outputs };
    let gd = flat.graph;
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    for n in &gd.node {
        *hist.entry(n.op.clone()).or_default() += 1;
    }
    let total = gd.node.len();
    let mut graph = crate::ir::build(gd, inputs, outputs)?;
    crate::passes::run_all(&mut graph)?;
    let (module, summary) = crate::lower::lower(&graph, "Model", "")?;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {}; {total} nodes after inlining",
        printable(&input.display().to_string()),
        printable(&kind)
    );
    let _ = writeln!(s, "inputs:");
    for &v in &graph.inputs {
        let _ = writeln!(s, "  {}", describe(&graph, v));
    }
    let _ = writeln!(s, "outputs:");
    for &v in &graph.outputs {
        let _ = writeln!(s, "  {}", describe(&graph, v));
    }
    let _ = writeln!(s, "ops in the file:");
    // What happens to each op in this model, not what the registry could do with it.
    let mut remaining = BTreeMap::new();
    count_ops(&graph, &mut remaining);
    for (op, count) in &hist {
        let stubbed: usize =
            summary.stubs.iter().filter(|st| &st.op == op).map(|st| st.nodes.len()).sum();
        let left = remaining.get(op.as_str()).copied().unwrap_or(0);
        let status = match (stubbed, left) {
            (0, 0) if matches!(op.as_str(), "Const" | "Placeholder") => "translated".to_string(),
            (0, 0) => "removed by passes".to_string(),
            (0, _) => "translated".to_string(),
            (k, n) if k < n => format!("translated, {k} as stubs"),
            _ => "stub".to_string(),
        };
        let _ = writeln!(s, "  {count:6}  {:<28} {status}", printable(op));
    }
    if summary.stubs.is_empty() {
        let _ = writeln!(s, "every op translates; no stubs");
    } else {
        let _ = writeln!(s, "would become stubs in custom_ops.py:");
        for st in &summary.stubs {
            let _ = writeln!(
                s,
                "  {} -> {}() ({} nodes): {}",
                printable(&st.op),
                st.function,
                st.nodes.len(),
                printable(&st.reason)
            );
        }
    }
    let params: usize = module.weights.iter().map(|(_, w)| w.tensor.numel()).sum();
    let _ = writeln!(s, "parameters: {params} ({} layers)", module.layers.len());
    Ok(s)
}
