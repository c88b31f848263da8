//! Names from TF scopes: which part of a node's name names its layer
//! (`model/conv1_bn/batchnorm/add_1` → `conv1_bn`), with the prefixes every layer shares
//! dropped.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use super::Lowerer;
use crate::ir::Graph;

/// Scopes TF and Keras create inside a layer's implementation, which name no layer.
pub(super) fn is_implementation_scope(c: &str) -> bool {
    // `tf.cond` inside a layer (TF1 batch norm and dropout on `is_training`): `cond`, `cond_1`.
    let cond = c.strip_prefix("cond").is_some_and(|k| {
        k.is_empty() || k.strip_prefix('_').is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
    });
    // `tf.lookup`'s scope for a lookup in table `hash_table`: `hash_table_Lookup`.
    let lookup =
        c.trim_end_matches(|ch: char| ch.is_ascii_digit() || ch == '_').ends_with("_Lookup");
    // A norm's second call opens its scopes again, counted: `batchnorm_1`, `moments_1`; so
    // does a layer's second `ops.einsum` (an MoE's experts: `einsum_1`), and its second
    // `ops.multiply` where that opens a scope (a bfloat16 RMSNorm's `mul_1/Mul`).
    let norm = c.rsplit_once('_').is_some_and(|(base, n)| {
        matches!(base, "batchnorm" | "moments" | "einsum" | "mul" | "add" | "sub" | "truediv")
            && n.parse::<u32>().is_ok()
    });
    cond || lookup
        || norm
        || is_named_like_tf(c)
        || matches!(
            c,
            "batchnorm"
                | "convolution"
                | "moments"
                | "conv_transpose"
                | "resize"
                | "einsum"
                | "pfor"
                | "truediv"
                | "mul"
                | "add"
                | "sub"
        )
}

/// Scope components named as TF names its own ops and scopes: an op's name (`depthwise`,
/// `Conv2D` of `Conv2D/ReadVariableOp`) or any capitalised one (`Tensordot`). They may
/// also be an author's names (TF-Slim's `Conv2d_1/BatchNorm`, Keras 2's
/// `expanded_conv/depthwise/BatchNorm`): see [`Lowerer::layer_scopes_named_like_tf`].
fn is_named_like_tf(c: &str) -> bool {
    c.starts_with(|ch: char| ch.is_ascii_uppercase()) || c == "depthwise"
}

/// Capitalised scopes TF's own functions open around what they compute (`tf.tensordot`'s
/// `Tensordot`, a `tf.function` call's `PartitionedCall`, an RNN's `LSTMCellZeroState`), and
/// scopes named after an op.
fn is_tf_function_scope(c: &str) -> bool {
    let base = c.trim_end_matches(|ch: char| ch.is_ascii_digit() || ch == '_');
    crate::ops::lookup(base).is_some()
        || base.ends_with("ZeroState")
        || base.starts_with("TensorArray")
        || base.starts_with("TensorList")
        || base.ends_with("PartitionedCall")
        || matches!(base, "Tensordot" | "Repeat" | "Assert" | "ReadVariableOp" | "Gelu")
}

/// Layer `c` without what its holder's name says: Keras names a block's layers after the
/// model and the block (ConvNeXt's `downsampling_block_0/convnext_tiny_downsampling_conv_0`),
/// and `conv` is what the inner name adds. Only where both a word and the block's number
/// repeat (`up_block_0/up_sampling2d` keeps its name), and (see
/// [`Lowerer::inner_layers_numbered_as_holders`]) the number is the block's.
fn without_holder_words<'c>(c: &'c str, holder: &str, model_prefix: &str) -> &'c str {
    let own = match c.strip_prefix(model_prefix) {
        Some(rest) if !model_prefix.is_empty() && !rest.is_empty() => rest,
        _ => c,
    };
    let said: Vec<&str> = holder.split('_').collect();
    let words: Vec<&str> = own.split('_').collect();
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    let lead = words.iter().take_while(|w| !number(w) && said.contains(w)).count();
    let trail = words[lead..].iter().rev().take_while(|w| number(w) && said.contains(w)).count();
    let rest = &words[lead..words.len() - trail];
    if lead == 0
        || trail == 0
        || rest.is_empty()
        || rest[0].starts_with(|ch: char| ch.is_ascii_digit())
    {
        return c;
    }
    let start: usize = words[..lead].iter().map(|w| w.len() + 1).sum();
    let len = rest.iter().map(|w| w.len()).sum::<usize>() + rest.len() - 1;
    &own[start..start + len]
}

/// `c` past its first word where `holder` ends with that word and more follows it
/// (`attention_output` under `self_attention` → `output`), unless `c` is a Keras kind;
/// else `c`.
fn past_shared_word<'c>(holder: &str, c: &'c str) -> &'c str {
    // Not inside a Keras kind: `last_layer/layer_normalization` keeps its norm's name.
    if crate::lower::keras_names::keras_kind(c).is_some() {
        return c;
    }
    let Some((word, rest)) = c.split_once('_') else { return c };
    let shared = word.len() >= 3
        && word.bytes().all(|b| b.is_ascii_lowercase())
        && holder.rsplit('_').next() == Some(word)
        && holder != word;
    if shared && rest.starts_with(|ch: char| ch.is_ascii_alphabetic()) { rest } else { c }
}

/// tf_keras wraps a TF function called on Keras tensors in a layer named after the function
/// (`tf.__operators__.add_26`, `tf.math.multiply_3`, `tf.nn.relu`): the function's own name
/// says what it is, as a Keras layer of that kind would be named (`add_26`).
fn op_layer_name(c: &str) -> &str {
    match c.strip_prefix("tf.") {
        Some(_) => c.rsplit('.').next().filter(|n| !n.is_empty()).unwrap_or(c),
        None => c,
    }
}

/// Scope depth below which unnamed containers may leave names (a hostile name may have a
/// million components; each container's key is its path).
const MAX_CONTAINER_DEPTH: usize = 16;

/// Layer scopes looked at for TF's numbering, at most (a hostile graph may have millions).
const MAX_SCOPES: usize = 100_000;

/// `<name>_<number>`: a scope Keras or TF numbered (`dense_5`, `mixed9_1`).
/// `name` without the counter TF and Keras append to a name used again (`hann_window_1`,
/// `keras_tensor_247`); `name` itself where it ends in no number, none where its number is
/// no counter (`conv2`).
pub(super) fn without_counter(name: &str) -> Option<&str> {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == name.len() { Some(name) } else { base.strip_suffix('_') }
}

/// Whether name components `parts` begin with the common `prefix` and go on past it.
fn under_prefix(parts: &[&str], prefix: &[String]) -> bool {
    parts.len() > prefix.len() && parts.iter().zip(prefix).all(|(p, q)| *p == q.as_str())
}

fn numbered(s: &str) -> bool {
    s.rsplit_once('_').is_some_and(|(base, k)| {
        !base.is_empty() && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A name Keras gives a container its author did not name: `sequential`, `sequential_7`,
/// `functional_1` (Keras 3), `model_2` (Keras 2).
fn is_unnamed_container(c: &str) -> bool {
    let mut words = c.split('_');
    matches!(words.next(), Some("sequential" | "functional" | "model"))
        && words.all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
}

/// Holder and inner component with their last number words made `#`
/// (`downsampling_block_#`, `convnext_tiny_downsampling_conv_#`), and whether that number
/// was the same; none unless both end in one.
fn numbered_kinds(holder: &str, c: &str) -> Option<((String, String), bool)> {
    let split = |s: &str| match s.rsplit_once('_') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            Some((format!("{base}_#"), n.to_string()))
        }
        _ => None,
    };
    let ((h, hn), (k, kn)) = (split(holder)?, split(c)?);
    Some(((h, k), hn == kn))
}

/// Name components shared by every computing node (`model/` in `model/conv1/Conv2D`), dropped
/// from layer and variable names.
pub(super) fn common_prefix(graph: &Graph, order: &[NodeIndex]) -> Vec<String> {
    let mut prefix: Option<Vec<&str>> = None;
    for &n in order {
        let node = graph.node(n);
        if node.op == "Placeholder" || node.value.is_some() {
            continue;
        }
        let parts: Vec<&str> = inlined_name(&node.name).split('/').collect();
        let scope = &parts[..parts.len() - 1];
        // Glue in no scope around the model's call (its outputs cast to float32, a lookup
        // table's handle) is no layer's: the layers' shared scope is still the model's.
        let glue = matches!(
            node.op.as_str(),
            "Cast" | "Identity" | "IdentityN" | "HashTableV2" | "MutableHashTableV2"
        );
        if scope.is_empty() && glue {
            continue;
        }
        prefix = Some(match prefix {
            None => scope.to_vec(),
            Some(p) => p.iter().zip(scope).take_while(|(a, b)| a == b).map(|(a, _)| *a).collect(),
        });
    }
    prefix.unwrap_or_default().into_iter().map(String::from).collect()
}

/// Constants named outside the traced function's scopes, each with the op that reads it
/// first: a SavedModel's variables are named by its object graph (Keras' variable paths:
/// `conv1_conv/kernel` for a layer its nested model holds, `transformer_layer_1/...` without
/// the call number its ops' scopes carry), and the constants its functions capture after
/// the capture (`Const_1`), so their scopes are their readers', as a frozen graph names a
/// variable after the read (`.../conv1_conv_1/convolution/ReadVariableOp`).
pub(super) fn constants_named_by_reader(
    graph: &Graph,
    prefix: &[String],
) -> BTreeMap<NodeIndex, NodeIndex> {
    if prefix.is_empty() {
        return BTreeMap::new();
    }
    let outside = |n: NodeIndex| {
        let parts: Vec<&str> = inlined_name(&graph.node(n).name).split('/').collect();
        !under_prefix(&parts, prefix)
    };
    graph
        .g
        .node_indices()
        .filter(|&n| graph.node(n).value.is_some() && outside(n))
        .filter_map(|n| {
            let readers = graph.consumers(crate::ir::ValueRef { node: n, port: 0 });
            let reader =
                readers.into_iter().map(|(r, _)| r).find(|&r| graph.node(r).value.is_none())?;
            Some((n, reader))
        })
        .collect()
}

/// A node of an inlined function body as that body named it: TF's inliner prefixes the
/// call (`.../cond_3/then/_24/model/layer/mod` → `model/layer/mod`; a loop's body,
/// `.../while/body/_1/...`, likewise), and the call's name says only where it was called.
fn inlined_name(name: &str) -> &str {
    let mut cut = 0;
    for marker in ["then/_", "else/_", "body/_", "cond/_"] {
        for (i, _) in name.match_indices(marker) {
            if i > 0 && name.as_bytes()[i - 1] != b'/' {
                continue;
            }
            let rest = &name[i + marker.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && rest.as_bytes().get(digits) == Some(&b'/') {
                cut = cut.max(i + marker.len() + digits + 1);
            }
        }
    }
    // Nothing after the marker names the node: keep the whole name.
    if cut < name.len() { &name[cut..] } else { name }
}

/// The longest scope-derived name hint that is still a short name (a counter may follow).
pub(super) const SHORT_NAME_MAX: usize = 26;

/// Most components of a short name: each takes a character and a `_` at least.
const MAX_TAIL_PARTS: usize = SHORT_NAME_MAX / 2 + 1;

impl<'a> Lowerer<'a> {
    /// The layer-ish part of a TF node name: `model/conv1_bn/batchnorm/add_1` → `conv1_bn`.
    pub(super) fn scope_of(&self, n: NodeIndex) -> String {
        let (path, single) = self.scope_parts(n);
        if single { path[0].to_string() } else { self.without_name_prefix(&path.join("_")) }
    }

    /// [`Self::scope_of`], and the outermost of the layer scopes it joins
    /// (`transformer_layer_0` of `transformer_layer_0/self_attention/query`, and of
    /// `transformer_layer_0/add`), as that joined name begins; none for a single one.
    pub(super) fn scope_and_head(&self, n: NodeIndex) -> (String, Option<String>) {
        let (path, single) = self.scope_parts(n);
        if single {
            return (path[0].to_string(), None);
        }
        let scope = self.without_name_prefix(&path.join("_"));
        (scope, Some(self.without_name_prefix(path[0])))
    }

    /// `convnext_tiny_stem`, `convnext_tiny_stage_0_...` → `stem`, `stage_0_...`.
    pub(super) fn without_name_prefix(&self, scope: &str) -> String {
        match scope.strip_prefix(self.name_prefix.as_str()) {
            Some(s) if !self.name_prefix.is_empty() && !s.is_empty() => s.to_string(),
            _ => scope.to_string(),
        }
    }

    /// The components of node `n`'s name, and how many of them the common prefix takes.
    fn unprefixed(&self, n: NodeIndex) -> (Vec<&'a str>, usize) {
        let name = self.scoped_name(n);
        let parts: Vec<&str> = name.split('/').collect();
        let prefixed = under_prefix(&parts, &self.prefix);
        let mut skipped = if prefixed { self.prefix.len() } else { 0 };
        // A scope opened again inside itself (TF-Slim's `InceptionV3/InceptionV3/Mixed_5b`,
        // beside `InceptionV3/Logits`) says nothing more the second time.
        if prefixed
            && parts.len() > skipped + 2
            && self.prefix.last().map(String::as_str) == Some(parts[skipped])
        {
            skipped += 1;
        }
        (parts, skipped)
    }

    /// The key of container `c` under the scopes `holders` in [`Self::unnamed_containers`].
    fn container_key(&self, holders: &[&str], c: &str) -> String {
        let mut key: Vec<&str> = holders.iter().map(|h| self.without_call_suffix(h)).collect();
        key.push(c);
        key.join("/")
    }

    /// Whether scope component `c` under `holders` is an unnamed container that names go
    /// without (see [`Self::unnamed_containers`]).
    fn is_dropped_container(&self, holders: &[&str], c: &str) -> bool {
        holders.len() < MAX_CONTAINER_DEPTH
            && is_unnamed_container(c)
            && self.unnamed_containers.contains(&self.container_key(holders, c))
    }

    /// Keras' unnamed containers (`sequential_7`, `functional_1`: a `keras.Sequential` or a
    /// nested model its author did not name), as scope paths, that layer names can go
    /// without: those whose layers' names stay apart from their holder's other layers and
    /// other containers' without them (SAM's `mlp_2/sequential_7/dense_1` is `mlp_2_dense_1`;
    /// two Sequentials each holding a `dense` keep their names).
    pub(super) fn unnamed_containers(&self, nodes: &[NodeIndex]) -> BTreeSet<String> {
        // Holder path → a name below it → the containers it is in ("" for none).
        let mut below: BTreeMap<String, BTreeMap<&'a str, BTreeSet<&'a str>>> = BTreeMap::new();
        let mut found = BTreeSet::new();
        for &n in nodes {
            let (parts, skipped) = self.unprefixed(n);
            let scopes: Vec<&'a str> = parts[skipped..parts.len().saturating_sub(1).max(skipped)]
                .iter()
                .map(|c| self.without_call_suffix(c))
                .collect();
            for i in 0..scopes.len().min(MAX_CONTAINER_DEPTH) {
                let holder = scopes[..i].join("/");
                let names = below.entry(holder.clone()).or_default();
                names.entry(scopes[i]).or_default().insert("");
                if i + 1 < scopes.len() && is_unnamed_container(scopes[i]) {
                    names.entry(scopes[i + 1]).or_default().insert(scopes[i]);
                    found.insert((holder, scopes[i]));
                }
            }
        }
        found
            .into_iter()
            .filter(|(holder, c)| {
                below[holder].values().filter(|within| within.contains(c)).all(|w| w.len() == 1)
            })
            .map(
                |(holder, c)| {
                    if holder.is_empty() { c.to_string() } else { format!("{holder}/{c}") }
                },
            )
            .collect()
    }

    /// The components [`Self::scope_of`] joins, and whether the name had a single
    /// component past the common prefix; holders whose names go (see
    /// [`Self::long_holders`]) left out.
    fn scope_parts(&self, n: NodeIndex) -> (Vec<&'a str>, bool) {
        let (path, single, own) = self.scope_paths(n);
        if single || self.long_holders.is_empty() {
            return (path, single);
        }
        (self.without_long_holders(path, &own), single)
    }

    /// [`Self::scope_parts`] with every holder, and each component as its scope wrote it
    /// (before [`past_shared_word`]).
    pub(super) fn scope_paths(&self, n: NodeIndex) -> (Vec<&'a str>, bool, Vec<&'a str>) {
        let (parts, skipped) = self.unprefixed(n);
        let rest = &parts[skipped..];
        // Nested layer scopes name the layer (`transformer_layer_0/self_attention/query`),
        // up to where TF's own implementation scopes begin (`Tensordot`, `batchnorm`, ...).
        let strip = |c: &'a str| self.without_call_suffix(c);
        let mut first = 0;
        while first + 2 < rest.len()
            && self.is_dropped_container(&rest[..first], strip(rest[first]))
        {
            first += 1;
        }
        let mut dropped = first;
        let mut path = vec![strip(rest[first])];
        if first == 0
            && let Some(&cut) = self.family_prefixed.get(path[0])
        {
            path[0] = &path[0][cut..];
        }
        let mut own = path.clone();
        if rest.len() > 1 {
            for j in first + 1..rest.len() - 1 {
                let c = &rest[j];
                if self.is_dropped_container(&rest[..j], strip(c)) {
                    dropped += 1;
                    continue;
                }
                if *c == "separable_conv2d" {
                    // `tf.nn.separable_conv2d` names its depthwise half `separable_conv2d/
                    // depthwise` and its pointwise half `separable_conv2d`: name them so.
                    let half = if rest.get(j + 1) == Some(&"depthwise") {
                        "depthwise"
                    } else {
                        "pointwise"
                    };
                    path.push(half);
                    own.push(half);
                    break;
                }
                if is_implementation_scope(c)
                    && !(is_named_like_tf(c)
                        && self.tf_named_layers.contains(&parts[..skipped + j + 1].join("/")))
                {
                    break;
                }
                let c = strip(c);
                let c = match path.last() {
                    Some(holder)
                        if numbered_kinds(holder, c).is_some_and(|(kinds, same)| {
                            same && self.numbered_as_holders.contains(&kinds)
                        }) =>
                    {
                        without_holder_words(c, holder, &self.name_prefix)
                    }
                    _ => c,
                };
                // A layer named after the layer holding it (keras-hub's HGNetV2:
                // `encoder_stage_1/encoder_stage_1_block_0/encoder_stage_1_block_0_conv`)
                // says the whole path itself.
                match path.last_mut() {
                    Some(last) if c.strip_prefix(*last).is_some_and(|r| r.starts_with('_')) => {
                        *last = c;
                        if let Some(o) = own.last_mut() {
                            *o = c;
                        }
                    }
                    // One whose name begins with the word its holder's ends with
                    // (`self_attention/attention_output`) says that word once:
                    // `self_attention_output`.
                    Some(last) => {
                        let said_once = past_shared_word(last, c);
                        path.push(said_once);
                        own.push(c);
                    }
                    None => {
                        path.push(c);
                        own.push(c);
                    }
                }
            }
            if rest[rest.len() - 1] == "separable_conv2d" && path.len() + dropped == rest.len() - 1
            {
                path.push("pointwise");
                own.push("pointwise");
            }
        }
        if rest.len() > 1 { (path, false, own) } else { (vec![rest[0]], true, vec![rest[0]]) }
    }

    /// Scopes named like TF's own that name layers, as paths of [`Self::scoped_name`]: such a
    /// component is taken for TF's (`Tensordot`, `Conv2D/ReadVariableOp`, `depthwise`),
    /// unless it holds an op reading a trained weight (TF-Slim's
    /// `InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/BatchNorm`, Hugging Face's
    /// `SelfAttention`, Keras 2's `expanded_conv/depthwise`) and is neither an op itself
    /// (`MatMul` of `dense/MatMul/ReadVariableOp`) nor a scope TF's own functions open.
    pub(super) fn layer_scopes_named_like_tf(&self) -> BTreeSet<String> {
        let graph = self.graph;
        let ops: BTreeSet<&str> = graph.g.node_indices().map(|n| self.scoped_name(n)).collect();
        let mut layers = BTreeSet::new();
        for n in graph.g.node_indices() {
            // A fused norm holds its trained scale and offset itself (Hugging Face's
            // `LayerNorm` scopes).
            let holds_weights = graph.node(n).fused.as_ref().is_some_and(|f| f.holds_weights());
            let reads_weight =
                holds_weights || graph.inputs(n).iter().any(|v| graph.node(v.node).variable);
            if graph.node(n).value.is_some() || !reads_weight {
                continue;
            }
            let name = self.scoped_name(n);
            let parts: Vec<&str> = name.split('/').collect();
            for (i, c) in parts[..parts.len() - 1].iter().enumerate() {
                // An op's name as a scope holds the op reading the weight itself (Keras 2's
                // `expanded_conv/depthwise/depthwise`), not only deeper ones (a vectorized
                // loop's `depthwise/pfor/DepthwiseConv2dNative`).
                let op_named = !c.starts_with(|ch: char| ch.is_ascii_uppercase());
                if !is_named_like_tf(c)
                    || is_tf_function_scope(c)
                    || op_named && i + 2 < parts.len()
                {
                    continue;
                }
                let path = parts[..=i].join("/");
                if !ops.contains(path.as_str()) {
                    layers.insert(path);
                }
            }
        }
        layers
    }

    /// Pairs of holder and inner layer kinds ([`numbered_kinds`]) whose inner layers carry
    /// their holder's number in every instance, of at least two: ConvNeXt's
    /// `downsampling_block_1/convnext_tiny_downsampling_conv_1`, `..._2/..._2`. One instance
    /// shows no such rule (ALBERT's one `albert_layer_groups_0/albert_layers_0`).
    pub(super) fn inner_layers_numbered_as_holders(
        &self,
        nodes: &[NodeIndex],
    ) -> BTreeSet<(String, String)> {
        let mut seen: BTreeMap<(String, String), (bool, BTreeSet<String>)> = BTreeMap::new();
        for &n in nodes {
            let name = self.scoped_name(n);
            let parts: Vec<&str> = name.split('/').collect();
            for pair in parts[..parts.len() - 1].windows(2) {
                let (holder, c) =
                    (self.without_call_suffix(pair[0]), self.without_call_suffix(pair[1]));
                if let Some((kinds, same)) = numbered_kinds(holder, c) {
                    let entry = seen.entry(kinds).or_insert((true, BTreeSet::new()));
                    entry.0 &= same;
                    entry.1.insert(holder.to_string());
                }
            }
        }
        seen.into_iter()
            .filter(|(_, (all_same, holders))| *all_same && holders.len() >= 2)
            .map(|(kinds, _)| kinds)
            .collect()
    }

    /// Scope component `c` without Keras' call number, where every scope has one (see
    /// [`Self::every_scope_has_call_suffix`]).
    pub(super) fn without_call_suffix<'c>(&self, c: &'c str) -> &'c str {
        let c = op_layer_name(c);
        if self.strip_call_suffix && self.call_collisions.contains(c) {
            return &c[..c.len() - 2];
        }
        match c.strip_suffix("_1") {
            Some(s) if self.strip_call_suffix && !s.is_empty() => s,
            _ => c,
        }
    }

    /// The name of node `n` that names its scopes: as its inlined function body named it,
    /// and inside a loop, past the loop's own scopes.
    fn scoped_name(&self, n: NodeIndex) -> &'a str {
        let n = self.named_by_reader.get(&n).copied().unwrap_or(n);
        let mut name = inlined_name(&self.graph.node(n).name);
        if !self.loop_name.is_empty() {
            // `model/gru/while/body/_1/model/gru/while/gru_cell/MatMul` → `gru_cell/MatMul`,
            // `model/while/body/add` → `add`, `loop/add` → `add`: what the loop's own code
            // named it.
            let cut = ["/while/", "/body/", "/cond/"]
                .iter()
                .filter_map(|m| name.rfind(m).map(|i| i + m.len()))
                .max();
            if let Some(i) = cut {
                name = &name[i..];
            } else if let Some(rest) =
                name.strip_prefix(&format!("{}/", inlined_name(&self.loop_name)))
            {
                name = rest;
            }
        }
        name
    }

    /// Short names for values: of each layer scope, the fewest trailing components that no
    /// other kind of scope ends with (`transformer_layer_3/self_attention/query` → `query`,
    /// but `self_attention_layernorm` beside `feedforward_layernorm`). Scopes that differ
    /// only in numbers (the same layer in another block) are one kind.
    pub(super) fn short_scope_names(&self, order: &[NodeIndex]) -> BTreeMap<String, String> {
        let kind = |parts: &[&str]| -> String {
            parts
                .iter()
                .map(|p| p.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect())
                .collect::<Vec<String>>()
                .join("/")
        };
        let mut scopes: BTreeMap<String, Vec<&'a str>> = BTreeMap::new();
        for &n in order {
            let (parts, single) = self.scope_parts(n);
            if !single {
                scopes.entry(self.scope_of(n)).or_insert(parts);
            }
        }
        // Trailing components (joined) → the kinds of scope ending so. Only tails that may
        // be short names: a hostile name of 20,000 components has 20,000 tails.
        let mut kinds: BTreeMap<(usize, String), BTreeSet<String>> = BTreeMap::new();
        for parts in scopes.values() {
            let whole = kind(parts);
            for k in 1..=parts.len().min(MAX_TAIL_PARTS) {
                let tail = &parts[parts.len() - k..];
                kinds.entry((k, tail.join("_"))).or_default().insert(whole.clone());
            }
        }
        let mut out = BTreeMap::new();
        // A numbered layer holding other layers (`transformer_layer_0` around its
        // `self_attention`):
        // what it computes itself is named after TF's op (`shape`, `range`), not after it,
        // which would repeat the block's name inside the block's own class.
        // Only numbered ones (`transformer_layer_0`), the candidates for block classes.
        let numbered = |s: &str| s.ends_with(|c: char| c.is_ascii_digit());
        for parts in scopes.values().filter(|p| p.len() > 1 && numbered(p[0])) {
            out.insert(parts[0].to_string(), String::new());
        }
        for (full, parts) in &scopes {
            let tail = |k: usize| parts[parts.len() - k..].join("_");
            let unique = (1..parts.len().min(MAX_TAIL_PARTS + 1))
                .map(|k| (k, tail(k)))
                .find(|(k, t)| kinds[&(*k, t.clone())].len() == 1)
                .map(|(_, t)| t);
            // A unique tail, or the whole scope, that is a short name is the name.
            let fits = |t: &String| t.len() <= SHORT_NAME_MAX;
            if unique.as_ref().map_or(fits(full), fits) {
                out.extend(unique.map(|short| (full.clone(), short)));
                continue;
            }
            // Otherwise (T5's `transformer_decoder_layer_0/self_attention/...` beside the
            // encoder's): the longest tail that is a short name (`self_attention`), where the
            // code's place says the rest; failing that, the shortest tail. A tail of only the
            // synthetic `depthwise`/`pointwise` halves names no layer, so it is not one.
            let synthetic = matches!(parts[parts.len() - 1], "depthwise" | "pointwise");
            let least = if synthetic { 2 } else { 1 };
            let short = (least..parts.len().min(MAX_TAIL_PARTS + 1)).rev().map(tail).find(fits);
            let short = short.or_else(|| (least < parts.len()).then(|| tail(least)));
            if let Some(short) = short {
                out.insert(full.clone(), short);
            }
        }
        out
    }

    /// The name hint for a value of node `n`: its scope, shortened (see
    /// [`Self::short_scope_names`]).
    pub(super) fn local_hint(&self, n: NodeIndex) -> String {
        let scope = self.scope_of(n);
        match self.short_names.get(&scope) {
            Some(short) if short.is_empty() => {
                let name = &self.graph.node(n).name;
                let Some((_, own)) = name.rsplit_once('/') else { return scope };
                // TF's uniquifying suffix (`strided_slice_3`) says nothing.
                let own = match own.rsplit_once('_') {
                    Some((base, n)) if n.chars().all(|c| c.is_ascii_digit()) => base,
                    _ => own,
                };
                own.to_string()
            }
            Some(short) => short.clone(),
            None => scope,
        }
    }

    /// Computing nodes whose name has a layer scope below the common prefix, with that scope's
    /// first component as written in the file.
    pub(super) fn scoped_nodes<'o>(
        &'o self,
        order: &'o [NodeIndex],
    ) -> impl Iterator<Item = (NodeIndex, &'a str)> + 'o {
        order.iter().filter_map(move |&n| {
            let node = self.graph.node(n);
            if node.op == "Placeholder" || node.value.is_some() {
                return None;
            }
            let parts: Vec<&'a str> = self.scoped_name(n).split('/').collect();
            (parts.len() > self.prefix.len() + 1).then(|| (n, parts[self.prefix.len()]))
        })
    }

    /// The `word_` tokens every layer scope starts with (Keras models that prefix each layer
    /// with the model's name), to drop from layer names.
    pub(super) fn common_name_prefix(&self, order: &[NodeIndex]) -> String {
        let mut common: Option<Vec<String>> = None;
        let mut scopes = std::collections::BTreeSet::new();
        // A tf_keras op layer (`tf.__operators__.add_26`) is named after its function, never
        // after the model: it does not say the model's layers share no prefix.
        for (n, _) in self.scoped_nodes(order).filter(|(_, first)| !first.starts_with("tf.")) {
            let scope = self.scope_of(n);
            scopes.insert(scope.clone());
            let tokens: Vec<String> = scope.split('_').map(String::from).collect();
            // Keep at least one token of every scope.
            let tokens = tokens[..tokens.len() - 1].to_vec();
            common = Some(match common {
                None => tokens,
                Some(c) => c
                    .iter()
                    .zip(&tokens)
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a.clone())
                    .collect(),
            });
        }
        // A counter is no name (`block_0_conv` stays, not `0_conv`): the word it counts stays.
        if let Some(c) = common.as_mut() {
            let counted = |k: usize| {
                scopes.iter().any(|s| {
                    s.split('_')
                        .nth(k)
                        .is_some_and(|t| t.starts_with(|ch: char| ch.is_ascii_digit()))
                })
            };
            while !c.is_empty() && counted(c.len()) {
                c.pop();
            }
        }
        // A shared first word in a small graph (`stem_conv`, `stem_act`) is a name, not a
        // model prefix: strip only multi-word prefixes, or shared words across many layers.
        common
            .filter(|c| c.len() >= 2 || (c.len() == 1 && scopes.len() >= 10))
            .map(|c| format!("{}_", c.join("_")))
            .unwrap_or_default()
    }

    /// Scopes of layers whose own name ends in a number (`mixed9_1`, InceptionV3's; Keras'
    /// `conv2d_1`): TF numbers their call `_2` (`mixed9_1_2`), as `mixed9_1` is already the
    /// call of layer `mixed9`. Without `_2` they read as Keras named them.
    pub(super) fn call_collisions(&self, order: &[NodeIndex]) -> BTreeSet<String> {
        if !self.strip_call_suffix {
            return BTreeSet::new();
        }
        let layers: BTreeSet<&str> = self
            .scoped_nodes(order)
            .map(|(_, layer)| op_layer_name(layer))
            .take(MAX_SCOPES)
            .collect();
        layers
            .iter()
            .filter(|l| l.strip_suffix("_2").is_some_and(|s| numbered(s) && layers.contains(s)))
            .map(|l| l.to_string())
            .collect()
    }

    /// Keras 3 traced inside a `tf.function` names every layer scope `<layer>_1` (`_2` for a
    /// layer's second call: T5's shared token embedding); when every layer scope carries such
    /// a call number, `_1` is noise, and layer names read as in Keras without it. A scope
    /// numbered 0 says the numbers are the model's own.
    pub(super) fn every_scope_has_call_suffix(&self, order: &[NodeIndex]) -> bool {
        let mut first_call = false;
        for (_, layer) in self.scoped_nodes(order) {
            // TF's own scopes are no layers' (a loop body's `TensorArrayV2Write`).
            if is_implementation_scope(layer) && !self.tf_named_layers.contains(layer) {
                continue;
            }
            // Calls count from 1: scopes numbered from 0 (`layer_0`, `layer_1`) are a
            // model's own indices, and `layer_1` is no second name of `layer`.
            if !numbered(layer) || layer.ends_with("_0") {
                return false;
            }
            first_call |= layer.ends_with("_1");
        }
        first_call
    }
}

#[cfg(test)]
mod tests {
    use super::inlined_name;
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A layer whose Keras name ends in a number (`mixed9_1`) has its call numbered `_2` by
    /// TF (`mixed9_1_2`: `mixed9_1` is layer `mixed9`'s call): it keeps its Keras name.
    #[test]
    fn a_numbered_layer_keeps_its_keras_name() {
        let code = crate::testing::dense_chain(&["m/mixed9_1", "m/mixed9_1_2", "m/head_1"]);
        for layer in ["mixed9", "mixed9_1", "head"] {
            assert!(code.contains(&format!("self.{layer} = nn.Linear")), "{layer}: {code}");
        }
        // Without a layer `mixed9`, `_2` is a second call of `mixed9_1`: its number stays.
        let code = crate::testing::dense_chain(&["m/mixed9_1", "m/mixed9_2", "m/head_1"]);
        assert!(code.contains("self.mixed9_2 = nn.Linear"), "{code}");
    }

    /// A model's outputs cast outside its scope (a bfloat16 model's, to float32) are glue:
    /// its layers still go without the model's scope, as they do without the cast.
    #[test]
    fn a_cast_outside_the_model_leaves_its_scope_shared() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let w = g.constant("model/dense/kernel", weights(&[8, 8]));
        let y = g.op("model/dense/MatMul", "MatMul", &[x, w], &[]);
        let w2 = g.constant("model/head/kernel", weights(&[8, 4]));
        let y = g.op("model/head/MatMul", "MatMul", &[y, w2], &[]);
        let y = g.op("Cast", "Cast", &[y], &[("DstT", dtype(DType::F64))]);
        let code = g.lower(&[y]);
        assert!(code.contains("self.dense = nn.Linear") && code.contains("self.head ="), "{code}");
    }

    /// Keras 3 numbers each call of a layer (`_1`, and `_2` for a shared embedding's second
    /// call): the first call's `_1` is dropped from every name, the second's number stays.
    #[test]
    fn keras_call_numbers_leave_the_names() {
        let mut g = TestGraph::new();
        let ids = g.typed_input("ids", &[-1, 4], DType::I32);
        let table = g.constant("m/emb/table", weights(&[10, 8]));
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let a = g.op("m/emb_1/GatherV2", "GatherV2", &[table, ids, axis], &[]);
        let w = g.constant("m/dense/kernel", weights(&[8, 8]));
        let a = g.op("m/dense_1/MatMul", "BatchMatMulV2", &[a, w], &[]);
        let table2 = g.constant("m/emb/table2", weights(&[10, 8]));
        let b = g.op("m/emb_2/GatherV2", "GatherV2", &[table2, ids, axis], &[]);
        let y = g.op("m/add_1/add", "AddV2", &[a, b], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.emb = nn.Embedding(10, 8)
        self.dense = nn.Linear(8, 8, bias=False)
        self.emb_2 = nn.Embedding(10, 8)
        # emb.weight: [10, 8]
        # dense.weight: [8, 8]
        # emb_2.weight: [10, 8]
        ---
        x = self.emb(ids)
        x = self.dense(x)
        y = self.emb_2(ids)
        x = x + y
        return x
        ");
    }

    /// Layers numbered from 0 (`layer_0`, `layer_1`) are a model's own indices, not
    /// Keras's call numbers, though every scope carries a number: `layer_1` keeps its name.
    #[test]
    fn scopes_numbered_from_zero_keep_their_numbers() {
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 8]);
        for i in 0..2 {
            let w = g.constant(&format!("m/layer_{i}/kernel"), weights(&[8, 8]));
            y = g.op(&format!("m/layer_{i}/MatMul"), "MatMul", &[y, w], &[]);
        }
        let code = g.lower(&[y]);
        assert!(code.contains("self.layer_1 = nn.Linear"), "{code}");
    }

    /// keras-hub's HGNetV2 names each nested layer after the one holding it: the innermost
    /// name already says the path, which is not repeated.
    #[test]
    fn layers_named_after_their_holders_say_the_path_once() {
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 8]);
        for b in 0..2 {
            let scope = format!("m/stage_1/stage_1_block_{b}/stage_1_block_{b}_conv");
            let w = g.constant(&format!("{scope}/kernel"), weights(&[8, 8]));
            y = g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[]);
        }
        assert_snapshot!(g.lower(&[y]), @"
            self.block_0_conv = nn.Linear(8, 8, bias=False)
            self.block_1_conv = nn.Linear(8, 8, bias=False)
            # block_0_conv.weight: [8, 8]
            # block_1_conv.weight: [8, 8]
            ---
            x = self.block_0_conv(x)
            x = self.block_1_conv(x)
            return x
            ");
    }

    /// A layer whose name begins with the word its holder's ends with says it once
    /// (Keras' `self_attention/attention_output` → `self_attention_output`); a Keras kind
    /// keeps its name (`last_layer/layer_normalization`), as does a short shared word.
    #[test]
    fn a_word_holder_and_layer_share_is_said_once() {
        use super::past_shared_word;
        assert_eq!(past_shared_word("self_attention", "attention_output"), "output");
        assert_eq!(past_shared_word("last_layer", "layer_normalization"), "layer_normalization");
        assert_eq!(past_shared_word("attention", "attention_output"), "attention_output");
        assert_eq!(past_shared_word("qk_norm", "norm_2"), "norm_2");
        assert_eq!(past_shared_word("up_in", "in_proj"), "in_proj");
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 8]);
        for layer in ["query", "attention_output"] {
            let scope = format!("m/block/self_attention/{layer}");
            let w = g.constant(&format!("{scope}/kernel"), weights(&[8, 8]));
            y = g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[]);
        }
        let y = g.op("m/head/Tanh", "Tanh", &[y], &[]);
        let lowered = g.lower(&[y]);
        assert!(lowered.contains("self.block_self_attention_output = nn.Linear("), "{lowered}");
    }

    /// Encoder and decoder layers share every scope name but one word: no tail tells
    /// `transformer_decoder_layer_0/self_attention` from the encoder's, and the whole scope is
    /// too long a name; the longest tail that is a short name is used (the counter and the
    /// code's place tell the values apart).
    #[test]
    fn scopes_told_apart_only_by_a_long_prefix_get_short_names() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 8]);
        let mut y = x;
        for stack in ["encoder", "decoder"] {
            let scope = format!("m/transformer_{stack}_layer_0/self_attention");
            let sq = g.op(&format!("{scope}/Square"), "Square", &[y], &[]);
            let sum = g.op(&format!("{scope}/add"), "AddV2", &[sq, sq], &[]);
            y = g.op(&format!("{scope}/mul"), "Mul", &[sum, sq], &[]);
        }
        assert_snapshot!(g.lower(&[y]), @"
        ---
        self_attention = torch.square(x)
        x = self_attention + self_attention
        x = x * self_attention
        self_attention_2 = torch.square(x)
        x = self_attention_2 + self_attention_2
        x = x * self_attention_2
        return x
        ");
    }

    /// TF-Slim's scopes are capitalised as TF's own are (`Tensordot`): one holding an op that
    /// reads a trained weight names a layer (`Block_1/Dense`), unless it is an op
    /// (`MatMul/ReadVariableOp`) or a TF function's scope. The model's scope opened again
    /// inside itself (`M/M/Block_1`, beside `M/Logits`) is said once.
    #[test]
    fn capitalised_scopes_holding_weights_name_layers() {
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 8]);
        for i in 1..3 {
            let w = g.variable(&format!("M/Block_{i}/Dense/weights"), weights(&[8, 8]));
            y = g.op(&format!("M/M/Block_{i}/Dense/MatMul"), "MatMul", &[y, w], &[]);
        }
        let w = g.variable("M/Logits/weights", weights(&[8, 8]));
        let w = g.op("M/Logits/MatMul/ReadVariableOp", "Identity", &[w], &[]);
        y = g.op("M/Logits/MatMul", "MatMul", &[y, w], &[]);
        let w = g.variable("M/Proj/Tensordot/ReadVariableOp", weights(&[8, 8]));
        y = g.op("M/Proj/Tensordot/MatMul", "MatMul", &[y, w], &[]);
        assert_snapshot!(g.lower(&[y]), @"
            self.block_1_dense = nn.Linear(8, 8, bias=False)
            self.block_2_dense = nn.Linear(8, 8, bias=False)
            self.logits = nn.Linear(8, 8, bias=False)
            self.proj = nn.Linear(8, 8, bias=False)
            # block_1_dense.weight: [8, 8]
            # block_2_dense.weight: [8, 8]
            # logits.weight: [8, 8]
            # proj.weight: [8, 8]
            ---
            x = self.block_1_dense(x)
            x = self.block_2_dense(x)
            x = self.logits(x)
            x = self.proj(x)
            return x
            ");
    }

    /// Hugging Face names its norms `LayerNorm` (`attention/output/LayerNorm`, as PyTorch's
    /// BERT does): a fused norm holds its weights itself, and its scope names it, on its
    /// second call too (`batchnorm_1`).
    #[test]
    fn norms_in_capitalised_scopes_name_layers() {
        use crate::ir::fused::{Affine, Fused};
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let mut y = g.op("bert/embeddings/Relu", "Relu", &[x], &[]);
        let norm = || Fused::LayerNorm {
            epsilon: 1e-12,
            affine: Some(Affine { gamma: weights(&[4]), beta: Some(weights(&[4])) }),
        };
        for name in
            ["bert/output/LayerNorm/batchnorm/add_1", "bert/output/LayerNorm/batchnorm_1/add_1"]
        {
            y = g.fused(name, norm(), &[y]);
            g.set_shape(y, &[-1, 4]);
        }
        let text = g.lower(&[y]);
        assert!(text.contains("self.output_layer_norm = nn.LayerNorm(4, eps=1e-12)"), "{text}");
        assert!(text.contains("self.output_layer_norm_2 = nn.LayerNorm"), "{text}");
    }

    /// Keras 2 names a depthwise conv layer `depthwise` inside its block, as TF names its
    /// op: a `depthwise` scope holding the op reading the weights is that layer, and what
    /// it holds is named after it (`depthwise/BatchNorm`); TF's own `depthwise` op stays TF's.
    #[test]
    fn a_layer_named_depthwise_names_what_it_holds() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let w = g.variable("m/block/depthwise/depthwise_kernel", weights(&[8, 8]));
        let y = g.op("m/block/depthwise/depthwise", "MatMul", &[x, w], &[]);
        let s = g.variable("m/block/depthwise/BatchNorm/gamma", weights(&[8]));
        let y = g.op("m/block/depthwise/BatchNorm/mul", "Mul", &[y, s], &[]);
        let w = g.variable("m/other/depthwise/ReadVariableOp", weights(&[8, 8]));
        let y = g.op("m/other/depthwise", "MatMul", &[y, w], &[]);
        let code = g.lower(&[y]);
        for layer in ["block_depthwise = ", "block_depthwise_batch_norm:", "other = "] {
            assert!(code.contains(&format!("self.{layer}")), "{layer}: {code}");
        }
    }

    /// A loop's body names its values as `forward` does: by the shortest tail of their scope
    /// that tells them apart, without Keras' call numbers (`lstm_cell`, not
    /// `stacked_rnn_cells_1_lstm_cell_1`).
    #[test]
    fn a_loop_body_names_values_by_their_short_scopes() {
        let (g, out) = tf1_frame_named("rnn_1/while", |g, x| {
            let cell = "rnn_1/while/stacked_rnn_cells_1/lstm_cell_1";
            let a = g.op(&format!("{cell}/Sigmoid"), "Sigmoid", &[x], &[]);
            let b = g.op(&format!("{cell}/Tanh"), "Tanh", &[a], &[]);
            g.op(&format!("{cell}/mul"), "Mul", &[a, b], &[])
        });
        let code = g.lower(&[out]);
        assert!(code.contains("lstm_cell = torch.sigmoid(") && !code.contains("stacked"), "{code}");
    }

    /// Keras' ConvNeXt names a downsampling block's layers after the block and its number
    /// (`downsampling_block_1/downsampling_conv_1`): the inner name says `conv`. Where one
    /// instance cannot show the number is the block's (ALBERT's one group 0 holding its
    /// layer 0), the name stays whole.
    /// tf_keras' op layers (`tf.__operators__.add_3`) are named after their function, and
    /// do not keep the model's name from leaving its other layers' names.
    #[test]
    fn op_layers_are_named_after_their_function() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let mut y = x;
        for scope in ["m/conv_next_stem_dense", "m/conv_next_head_dense"] {
            let w = g.variable(&format!("{scope}/kernel"), weights(&[8, 8]));
            y = g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[]);
        }
        let y = g.op("m/tf.__operators__.add_3/AddV2", "AddV2", &[x, y], &[]);
        let z = g.op("m/tf.math.multiply_2/Mul", "Mul", &[y, y], &[]);
        // Read again further on, it keeps its name rather than run as `x`.
        let y = g.op("m/tf.__operators__.add_4/AddV2", "AddV2", &[z, y], &[]);
        let code = g.lower(&[y]);
        for expected in ["self.stem_dense = nn.Linear", "self.head_dense = nn.Linear", "add_3 = "] {
            assert!(code.contains(expected), "{expected}: {code}");
        }
        assert!(!code.contains("tf_"), "{code}");
    }

    /// A hostile name of 20,000 nested unnamed containers is named as quickly as any.
    #[test]
    fn deeply_nested_containers_are_cheap() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let deep = vec!["sequential_1"; 20_000].join("/");
        let w = g.variable(&format!("{deep}/dense/kernel"), weights(&[8, 8]));
        let y = g.op(&format!("{deep}/dense/MatMul"), "MatMul", &[x, w], &[]);
        // Outside the containers: no common prefix takes them.
        let y = g.op("add/AddV2", "AddV2", &[y, x], &[]);
        let start = std::time::Instant::now();
        let code = g.lower(&[y]);
        assert!(code.contains("nn.Linear(8, 8"), "{code}");
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    /// Keras' unnamed `keras.Sequential`s and nested models (`sequential_7`,
    /// `functional_1`) leave layer names where their layers stay apart without them; two
    /// Sequentials each holding a `dense` keep them.
    #[test]
    fn unnamed_containers_leave_layer_names() {
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 8]);
        for scope in [
            "m/mlp_2/sequential_7/dense_1",
            "m/mlp_2/sequential_7/dense_2",
            "m/functional_1/conv1",
            "m/pool/sequential_3/dense",
            "m/pool/sequential_4/dense",
        ] {
            let w = g.variable(&format!("{scope}/kernel"), weights(&[8, 8]));
            y = g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[]);
        }
        let code = g.lower(&[y]);
        for layer in [
            "mlp_2_dense_1",
            "mlp_2_dense_2",
            "conv1",
            "pool_sequential_3_dense",
            "pool_sequential_4_dense",
        ] {
            assert!(code.contains(&format!("self.{layer} = nn.Linear")), "{layer}: {code}");
        }
    }

    #[test]
    fn layers_numbered_as_their_blocks_say_only_what_they_add() {
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 8]);
        for b in 0..2 {
            let scope = format!("m/downsampling_block_{b}/downsampling_conv_{b}");
            let w = g.variable(&format!("{scope}/kernel"), weights(&[8, 8]));
            y = g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[]);
        }
        let w = g.variable("m/layer_group_0/group_dense_0/kernel", weights(&[8, 8]));
        y = g.op("m/layer_group_0/group_dense_0/MatMul", "MatMul", &[y, w], &[]);
        let code = g.lower(&[y]);
        for layer in [
            "downsampling_block_0_conv",
            "downsampling_block_1_conv",
            "layer_group_0_group_dense_0",
        ] {
            assert!(code.contains(&format!("self.{layer} = nn.Linear")), "{layer}: {code}");
        }
    }

    #[test]
    fn an_inlined_body_node_is_named_as_its_body_named_it() {
        let node = "m/blocks.0/cond_3/then/_24/m/blocks.0/cond_3/cond_1/then/_318/m/blocks.0/ones";
        assert_eq!(inlined_name(node), "m/blocks.0/ones");
        assert_eq!(
            inlined_name("m/gru/while/body/_1/m/gru/while/gru_cell/MatMul"),
            "m/gru/while/gru_cell/MatMul"
        );
        // Not markers: a layer named `then`, a counter without its slash, nothing after.
        assert_eq!(inlined_name("m/then/dense/MatMul"), "m/then/dense/MatMul");
        assert_eq!(inlined_name("m/xthen/_2/add"), "m/xthen/_2/add");
        assert_eq!(inlined_name("m/cond/then/_3/"), "m/cond/then/_3/");
    }
}
