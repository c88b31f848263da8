//! `check.py` and `make_reference.py`: validation that travels with the converted model.
//! `make_reference.py` (run where TensorFlow is installed) feeds random inputs of the right
//! dtypes and shapes to the original model and saves TF's outputs; `check.py` runs
//! `model.py` on the same inputs and prints the error per output.

use std::path::{Component, Path, PathBuf};

use askama::Template;
use petgraph::Direction;
use petgraph::visit::EdgeRef;

use crate::ModelIo;
use crate::error::{Error, Result};
use crate::ir::{Graph, ValueRef};
use crate::load::ModelKind;
use crate::load::saved_model::Selection;
use crate::py::Expr;
use crate::py::printer::flat;
use crate::tensor::DType;

#[derive(Template)]
#[template(path = "check.py", escape = "none")]
struct CheckTemplate {
    num_inputs: usize,
}

#[derive(Template)]
#[template(path = "make_reference.py", escape = "none")]
struct MakeReferenceTemplate {
    model: String,
    format: String,
    signature: String,
    tags: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

pub fn render_check(num_inputs: usize) -> Result<String> {
    let mut s = CheckTemplate { num_inputs }
        .render()
        .map_err(|e| Error::msg(format!("rendering check.py: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// Integer inputs used as indices get an upper bound from what they index: the rows of a
/// constant table they are gathered from, or a one-hot depth. Default 10.
fn index_bound(graph: &Graph, v: ValueRef) -> i64 {
    let mut bound: Option<i64> = None;
    let mut stack = vec![v];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        for e in graph.g.edges_directed(v.node, Direction::Outgoing) {
            if e.weight().port != v.port {
                continue;
            }
            let (consumer, slot) = (e.target(), e.weight().slot);
            let node = graph.node(consumer);
            let input = |i: usize| graph.inputs(consumer).get(i).copied();
            let found = match (node.op.as_str(), slot) {
                ("GatherV2" | "Gather" | "ResourceGather", 1) => input(0)
                    .and_then(|p| graph.const_value(p))
                    .and_then(|t| t.shape.first().copied()),
                ("OneHot", 0) => input(1)
                    .and_then(|d| graph.const_value(d))
                    .and_then(|t| t.to_i64())
                    .and_then(|v| v.first().map(|&d| d as usize)),
                ("Cast" | "Identity" | "Reshape" | "ExpandDims" | "Squeeze", 0) => {
                    stack.push(ValueRef { node: consumer, port: 0 });
                    None
                }
                _ => None,
            };
            if let Some(b) = found {
                let b = b as i64;
                bound = Some(bound.map_or(b, |x| x.min(b)));
            }
        }
    }
    bound.unwrap_or(10).max(1)
}

/// `to` relative to the directory `from` (both made absolute first), for a default path that
/// does not depend on where the conversion ran.
fn relative_to(from: &Path, to: &Path) -> Option<String> {
    let abs = |p: &Path| -> Option<PathBuf> {
        if p.exists() {
            p.canonicalize().ok()
        } else {
            let parent = p.parent().filter(|x| !x.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(parent.canonicalize().ok()?.join(p.file_name()?))
        }
    };
    let (from, to) = (abs(from)?, abs(to)?);
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), f.len() - common).collect();
    parts.extend(t[common..].iter().map(|c| c.as_os_str().to_string_lossy().to_string()));
    Some(parts.join("/"))
}

/// The text of `make_reference.py`, or `None` when the original cannot be called by name.
pub fn render_make_reference(
    graph: &Graph,
    io: &ModelIo,
    model_path: &Path,
    out_dir: &Path,
    selection: &Selection,
) -> Result<Option<String>> {
    if io.inputs.len() != graph.inputs.len() || io.outputs.len() != graph.outputs.len() {
        return Ok(None);
    }
    let model = relative_to(out_dir, model_path).unwrap_or_else(|| {
        model_path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default()
    });
    let mut inputs = Vec::new();
    for (name, &v) in io.inputs.iter().zip(&graph.inputs) {
        let info = graph.info(v);
        let dtype = info.dtype.unwrap_or(DType::F32);
        let Some(np) = dtype.torch_name() else { return Ok(None) };
        let shape: Vec<i64> = match &info.shape {
            Some(s) => s
                .iter()
                .enumerate()
                .map(|(i, d)| d.map_or(if i == 0 { 2 } else { 8 }, |d| d as i64))
                .collect(),
            None => return Ok(None),
        };
        let high = if dtype.is_int() { index_bound(graph, v) } else { 0 };
        inputs.push(flat(&Expr::Tuple(vec![
            Expr::str_lit(name),
            Expr::str_lit(np),
            Expr::ints(&shape),
            Expr::int(high),
        ])));
    }
    let strings = |v: &[String]| Expr::List(v.iter().map(|s| Expr::str_lit(s)).collect());
    let t = MakeReferenceTemplate {
        model: flat(&Expr::str_lit(&model)),
        format: flat(&Expr::str_lit(match io.kind {
            ModelKind::FrozenGraph => "graph_def",
            ModelKind::SavedModel => "saved_model",
            ModelKind::Checkpoint => "checkpoint",
        })),
        signature: flat(&Expr::str_lit(&selection.signature)),
        tags: flat(&strings(&selection.tags)),
        inputs,
        outputs: io.outputs.iter().map(|o| flat(&Expr::str_lit(o))).collect(),
    };
    let mut s = t.render().map_err(|e| Error::msg(format!("rendering make_reference.py: {e}")))?;
    s.push('\n');
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn integer_inputs_stay_within_the_table_they_index() {
        let mut g = TestGraph::new();
        let ids = g.typed_input("token_ids", &[-1, 7], DType::I32);
        let table = g.constant("embedding", weights(&[50, 4]));
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let cast = g.op("cast", "Cast", &[ids], &[]);
        let y = g.op("lookup", "GatherV2", &[table, cast, axis], &[]);
        let graph = g.finish(&[y]);
        assert_eq!(index_bound(&graph, graph.inputs[0]), 50);
        let io = ModelIo {
            kind: ModelKind::FrozenGraph,
            inputs: vec!["token_ids:0".into()],
            outputs: vec!["lookup:0".into()],
        };
        let text = render_make_reference(
            &graph,
            &io,
            Path::new("m.pb"),
            Path::new("out"),
            &Selection::default(),
        )
        .unwrap()
        .unwrap();
        assert!(text.contains(r#"("token_ids:0", "int32", (2, 7), 50),"#), "{text}");
    }
}
