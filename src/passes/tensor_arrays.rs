//! TF 1.x's TensorArrays (`TensorArrayV3` and the ops that read, write, scatter and gather
//! through its handle, each threading a "flow" value that orders them) become the TensorList
//! ops TF 2 writes, which the rest of the converter knows (as Python lists, or fused into a
//! recurrent layer): the flow becomes the list itself. The handles are then read by nothing and
//! pruned.
//!
//! Scatter and gather are supported for all indices in order (`unstack` and `stack`, which is
//! what `tf.nn.dynamic_rnn` and `tf.while_loop` users write); other indices stay stubs.

use petgraph::Direction;
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;

use crate::error::Result;
use crate::ir::{Graph, Node, ValueRef};
use crate::tensor::Tensor;

pub fn tensor_arrays(g: &mut Graph) -> Result<()> {
    let mut nodes: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&n| g.node(n).op.starts_with("TensorArray") && g.node(n).op.ends_with("V3"))
            .collect();
    nodes.sort_by_key(|&n| g.node(n).ordinal);
    for n in nodes {
        rewrite(g, n);
    }
    Ok(())
}

/// `Range(0, _, 1)`, or a constant `[0, 1, ..., n-1]`: every element, in order.
fn in_order(g: &Graph, v: ValueRef) -> bool {
    if let Some(t) = g.const_value(v) {
        return t.to_i64().is_some_and(|ix| ix.iter().enumerate().all(|(k, &i)| i == k as i64));
    }
    let node = g.node(v.node);
    let scalar = |slot: usize, want: i64| {
        g.inputs(v.node).get(slot).and_then(|&s| g.const_value(s)).and_then(|t| t.to_i64())
            == Some(vec![want])
    };
    node.op == "Range" && scalar(0, 0) && scalar(2, 1)
}

/// The `TensorArrayV3` a handle comes from (through `Enter` into loops, and identities).
fn array_of(g: &Graph, mut v: ValueRef) -> Option<NodeIndex> {
    for _ in 0..64 {
        match g.node(v.node).op.as_str() {
            "TensorArrayV3" => return Some(v.node),
            "Enter" | "Identity" => v = *g.inputs(v.node).first()?,
            _ => return None,
        }
    }
    None
}

/// The elements' shape (`[-1, 5]`; `-1` unknown): the op's own `element_shape` when it says
/// more than nothing, else its array's.
fn element_shape(g: &Graph, n: NodeIndex) -> Tensor {
    let known = |node: &Node| match node.attr_shape("element_shape") {
        Ok(Some(s)) => Some(s.iter().map(|d| d.map_or(-1, |d| d as i64)).collect::<Vec<_>>()),
        _ => None,
    };
    let handle = if g.node(n).op == "TensorArrayV3" { None } else { g.inputs(n).first().copied() };
    let dims = known(g.node(n))
        .or_else(|| handle.and_then(|h| array_of(g, h)).and_then(|a| known(g.node(a))))
        .unwrap_or_else(|| vec![-1]);
    Tensor::from_i64(vec![dims.len()], &dims)
}

fn rewrite(g: &mut Graph, n: NodeIndex) {
    let ins = g.inputs(n);
    let node = g.node(n);
    let dtype = node.attrs.get("dtype").or_else(|| node.attrs.get("T")).cloned();
    let shape = element_shape(g, n);
    let (name, ordinal) = (node.name.clone(), node.ordinal);
    let shape_node = |g: &mut Graph| {
        let c = g.add_node(Node::constant(format!("{name}/element_shape"), shape.clone(), ordinal));
        ValueRef { node: c, port: 0 }
    };
    let (op, inputs) = match (node.op.as_str(), ins.as_slice()) {
        ("TensorArrayV3", [size]) => {
            // The flow (output 1) is the list; the handle (output 0) goes unread.
            let s = shape_node(g);
            let mut list = Node::new(format!("{name}/list"), "TensorListReserve", ordinal);
            list.attrs.extend(dtype.map(|d| ("element_dtype".to_string(), d)));
            let list = g.add_node(list);
            g.connect(s, list, 0);
            g.connect(*size, list, 1);
            g.replace_uses(ValueRef { node: n, port: 1 }, ValueRef { node: list, port: 0 });
            return;
        }
        ("TensorArrayScatterV3", [_, indices, value, _]) if in_order(g, *indices) => {
            let s = shape_node(g);
            ("TensorListFromTensor", vec![*value, s])
        }
        ("TensorArrayReadV3", [_, index, flow]) => {
            let s = shape_node(g);
            ("TensorListGetItem", vec![*flow, *index, s])
        }
        ("TensorArrayWriteV3", [_, index, value, flow]) => {
            ("TensorListSetItem", vec![*flow, *index, *value])
        }
        ("TensorArrayGatherV3", [_, indices, flow]) if in_order(g, *indices) => {
            let s = shape_node(g);
            ("TensorListStack", vec![*flow, s])
        }
        ("TensorArraySizeV3", [_, flow]) => ("TensorListLength", vec![*flow]),
        // Anything else stays as it is: a stub.
        _ => return,
    };
    let edges: Vec<_> = g.g.edges_directed(n, Direction::Incoming).map(|e| e.id()).collect();
    for e in edges {
        g.g.remove_edge(e);
    }
    for (slot, v) in inputs.into_iter().enumerate() {
        g.connect(v, n, slot);
    }
    let node = g.node_mut(n);
    node.op = op.to_string();
    node.attrs.clear();
    // The element dtype, as TF 2 writes it on every TensorList op.
    if let Some(d) = dtype {
        node.attrs.insert("element_dtype".into(), d);
    }
}
