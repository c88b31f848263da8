//! The order statements are written in, and how many readers each value has.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use super::Lowerer;
use crate::ir::ValueRef;

impl Lowerer<'_> {
    /// Each value computed just before it is first needed: a depth-first walk from the outputs,
    /// inputs in slot order, so a layer's helper computations (masks, shapes) sit inside the
    /// layer rather than at the top of `forward`, and the order follows the data, not how a
    /// producer happened to number its nodes.
    pub(super) fn demand_order(&self, topo: &[NodeIndex]) -> Vec<NodeIndex> {
        let g = self.graph;
        // Deeper inputs first, so cheap side computations (a mask from the model input) are
        // emitted last, right before the node that needs them.
        let mut level: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        // Before depth, the number of weighted layers a value has passed through: it tells the
        // main stream from a side computation the same way in every layer of a stack (in the
        // first layer a mask or position bias built from a model input can be as deep as the
        // main stream; in the tenth it never is), so repeated layers keep one statement order
        // and stay one class.
        let mut layers: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for &n in topo {
            // A computation shared by the layers is computed before them: the layers read it
            // as they read an input, as deep in every layer (else the first layer's order
            // could differ).
            let shared = g.node(n).shared;
            let inputs: Vec<ValueRef> =
                g.inputs(n).into_iter().filter(|v| shared || !g.node(v.node).shared).collect();
            let l = inputs.iter().map(|v| level.get(&v.node).map_or(0, |l| l + 1)).max();
            level.insert(n, l.unwrap_or(0));
            let weighted = inputs.iter().any(|v| {
                g.node(v.node)
                    .value
                    .as_ref()
                    .is_some_and(|t| t.dtype.is_float() && t.shape.len() >= 2)
            });
            let l = inputs.iter().filter_map(|v| layers.get(&v.node)).max().copied();
            layers.insert(n, l.unwrap_or(0) + usize::from(weighted));
        }
        let mut done = BTreeSet::new();
        let mut order = Vec::with_capacity(topo.len());
        let mut roots: Vec<NodeIndex> = Vec::new();
        roots.extend(g.outputs.iter().map(|v| v.node));
        // Nodes no output depends on (kept by the caller's pruning choices) come last.
        roots.extend(topo.iter().copied());
        for root in roots {
            // Iterative post-order: (node, inputs pushed?)
            let mut stack = vec![(root, false)];
            while let Some((n, expanded)) = stack.pop() {
                if done.contains(&n) {
                    continue;
                }
                if expanded {
                    done.insert(n);
                    order.push(n);
                    continue;
                }
                stack.push((n, true));
                let mut inputs: Vec<(usize, usize, usize, NodeIndex)> = g
                    .inputs(n)
                    .iter()
                    .enumerate()
                    .map(|(slot, v)| {
                        let depth = level.get(&v.node).copied().unwrap_or(0);
                        let weighted = layers.get(&v.node).copied().unwrap_or(0);
                        (usize::MAX - weighted, usize::MAX - depth, slot, v.node)
                    })
                    .collect();
                inputs.sort();
                for &(_, _, _, m) in inputs.iter().rev() {
                    if !done.contains(&m) {
                        stack.push((m, false));
                    }
                }
            }
        }
        let layers = self.layers_of(&order);
        let layer = |n: NodeIndex| layers.get(&n).cloned();
        let order = sink_to_readers(g, order, layer);
        let order = shared_first(g, order, layer);
        // Layers that are scopes of their own (`joint_block_0/...`, `joint_block_0_1/...`
        // where Keras numbered the call), not a numbered word inside one (NASNet's
        // `separable_conv_1_normal_left1_5`: its branches interleave).
        let called = |c: &str, l: &str| {
            let suffix = c.strip_prefix(l).map(|r| r.strip_prefix('_').unwrap_or(r));
            suffix.is_some_and(|r| r.bytes().all(|b| b.is_ascii_digit()))
        };
        // A scope, not the op's own name (`Cast_2` and `Cast_2_1`, two casts TF numbered).
        let whole = |n: NodeIndex| {
            let name = &g.node(n).name;
            let scopes = name.rsplit_once('/').map_or("", |(s, _)| s);
            layer(n).filter(|l| scopes.split('/').any(|c| called(c, l)))
        };
        let order = layers_in_turn(g, order, whole);
        self.align_siblings(order)
    }

    /// The layer each node belongs to: its outermost numbered scope with a sibling
    /// (`decoder_layer_0` of `decoder_layer_0/merged_attention/key_3`, where `decoder_layer_1`
    /// exists; not `key_3`, nor `encoder_1` alone, the suffix Keras gives a second call).
    fn layers_of(&self, order: &[NodeIndex]) -> BTreeMap<NodeIndex, String> {
        let g = self.graph;
        let tags: Vec<(NodeIndex, Vec<(String, String)>)> =
            order.iter().map(|&n| (n, sibling_tags(&self.scope_of(n)))).collect();
        let mut members: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (n, tags) in &tags {
            if !super::is_source(g, *n) && !g.node(*n).shared {
                for (family, prefix) in tags {
                    members.entry(family).or_default().insert(prefix);
                }
            }
        }
        let layer = |tags: &[(String, String)]| {
            tags.iter()
                .find(|(family, _)| members.get(family.as_str()).is_some_and(|m| m.len() >= 2))
                .map(|(_, prefix)| prefix.clone())
        };
        tags.iter().filter_map(|(n, t)| Some((*n, layer(t)?))).collect()
    }

    /// `order` with the nodes of repeated scopes (`encoder_layer_0`, `encoder_layer_1`, ...)
    /// in one order: the last sibling's, matched node for node by structure. The demand
    /// order ranks a node's inputs by how deep they are, and in a stack's first layer a side
    /// input (DeBERTa's relative embeddings, weights of their own) can be as deep as the main
    /// stream, which it never is later: the first layer would be written in another order
    /// and could not share the layers' class.
    fn align_siblings(&self, mut order: Vec<NodeIndex>) -> Vec<NodeIndex> {
        let g = self.graph;
        // Each sibling (family, instance prefix) and its nodes, in order.
        let mut families: BTreeMap<String, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
        let mut firsts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (i, &n) in order.iter().enumerate() {
            // Inputs and constants are values, not statements: they stay where they are.
            if g.node(n).shared || super::is_source(g, n) {
                continue;
            }
            let scope = self.scope_of(n);
            for (family, prefix) in sibling_tags(&scope) {
                firsts.entry((family.clone(), prefix.clone())).or_insert(i);
                families.entry(family).or_default().entry(prefix).or_default().push(i);
            }
        }
        for (family, members) in families {
            if members.len() < 2 || members.values().map(Vec::len).sum::<usize>() > MAX_ALIGNED {
                continue;
            }
            // Siblings in the order they appear; the reference is the last of the size most
            // have (Stable Diffusion 3's last joint block has no text stream after its
            // attention: the others are one class, and the first must follow them).
            let mut siblings: Vec<(&String, &Vec<usize>)> = members.iter().collect();
            siblings.sort_by_key(|(p, _)| firsts[&(family.clone(), (*p).clone())]);
            let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
            for (_, positions) in &siblings {
                *sizes.entry(positions.len()).or_default() += 1;
            }
            let common = |len: usize| sizes[&len];
            let Some(reference) = (0..siblings.len()).rev().max_by_key(|&k| {
                (common(siblings[k].1.len()), std::cmp::Reverse(siblings.len() - k))
            }) else {
                continue;
            };
            let (ref_prefix, ref_positions) = siblings[reference];
            let ref_keys = self.structure_keys(&order, ref_positions, ref_prefix);
            for (k, &(prefix, positions)) in siblings.iter().enumerate() {
                if k == reference || positions.len() != ref_positions.len() {
                    continue;
                }
                let keys = self.structure_keys(&order, positions, prefix);
                let mut by_key: BTreeMap<u64, std::collections::VecDeque<NodeIndex>> =
                    BTreeMap::new();
                for (&p, &k) in positions.iter().zip(&keys) {
                    by_key.entry(k).or_default().push_back(order[p]);
                }
                let Some(nodes) = ref_keys
                    .iter()
                    .map(|k| by_key.get_mut(k).and_then(|q| q.pop_front()))
                    .collect::<Option<Vec<NodeIndex>>>()
                else {
                    continue;
                };
                let before: Vec<NodeIndex> = positions.iter().map(|&p| order[p]).collect();
                for (&p, &n) in positions.iter().zip(&nodes) {
                    order[p] = n;
                }
                let (first, last) = (positions[0], positions[positions.len() - 1]);
                // A sibling spread over much of `forward` is no block (and checking it would
                // cost as much as the whole order, for each one).
                let spread = last - first + 1 > 4 * positions.len() + 64;
                if spread || !is_topological(g, &order, first..last + 1) {
                    for (&p, &n) in positions.iter().zip(&before) {
                        order[p] = n;
                    }
                }
            }
        }
        order
    }

    /// A key per node at `positions` of `order`: its op, attributes, scope below the
    /// sibling's `prefix` and its inputs' keys (inputs from outside the sibling alike), so
    /// nodes of two siblings computing the same thing in the same place share a key.
    fn structure_keys(&self, order: &[NodeIndex], positions: &[usize], prefix: &str) -> Vec<u64> {
        use std::hash::{Hash, Hasher};
        let g = self.graph;
        let mut keys: BTreeMap<NodeIndex, u64> = BTreeMap::new();
        let mut out = Vec::with_capacity(positions.len());
        for &p in positions {
            let n = order[p];
            let node = g.node(n);
            // Fixed keys: the same graph gives the same hashes on every run.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            node.op.hash(&mut h);
            format!("{:?}", node.attrs).hash(&mut h);
            // Counters aside: Keras numbers the unnamed layers over the whole model (the
            // first joint block's `activation` is the third's `activation_5`).
            let scope = self.scope_of(n);
            let within = scope.strip_prefix(prefix).map(|s| {
                let words = s.split('_').filter(|w| !w.bytes().all(|b| b.is_ascii_digit()));
                words.collect::<Vec<_>>().join("_")
            });
            within.hash(&mut h);
            for v in g.inputs(n) {
                keys.get(&v.node).copied().unwrap_or(0).hash(&mut h);
                v.port.hash(&mut h);
            }
            let key = h.finish();
            keys.insert(n, key);
            out.push(key);
        }
        out
    }

    /// Records how many readers each value has (names are freed by them).
    pub(super) fn count_uses(&mut self, order: &[NodeIndex]) {
        for &n in order {
            for port in 0..self.graph.node(n).outputs.len().max(1) {
                let v = ValueRef { node: n, port };
                let uses = self.graph.use_count(v);
                if uses > 0 {
                    self.remaining.insert(v, uses);
                }
            }
        }
    }
}

/// Siblings aligned by [`Lowerer::align_siblings`] have at most this many nodes in all (the
/// keys hash attributes).
const MAX_ALIGNED: usize = 200_000;

/// Statements a layer must be held across before [`sink_to_readers`] moves it.
const MIN_SINK: usize = 12;

/// Whether `n` applies weights: reads a float constant of two or more axes (a projection's
/// kernel). Only layers are sunk: other statements moved past a mask computed inside a layer
/// would leave that mask chained to the layer's own statements, where it cannot be moved out.
fn applies_weights(g: &crate::ir::Graph, n: NodeIndex) -> bool {
    g.inputs(n).iter().any(|v| {
        g.node(v.node).value.as_ref().is_some_and(|t| t.dtype.is_float() && t.shape.len() >= 2)
    })
}

/// Each scope prefix ending in a numbered token, with its family (`encoder_layer_#`):
/// `encoder_layer_0_attention` → (`encoder_layer_#`, `encoder_layer_0`).
fn sibling_tags(scope: &str) -> Vec<(String, String)> {
    let tokens: Vec<&str> = scope.split('_').collect();
    let mut out = Vec::new();
    for k in 1..=tokens.len().min(crate::lower::blocks::MAX_PREFIX_TOKENS) {
        let last = tokens[k - 1];
        if !last.bytes().any(|b| b.is_ascii_digit()) {
            continue;
        }
        let numbered: String =
            last.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
        let family: Vec<&str> = tokens[..k - 1].iter().copied().chain([&*numbered]).collect();
        out.push((family.join("_"), tokens[..k].join("_")));
    }
    out
}

/// Whether every node in `range` of `order` comes after the computed values it reads from
/// `range` (those before it were computed before; inputs and constants are always there).
fn is_topological(
    g: &crate::ir::Graph,
    order: &[NodeIndex],
    range: std::ops::Range<usize>,
) -> bool {
    let position: BTreeMap<NodeIndex, usize> = order[range.clone()]
        .iter()
        .enumerate()
        .filter(|&(_, &n)| !super::is_source(g, n))
        .map(|(i, &n)| (n, i))
        .collect();
    order[range]
        .iter()
        .enumerate()
        .all(|(i, &n)| g.inputs(n).iter().all(|v| position.get(&v.node).is_none_or(|&p| p < i)))
}

/// `order` with each computation several scopes share (`Node::shared`) moved up to just after
/// the last value it reads: the scopes read it as an input, so it is computed before the
/// first of them rather than inside it. Shared nodes keep their order among themselves.
/// One shared by parts of a single `layer` (Gemma's query and key reading one table of
/// rotary angles, made per layer as the layers' frequencies differ) moves no higher than
/// that layer's first statement: it is computed inside that layer, not before all of them.
fn shared_first(
    g: &crate::ir::Graph,
    order: Vec<NodeIndex>,
    layer: impl Fn(NodeIndex) -> Option<String>,
) -> Vec<NodeIndex> {
    let is_shared = |n: NodeIndex| g.node(n).shared;
    if !order.iter().any(|&n| is_shared(n)) {
        return order;
    }
    let base: Vec<NodeIndex> = order.iter().copied().filter(|&n| !is_shared(n)).collect();
    // Inputs and constants are there from the start: only computed values anchor.
    let source = |n: NodeIndex| g.node(n).op == "Placeholder" || g.node(n).value.is_some();
    let position: BTreeMap<NodeIndex, usize> =
        base.iter().enumerate().filter(|&(_, &n)| !source(n)).map(|(i, &n)| (n, i + 1)).collect();
    // Shared nodes after base position `p` (0: before everything).
    let mut after: BTreeMap<usize, Vec<NodeIndex>> = BTreeMap::new();
    let mut anchor: BTreeMap<NodeIndex, usize> = BTreeMap::new();
    let shared: Vec<NodeIndex> = order.iter().copied().filter(|&n| is_shared(n)).collect();
    // Where each layer's first statement is (shared nodes go before it).
    let mut layer_start: BTreeMap<String, usize> = BTreeMap::new();
    for (i, &n) in base.iter().enumerate() {
        if let Some(l) = layer(n).filter(|_| !source(n)) {
            layer_start.entry(l).or_insert(i);
        }
    }
    // No later than its first reader, nor than what its shared readers must precede.
    let mut before: BTreeMap<NodeIndex, usize> = BTreeMap::new();
    for &n in shared.iter().rev() {
        let latest =
            g.g.neighbors_directed(n, petgraph::Direction::Outgoing)
                .filter_map(|r| position.get(&r).map(|p| p - 1).or_else(|| before.get(&r).copied()))
                .min()
                .unwrap_or(usize::MAX);
        before.insert(n, latest);
    }
    for &n in &shared {
        let at = g
            .inputs(n)
            .iter()
            .filter_map(|v| position.get(&v.node).or_else(|| anchor.get(&v.node)).copied())
            .max()
            .unwrap_or(0);
        let floor = layer(n).and_then(|l| layer_start.get(&l).copied()).unwrap_or(0);
        anchor.insert(n, at.max(floor.min(before[&n])));
    }
    // What reads only the model's inputs waits for the first shared computation that reads
    // it (the padding mask's reshape sits with the causal mask it is combined with).
    for &n in shared.iter().rev() {
        if anchor[&n] == 0 {
            let readers = g.g.neighbors_directed(n, petgraph::Direction::Outgoing);
            if let Some(first) = readers.filter_map(|r| anchor.get(&r)).min().copied() {
                anchor.insert(n, first);
            }
        }
    }
    for &n in &shared {
        after.entry(anchor[&n]).or_default().push(n);
    }
    let mut out = Vec::with_capacity(order.len());
    out.extend(after.remove(&0).unwrap_or_default());
    for (i, n) in base.into_iter().enumerate() {
        out.push(n);
        out.extend(after.remove(&(i + 1)).unwrap_or_default());
    }
    out
}

/// `order` with each layer's statements together: what a later layer computes inside an
/// earlier one's statements, and no statement of the earlier one reads, moves to just after
/// the earlier layer's last statement, in its order. Two streams that meet in every layer
/// (Stable Diffusion 3's and Flux's image and text streams) finish one after the other, so
/// the demand order starts the next layer's text stream (and its modulation, read from the
/// conditioning vector alone) before the image stream of this one has ended: no layer's
/// statements were contiguous, and none could be a class.
fn layers_in_turn(
    g: &crate::ir::Graph,
    mut order: Vec<NodeIndex>,
    layer: impl Fn(NodeIndex) -> Option<String>,
) -> Vec<NodeIndex> {
    // Each statement's layer, ranked by where the layer's first statement is, and where
    // each layer's first and last statements are.
    let mut ranks: BTreeMap<String, usize> = BTreeMap::new();
    let mut rank: BTreeMap<NodeIndex, usize> = BTreeMap::new();
    let (mut first, mut last): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for (i, &n) in order.iter().enumerate() {
        if let Some(l) = layer(n).filter(|_| !super::is_source(g, n)) {
            let next = ranks.len();
            let r = *ranks.entry(l).or_insert(next);
            if r == first.len() {
                first.push(i);
                last.push(i);
            }
            last[r] = i;
            rank.insert(n, r);
        }
    }
    for k in 0..first.len() {
        let (start, end) = (first[k], last[k]);
        // Statements of no layer in the span that read nothing of this layer's and compute
        // with weights or from them (the text embedding the first joint block reads,
        // computed where it first needs it) go before it, as inputs the layer reads: else
        // its siblings' order cannot be its own. A mask made from a model input alone stays
        // where it is needed.
        let mut tied: BTreeSet<NodeIndex> = BTreeSet::new();
        let mut free: Vec<NodeIndex> = Vec::new();
        for &n in &order[start..=end] {
            if super::is_source(g, n) {
                continue;
            }
            let reads_layer = g.inputs(n).iter().any(|v| tied.contains(&v.node));
            if rank.contains_key(&n) || reads_layer {
                tied.insert(n);
            } else {
                free.push(n);
            }
        }
        let lifted = weighted_parts(g, &free);
        if !lifted.is_empty() {
            let span: Vec<NodeIndex> = order.drain(start..=end).collect();
            let (mut before, rest): (Vec<NodeIndex>, Vec<NodeIndex>) =
                span.into_iter().partition(|n| lifted.contains(n));
            before.extend(rest);
            order.splice(start..start, before);
            bounds_in(&order, start..=end, &rank, k, &mut first, &mut last);
        }
        let (start, end) = (first[k], last[k]);
        let position: BTreeMap<NodeIndex, usize> =
            order[start..=end].iter().enumerate().map(|(i, &n)| (n, start + i)).collect();
        // Statements of later layers in the span that nothing staying in it reads, from the
        // end back: a reader that stays pins what it reads.
        let mut moving: BTreeSet<NodeIndex> = BTreeSet::new();
        for i in (start..end).rev() {
            let n = order[i];
            if rank.get(&n).is_none_or(|&r| r <= k) {
                continue;
            }
            let pinned =
                g.g.neighbors_directed(n, petgraph::Direction::Outgoing)
                    .any(|r| position.get(&r).is_some_and(|&p| p > i) && !moving.contains(&r));
            if !pinned {
                moving.insert(n);
            }
        }
        if moving.is_empty() {
            continue;
        }
        let span: Vec<NodeIndex> = order.drain(start..=end).collect();
        let (mut kept, moved): (Vec<NodeIndex>, Vec<NodeIndex>) =
            span.into_iter().partition(|n| !moving.contains(n));
        kept.extend(moved);
        order.splice(start..start, kept);
        bounds_in(&order, start..=end, &rank, k + 1, &mut first, &mut last);
    }
    order
}

/// Of `free` (in order, each reading only earlier ones among them), those that apply
/// weights, read what does, or feed what does, with everything they read among `free`.
fn weighted_parts(g: &crate::ir::Graph, free: &[NodeIndex]) -> BTreeSet<NodeIndex> {
    let among: BTreeSet<NodeIndex> = free.iter().copied().collect();
    let mut from_weights: BTreeSet<NodeIndex> = BTreeSet::new();
    for &n in free {
        if applies_weights(g, n) || g.inputs(n).iter().any(|v| from_weights.contains(&v.node)) {
            from_weights.insert(n);
        }
    }
    let mut kept: BTreeSet<NodeIndex> = from_weights.clone();
    let mut to_weights: BTreeSet<NodeIndex> = BTreeSet::new();
    for &n in free.iter().rev() {
        let feeds =
            g.g.neighbors_directed(n, petgraph::Direction::Outgoing)
                .any(|r| to_weights.contains(&r));
        if applies_weights(g, n) || feeds {
            to_weights.insert(n);
            kept.insert(n);
        }
        if kept.contains(&n) {
            kept.extend(g.inputs(n).iter().map(|v| v.node).filter(|m| among.contains(m)));
        }
    }
    kept
}

/// After `order`'s `span` was rearranged: the first and last statements of layers ranked
/// `from` on that were in it, where they now are.
fn bounds_in(
    order: &[NodeIndex],
    span: std::ops::RangeInclusive<usize>,
    rank: &BTreeMap<NodeIndex, usize>,
    from: usize,
    first: &mut [usize],
    last: &mut [usize],
) {
    let (start, end) = (*span.start(), *span.end());
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    for i in span {
        let Some(&r) = rank.get(&order[i]).filter(|&&r| r >= from) else { continue };
        if seen.insert(r) && first[r] >= start {
            first[r] = i;
        }
        if last[r] <= end {
            last[r] = i;
        }
    }
}

/// `order` with a layer (a statement applying weights, with what only reshapes its output)
/// moved down to just before its first reader where that makes no other value live longer (each value it reads is read again
/// later, or is an input or constant). The demand order writes a node's inputs one after the other, and an input one
/// statement away from values long computed (a cross-attention key projected from the
/// finished encoder) would otherwise hold its name across the other inputs' whole
/// computation (the decoder layer's self-attention), which then all get names of their own.
/// Only statements whose inputs and first reader stay where they are move, so every value
/// is still computed before it is read; and only within their numbered scope (`layer_3`;
/// `blocks` of a statement) past some of its own statements: a statement of another scope
/// inside a layer (a mask from the model input, computed where the first layer needs it) is
/// moved out of it later, if its name is not one the layer uses, and a statement sunk past
/// it alone would only trade names with it.
fn sink_to_readers(
    g: &crate::ir::Graph,
    order: Vec<NodeIndex>,
    blocks: impl Fn(NodeIndex) -> Option<String>,
) -> Vec<NodeIndex> {
    let position: BTreeMap<NodeIndex, usize> =
        order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // Each statement's numbered scope, and where the next statement of that scope is.
    let mut ids: BTreeMap<Option<String>, usize> = BTreeMap::new();
    let block: Vec<usize> = order
        .iter()
        .map(|&n| {
            let next = ids.len();
            *ids.entry(blocks(n)).or_insert(next)
        })
        .collect();
    let mut next_of_block = vec![usize::MAX; order.len()];
    let mut upcoming: BTreeMap<usize, usize> = BTreeMap::new();
    for i in (0..order.len()).rev() {
        next_of_block[i] = upcoming.get(&block[i]).copied().unwrap_or(usize::MAX);
        if !super::is_source(g, order[i]) {
            upcoming.insert(block[i], i);
        }
    }
    // Statements before each position (inputs and constants are values, not statements).
    let statements: Vec<usize> = order
        .iter()
        .scan(0, |count, &n| {
            let before = *count;
            *count += usize::from(!super::is_source(g, n));
            Some(before)
        })
        .collect();
    let first_reader = |n: NodeIndex| {
        g.g.neighbors_directed(n, petgraph::Direction::Outgoing)
            .filter_map(|r| position.get(&r).copied())
            .min()
    };
    let read_after = |v: NodeIndex, at: usize| {
        g.g.neighbors_directed(v, petgraph::Direction::Outgoing)
            .any(|r| position.get(&r).is_some_and(|&p| p > at))
    };
    // A layer and what only reshapes its output for one reader (a projection, its split
    // into heads, their transpose): the statements that move together, at their positions.
    let chain_from = |i: usize| -> Vec<usize> {
        let mut chain = vec![i];
        let mut end = order[i];
        loop {
            let mut readers = g.g.neighbors_directed(end, petgraph::Direction::Outgoing);
            let (Some(r), None) = (readers.next(), readers.next()) else { break };
            let alone = g.inputs(r).iter().all(|v| v.node == end || super::is_source(g, v.node));
            match position.get(&r) {
                Some(&p) if alone && !g.node(r).shared && block[p] == block[i] => {
                    chain.push(p);
                    end = r;
                }
                _ => break,
            }
        }
        chain
    };
    // Chains that could move: to the position of their last node's first reader.
    let mut chains: BTreeMap<usize, (Vec<usize>, usize)> = BTreeMap::new();
    for (i, &n) in order.iter().enumerate() {
        if super::is_source(g, n) || g.node(n).shared || !applies_weights(g, n) {
            continue;
        }
        let chain = chain_from(i);
        let last = chain[chain.len() - 1];
        let Some(first) = first_reader(order[last]) else { continue };
        // Past a few statements (the key's and value's projections, beside the query's) a
        // move would only swap the order in which a person reads them.
        if statements[first] > statements[last] + MIN_SINK
            && block[first] == block[i]
            && next_of_block[last] < first
        {
            chains.insert(i, (chain, first));
        }
    }
    // A chain moves where what it reads stays live until its reader anyway, or where all
    // that reads it moves: the cross-attention key and value of a finished encoder, which
    // only they read, are written by the query's attention, the encoder's output held
    // instead of both.
    let heads: BTreeSet<NodeIndex> = chains.keys().map(|&i| order[i]).collect();
    let only_moving_readers = |v: NodeIndex| {
        g.g.neighbors_directed(v, petgraph::Direction::Outgoing).all(|r| heads.contains(&r))
    };
    chains.retain(|&i, (_, first)| {
        g.inputs(order[i]).iter().all(|v| {
            super::is_source(g, v.node) || read_after(v.node, *first) || only_moving_readers(v.node)
        })
    });
    let moving: BTreeSet<usize> = chains.values().flat_map(|(c, _)| c.iter().copied()).collect();
    let mut before: BTreeMap<usize, Vec<NodeIndex>> = BTreeMap::new();
    let mut moved = BTreeSet::new();
    for (&head, (chain, first)) in &chains {
        let inputs_stay =
            g.inputs(order[head]).iter().all(|v| !moving.contains(&position[&v.node]));
        if !moving.contains(first) && inputs_stay && chain.iter().all(|p| !moved.contains(p)) {
            before.entry(*first).or_default().extend(chain.iter().map(|&p| order[p]));
            moved.extend(chain.iter().copied());
        }
    }
    let stays: Vec<usize> = (0..order.len()).filter(|i| !moved.contains(i)).collect();
    if before.is_empty() {
        return order;
    }
    let mut out = Vec::with_capacity(order.len());
    for i in stays {
        out.extend(before.remove(&i).unwrap_or_default());
        out.push(order[i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::ir::ValueRef;
    use crate::tensor::Tensor;
    use crate::testing::{TestGraph, weights};

    /// A layer of two branches joined: one from the main stream, one from a side input that
    /// three projections made. In the first layer the side branch is the deeper one, in the
    /// second the main one: both are written in the second's order, and are one class.
    #[test]
    fn a_stack_whose_first_layer_has_a_deep_side_input_is_one_class() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let mut side = g.input("pos", &[-1, 8]);
        for i in 0..3 {
            let w = g.constant(&format!("pos/proj{i}/kernel"), weights(&[8, 8]));
            side = g.op(&format!("pos/proj{i}/MatMul"), "MatMul", &[side, w], &[]);
        }
        let mut h = x;
        for layer in 0..2 {
            let s = format!("layer_{layer}");
            let wq = g.constant(&format!("{s}/q/kernel"), weights(&[8, 8]));
            let q = g.op(&format!("{s}/q/MatMul"), "MatMul", &[h, wq], &[]);
            let q = g.op(&format!("{s}/q/Relu"), "Relu", &[q], &[]);
            let wp = g.constant(&format!("{s}/p/kernel"), weights(&[8, 8]));
            let p = g.op(&format!("{s}/p/MatMul"), "MatMul", &[side, wp], &[]);
            let p = g.op(&format!("{s}/p/Tanh"), "Tanh", &[p], &[]);
            h = g.op(&format!("{s}/add"), "AddV2", &[q, p], &[]);
        }
        assert_snapshot!(g.lower(&[h]), @"
        class Layer():
          self.q = nn.Linear(8, 8, bias=False)
          self.p = nn.Linear(8, 8, bias=False)
          x = self.q(x)
          x = F.relu(x, inplace=True)
          y = self.p(proj2)
          y = torch.tanh(y)
          x = x + y
          return x (from x, proj2)
        self.pos_proj0 = nn.Linear(8, 8, bias=False)
        self.pos_proj1 = nn.Linear(8, 8, bias=False)
        self.pos_proj2 = nn.Linear(8, 8, bias=False)
        self.layers = nn.ModuleList([Layer() for _ in range(2)])
        # pos_proj0.weight: [8, 8]
        # pos_proj1.weight: [8, 8]
        # pos_proj2.weight: [8, 8]
        # layers.0.q.weight: [8, 8]
        # layers.0.p.weight: [8, 8]
        # layers.1.q.weight: [8, 8]
        # layers.1.p.weight: [8, 8]
        ---
        proj0 = self.pos_proj0(pos)
        proj1 = self.pos_proj1(proj0)
        proj2 = self.pos_proj2(proj1)
        for layer in self.layers:
            x = layer(x, proj2)
        return x
        ");
    }

    /// `x` times the weights of scope `scope`.
    fn projection(g: &mut TestGraph, x: ValueRef, scope: &str) -> ValueRef {
        let w = g.constant(&format!("{scope}/kernel"), weights(&[8, 8]));
        g.op(&format!("{scope}/MatMul"), "MatMul", &[x, w], &[])
    }

    /// Fourteen activations of input `x`: the other stream's long computation.
    fn long_query(g: &mut TestGraph) -> ValueRef {
        let mut h = g.input("x", &[-1, 8]);
        for i in 0..14 {
            let op = ["Relu", "Tanh", "Sigmoid"][i % 3];
            h = g.op(&format!("dec/act{i}"), op, &[h], &[]);
        }
        h
    }

    /// A projection of a value long computed (a cross-attention key from the finished
    /// encoder), read only after a long computation of the other stream: written just
    /// before its reader, so it does not hold a name across that computation.
    #[test]
    fn a_projection_of_a_finished_value_is_written_where_it_is_read() {
        let mut g = TestGraph::new();
        let enc = g.input("enc", &[-1, 8]);
        let encoded = projection(&mut g, enc, "enc/proj");
        let key = projection(&mut g, encoded, "dec/key");
        let h = long_query(&mut g);
        let scores = g.op("dec/add", "AddV2", &[key, h], &[]);
        let value = projection(&mut g, encoded, "dec/value");
        let out = g.op("dec/out", "Mul", &[scores, value], &[]);
        assert_snapshot!(g.lower(&[out]), @"
            self.enc_proj = nn.Linear(8, 8, bias=False)
            self.dec_key = nn.Linear(8, 8, bias=False)
            self.dec_value = nn.Linear(8, 8, bias=False)
            # enc_proj.weight: [8, 8]
            # dec_key.weight: [8, 8]
            # dec_value.weight: [8, 8]
            ---
            proj = self.enc_proj(enc)
            x = F.relu(x)
            x = torch.tanh(x)
            x = torch.sigmoid(x)
            x = F.relu(x)
            x = torch.tanh(x)
            x = torch.sigmoid(x)
            x = F.relu(x)
            x = torch.tanh(x)
            x = torch.sigmoid(x)
            x = F.relu(x)
            x = torch.tanh(x)
            x = torch.sigmoid(x)
            x = F.relu(x)
            x = torch.tanh(x)
            key = self.dec_key(proj)
            x = key + x
            value = self.dec_value(proj)
            x = x * value
            return x
            ");
    }

    /// The key and the value of a finished encoder, which only they read, both read only
    /// where the attention joins them with a long-computed query: written there, the
    /// encoder's output held across the query's computation instead of both.
    #[test]
    fn projections_of_a_value_only_they_read_are_written_where_they_are_read() {
        let mut g = TestGraph::new();
        let enc = g.input("enc", &[-1, 8]);
        let encoded = projection(&mut g, enc, "enc/proj");
        let key = projection(&mut g, encoded, "dec/key");
        let value = projection(&mut g, encoded, "dec/value");
        let h = long_query(&mut g);
        let n = crate::testing::int(3);
        let out = g.op("dec/join", "AddN", &[key, value, h], &[("N", n)]);
        let code = g.lower(&[out]);
        let body = code.split("---").nth(1).unwrap_or_default();
        let at = |s: &str| body.find(s).unwrap_or_else(|| panic!("{s}: {code}"));
        // After the query's last step (the 14th, a tanh).
        let last_step = body.rfind("torch.tanh(").unwrap_or_else(|| panic!("{code}"));
        assert!(at("self.dec_key(") > last_step, "{code}");
        assert!(at("self.dec_value(") > at("self.dec_key("), "{code}");
    }

    /// Two layers whose query and key each scale by a table made from the layer's own
    /// frequencies (Gemma's rotary angles, whose base differs between sliding-window and
    /// global layers): the two tables of a layer are one computation, shared by two of its
    /// parts but by no other layer, so each layer computes its table, not `forward` before
    /// them all.
    #[test]
    fn a_table_shared_within_one_layer_is_computed_in_that_layer() {
        let mut g = TestGraph::new();
        let pos = g.input("pos", &[-1, 8]);
        let mut h = g.input("x", &[-1, 8]);
        for layer in 0..3 {
            let s = format!("layer_{layer}");
            // Computed by the model (folded), as tables are: weights never merge.
            let scalar = |g: &mut TestGraph, name: &str, v: f32| {
                g.constant(&format!("{s}/{name}"), Tensor::from_f32(vec![], &[v]))
            };
            let start = scalar(&mut g, "start", (1 + 10 * layer) as f32);
            let limit = scalar(&mut g, "limit", (9 + 10 * layer) as f32);
            let delta = scalar(&mut g, "delta", 1.0);
            let steps = g.op(&format!("{s}/steps"), "Range", &[start, limit, delta], &[]);
            let one = g.constant(&format!("{s}/one"), Tensor::from_f32(vec![], &[1.0]));
            let freq = g.op(&format!("{s}/freq"), "RealDiv", &[one, steps], &[]);
            let mut parts = Vec::new();
            for part in ["q", "k"] {
                let table = g.op(&format!("{s}/{part}/table"), "Mul", &[pos, freq], &[]);
                let w = g.constant(&format!("{s}/{part}/kernel"), weights(&[8, 8]));
                let y = g.op(&format!("{s}/{part}/MatMul"), "MatMul", &[h, w], &[]);
                parts.push(g.op(&format!("{s}/{part}/mul"), "Mul", &[y, table], &[]));
            }
            h = g.op(&format!("{s}/add"), "AddV2", &[parts[0], parts[1]], &[]);
        }
        assert_snapshot!(g.lower(&[h]), @"
        class Layer():
          self.q = nn.Linear(8, 8, bias=False)
          self.k = nn.Linear(8, 8, bias=False)
          table = pos * self.const
          h = self.q(x)
          h = h * table
          x = self.k(x)
          x = x * table
          x = h + x
          return x (from x, pos)
        self.layers = nn.ModuleList([Layer() for _ in range(3)])
        # layers.0.const: [8]
        # layers.0.q.weight: [8, 8]
        # layers.0.k.weight: [8, 8]
        # layers.1.const: [8]
        # layers.1.q.weight: [8, 8]
        # layers.1.k.weight: [8, 8]
        # layers.2.const: [8]
        # layers.2.q.weight: [8, 8]
        # layers.2.k.weight: [8, 8]
        ---
        for layer in self.layers:
            x = layer(x, pos)
        return x
        ");
    }

    /// Scope names of thousands of numbered words (a hostile file) make no thousands of
    /// thousand-word prefixes: a chain of them converts at once (minutes without the bound).
    #[test]
    fn scopes_of_thousands_of_words_stay_cheap() {
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 4]);
        for i in 0..200 {
            let scope: Vec<String> = (0..3000).map(|j| format!("l{}", (i + j) % 7)).collect();
            y = g.op(&format!("{}/Relu_{i}", scope.join("_")), "Relu", &[y], &[]);
        }
        let start = std::time::Instant::now();
        let code = g.lower(&[y]);
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
        assert!(code.contains("F.relu"), "{code}");
    }
}
