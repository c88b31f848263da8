//! Numbers in a class's attribute names that only counted layers over the whole model.
//!
//! Keras names a layer nobody named after its class and a counter that runs over the whole
//! model (`t5_layer_norm_2`, `mix_ffn_3`, `dense_26`), and TF adds its own where a scope is
//! taken (`modulation_1_2`). Inside a class those numbers say nothing, and they differ from
//! one class to its sibling: T5's encoder layer has `t5_layer_norm_2` and `t5_layer_norm_3`
//! where the first layer has `t5_layer_norm` and `t5_layer_norm_1_2`. Read a name as
//! segments, each some words and the numbers after them (`mix_ffn_2_dense_1` is `mix_ffn` 2,
//! `dense` 1); within the segments that follow the same renamed ones:
//! - a kind the class has one of loses its numbers (`mix_ffn_2_dense_1` → `mix_ffn_dense_1`);
//! - kinds numbered as people number them (`ln_1`, `ln_2`; `branch_0` to `branch_3`;
//!   `dense`, `dense_1`; `ffw_gating`, `ffw_gating_2`) keep them;
//! - a scope TF numbered apart where one layer's was entered twice (MMDiT's
//!   `context_block_ada_layer_norm_dense`, `context_block_3_attention_proj`) is one again:
//!   where no two names under the kind's numbers are alike without them;
//! - others are numbered afresh in the order the class uses them (`t5_layer_norm_2`,
//!   `t5_layer_norm_3` → `t5_layer_norm_1`, `t5_layer_norm_2`).
//!
//! Where that would make two names one, the names stay as they were.

use std::collections::{BTreeMap, BTreeSet};

/// Classes with more attributes than this keep their names.
const MAX_NAMES: usize = 1024;

/// Words, then the numbers after them (`mix_ffn`, `[2]`); words may be none where a name
/// begins with a number (ResNet's `1_conv`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Segment<'a> {
    words: Vec<&'a str>,
    numbers: Vec<&'a str>,
}

fn is_number(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

fn segments(name: &str) -> Vec<Segment<'_>> {
    let mut out: Vec<Segment> = Vec::new();
    let mut current = Segment { words: Vec::new(), numbers: Vec::new() };
    for word in name.split('_') {
        if is_number(word) {
            current.numbers.push(word);
        } else {
            if !current.numbers.is_empty() {
                out.push(std::mem::replace(
                    &mut current,
                    Segment { words: Vec::new(), numbers: Vec::new() },
                ));
            }
            current.words.push(word);
        }
    }
    out.push(current);
    out
}

/// Splits segment `d` of a name where its words begin with another name's whole segment
/// there, after the same rewritten ones: FLUX's `modulation_dense_26` beside
/// `modulation_1_2_dense` is `modulation` and `dense_26`, Keras numbering the dense layer
/// and TF the modulation.
fn split_at_kinds(parsed: &mut [Vec<Segment>], written: &[Vec<String>], d: usize) {
    let kinds: BTreeSet<(&[String], Vec<&str>)> = parsed
        .iter()
        .zip(written)
        .filter_map(|(segs, w)| segs.get(d).map(|s| (w.as_slice(), s.words.clone())))
        .collect();
    let mut splits: Vec<(usize, usize)> = Vec::new();
    for (i, segs) in parsed.iter().enumerate() {
        let Some(seg) = segs.get(d) else { continue };
        let cut = (1..seg.words.len())
            .rev()
            .find(|&k| kinds.contains(&(written[i].as_slice(), seg.words[..k].to_vec())));
        if let Some(k) = cut {
            splits.push((i, k));
        }
    }
    // A segment without numbers splits only as a numbered one of its words does (T5Gemma2's
    // `key_norm` beside `key_norm_3`, both after `merged_attention_key`): alone it has no
    // counter to tell apart (`layer_norm` beside `layer_0_ln_1` is no `layer`, then `norm`).
    let numbered: BTreeSet<(&[String], &[&str], usize)> = splits
        .iter()
        .filter(|&&(i, _)| !parsed[i][d].numbers.is_empty())
        .map(|&(i, k)| (written[i].as_slice(), parsed[i][d].words.as_slice(), k))
        .collect();
    let splits: Vec<(usize, usize)> = splits
        .iter()
        .copied()
        .filter(|&(i, k)| {
            let seg = &parsed[i][d];
            !seg.numbers.is_empty() || numbered.contains(&(written[i].as_slice(), &seg.words, k))
        })
        .collect();
    for (i, k) in splits {
        let seg = &mut parsed[i][d];
        let rest =
            Segment { words: seg.words.split_off(k), numbers: std::mem::take(&mut seg.numbers) };
        parsed[i].insert(d + 1, rest);
    }
}

/// Whether a kind's numbers (each name's, distinct) are as people number: one number each,
/// from 0 or 1 up without gaps, or the first without a number and the rest from 1 or 2
/// (Gemma's `ffw_gating`, `ffw_gating_2`).
fn numbered_as_people_do(distinct: &[&[&str]]) -> bool {
    if distinct
        .iter()
        .any(|n| n.len() > 1 || n.first().is_some_and(|w| w.starts_with('0') && w.len() > 1))
    {
        return false;
    }
    let values: BTreeSet<usize> =
        distinct.iter().filter_map(|n| n.first()).filter_map(|w| w.parse().ok()).collect();
    let bare = distinct.iter().any(|n| n.is_empty());
    let k = values.len();
    let from = |start: usize| values.iter().copied().eq(start..start + k);
    if bare { from(1) || from(2) } else { from(0) || from(1) }
}

/// The class's attribute names (in the order the class uses them) with the model's counters
/// gone, as the module documentation says.
pub(super) fn renumbered(names: Vec<String>) -> Vec<String> {
    // (The search is quadratic in a kind's members: a hostile graph's class of thousands
    // keeps its names.)
    if names.len() > MAX_NAMES {
        return names;
    }
    let mut parsed: Vec<Vec<Segment>> = names.iter().map(|n| segments(n)).collect();
    // Each name as rewritten so far, segment by segment.
    let mut written: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for d in 0.. {
        if parsed.iter().all(|segs| segs.len() <= d) {
            break;
        }
        split_at_kinds(&mut parsed, &written, d);
        // The names with a segment at this depth, by what they read before it and its words.
        let mut kinds: BTreeMap<(Vec<String>, Vec<&str>), Vec<usize>> = BTreeMap::new();
        for (i, segs) in parsed.iter().enumerate() {
            if let Some(seg) = segs.get(d) {
                kinds.entry((written[i].clone(), seg.words.clone())).or_default().push(i);
            }
        }
        for ((_, words), at) in kinds {
            let mut distinct: Vec<&[&str]> = Vec::new();
            for &i in &at {
                let numbers = parsed[i][d].numbers.as_slice();
                if !distinct.contains(&numbers) {
                    distinct.push(numbers);
                }
            }
            // One of a kind says nothing by its number, however it reads (`mlp_1_dense_1`).
            let one = matches!(distinct.as_slice(), [n] if !n.is_empty());
            let keep = words.is_empty() || (!one && numbered_as_people_do(&distinct));
            // One layer's scope entered twice, which TF numbers apart (MMDiT's
            // `context_block` before the attention, `context_block_3` after): what each
            // holds has names the other's lack, and the number goes.
            let rests: Vec<Vec<&str>> = at
                .iter()
                .map(|&i| parsed[i][d + 1..].iter().flat_map(|s| s.words.iter().copied()).collect())
                .collect();
            let reentered = rests.iter().all(|r| !r.is_empty())
                && rests.iter().collect::<BTreeSet<_>>().len() == rests.len();
            for &i in &at {
                let seg = &parsed[i][d];
                let mut text: Vec<&str> = seg.words.clone();
                let fresh;
                if keep {
                    text.extend(seg.numbers.iter().copied());
                } else if distinct.len() > 1 && !reentered {
                    let k = distinct.iter().position(|n| *n == seg.numbers.as_slice());
                    fresh = (k.unwrap_or(0) + 1).to_string();
                    text.push(&fresh);
                }
                written[i].push(text.join("_"));
            }
        }
    }
    let renamed: Vec<String> = written.iter().map(|w| w.join("_")).collect();
    let unique = renamed.iter().collect::<BTreeSet<_>>().len() == renamed.len();
    let valid =
        renamed.iter().all(|n| !n.is_empty() && !n.starts_with(|c: char| c.is_ascii_digit()));
    if unique && valid { renamed } else { names }
}

#[cfg(test)]
mod tests {
    use super::renumbered;

    fn renamed(names: &[&str]) -> Vec<String> {
        renumbered(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn counters_over_the_model_are_counted_afresh_in_the_class() {
        // T5's encoder layers: Keras' counters, and TF's second one on a name taken.
        assert_eq!(
            renamed(&["t5_layer_norm_2", "t5_layer_norm_3"]),
            ["t5_layer_norm_1", "t5_layer_norm_2"]
        );
        assert_eq!(
            renamed(&["t5_layer_norm", "t5_layer_norm_1_2"]),
            ["t5_layer_norm_1", "t5_layer_norm_2"]
        );
        // One of a kind: its number goes, the numbers inside it stay.
        assert_eq!(renamed(&["mlp_1_dense_1", "mlp_1_dense_2"]), ["mlp_dense_1", "mlp_dense_2"]);
        assert_eq!(
            renamed(&["mix_ffn_2_dense_1", "mix_ffn_2_depthwise_conv2d", "mix_ffn_2_dense_2"]),
            ["mix_ffn_dense_1", "mix_ffn_depthwise_conv2d", "mix_ffn_dense_2"]
        );
        // MMDiT: a block's scope before its attention and after.
        assert_eq!(
            renamed(&["context_block_norm", "context_block_qkv", "context_block_3_proj"]),
            ["context_block_norm", "context_block_qkv", "context_block_proj"]
        );
        // FLUX: two modulations, each with a dense layer.
        assert_eq!(
            renamed(&["modulation_1_2_dense", "modulation_dense_26", "dense_1", "dense_2"]),
            ["modulation_1_dense", "modulation_2_dense", "dense_1", "dense_2"]
        );
    }

    #[test]
    fn numbers_people_give_stay() {
        let kept = ["ln_1", "mha_query", "ln_2", "mlp_dense_1", "mlp_dense_2"];
        assert_eq!(renamed(&kept), kept);
        let branches = ["branch_0_conv", "branch_1_conv", "branch_2_conv"];
        assert_eq!(renamed(&branches), branches);
        let keras = ["conv2d", "conv2d_1", "conv2d_2"];
        assert_eq!(renamed(&keras), keras);
        let gemma = ["ffw_gating", "ffw_gating_2", "ffw_linear"];
        assert_eq!(renamed(&gemma), gemma);
        // ResNet's `1_conv` has no words to count, and names without numbers stay.
        let resnet = ["conv1", "bn1", "conv2"];
        assert_eq!(renamed(&resnet), resnet);
    }

    /// A name of no numbers is not split at a kind another name begins with: PARSeq's
    /// decoder's `layer_norm` beside its one layer's `layer_0_ln_1` is no `layer_2_norm`.
    #[test]
    fn a_name_without_counters_is_one_kind() {
        let decoder = ["layer_0_ln_1", "layer_0_ln_2", "layer_0_mlp_dense_1", "layer_norm"];
        let renamed = renamed(&decoder);
        assert_eq!(renamed, ["layer_ln_1", "layer_ln_2", "layer_mlp_dense", "layer_norm"]);
        // Beside a numbered one of its words, it splits as that one does.
        let t5gemma2 = ["attention_key", "attention_key_norm", "attention_key_norm_3"];
        assert_eq!(
            super::renumbered(t5gemma2.iter().map(|n| n.to_string()).collect()),
            ["attention_key", "attention_key_norm_1", "attention_key_norm_2"]
        );
    }

    #[test]
    fn names_that_would_meet_stay() {
        // `attention_1_dense` alone of its kind would be `attention_dense`, a name taken.
        let names = ["attention_1_dense", "attention_dense"];
        assert_eq!(renamed(&names), names);
    }
}
