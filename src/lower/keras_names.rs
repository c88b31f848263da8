//! Keras' names for layers nobody named: the layer's kind (`dense`), then the kind and a
//! counter for the next ones (`dense_5`), and TF's own counter on a scope used twice
//! (`permute_1_2`). Such a name says what the code already does, not what the value is.

use crate::lower::blocks::kind_and_counter;

/// Keras' layer kinds, as it names the first layer of each.
const KERAS_KINDS: &[&str] = &[
    "activation",
    "add",
    "average",
    "average_pooling2d",
    "batch_normalization",
    "concatenate",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv2d_transpose",
    "dense",
    "depthwise_conv2d",
    "dropout",
    "einsum_dense",
    "embedding",
    "flatten",
    "global_average_pooling1d",
    "global_average_pooling2d",
    "group_normalization",
    "layer_normalization",
    "max_pooling2d",
    "multi_head_attention",
    "multiply",
    "permute",
    "re_lu",
    "rms_normalization",
    "reshape",
    "separable_conv2d",
    "subtract",
    "up_sampling2d",
    "zero_padding2d",
];

/// The kind Keras named layer (or value) `name` after: a kind, or a kind and its counters
/// (`dense_5`; `permute_1_2`); `None` for a name of the model's (`image_encoder`,
/// `transformer_layer_0`).
pub fn keras_kind(name: &str) -> Option<&str> {
    let mut kind = name;
    for _ in 0..2 {
        kind = kind_and_counter(kind).unwrap_or(kind);
    }
    KERAS_KINDS.contains(&kind).then_some(kind)
}

/// The Keras kind a layer path ends in (`modulation_2_dense_38` → `dense`), counters and all.
pub fn keras_kind_at_end(name: &str) -> Option<&'static str> {
    let mut rest = name;
    for _ in 0..2 {
        rest = kind_and_counter(rest).unwrap_or(rest);
    }
    KERAS_KINDS
        .iter()
        .copied()
        .find(|k| rest.strip_suffix(k).is_some_and(|head| head.is_empty() || head.ends_with('_')))
}

#[cfg(test)]
mod tests {
    use super::{keras_kind, keras_kind_at_end};

    #[test]
    fn keras_kinds_at_the_end_of_a_path() {
        assert_eq!(keras_kind_at_end("modulation_2_dense_38"), Some("dense"));
        assert_eq!(keras_kind_at_end("qk_norm_2_rms_normalization_8"), Some("rms_normalization"));
        assert_eq!(keras_kind_at_end("attention_output"), None);
        assert_eq!(keras_kind_at_end("condense_3"), None);
    }

    #[test]
    fn keras_kinds_without_their_counters() {
        assert_eq!(keras_kind("dense_5"), Some("dense"));
        assert_eq!(keras_kind("permute_1_2"), Some("permute"));
        assert_eq!(keras_kind("layer_normalization"), Some("layer_normalization"));
        assert_eq!(keras_kind("image_encoder"), None);
        assert_eq!(keras_kind("transformer_layer_0"), None);
    }
}
