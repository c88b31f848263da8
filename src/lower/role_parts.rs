//! Names for the values an attention's query, key or value is made of. MMDiT's joint
//! attention unbinds each stream's projection into three parts and concatenates the two
//! streams' parts: `context_block_query, context_block_key, context_block_value =
//! torch.unbind(...)`, then `q = torch.cat([context_block_query, x_block_query], dim=1)`,
//! not parts named after their scope and numbered (`context_block, x, context_block_2`).
//! T5's key, reshaped and read for its length before its heads go first, is
//! `self_attention_key`, not `self_attention`.

use super::layout_walk::sole_reader;
use crate::ir::{Graph, ValueRef};

/// Ops that only lay a value out, on the way to the role's value.
const LAYOUT: &[&str] = &["Reshape", "Transpose", "ExpandDims", "Squeeze", "Identity"];

/// The roles a part is named after, and the word it takes: the whole word, as a part
/// named `k` would take the name of the key itself, inside a block whose scope it drops
/// (Flux's `double_stream_block_value`, in its block `value`).
const PARTS_OF: &[(&str, &str)] = &[("q", "query"), ("k", "key"), ("v", "value")];

/// How many ops the walk looks through: layout and one concatenation.
const REACH: usize = 6;

/// `query`, `key` or `value`: the role of what `v` becomes through layout ops and at most
/// one concatenation, each the one reader of the value before it that reads more than its
/// shape.
pub(super) fn role_made_from(graph: &Graph, v: ValueRef) -> Option<&'static str> {
    let mut at = v;
    let mut concatenated = false;
    for _ in 0..REACH {
        let (reader, slot) = sole_reader(graph, at)?;
        let node = graph.node(reader);
        let passes = match node.op.as_str() {
            op if LAYOUT.contains(&op) => slot == 0,
            "ConcatV2" if !concatenated => {
                concatenated = true;
                // Not the axis: a part is one of the values concatenated.
                slot + 1 < graph.inputs(reader).len()
            }
            _ => false,
        };
        if !passes {
            return None;
        }
        at = ValueRef { node: reader, port: 0 };
        if let Some(role) = node.role(0) {
            return PARTS_OF.iter().find(|(r, _)| *r == role).map(|(_, word)| *word);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::role_made_from;
    use crate::testing::{TestGraph, int, int_tensor};

    /// Two streams' parts, each one of three unbound from a projection, concatenated and
    /// laid out with their heads first: the value that is the key names each part `key`. A
    /// part read for its shape too is one all the same; one read by something else, or by
    /// no such chain to the key, is none.
    #[test]
    fn parts_of_a_key_are_named_after_it() {
        let mut g = TestGraph::new();
        let a = g.input("context", &[2, 5, 3, 2, 16]);
        let b = g.input("image", &[2, 7, 3, 2, 16]);
        let unbind = |g: &mut TestGraph, name: &str, x| {
            g.op(name, "Unpack", &[x], &[("axis", int(2)), ("num", int(3))])
        };
        let (ca, ia) = (unbind(&mut g, "c/unstack", a), unbind(&mut g, "i/unstack", b));
        let (ck, ik) = (TestGraph::port(ca, 1), TestGraph::port(ia, 1));
        let axis = g.constant("axis", int_tensor(&[], &[1]));
        let cat = g.op("concat", "ConcatV2", &[ck, ik, axis], &[]);
        let perm = g.constant("perm", int_tensor(&[4], &[0, 2, 1, 3]));
        let k = g.op("k", "Transpose", &[cat, perm], &[]);
        let _shape = g.op("shape", "Shape", &[ck], &[]);
        let other = g.op("other", "Neg", &[ca], &[]);
        let mut graph = g.build(&[k, other]);
        graph.node_mut(k.node).set_role(0, Some("k"));
        assert_eq!(role_made_from(&graph, ck), Some("key"));
        assert_eq!(role_made_from(&graph, ik), Some("key"));
        // The query's part feeds a negation, not the key.
        assert_eq!(role_made_from(&graph, ca), None);
        // The key itself is given back: held for the model's output, it is no part.
        graph.outputs.push(cat);
        assert_eq!(role_made_from(&graph, ck), None);
    }
}
