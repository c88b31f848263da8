//! Names for classes that share a base name: what sets one apart, where their layers say.
//!
//! Two kinds of block a model names alike (Swin's stages end in an `EncoderLayer` with a
//! downsampling and one without) would otherwise be `EncoderLayer` and `EncoderLayer2`, a
//! name that says nothing. Where one class has every layer the other has and more, and those
//! layers' names begin with a word the other's never use, the plainer class keeps the name
//! and the other is named after that word: `EncoderLayerWithDownsample`.

use std::collections::BTreeSet;

use heck::ToUpperCamelCase;

/// The part `more` has that `fewer` lacks, named after the first word its attributes do not
/// share with `fewer`'s (`downsample` of Swin's `downsample_norm` and `downsample_reduction`;
/// `rotary` of a layer's `self_attn_rotary_emb_inv_freq` beside `self_attn_q_proj`), as a
/// class-name suffix (`Downsample`). `None` unless `more` has all of `fewer`'s attributes and
/// others, or where no word of theirs is new to `fewer` (VGG's third `conv3`: both blocks
/// have convolutions, and `WithConv` would say otherwise).
pub(super) fn extra_part(more: &[String], fewer: &[String]) -> Option<String> {
    let fewer_set: BTreeSet<&str> = fewer.iter().map(String::as_str).collect();
    let more_set: BTreeSet<&str> = more.iter().map(String::as_str).collect();
    if fewer_set.is_empty() || !fewer_set.is_subset(&more_set) || fewer_set == more_set {
        return None;
    }
    let uncounted =
        |w: &'_ str| -> String { w.trim_end_matches(|c: char| c.is_ascii_digit()).to_string() };
    let known: BTreeSet<String> = fewer.iter().flat_map(|n| n.split('_')).map(uncounted).collect();
    more.iter().filter(|n| !fewer_set.contains(n.as_str())).find_map(|name| {
        let words: Vec<&str> = name.split('_').collect();
        // Past the words it shares with one of the other's (`self_attn_`).
        let shared = fewer
            .iter()
            .map(|f| f.split('_').zip(&words).take_while(|(a, b)| a == *b).count())
            .max()
            .unwrap_or(0);
        let word = uncounted(words.get(shared)?);
        let worded = word.len() >= 2 && word.chars().all(|c| c.is_ascii_lowercase());
        (worded && !known.contains(&word)).then(|| word.to_upper_camel_case())
    })
}

/// For the groups of each base name only two classes share, which is plain and which is
/// named after its extra part: `(plain, extra, name)` triples, the plain one keeping the
/// base name. `skip(i)` leaves out a class named otherwise unless it is the first of its
/// name (the residual kind: `ResidualBlock` beside two other `Block`s).
pub(super) fn by_difference(
    bases: &[String],
    attributes: &[Vec<String>],
    skip: impl Fn(usize) -> bool,
) -> Vec<(usize, usize, String)> {
    let mut found = Vec::new();
    for (j, base) in bases.iter().enumerate() {
        let mut same: Vec<usize> = (0..bases.len()).filter(|&k| &bases[k] == base).collect();
        // Not those named otherwise (the first keeps the name).
        let first = same[0];
        same.retain(|&k| k == first || !skip(k));
        if same.len() != 2 || same[1] != j {
            continue;
        }
        let i = same[0];
        if let Some(part) = extra_part(&attributes[i], &attributes[j]) {
            found.push((j, i, format!("{base}With{part}")));
        } else if let Some(part) = extra_part(&attributes[j], &attributes[i]) {
            found.push((i, j, format!("{base}With{part}")));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::{by_difference, extra_part};

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_part_only_one_class_has_names_it() {
        // Swin's last stage has no downsampling.
        let with = names(&["attn_qkv", "mlp_fc1", "downsample_norm", "downsample_reduction"]);
        let without = names(&["attn_qkv", "mlp_fc1"]);
        assert_eq!(extra_part(&with, &without).as_deref(), Some("Downsample"));
        assert_eq!(extra_part(&without, &with), None);
        // Past the words both share: a rotary table beside the attention's projections.
        let rotary = names(&["self_attn_q_proj", "self_attn_rotary_emb_inv_freq"]);
        let nope = names(&["self_attn_q_proj"]);
        assert_eq!(extra_part(&rotary, &nope).as_deref(), Some("Rotary"));
    }

    #[test]
    fn no_name_where_the_part_is_of_a_kind_both_have() {
        // VGG's three-conv and two-conv blocks: both have convolutions.
        let three = names(&["conv1", "conv2", "conv3"]);
        let two = names(&["conv1", "conv2"]);
        assert_eq!(extra_part(&three, &two), None);
        // Neither has all the other's layers (ResNet V2's first block and the others).
        let first = names(&["conv1", "conv0"]);
        let other = names(&["conv1", "max_pooling2d"]);
        assert_eq!(extra_part(&first, &other), None);
        assert_eq!(extra_part(&other, &first), None);
        // The same layers: the difference is elsewhere.
        assert_eq!(extra_part(&two, &two), None);
    }

    #[test]
    fn the_plain_class_keeps_the_name() {
        let bases = names(&["StageBlock", "EncoderLayer", "EncoderLayer"]);
        let attributes = vec![
            names(&["conv"]),
            names(&["attn_qkv", "projection_conv", "projection_bn"]),
            names(&["attn_qkv"]),
        ];
        let found = by_difference(&bases, &attributes, |_| false);
        assert_eq!(found, [(2, 1, "EncoderLayerWithProjection".to_string())]);
        assert!(by_difference(&bases, &attributes, |k| k == 2).is_empty());
        // One named otherwise leaves two.
        let mut bases = bases;
        bases.push("EncoderLayer".to_string());
        let mut attributes = attributes;
        attributes.push(names(&["attn_qkv", "x"]));
        let found = by_difference(&bases, &attributes, |k| k == 3);
        assert_eq!(found, [(2, 1, "EncoderLayerWithProjection".to_string())]);
        // Three classes of one name stay numbered.
        let bases = names(&["Block", "Block", "Block"]);
        let attributes = vec![names(&["a", "se_x"]), names(&["a"]), names(&["a"])];
        assert!(by_difference(&bases, &attributes, |_| false).is_empty());
    }
}
