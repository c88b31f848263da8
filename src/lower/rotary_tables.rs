//! Names for a rotary embedding's cosine and sine tables where a frozen graph stored them
//! as weights of the attention layer (SAM 3's windowed ViT: `self.attention` and
//! `self.attention_2`). Each is named by what it multiplies in `x * cos + rotate(x) * sin`:
//! the table multiplying the rotated features (`rotate_half(x)`, `rotate_every_two(x)`) is
//! the `sin`, the one multiplying the features the rotation reads is the `cos`. They are
//! tables, not trained weights: the module keeps them as buffers.

use petgraph::stable_graph::NodeIndex;

use super::layout_walk::BUDGET;
use crate::ir::fused::{ROTATE_EVERY_TWO, ROTATE_HALF, ROTATE_PAIRS};
use crate::ir::{Graph, ValueRef};

/// How many layout ops may lie between the table and its product (a reshape, a cast).
const REACH: usize = 3;

/// `cos` or `sin` where constant `n` is a rotary table (see the module's doc).
pub(super) fn word(graph: &Graph, n: NodeIndex) -> Option<&'static str> {
    let t = graph.node(n).value.as_ref()?;
    if !t.dtype.is_float() || t.rank() < 2 {
        return None;
    }
    table_word(graph, ValueRef { node: n, port: 0 })
}

fn is_rotation(graph: &Graph, n: NodeIndex) -> bool {
    matches!(graph.node(n).op.as_str(), ROTATE_HALF | ROTATE_EVERY_TWO | ROTATE_PAIRS)
}

/// `sin` or `cos` for the product value `v` reaches (see the module's doc).
fn table_word(graph: &Graph, v: ValueRef) -> Option<&'static str> {
    let mut at = |reader: NodeIndex, slot: usize| {
        if graph.node(reader).op != "Mul" {
            return None;
        }
        let other = graph.inputs(reader).into_iter().nth(1 - slot.min(1))?;
        if is_rotation(graph, other.node) {
            return Some("sin");
        }
        let rotated = graph.consumers(other).into_iter().any(|(m, _)| is_rotation(graph, m));
        rotated.then_some("cos")
    };
    let mut budget = BUDGET;
    super::layout_walk::find(graph, v, REACH, &mut budget, &mut at)
}

#[cfg(test)]
mod tests {
    use crate::ir::fused::Fused;
    use crate::testing::*;

    /// SAM 3's rotary tables as a frozen graph keeps them, two weights of the attention: the
    /// one multiplying the turned features is the sine, the one multiplying the features
    /// turned is the cosine, and both are buffers.
    #[test]
    fn a_rotary_embeddings_tables_are_its_cos_and_sin() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[1, 2, 4, 16]);
        let turned = g.fused("attention/turn", Fused::RotateEveryTwo, &[x]);
        let sin = g.variable("attention/ReadVariableOp/resource", weights(&[4, 16]));
        let cos = g.variable("attention/ReadVariableOp_1/resource", weights(&[4, 16]));
        let a = g.op("attention/mul", "Mul", &[turned, sin], &[]);
        let b = g.op("attention/mul_1", "Mul", &[x, cos], &[]);
        let y = g.op("attention/add", "AddV2", &[b, a], &[]);
        let graph = g.finish(&[y]);
        let (m, _) = crate::lower::lower(&graph, "M", "test").expect("lower");
        let tables: Vec<(&str, bool)> =
            m.buffers.iter().map(|b| (b.name.as_str(), b.trainable)).collect();
        assert_eq!(tables, [("read_variable_op_sin", false), ("read_variable_op_1_cos", false)]);
    }
}
