//! The IR as text, for a person finding out what a pass did: one line per node in stable
//! topological order,
//!
//! ```text
//! conv1/Conv2D = Conv2D(input_1:0, conv1/kernel:0) {padding="SAME", strides=[1, 2, 2, 1]} -> float32 [?, 112, 112, 64]
//! conv1/kernel = Const -> float32 [7, 7, 3, 64]
//! ```
//!
//! constants by dtype and shape (never their values), integer values known in part after
//! folding (`= [x:0.shape[0], 6]`), a synthetic op's parameters as its attributes, and a
//! loop's body after it, indented.

use std::fmt::Write;

use super::attrs::display;
use super::{Dim, Graph, ValueRef};
use crate::terminal::printable;

/// The graph as text; with `filter`, only the nodes whose name contains it (loop bodies are
/// searched too).
pub fn dump(g: &Graph, filter: Option<&str>) -> String {
    let mut out = String::new();
    write_graph(&mut out, g, filter, 0);
    out
}

fn value_name(g: &Graph, v: ValueRef) -> String {
    format!("{}:{}", printable(&g.node(v.node).name), v.port)
}

fn write_graph(out: &mut String, g: &Graph, filter: Option<&str>, depth: usize) {
    let pad = "    ".repeat(depth);
    let names = |vs: &[ValueRef]| vs.iter().map(|&v| value_name(g, v)).collect::<Vec<_>>();
    if filter.is_none() {
        let _ = writeln!(out, "{pad}inputs: {}", names(&g.inputs).join(", "));
        let _ = writeln!(out, "{pad}outputs: {}", names(&g.outputs).join(", "));
    }
    // A graph with a cycle (before loops are extracted) is listed in file order.
    let order = g.topo_order().unwrap_or_else(|_| {
        let mut all: Vec<_> = g.g.node_indices().collect();
        all.sort_by_key(|&n| g.node(n).ordinal);
        all
    });
    for n in order {
        let node = g.node(n);
        if filter.is_some_and(|f| !node.name.contains(f)) {
            for sub in node.subgraphs() {
                write_graph(out, sub, filter, depth);
            }
            continue;
        }
        let inputs = names(&g.inputs(n)).join(", ");
        let attrs: Vec<String> = node
            .shown_attrs()
            .iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| format!("{}={}", printable(k), printable(&display(v))))
            .collect();
        let attrs =
            if attrs.is_empty() { String::new() } else { format!(" {{{}}}", attrs.join(", ")) };
        let outs: Vec<String> = if node.outputs.is_empty() {
            vec!["?".into()]
        } else {
            node.outputs.iter().map(|o| o.describe()).collect()
        };
        let call = if node.value.is_some() || inputs.is_empty() {
            printable(&node.op)
        } else {
            format!("{}({inputs})", printable(&node.op))
        };
        let partial = node.partial.as_ref().map_or(String::new(), |p| {
            let dims: Vec<String> = p
                .values
                .iter()
                .map(|d| match d {
                    Dim::Known(v) => v.to_string(),
                    Dim::Of(v, axis) => format!("{}.shape[{axis}]", value_name(g, *v)),
                    Dim::Unknown => "?".into(),
                })
                .collect();
            if p.scalar {
                format!(" = {}", dims.join(""))
            } else {
                format!(" = [{}]", dims.join(", "))
            }
        });
        let _ = writeln!(
            out,
            "{pad}{} = {call}{attrs} -> {}{partial}",
            printable(&node.name),
            outs.join(", ")
        );
        let conditional = node.cond().is_some();
        for (k, sub) in node.subgraphs().into_iter().enumerate() {
            let label = if conditional { format!("branch {k}") } else { "body".to_string() };
            let _ = writeln!(out, "{pad}  {label}:");
            write_graph(out, sub, None, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;

    #[test]
    fn one_line_per_node_with_shapes_and_attributes() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4, 3]);
        let w = g.constant("w", weights(&[1, 1, 3, 2]));
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("conv", "Conv2D", &[x, w], &a);
        let graph = g.finish(&[y]);
        let text = super::dump(&graph, None);
        assert!(text.contains("inputs: x:0\noutputs: conv:0\n"), "{text}");
        assert!(text.contains("w = Const -> float32 [1, 1, 3, 2]\n"), "{text}");
        assert!(
            text.contains(
                "conv = Conv2D(x:0, w:0) {padding=\"VALID\", strides=[1, 1, 1, 1]} -> float32 [?, 4, 4, 2]"
            ),
            "{text}"
        );
        assert_eq!(super::dump(&graph, Some("con")).lines().count(), 1);
    }
}
