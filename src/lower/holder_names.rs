//! Layer names without a holder's name where it only makes them long: keras-hub's
//! `token_and_position_embedding/token_embedding` is `token_embedding`, DistilBERT's
//! `self_attention_layer/attention_output` is `attention_output`. A holder goes only where
//! - its layers' own names say what they are (none is a Keras kind and counter, as SAM's
//!   `multi_head_attention_with_relative_pe/dense_1` is);
//! - they stay apart from every other name without it (a decoder's `self_attention/query`
//!   beside `cross_attention/query` keeps both): a prefix stays where it disambiguates;
//! - it sits right below the model or a block's instance, whose class reads the names
//!   (inside another holder, `embeddings/patch_embeddings/projection` would read as the
//!   outer one's);
//! - it is no layer itself (reads no weights, holds no composites), and a name it makes
//!   is longer than a short name (Llama's `self_attention_query` stays).

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use super::Lowerer;
use super::keras_names::keras_kind;
use super::scopes::{SHORT_NAME_MAX, is_implementation_scope};

/// Holders deeper than this are left as they are (a hostile name may nest a million).
const MAX_HOLDER_DEPTH: usize = 8;

/// What leaving one holder out does to the names of the layers below it.
#[derive(Default)]
struct Candidate {
    /// (name now, name without the holder) of each layer below it.
    renamed: BTreeSet<(String, String)>,
    /// The holder's name and every inner layer's say what they are ([`says_what`]).
    fits: bool,
    /// The names of the layers right below it.
    inner: BTreeSet<String>,
    /// Some name the holder makes is longer than a short name.
    long: bool,
    /// Its own ops read trained weights (gpt-oss' `sparse_moe_block` reads its experts' in
    /// its einsums): it is a layer itself, and its weights are named after it.
    layer: bool,
}

/// A name of words without numbers, and not a Keras kind: not an instance (`layer_0`,
/// counted `mha_2`, EfficientNet's `block1a_`), nor one Keras counted.
fn says_what(name: &str) -> bool {
    let word = |w: &str| !w.is_empty() && !w.bytes().any(|b| b.is_ascii_digit());
    keras_kind(name).is_none() && name.split('_').all(word)
}

/// `key` with its numbers made `#` and Keras' counters gone: the same holder in every
/// instance of a block (`transformer_layer_#/self_attention`; Mixtral's
/// `mixtral_sparse_moe_block` in one layer, `mixtral_sparse_moe_block_1` in the next).
fn instance_kind(key: &str) -> String {
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    key.split('/')
        .map(|c| {
            let mut words: Vec<&str> = c.split('_').collect();
            while words.len() > 1 && words.last().is_some_and(|w| number(w)) {
                words.pop();
            }
            let words = words.into_iter().map(|w| if number(w) { "#" } else { w });
            words.collect::<Vec<_>>().join("_")
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl<'a> Lowerer<'a> {
    /// Holders (as `/`-joined paths of [`Self::scope_paths`]) whose names layer names go
    /// without (see the module's doc). The same holder in every instance of a block is
    /// decided together, so the instances' layers keep one set of names.
    pub(super) fn long_holders(&self, nodes: &[NodeIndex]) -> BTreeSet<String> {
        let graph = self.graph;
        let mut taken = BTreeSet::new();
        let mut paths: Vec<(Vec<&str>, Vec<&str>, bool)> = Vec::new();
        for &n in nodes {
            let (path, single, own) = self.scope_paths(n);
            taken.insert(if single {
                path[0].to_string()
            } else {
                self.without_name_prefix(&path.join("_"))
            });
            if !single {
                // Layers are what read trained weights; values (a rotary table, a softmax)
                // are named by role, not by these names.
                let holds = graph.node(n).fused.as_ref().is_some_and(|f| f.holds_weights());
                let reads = holds || graph.inputs(n).iter().any(|v| graph.node(v.node).variable);
                let node = graph.node(n);
                paths.push((path, own, node.variable || reads && node.value.is_none()));
            }
        }
        let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
        for (path, own, layer) in &paths {
            for i in 0..(path.len() - 1).min(MAX_HOLDER_DEPTH) {
                let key = path[..=i].join("/");
                // Right below the model or a block's instance (`transformer_layer_0`), whose
                // names are read in its own class: inside another holder, a layer without
                // its holder's name would read as the outer one's
                // (`embeddings/patch_embeddings/projection` is no `embeddings_projection`).
                let at_top = i == 0 || !says_what(path[i - 1]);
                let c = candidates.entry(key).or_insert_with(|| Candidate {
                    fits: at_top && says_what(path[i]),
                    ..Candidate::default()
                });
                let mut without = path.clone();
                without.remove(i);
                without[i] = own[i + 1];
                // Only layers right below it: a holder of composites (gpt-oss'
                // `sparse_moe_block/experts/einsum`) is a part of the model's own.
                c.fits &= path.len() == i + 2;
                if *layer {
                    // Not a scope TF opens inside a layer (a fused norm named by its `mul`).
                    c.fits &= says_what(own[i + 1]) && !is_implementation_scope(own[i + 1]);
                    c.long |= path[i..].join("_").len() > SHORT_NAME_MAX;
                    c.inner.insert(own[i + 1].to_string());
                }
                let now = self.without_name_prefix(&path.join("_"));
                c.renamed.insert((now, self.without_name_prefix(&without.join("_"))));
            }
            if *layer {
                candidates.entry(path.join("/")).or_default().layer = true;
            }
        }
        // Holders side by side whose layers share names (a decoder's `self_attention/query`
        // and `cross_attention/query`) keep them: each name says which.
        let parent = |key: &str| key.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        let mut holding: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for (key, c) in &candidates {
            for inner in &c.inner {
                *holding.entry((parent(key), inner.as_str())).or_default() += 1;
            }
        }
        let parallel: BTreeSet<&str> = candidates
            .iter()
            .filter(|(key, c)| c.inner.iter().any(|i| holding[&(parent(key), i.as_str())] > 1))
            .map(|(key, _)| key.as_str())
            .collect();
        let mut kinds: BTreeMap<(usize, String), Vec<&str>> = BTreeMap::new();
        for key in candidates.keys() {
            kinds.entry((key.matches('/').count(), instance_kind(key))).or_default().push(key);
        }
        let mut gone = BTreeSet::new();
        for keys in kinds.values() {
            let each = || keys.iter().map(|k| &candidates[*k]);
            let held = |k: &str| k.match_indices('/').any(|(at, _)| gone.contains(&k[..at]));
            let stays = !each().all(|c| c.fits && !c.layer && !c.inner.is_empty())
                || !each().any(|c| c.long)
                || keys.iter().any(|k| held(k) || parallel.contains(k));
            if stays {
                continue;
            }
            let new: Vec<&String> = each().flat_map(|c| c.renamed.iter().map(|(_, n)| n)).collect();
            let distinct: BTreeSet<&String> = new.iter().copied().collect();
            if distinct.len() < new.len() || distinct.iter().any(|n| taken.contains(*n)) {
                continue;
            }
            taken.extend(distinct.into_iter().cloned());
            gone.extend(keys.iter().map(|k| k.to_string()));
        }
        gone
    }

    /// `path` without its outermost holder whose name goes (see [`Self::long_holders`]),
    /// the layer below it named as its scope wrote it (`attention_output`, not `output`).
    pub(super) fn without_long_holders(
        &self,
        mut path: Vec<&'a str>,
        own: &[&'a str],
    ) -> Vec<&'a str> {
        let depth = (path.len().saturating_sub(1)).min(MAX_HOLDER_DEPTH);
        let mut key = String::new();
        for i in 0..depth {
            if i > 0 {
                key.push('/');
            }
            key.push_str(path[i]);
            if self.long_holders.contains(&key) {
                path.remove(i);
                path[i] = own[i + 1];
                break;
            }
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{dense_chain, letters};

    fn has_layers(code: &str, layers: &[&str]) {
        for layer in layers {
            assert!(code.contains(&format!("self.{layer} = nn.Linear")), "{layer}: {code}");
        }
    }

    /// keras-hub's DistilBERT: `self_attention_layer/attention_output` is `attention_output`,
    /// `token_and_position_embedding/token_embedding` is `token_embedding`.
    #[test]
    fn a_holder_that_only_makes_names_long_goes() {
        let code = dense_chain(&[
            "m/token_and_position_embedding/token_embedding",
            "m/token_and_position_embedding/position_embedding",
            "m/self_attention_layer/query",
            "m/self_attention_layer/attention_output",
            "m/feedforward_output_dense",
        ]);
        has_layers(&code, &["token_embedding", "position_embedding", "query", "attention_output"]);
    }

    /// A decoder's self- and cross-attention both hold a `query`: each keeps its holder's
    /// name, which says which it is. A holder of Keras-counted layers (`dense_1` says
    /// nothing alone) and short names keep theirs too.
    #[test]
    fn holders_that_tell_layers_apart_stay() {
        let code = dense_chain(&[
            "m/self_attention_layer/query",
            "m/self_attention_layer/attention_output",
            "m/cross_attention_layer/query",
            "m/cross_attention_layer/attention_output",
            "m/multi_head_attention_with_relative_pe/dense_1",
            "m/multi_head_attention_with_relative_pe/dense_2",
            "m/mlp/fc1",
        ]);
        has_layers(
            &code,
            &[
                "self_attention_layer_query",
                "cross_attention_layer_attention_output",
                "multi_head_attention_with_relative_pe_dense_1",
                "mlp_fc1",
            ],
        );
    }

    /// A hostile graph of a thousand holders side by side, each holding a layer of one
    /// name, is named as quickly as any, and every holder keeps its name.
    #[test]
    fn many_holders_side_by_side_are_cheap() {
        let scopes: Vec<String> =
            (0..1000).map(|i| format!("m/attention_holder_{}/query", letters(i))).collect();
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        let code = dense_chain(&scopes);
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
        has_layers(&code, &["aaa_query", "lla_query"]);
    }

    /// The holder goes in every instance of a block or in none, so the instances keep one
    /// class; inside another holder it stays (`embeddings/patch_embeddings/projection`).
    #[test]
    fn holders_go_in_every_block_or_none() {
        let code = dense_chain(&[
            "m/layer_0/self_attention_layer/query",
            "m/layer_0/self_attention_layer/attention_output",
            "m/layer_1/self_attention_layer/query",
            "m/layer_1/self_attention_layer/attention_output",
            "m/embeddings/patch_embeddings/projection_layer",
        ]);
        has_layers(&code, &["layer_0_query", "layer_1_attention_output"]);
        assert!(!code.contains("self_attention_layer"), "{code}");
        assert!(code.contains("patch_embeddings_projection_layer"), "{code}");
    }
}
