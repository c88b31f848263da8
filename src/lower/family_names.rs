//! Top-level layers without the model family's name: keras-hub names a layer after its
//! class, and its classes after the family (`SAM3VisionEncoder` is `sam3_vision_encoder`,
//! SigLIP's `sig_lip_text_encoder`, CSPNet's `csp_stem_conv_0`), inside a model scope that
//! begins with the same words (`sam3_promptable_concept_backbone`). Inside that model every
//! layer is the family's: `vision_encoder`, `text_encoder`, `stem_conv_0` say as much in
//! fewer words, as a PyTorch author writes them.
//!
//! The family's layers keep their names where one of them would be left with one word
//! (MobileNetV5's `mobile_attention`, CLIP's `clip_head`, FNet's `f_net_layer_0`: the
//! family's words are part of what it is) or with another layer's name, and where every
//! layer shares a prefix already (ConvNeXt's `convnext_tiny_stem`: see
//! `scopes::common_name_prefix`).

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use super::Lowerer;

/// Top-level layers looked at, at most (a hostile graph may have millions).
const MAX_LAYERS: usize = 100_000;

impl Lowerer<'_> {
    /// Top-level layer scope (without its call number) → how many of its leading bytes name
    /// the model's family (`sam3_`), for those that go without them.
    pub(super) fn family_prefixed(&self, order: &[NodeIndex]) -> BTreeMap<String, usize> {
        let Some(model) = self.prefix.last() else { return BTreeMap::new() };
        if !self.name_prefix.is_empty() {
            return BTreeMap::new();
        }
        let model: Vec<&str> = model.split('_').collect();
        let layers: BTreeSet<&str> = self
            .scoped_nodes(order)
            .map(|(_, first)| self.without_call_suffix(first))
            .take(MAX_LAYERS)
            .collect();
        let mut cut = BTreeMap::new();
        let mut short: BTreeMap<&str, usize> = BTreeMap::new();
        for &layer in &layers {
            let words: Vec<&str> = layer.split('_').collect();
            let shared = words.iter().zip(&model).take_while(|(a, b)| a == b).count();
            if shared == 0 {
                continue;
            }
            let bytes = words[..shared].iter().map(|w| w.len() + 1).sum::<usize>();
            cut.insert(layer, bytes.min(layer.len()));
            *short.entry(&layer[bytes.min(layer.len())..]).or_default() += 1;
        }
        // The rest: two words at least that are no numbers (`vision_encoder`; FNet's
        // `f_net_layer_0` is no `layer_0`), in lower case, no other layer's name.
        let fits = |layer: &str, bytes: usize| {
            let rest = &layer[bytes..];
            let words = rest.split('_').filter(|w| !w.bytes().all(|b| b.is_ascii_digit()));
            let lower = rest.bytes().all(|b| !b.is_ascii_uppercase());
            words.count() >= 2 && lower && short[rest] == 1 && !layers.contains(rest)
        };
        // All the family's layers or none: half of them renamed would read as two families
        // (RegNet's `regnetx002_stem_conv` beside `regnetx002_Stage_0_XBlock_0`).
        if !cut.iter().all(|(layer, &bytes)| fits(layer, bytes)) {
            return BTreeMap::new();
        }
        cut.into_iter().map(|(layer, bytes)| (layer.to_string(), bytes)).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::dense_chain;
    use insta::assert_snapshot;

    /// Dense layers in a row, named `scopes`, in model scope `sam3_backbone`.
    fn family(scopes: &[&str]) -> String {
        let paths: Vec<String> = scopes.iter().map(|s| format!("sam3_backbone/{s}")).collect();
        dense_chain(&paths.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn top_level_layers_go_without_the_family_name_the_model_begins_with() {
        let code = family(&["sam3_vision_encoder", "sam3_text_encoder", "mask_decoder"]);
        assert_snapshot!(code.split("---").nth(1).unwrap_or_default(), @"
        x = self.vision_encoder(x)
        x = self.text_encoder(x)
        x = self.mask_decoder(x)
        return x
        ");
        // One left with a word alone (the family's words are part of what it is), or with
        // another layer's name: the family keeps its names, all of them.
        for odd in ["sam3_attention", "sam3_layer_0", "sam3_mask_decoder"] {
            let code = family(&["sam3_vision_encoder", odd, "mask_decoder"]);
            assert!(code.contains("self.sam3_vision_encoder("), "{code}");
        }
    }
}
