//! Names for classes that share a base name: what sets one apart, where their layers say.
//!
//! Two kinds of block a model names alike (Swin's stages end in an `EncoderLayer` with a
//! downsampling and one without) would otherwise be `EncoderLayer` and `EncoderLayer2`, a
//! name that says nothing. Where one class has every layer the other has and more, and those
//! layers' names begin with a word the other's never use, the plainer class keeps the name
//! and the other is named after that word: `EncoderLayerWithDownsample`. Where they differ
//! only in how many layers of a numbered kind they have (VGG's blocks of two and of three
//! convolutions: `conv1`, `conv2`, `conv3`), each is named after its count:
//! `TwoConvBlock`, `ThreeConvBlock`. Where each has layers the other lacks but only one a
//! kind of layer the other has none of, that one is named after it: Xception's
//! `BlockWithPool` beside its middle `Block`.

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
    own_part(more, fewer, false)
}

/// The first word of a layer `more` has and `fewer` lacks that no name of `fewer`'s uses,
/// as a class-name suffix, whatever else either has (see [`extra_part`]); with `whole`,
/// only where that word is all the layer's name says beyond the words they share (`pool`,
/// not `max` of `max_pooling2d`).
fn own_part(more: &[String], fewer: &[String], whole: bool) -> Option<String> {
    let fewer_set: BTreeSet<&str> = fewer.iter().map(String::as_str).collect();
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
        if whole && words.len() > shared + 1 {
            return None;
        }
        let worded = word.len() >= 2 && word.chars().all(|c| c.is_ascii_lowercase());
        // A whole word may be another's short form (`pool` of `max_pooling2d`).
        let kin = |k: &String| whole && (k.starts_with(&word) || word.starts_with(k.as_str()));
        let new = !known.contains(&word) && !known.iter().any(|k| k.len() >= 2 && kin(k));
        (worded && new).then(|| word.to_upper_camel_case())
    })
}

/// Count words for class names (`ThreeConvBlock`); a longer run of layers is no name.
const COUNTS: [&str; 9] = ["One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"];

/// The kind of a numbered layer (`conv` of `conv3`): a word of at least two letters before
/// the number.
fn numbered_kind(name: &str) -> Option<&str> {
    let kind = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let numbered = kind.len() < name.len() && kind.len() >= 2;
    (numbered && kind.bytes().all(|b| b.is_ascii_lowercase())).then_some(kind)
}

/// Where two classes' layers differ only in how many of one numbered kind each has (VGG's
/// `conv1`, `conv2` beside `conv1`, `conv2`, `conv3`): the kind, for names by count. Other
/// numbered kinds may differ along (a `bn3` with each `conv3`); the kind of the first layer
/// one has and the other lacks names both.
fn counted_kind<'a>(a: &'a [String], b: &'a [String]) -> Option<&'a str> {
    let a_set: BTreeSet<&str> = a.iter().map(String::as_str).collect();
    let b_set: BTreeSet<&str> = b.iter().map(String::as_str).collect();
    // In the order the layers are made (`conv3` before its `bn3`).
    let only_a = a.iter().filter(|n| !b_set.contains(n.as_str()));
    let only_b = b.iter().filter(|n| !a_set.contains(n.as_str()));
    let mut differing = only_a.chain(only_b).map(String::as_str);
    let first = differing.next()?;
    let kind = numbered_kind(first)?;
    let both_have = |k: &str| {
        let of_kind = |set: &BTreeSet<&str>| set.iter().any(|n| numbered_kind(n) == Some(k));
        of_kind(&a_set) && of_kind(&b_set)
    };
    let all_numbered =
        std::iter::once(first).chain(differing).all(|n| numbered_kind(n).is_some_and(both_have));
    (all_numbered && both_have(kind)).then_some(kind)
}

/// `ThreeConvBlock`: `base` named after how many layers of `kind` `attributes` has.
fn by_count(base: &str, kind: &str, attributes: &[String]) -> Option<String> {
    let count = attributes.iter().filter(|n| numbered_kind(n) == Some(kind)).count();
    let word = COUNTS.get(count.checked_sub(1)?)?;
    Some(format!("{word}{}{base}", kind.to_upper_camel_case()))
}

/// For the groups of each base name only two classes share, their names where their layers
/// tell them apart: the plain one keeps the base name and the other is named after its
/// extra part, or each is named after its count of a kind. `skip(i)` leaves out a class
/// named otherwise unless it is the first of its name (the residual kind: `ResidualBlock`
/// beside two other `Block`s).
pub(super) fn by_difference(
    bases: &[String],
    attributes: &[Vec<String>],
    skip: impl Fn(usize) -> bool,
) -> Vec<(usize, String)> {
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
            found.extend([(j, base.clone()), (i, format!("{base}With{part}"))]);
        } else if let Some(part) = extra_part(&attributes[j], &attributes[i]) {
            found.extend([(i, base.clone()), (j, format!("{base}With{part}"))]);
        } else if let Some(kind) = counted_kind(&attributes[i], &attributes[j]) {
            let counted = [i, j].map(|k| by_count(base, kind, &attributes[k]));
            if let [Some(a), Some(b)] = counted {
                found.extend([(i, a), (j, b)]);
            }
        } else {
            // Each has layers the other lacks, but only one a part of a kind the other has
            // none of (Xception's entry blocks' `pool`, beside the middle blocks' third
            // separable convolution): that one is named after it.
            let (a, b) = (&attributes[i], &attributes[j]);
            match (own_part(a, b, true), own_part(b, a, true)) {
                (Some(part), None) => {
                    found.extend([(j, base.clone()), (i, format!("{base}With{part}"))])
                }
                (None, Some(part)) => {
                    found.extend([(i, base.clone()), (j, format!("{base}With{part}"))])
                }
                _ => {}
            }
        }
    }
    found
}

/// Where a class runs: where its first and last instances are, and how many it has.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    pub first: usize,
    pub last: usize,
    pub instances: usize,
}

/// Names for classes that share `base` and that nothing else told apart (`(index, place)`
/// each, in any order), said by where they run rather than numbered: `Mixed2` beside
/// `mixed2`, an instance of another class, would mislead. Of two, one that occurs once, as
/// the first or the last of them all, is `First…` or `Last…` (T5's first layer, which also
/// computes the position bias; MMDiT's last joint block, which drops the context stream),
/// and the other keeps `base`; else each is lettered in the order they first run, as
/// torchvision's `InceptionA` to `InceptionE`. `None` beyond 26.
pub(super) fn by_place(base: &str, classes: &[(usize, Place)]) -> Option<Vec<(usize, String)>> {
    let mut classes = classes.to_vec();
    classes.sort_by_key(|(k, p)| (p.first, *k));
    if let [(a, pa), (b, pb)] = classes[..] {
        let last = pa.last.max(pb.last);
        if pa.instances == 1 {
            return Some(vec![(a, format!("First{base}")), (b, base.to_string())]);
        }
        if pb.instances == 1 && pb.last == last {
            return Some(vec![(a, base.to_string()), (b, format!("Last{base}"))]);
        }
    }
    if classes.len() > 26 {
        return None;
    }
    let letters = (b'A'..=b'Z').map(char::from);
    Some(classes.iter().zip(letters).map(|((k, _), l)| (*k, format!("{base}{l}"))).collect())
}

#[cfg(test)]
mod tests {
    use super::{Place, by_difference, by_place, extra_part};

    #[test]
    fn classes_of_one_name_are_told_apart_by_where_they_run() {
        let place = |first, last, instances| Place { first, last, instances };
        // T5: layer 0 computes the position bias the others read.
        let found = by_place("EncoderLayer", &[(0, place(10, 30, 2)), (1, place(5, 5, 1))]);
        let expected = [(1, "FirstEncoderLayer".to_string()), (0, "EncoderLayer".to_string())];
        assert_eq!(found.unwrap(), expected);
        // MMDiT: the last joint block.
        let found = by_place("JointBlock", &[(0, place(10, 20, 2)), (1, place(30, 30, 1))]);
        let expected = [(0, "JointBlock".to_string()), (1, "LastJointBlock".to_string())];
        assert_eq!(found.unwrap(), expected);
        // InceptionV3: lettered in the order they run, whatever their own order.
        let classes = [(0, place(40, 70, 4)), (1, place(10, 30, 3)), (2, place(90, 95, 2))];
        let found = by_place("Mixed", &classes).unwrap();
        let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["MixedA", "MixedB", "MixedC"]);
        assert_eq!(found[0].0, 1);
        // One of two that occurs once in the middle is no first or last.
        let found = by_place("Block", &[(0, place(0, 20, 3)), (1, place(10, 10, 1))]);
        assert_eq!(found.unwrap()[1].1, "BlockB");
    }

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
    fn blocks_of_more_layers_of_a_kind_are_named_by_count() {
        // VGG19's blocks of two and of four convolutions.
        let bases = names(&["Block", "Block"]);
        let four = names(&["conv1", "conv2", "conv3", "conv4", "pool"]);
        let two = names(&["conv1", "conv2", "pool"]);
        let found = by_difference(&bases, &[four.clone(), two.clone()], |_| false);
        let expected = [(0, "FourConvBlock".to_string()), (1, "TwoConvBlock".to_string())];
        assert_eq!(found, expected);
        // A norm along with each conv: named after the conv, which comes first.
        let three = names(&["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"]);
        let two = names(&["conv1", "bn1", "conv2", "bn2"]);
        let found = by_difference(&bases, &[two, three], |_| false);
        let expected = [(0, "TwoConvBlock".to_string()), (1, "ThreeConvBlock".to_string())];
        assert_eq!(found, expected);
        // Not where the other layers differ too, nor for a kind only one has.
        let other = names(&["conv1", "conv2", "conv3", "max_pooling2d"]);
        assert!(by_difference(&bases, &[four.clone(), other], |_| false).is_empty());
        let head = names(&["conv1", "conv2", "pool", "head1"]);
        let found = by_difference(&bases, &[head, names(&["conv1", "conv2", "pool"])], |_| false);
        assert_eq!(found, [(1, "Block".to_string()), (0, "BlockWithHead".to_string())]);
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
        let expected =
            [(2, "EncoderLayer".to_string()), (1, "EncoderLayerWithProjection".to_string())];
        assert_eq!(found, expected);
        assert!(by_difference(&bases, &attributes, |k| k == 2).is_empty());
        // One named otherwise leaves two.
        let mut bases = bases;
        bases.push("EncoderLayer".to_string());
        let mut attributes = attributes;
        attributes.push(names(&["attn_qkv", "x"]));
        let found = by_difference(&bases, &attributes, |k| k == 3);
        assert_eq!(found, expected);
        // Three classes of one name stay numbered.
        let bases = names(&["Block", "Block", "Block"]);
        let attributes = vec![names(&["a", "se_x"]), names(&["a"]), names(&["a"])];
        assert!(by_difference(&bases, &attributes, |_| false).is_empty());
    }

    /// Xception: the middle blocks' third separable convolution is of a kind the entry
    /// blocks have too; the entry blocks' pool is of none the middle ones have. Where both
    /// have a kind the other lacks, neither name says more.
    #[test]
    fn only_one_with_a_kind_of_its_own_is_named_after_it() {
        let bases = names(&["Block", "Block"]);
        let attributes = vec![
            names(&["sepconv1", "sepconv2", "sepconv3"]),
            names(&["sepconv1", "sepconv2", "pool"]),
        ];
        let found = by_difference(&bases, &attributes, |_| false);
        assert_eq!(found, [(0, "Block".to_string()), (1, "BlockWithPool".to_string())]);
        let attributes = vec![names(&["conv", "norm"]), names(&["conv", "pool"])];
        assert!(by_difference(&bases, &attributes, |_| false).is_empty());
    }
}
