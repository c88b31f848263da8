//! Names for the learned tokens a vision transformer sets before its patches, where the
//! graph's names do not say what they are (a frozen graph keeps only the layer's name: ViT's
//! class token would be `patching_and_embedding`, DINOv3's two `embeddings` and
//! `embeddings_2`). Named as timm and Hugging Face name them:
//!
//! - `class_token`: a `[1, 1, d]` weight repeated over the batch and concatenated first along
//!   the sequence (ViT, DeiT, DINOv2/3);
//! - `register_tokens`: a `[1, k, d]` weight (`k > 1`) repeated over the batch and
//!   concatenated along the sequence (DINOv2/3's registers, after the class token).
//!
//! Both must reach the concatenation through ops that only lay them out over the batch
//! (`tf.tile`, `tf.broadcast_to`, `tf.repeat`'s reshapes), so a `[1, 1, d]` bias or scale
//! added to the tokens is neither.
//!
//! - `sinks`: an attention's learned logit per head (GPT-OSS), which each query may attend
//!   to instead of any key: a weight of one value per head (`[h]`, or `[1, h, 1, 1]` as a
//!   frozen graph keeps it) laid out over the scores, concatenated after them along the
//!   keys and normalised with them by a softmax, as Hugging Face's `self.sinks`.

use petgraph::stable_graph::NodeIndex;

use super::layout_walk::BUDGET;
use crate::ir::{Graph, ValueRef};

/// How many layout ops may lie between the weight and the concatenation: `tf.repeat` is an
/// expand, a tile and a reshape, with an identity or a cast on the way.
const REACH: usize = 5;

/// The name of constant `n` if it is a learned token or an attention's sinks (see the
/// module's doc).
pub(super) fn word(graph: &Graph, n: NodeIndex) -> Option<&'static str> {
    token(graph, n).or_else(|| sinks(graph, n))
}

/// How many ops may lie between a concatenation of scores and their softmax (`x - max(x)`
/// before it, as keras-hub writes a stable softmax).
const TO_SOFTMAX: usize = 3;

/// `sinks` where constant `n` is an attention's sinks (see the module's doc).
fn sinks(graph: &Graph, n: NodeIndex) -> Option<&'static str> {
    let t = graph.node(n).value.as_ref()?;
    let per_head = t.shape.iter().filter(|&&d| d != 1).count() <= 1;
    if !t.dtype.is_float() || !(1..=4).contains(&t.rank()) || !per_head {
        return None;
    }
    let mut budget = BUDGET;
    let concat = last_along_keys(graph, ValueRef { node: n, port: 0 }, &mut budget)?;
    let scores = ValueRef { node: concat, port: 0 };
    reaches_softmax(graph, scores, TO_SOFTMAX, &mut budget).then_some("sinks")
}

/// The concatenation value `v` ends along the last axis, reached through ops that only lay
/// it out.
fn last_along_keys(graph: &Graph, v: ValueRef, budget: &mut usize) -> Option<NodeIndex> {
    let mut at = |reader: NodeIndex, slot: usize| {
        if graph.node(reader).op != "ConcatV2" {
            return None;
        }
        let inputs = graph.inputs(reader);
        let axis = inputs.last().and_then(|&a| graph.const_value(a))?.to_i64()?;
        let rank = graph.info(ValueRef { node: reader, port: 0 }).shape.map(|s| s.len());
        let last_axis = match axis.as_slice() {
            [-1] => true,
            &[a] => rank.is_some_and(|r| usize::try_from(a).is_ok_and(|a| a + 1 == r)),
            _ => false,
        };
        (last_axis && slot + 2 == inputs.len()).then_some(reader)
    };
    super::layout_walk::find(graph, v, REACH, budget, &mut at)
}

/// Whether value `v` is normalised by a softmax within `reach` ops.
fn reaches_softmax(graph: &Graph, v: ValueRef, reach: usize, budget: &mut usize) -> bool {
    if reach == 0 {
        return false;
    }
    graph.consumers(v).into_iter().any(|(reader, _)| {
        let Some(left) = budget.checked_sub(1) else { return false };
        *budget = left;
        graph.node(reader).op == "Softmax"
            || reaches_softmax(graph, ValueRef { node: reader, port: 0 }, reach - 1, budget)
    })
}

/// The name of constant `n` (`[1, k, d]`) if it is a learned token.
fn token(graph: &Graph, n: NodeIndex) -> Option<&'static str> {
    let t = graph.node(n).value.as_ref()?;
    let (1, k, _) = (t.shape.first().copied()?, *t.shape.get(1)?, *t.shape.get(2)?) else {
        return None;
    };
    if t.rank() != 3 || !t.dtype.is_float() {
        return None;
    }
    let mut budget = BUDGET;
    let v = ValueRef { node: n, port: 0 };
    let (position, _) = concatenated(graph, v, REACH, false, &mut budget)?;
    match k {
        1 if position == 0 => Some("class_token"),
        k if k > 1 => Some("register_tokens"),
        _ => None,
    }
}

/// Where value `v` (rank 3) goes into a concatenation along the sequence axis, through ops
/// that only lay it out (one of which must repeat it over the batch): the input slot and the
/// concatenation.
fn concatenated(
    graph: &Graph,
    v: ValueRef,
    reach: usize,
    repeated: bool,
    budget: &mut usize,
) -> Option<(usize, NodeIndex)> {
    if reach == 0 {
        return None;
    }
    for (reader, slot) in graph.consumers(v) {
        *budget = budget.checked_sub(1)?;
        let node = graph.node(reader);
        match node.op.as_str() {
            "ConcatV2" if repeated && sequence_axis(graph, reader) => return Some((slot, reader)),
            op @ ("Tile" | "BroadcastTo" | "Identity" | "Cast" | "ExpandDims" | "Reshape")
                if slot == 0 =>
            {
                let repeats = repeated || matches!(op, "Tile" | "BroadcastTo");
                let out = ValueRef { node: reader, port: 0 };
                if let Some(found) = concatenated(graph, out, reach - 1, repeats, budget) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether concatenation `n` (of rank-3 values) joins them along axis 1, the sequence.
fn sequence_axis(graph: &Graph, n: NodeIndex) -> bool {
    let Some(axis) = graph.inputs(n).last().and_then(|&a| graph.const_value(a)) else {
        return false;
    };
    let rank_3 = graph.info(ValueRef { node: n, port: 0 }).shape.is_some_and(|s| s.len() == 3);
    rank_3 && matches!(axis.to_i64().as_deref(), Some([1] | [-2]))
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A ViT's embedding layer: its class token tiled over the batch and set before the
    /// patches, then DINOv3's register tokens after it, and a `[1, 1, d]` bias that is no
    /// token (added, not concatenated). The layer's only name for them is its own.
    #[test]
    fn tokens_set_before_the_patches_are_named_for_what_they_are() {
        let mut g = TestGraph::new();
        let x = g.input("patches", &[2, 4, 8]);
        let batch = g.constant("embeddings/multiples", int_tensor(&[3], &[2, 1, 1]));
        let axis = g.constant("embeddings/axis", int_tensor(&[], &[1]));
        let cls = g.variable("embeddings/ReadVariableOp/resource", weights(&[1, 1, 8]));
        let cls = g.op("embeddings/Tile", "Tile", &[cls, batch], &[]);
        let with_cls = g.op("embeddings/concat", "ConcatV2", &[cls, x, axis], &[("N", int(2))]);
        let reg = g.variable("embeddings/ReadVariableOp_1/resource", weights(&[1, 3, 8]));
        let reg = g.op("embeddings/Tile_1", "Tile", &[reg, batch], &[]);
        let inputs = [with_cls, reg, axis];
        let all = g.op("embeddings/concat_1", "ConcatV2", &inputs, &[("N", int(2))]);
        let bias = g.variable("head/add/ReadVariableOp/resource", weights(&[1, 1, 8]));
        let y = g.op("head/add", "AddV2", &[all, bias], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.embeddings_class_token: [1, 1, 8] float32
        self.embeddings_register_tokens: [1, 3, 8] float32
        self.head: [1, 1, 8] float32
        # embeddings_class_token: [1, 1, 8]
        # embeddings_register_tokens: [1, 3, 8]
        # head: [1, 1, 8]
        ---
        x = self.embeddings_class_token.repeat(2, 1, 1)
        x = torch.cat([x, patches], dim=1)
        embeddings = self.embeddings_register_tokens.repeat(2, 1, 1)
        x = torch.cat([x, embeddings], dim=1)
        x = x + self.head
        return x
        ");
    }

    /// GPT-OSS's attention sinks as a frozen graph keeps them, `[1, h, 1, 1]` in the
    /// attention's scope: laid out over the scores, set after them along the keys and
    /// normalised with them, they are `sinks`; the same weight set beside values that no
    /// softmax normalises is not.
    #[test]
    fn a_logit_per_head_set_after_the_scores_is_the_sinks() {
        let lower = |softmax: bool| {
            let mut g = TestGraph::new();
            let scores = g.input("scores", &[2, 2, 4, 4]);
            let shape = g.constant("block/shape", int_tensor(&[4], &[2, 2, 4, 1]));
            let axis = g.constant("block/axis", int_tensor(&[], &[-1]));
            let sinks = g.variable("block/ReadVariableOp/resource", weights(&[1, 2, 1, 1]));
            let sinks = g.op("block/BroadcastTo", "BroadcastTo", &[sinks, shape], &[]);
            let both = [scores, sinks, axis];
            let all = g.op("block/concat", "ConcatV2", &both, &[("N", int(2))]);
            let y = if softmax { g.op("block/Softmax", "Softmax", &[all], &[]) } else { all };
            g.lower(&[y])
        };
        let code = lower(true);
        assert!(code.contains("_sinks: [1, 2, 1, 1] float32"), "{code}");
        let code = lower(false);
        assert!(!code.contains("sinks"), "{code}");
    }
}
