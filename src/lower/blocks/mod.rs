//! Repeated blocks: where sibling scopes (`conv3_block2`, `conv3_block3`, ...) hold the same
//! computation, emit one `nn.Module` class for it and one instance per scope, with the
//! weights under nested state_dict keys (`conv3_block2.conv1.weight`).
//!
//! Runs on the lowered statements. A scope prefix ending in a numbered token is a candidate
//! block, and so are the layers whose names end in the same cell number where a model numbers
//! its cells that way (Keras NASNet: `normal_conv_1_5`, `separable_conv_1_normal_left1_5`);
//! a candidate qualifies when its statements are contiguous, it moves no stubs, reads
//! at most [`MAX_INPUTS`] outside values and leaves exactly one value live. Candidates with
//! the same structure (statements and layer types, constructor arguments aside) share a
//! class; constructor arguments that differ between instances become class parameters.
//! A composite layer that occurs once (a transformer's one layer without rotary embedding,
//! ViTDet's one global-attention block) is a class too where its layers' names would
//! otherwise carry its whole scope (see [`alone`]).

use std::collections::{BTreeMap, BTreeSet};

use heck::ToUpperCamelCase;

mod class;
mod counters;
mod hoist;
mod inner;
mod layouts;
mod naming;
pub mod nested;
mod runs;
pub mod stacks;
pub mod units;
mod variants;

pub use hoist::hoist_foreign;
pub use layouts::inputs_as_siblings;

use self::class::{Instances, build_class};
use self::inner::{innermost, respan};
use self::variants::{Optional, Variant};
use super::Span;
use super::chain::read_later;
use super::keras_names::keras_kind;
use super::module::Module;
use crate::py::names::{Scope, identifier};
use crate::py::printer::flat;
use crate::py::{Assign, Expr, Ref};

/// A block reads at most this many outside values.
const MAX_INPUTS: usize = 8;

/// A block that occurs once leaves at most this many values live.
const MAX_OUTPUTS: usize = 3;

/// Pairs of block groups tried as variants of one class, at most (a hostile graph may have
/// many groups of one name).
const MAX_ALIGNMENTS: usize = 10_000;

/// Levels of blocks inside blocks made classes, at most.
const MAX_NESTING: usize = 8;

/// Fewer statements than this do not make a block class.
const MIN_STATEMENTS: usize = 4;

/// Nor, for a composite layer no other repeats, fewer than this (a ViT's patch embedding,
/// conv, class token, flatten, concat and position embedding, is seven).
const MIN_ALONE_STATEMENTS: usize = 7;

/// Names of the positional arguments of the layers we emit, to name class parameters.
fn positional_names(func: &str) -> &'static [&'static str] {
    match func {
        "nn.Conv1d" | "nn.Conv2d" | "nn.Conv3d" | "nn.ConvTranspose1d" | "nn.ConvTranspose2d"
        | "nn.ConvTranspose3d" => &["in_channels", "out_channels", "kernel_size"],
        "nn.BatchNorm1d" | "nn.BatchNorm2d" | "nn.BatchNorm3d" => &["num_features"],
        "nn.LayerNorm" | "nn.RMSNorm" => &["normalized_shape"],
        "nn.GroupNorm" => &["num_groups", "num_channels"],
        "nn.Embedding" => &["num_embeddings", "embedding_dim"],
        "nn.Linear" => &["in_features", "out_features"],
        "nn.MaxPool2d" | "nn.AvgPool2d" => &["kernel_size", "stride"],
        "nn.LocalResponseNorm" => &["size"],
        _ => &[],
    }
}

/// PyTorch's default for a keyword argument of the layers we emit: a constructor that does
/// not pass it passes this (`stride=1`), so blocks differing only there share a class.
fn kwarg_default(func: &str, key: &str) -> Option<Expr> {
    let conv = func.starts_with("nn.Conv");
    let pool = func.starts_with("nn.MaxPool") || func.starts_with("nn.AvgPool");
    match key {
        "stride" | "dilation" | "groups" if conv => Some(Expr::int(1)),
        "padding" | "output_padding" if conv => Some(Expr::int(0)),
        "padding" if pool => Some(Expr::int(0)),
        _ => None,
    }
}

struct Member {
    /// Where its names come from.
    tag: Tag,
    /// Its instance's attribute name in the model (`conv2_block1`, `normal_cell_5`).
    instance: String,
    /// What its class is named after (a family, `conv2_block#`, or `normal_cell`).
    title: String,
    spans: std::ops::Range<usize>,
    stmts: std::ops::Range<usize>,
    layers: Vec<usize>,
    buffers: Vec<usize>,
    /// Outside values read, in order of first use.
    inputs: Vec<String>,
    output: String,
    /// Other values it leaves live, in the order it makes them (T5's first layer also
    /// gives the position bias every later layer reads): only a block that occurs once
    /// may, its class returning them after `output`.
    extra_outputs: Vec<String>,
    signature: String,
    canon: Canonical,
    /// Whether it begins with unnamed layers before its scope's first (see `analyse`).
    extended: bool,
    /// How many statements it runs, those of the inner blocks it calls included.
    size: usize,
}

/// How a block's layers are named: under a scope prefix (`conv2_block1_1_conv`), or, in
/// models that number each cell at the end of its layers' names (Keras NASNet's
/// `normal_conv_1_5`, `separable_conv_1_normal_left1_5`), by a suffix: the cell's id (`5`,
/// `reduce_4`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tag {
    Prefix(String),
    Suffix(String),
    /// Repetition `2` of run `0` of layers no name groups, starting `1` spans into the
    /// stretch that repeats (see [`runs`]).
    Run(usize, usize, usize),
}

impl Tag {
    /// `global` without the tag, if it carries it: `conv2_block2_1_conv` → `conv1` under
    /// `conv2_block2` (a leading number reads better at the end), `normal_conv_1_5` →
    /// `normal_conv_1` and `separable_conv_1_normal_left1_5_depthwise` →
    /// `separable_conv_1_normal_left1_depthwise` in cell `5`.
    fn strip(&self, global: &str) -> Option<String> {
        match self {
            Tag::Prefix(prefix) => {
                // Values are named by the shortest tail of their scope that tells them apart
                // (`encoder_stage_2_block_1_...` under `hg_net_v2_backbone_1_encoder_...`):
                // the block's own scope may begin further in, but no less than two words.
                let prefix = identifier(prefix);
                // And the rest must name something (`transformer_block_1_2` is no `2`).
                let strip = |p: &str| global.strip_prefix(p)?.strip_prefix('_');
                let tails = prefix.match_indices('_').map(|(i, _)| &prefix[i + 1..]);
                let mut inner = tails.take_while(|tail| tail.contains('_')).filter_map(strip);
                strip(&prefix)
                    .or_else(|| inner.find(|rest| rest.chars().any(|c| c.is_ascii_alphabetic())))
                    .map(scoped_local_name)
            }
            Tag::Run(..) => None,
            Tag::Suffix(id) => {
                let tail = format!("_{id}");
                let at = global.rmatch_indices(&tail).map(|(i, _)| i).find(|&i| {
                    let after = &global[i + tail.len()..];
                    i > 0 && (after.is_empty() || after.starts_with('_'))
                })?;
                Some(format!("{}{}", &global[..at], &global[at + tail.len()..]))
            }
        }
    }
}

/// A layer's or value's name inside its block: without the block's tag. A name from outside
/// the block's scope (Keras' `activation_190` inside `expanded_conv_4`) loses its counter,
/// which only numbered it among all the model's activations.
fn local_name(global: &str, tag: &Tag) -> String {
    tag.strip(global).unwrap_or_else(|| without_counter(global).unwrap_or(global).to_string())
}

/// A scope Keras named after the layer's kind and a counter (`conv2d_25`, `activation_247`):
/// a layer its author did not name, which belongs to the block it feeds. TF's name scopes
/// may add a second counter where Keras' name was taken already (`average_pooling2d_1_2`).
fn is_auto_named(scope: &str) -> bool {
    kind_and_counter(scope).is_some_and(|k| is_kind(k) || keras_kind(k).is_some())
}

/// `activation_190` → `activation`: what comes before a trailing counter.
pub(super) fn kind_and_counter(name: &str) -> Option<&str> {
    let (kind, n) = name.rsplit_once('_')?;
    (!kind.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(kind)
}

/// `stage` of `stage_1`, `universal_inverted_residual` of `universal_inverted_residual_1_2`:
/// without the numbers that end it.
pub(super) fn uncounted(name: &str) -> &str {
    let mut rest = name;
    while let Some(kind) = kind_and_counter(rest) {
        rest = kind;
    }
    rest
}

/// Spans of unnamed layers a block may take in before its first own one, at most: more
/// than a stem's worth (InceptionV3's unnamed stem, five convolutions and two pools before
/// `mixed0`). Without a bound, a chain of thousands of layers named by kind alone makes
/// each block reach back over all of them.
const MAX_UNNAMED_LEAD: usize = 256;

/// An unnamed layer as [`is_auto_named`] says, or the first of its kind, which Keras names
/// without a counter (`average_pooling2d`).
fn is_unnamed_layer(scope: &str) -> bool {
    is_auto_named(scope) || is_kind(scope)
}

/// Words of a Keras layer kind (letters, a rank as in `2d`), none naming a repeated
/// structure: `conv2d`, `batch_normalization`, but not `conv1`, `mixed0` or
/// `transformer_layer`.
fn is_kind(kind: &str) -> bool {
    let word = |t: &str| {
        let letters = t.strip_suffix("1d").or(t.strip_suffix("2d")).or(t.strip_suffix("3d"));
        let letters = letters.unwrap_or(t);
        !letters.is_empty() && letters.bytes().all(|b| b.is_ascii_lowercase())
    };
    let words = kind.split('_').all(word);
    let structure = ["block", "layer", "stage", "cell", "unit"].iter().any(|w| kind.contains(w));
    words && !structure
}

/// An add no layer of the model's own names: a Keras `Add` layer its author did not name
/// (`add_3`), or `inputs + x` in a model's own function, named by TF after the op (`Add_1`).
fn is_residual_add(span: &Span) -> bool {
    let kind = kind_and_counter(&span.scope).unwrap_or(&span.scope);
    kind == "add" || (span.head.is_none() && matches!(kind, "Add" | "AddV2"))
}

/// `activation_190` → `activation`: a kind without digits, then a counter.
fn without_counter(name: &str) -> Option<&str> {
    kind_and_counter(name).filter(|kind| !kind.bytes().any(|b| b.is_ascii_digit()))
}

/// [`local_name`] of each of `globals`, except that names which would lose their counters to
/// the same kind (`rotary_embedding_2`, `rotary_embedding_3`) are told apart by counting
/// them afresh in the block, in order (`rotary_embedding_1`, `rotary_embedding_2`): Keras'
/// counters run over the whole model (InceptionV3's `conv2d_241` inside one `Mixed` block).
fn local_names<'a>(globals: &[&'a str], tag: &Tag) -> BTreeMap<&'a str, String> {
    // A layer Keras named after its kind and a counter, outside the block's scope.
    // In a block found by structure every layer is one Keras named so (`layer_normalization_1_2`
    // is the block's second layer norm).
    let auto = |g: &'a str| match tag {
        Tag::Run(..) => crate::lower::keras_names::keras_kind(g),
        _ => kind_and_counter(g).filter(|k| tag.strip(g).is_none() && is_kind(k)),
    };
    let base =
        |g: &'a str| auto(g).map_or_else(|| keras_uncounted(&local_name(g, tag)), str::to_string);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for g in globals {
        *kinds.entry(base(g)).or_default() += 1;
    }
    let mut counted: BTreeMap<&str, usize> = BTreeMap::new();
    let mut recounted: BTreeMap<String, usize> = BTreeMap::new();
    globals
        .iter()
        .map(|&g| {
            let local = base(g);
            let shared = kinds[&local] > 1 || (local != g && globals.contains(&local.as_str()));
            if !shared {
                return (g, local);
            }
            match auto(g) {
                Some(kind) => {
                    let n = counted.entry(kind).or_default();
                    *n += 1;
                    (g, format!("{kind}_{n}"))
                }
                // Keras' counters dropped: the block's own count.
                None if local != local_name(g, tag) => {
                    let n = recounted.entry(local.clone()).or_default();
                    *n += 1;
                    (g, format!("{local}_{n}"))
                }
                None => (g, tag.strip(g).unwrap_or_else(|| g.to_string())),
            }
        })
        .collect()
}

/// A layer's path in a block without the counters Keras gives its own kinds of layers over
/// the whole model (FLUX's `layer_normalization_19` → `layer_normalization`,
/// `modulation_2_dense_38` → `modulation_2_dense`). Other numbers may be the model's own
/// (Hugging Face's `ffn_0`, `ffn_1`; `stage_0`): they stay.
fn keras_uncounted(name: &str) -> String {
    if crate::lower::keras_names::keras_kind_at_end(name).is_none() {
        return name.to_string();
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    for w in name.split('_') {
        if number(w) {
            let counter = run.is_empty() && kept.last().is_some_and(|k| !number(k))
                || crate::lower::keras_names::keras_kind(&run.join("_")).is_some();
            kept.append(&mut run);
            if !counter {
                kept.push(w);
            }
        } else {
            run.push(w);
        }
    }
    kept.append(&mut run);
    if kept.is_empty() { name.to_string() } else { kept.join("_") }
}

/// In a cell found by its id, layers named after the cell's kind say it once, in the class's
/// name: NASNet's `ReductionCell` holds `conv`, `left4` and `separable_conv_1_left1`, not
/// `reduction_conv`, `reduction_left4`, `separable_conv_1_reduction_left1`. A name that
/// would be left empty, start with a digit or become another's keeps the word. Where every
/// name begins with it, it names their kind, as [`without_shared_words`] keeps such words
/// (MobileNet's `conv_dw`, `conv_pw`, in cells its `conv` names).
fn without_title_word<'a>(
    names: BTreeMap<&'a str, String>,
    title: &str,
) -> BTreeMap<&'a str, String> {
    let word = title.strip_suffix("_cell").unwrap_or(title);
    if names.values().all(|n| n.split('_').next() == Some(word)) {
        return names;
    }
    let dropped = |n: &str| -> Option<String> {
        let words: Vec<&str> = n.split('_').collect();
        let at = words.iter().position(|w| *w == word)?;
        let rest: Vec<&str> =
            words.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, w)| *w).collect();
        let rest = rest.join("_");
        let valid = rest.starts_with(|c: char| c.is_ascii_alphabetic())
            && rest.contains(|c: char| c.is_ascii_alphabetic());
        valid.then_some(rest)
    };
    let mut out: BTreeMap<&str, String> =
        names.iter().map(|(&g, n)| (g, dropped(n).unwrap_or_else(|| n.clone()))).collect();
    // Names that now collide keep the word, until none do.
    loop {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for n in out.values() {
            *count.entry(n.as_str()).or_default() += 1;
        }
        let clashing: Vec<&str> = out
            .iter()
            .filter(|(g, n)| count[n.as_str()] > 1 && **n != names[**g])
            .map(|(&g, _)| g)
            .collect();
        if clashing.is_empty() {
            return out;
        }
        for g in clashing {
            out.insert(g, names[g].clone());
        }
    }
}

/// Layer names that all begin with the same words up to a number say them once, in the
/// class's name, not on each layer: an instance's tag the block's own missed (Keras'
/// EfficientNet names each layer of block 3b `block3b_expand_conv`, `block3b_se_reduce`,
/// ...), or one scope around all of a block's layers (TF-Slim's `bottleneck_v1_conv1`,
/// `bottleneck_v1_conv2`). Words without a number name layers (`conv_dw`, `conv_pw`) and
/// stay. Every name keeps a word, and no name starts with a digit.
fn without_shared_words(names: BTreeMap<&str, String>) -> BTreeMap<&str, String> {
    if names.len() < 2 {
        return names;
    }
    let words: Vec<Vec<&str>> = names.values().map(|n| n.split('_').collect()).collect();
    let first = &words[0];
    let mut shared = 0;
    while shared < first.len()
        && words.iter().all(|w| {
            w.len() > shared + 1
                && w[shared] == first[shared]
                && !w[shared + 1].starts_with(|c: char| c.is_ascii_digit())
        })
    {
        shared += 1;
    }
    let numbered = |w: &str| w.bytes().any(|b| b.is_ascii_digit());
    let Some(cut) = first[..shared].iter().rposition(|w| numbered(w)).map(|i| i + 1) else {
        return names;
    };
    names
        .into_iter()
        .map(|(global, local)| {
            let rest: Vec<&str> = local.split('_').skip(cut).collect();
            (global, rest.join("_"))
        })
        .collect()
}

fn scoped_local_name(rest: &str) -> String {
    match rest.split_once('_') {
        Some((num, tail)) if num.chars().all(|c| c.is_ascii_digit()) && !tail.is_empty() => {
            format!("{tail}{num}")
        }
        _ => rest.to_string(),
    }
}

fn class_name(family: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    // A version (`hg_net_v2_backbone`, TF-Slim's `MobilenetV1`) is part of the name, not a
    // block's number.
    for t in family.split('_') {
        // A version is a letter and a number, as a word (`v2`) or ending a capitalised one.
        let letters = t.trim_end_matches(|c: char| c.is_ascii_digit());
        let version = letters.len() < t.len()
            && (letters.len() == 1 && letters.starts_with(|c: char| c.is_ascii_alphabetic())
                || letters.len() > 1 && letters.ends_with(|c: char| c.is_ascii_uppercase()));
        // Numbers at the end of a word number the block (`conv2`, `block#`); inside one
        // they are part of it (`pooling2d`).
        let w =
            if version { t } else { t.trim_end_matches(|c: char| c.is_ascii_digit() || c == '#') };
        // So does one letter after a number (Keras' EfficientNet numbers its blocks
        // `block2a`, `block2b`: stage, then block within it).
        let w = match w.strip_suffix(|c: char| c.is_ascii_lowercase()) {
            Some(stem) if stem.ends_with('#') => stem.trim_end_matches('#'),
            _ => w,
        };
        let w: String = w.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let w = if w.starts_with(|c: char| c.is_ascii_digit()) { String::new() } else { w };
        if !w.is_empty() && words.last() != Some(&w) {
            words.push(w);
        }
    }
    // One instance of `encoder/layers_3` is an `EncoderLayer`.
    if let Some(last) = words.last_mut()
        && let Some(one) = last.strip_suffix('s')
        && matches!(one, "layer" | "block" | "stage" | "cell" | "unit" | "module" | "level")
    {
        *last = one.to_string();
    }
    let name = words.join("_").to_upper_camel_case();
    if name.is_empty() { "Block".into() } else { name }
}

/// What the members' families share, word by word from each end, numbers aside: a class
/// whose instances are the encoder's and the decoder's mid blocks (`encoder_mid_block_#`,
/// `decoder_mid_block_#`) is a `MidBlock`, not an `EncoderMidBlock`, and one of D-FINE's
/// `hybrid_encoder_fpn_block_#` and `hybrid_encoder_pan_block_#` a `HybridEncoderBlock`;
/// ResNet's stages (`conv2_block#`, `conv3_block#`) share every word (`ConvBlock`). The
/// first member's family where nothing is shared.
fn shared_title(titles: &[&str]) -> String {
    let Some((first, rest)) = titles.split_first() else { return String::new() };
    // A word without the numbers a class name drops (`block2a` is a `block`).
    let bare = |w: &str| {
        let w = match w.strip_suffix(|c: char| c.is_ascii_lowercase()) {
            Some(stem) if stem.ends_with(|c: char| c.is_ascii_digit() || c == '#') => stem,
            _ => w,
        };
        w.trim_end_matches(|c: char| c.is_ascii_digit() || c == '#').to_string()
    };
    let words =
        |t: &str| -> Vec<String> { t.split('_').map(bare).filter(|w| !w.is_empty()).collect() };
    let mine = words(first);
    let (mut head, mut tail) = (mine.len(), mine.len());
    for t in rest {
        let theirs = words(t);
        let front = mine.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        let back = mine.iter().rev().zip(theirs.iter().rev()).take_while(|(a, b)| a == b).count();
        head = head.min(front);
        tail = tail.min(back);
    }
    if head + tail >= mine.len() {
        return first.to_string();
    }
    let kept: Vec<&String> = mine[..head].iter().chain(&mine[mine.len() - tail..]).collect();
    if kept.is_empty() {
        return first.to_string();
    }
    kept.iter().map(|w| w.as_str()).collect::<Vec<_>>().join("_")
}

/// The base class name of each group: `plain` ([`class_name`] of its first member's family),
/// except that groups whose names collide keep the numbers in their family's words where
/// every member shares its family and that tells them apart (Keras' InceptionResNetV2:
/// `block35_#`, `block17_#`, `block8_#` are `Block35`, `Block17`, `Block8`, as Keras' and
/// timm's own code names them, not `Block`, `Block2`, `Block3`; a group across stages,
/// `conv2_block#` and `conv3_block#`, is not named after one of them).
fn class_bases(titles: &[Option<&str>], plain: &[String]) -> Vec<String> {
    // A number that is a word of its own is a counter (Keras' and TF's second one:
    // `windowed_transformer_encoder_1_2`), not part of a name as in `block35`.
    let kept = |t: &str| {
        let counter = |w: &str| w.bytes().all(|b| b.is_ascii_digit());
        let words = t.split('_').filter(|w| !w.is_empty() && !w.contains('#') && !counter(w));
        words.map(|w| w.to_upper_camel_case()).collect::<String>()
    };
    (0..plain.len())
        .map(|i| {
            let rivals: Vec<usize> = (0..plain.len()).filter(|&j| plain[j] == plain[i]).collect();
            let names: Option<BTreeSet<String>> =
                rivals.iter().map(|&j| titles[j].map(kept)).collect();
            let distinct = rivals.len() > 1 && names.is_some_and(|n| n.len() == rivals.len());
            match titles[i].map(kept) {
                Some(name)
                    if distinct
                        && name != plain[i]
                        && crate::py::names::is_valid_class_name(&name) =>
                {
                    name
                }
                _ => plain[i].clone(),
            }
        })
        .collect()
}

/// Whether `scope` is `layer` with a counter after it (`mixed9_1` of `mixed9`), as Keras
/// names a layer whose name is taken.
fn is_counted_sibling(scope: &str, layer: &str) -> bool {
    scope.strip_prefix(layer).and_then(|r| r.strip_prefix('_')).is_some_and(is_number)
}

/// A family with its numbers of any length: `mixed9` (`mixed#`) and `mixed10` (`mixed##`)
/// are both `mixed#`.
fn any_length(family: &str) -> String {
    let mut out = String::with_capacity(family.len());
    for c in family.chars() {
        if !(c == '#' && out.ends_with('#')) {
            out.push(c);
        }
    }
    out
}

/// A candidate block: its family (`conv2_block#`; [`CELL_FAMILY`] for cells numbered by a
/// suffix), and the spans it names.
struct Candidate {
    family: String,
    spans: Vec<usize>,
}

/// What the class of a block found by structure is called after (see [`runs`]).
const RUN_TITLE: &str = "block";

/// The family of every cell numbered by a suffix: cells of other ids are its siblings.
const CELL_FAMILY: &str = "#cell";

/// A cell numbered by a suffix has at least this many differently named layers.
const MIN_CELL_SCOPES: usize = 3;

/// Candidate prefixes end within this many `_`-separated words of a scope: real blocks are
/// a few words deep (`conv3_block2`, `transformer_layer_0`), and a hostile name of thousands
/// of words would make thousands of prefixes of thousands of words each.
pub const MAX_PREFIX_TOKENS: usize = 32;

/// Every candidate, found in one walk over the spans: each scope prefix ending in a
/// numbered token (`conv2_block1` of `conv2_block1_1_conv`), and each cell id ending names
/// (see [`cell_id`]).
fn candidates(spans: &[Span]) -> BTreeMap<Tag, Candidate> {
    let mut out: BTreeMap<Tag, Candidate> = BTreeMap::new();
    let mut heads: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in spans.iter().enumerate() {
        let tokens: Vec<&str> = s.scope.split('_').collect();
        // Whole scopes too: `transformer_layer_0` is a block of its own nested ops.
        for k in 1..=tokens.len().min(MAX_PREFIX_TOKENS) {
            if !tokens[k - 1].chars().any(|c| c.is_ascii_digit()) {
                continue;
            }
            let prefix = tokens[..k].join("_");
            let candidate = out.entry(Tag::Prefix(prefix)).or_insert_with(|| {
                let mut fam: Vec<String> = tokens[..k - 1].iter().map(|t| t.to_string()).collect();
                fam.push(
                    tokens[k - 1]
                        .chars()
                        .map(|c| if c.is_ascii_digit() { '#' } else { c })
                        .collect(),
                );
                Candidate { family: fam.join("_"), spans: Vec::new() }
            });
            candidate.spans.push(i);
        }
        // A composite layer (`windowed_transformer_encoder` around its `attention`), numbered
        // or not: a block of its own even where no sibling repeats it (see [`alone`]).
        if let Some(head) = &s.head
            && s.scope
                .strip_prefix(head.as_str())
                .is_some_and(|r| r.is_empty() || r.starts_with('_'))
            && !head.split('_').next_back().is_some_and(|t| t.chars().any(|c| c.is_ascii_digit()))
            && head.split('_').count() <= MAX_PREFIX_TOKENS
        {
            heads.entry(head.as_str()).or_default().push(i);
        }
    }
    // A layer of its own (InceptionV3's concatenation `mixed9`) holds no layer Keras named
    // after it with a counter (`mixed9_0`, `mixed9_1`, the concatenations inside blocks 9
    // and 10): those are its siblings, each in the block that reads it.
    let leaves: BTreeSet<&str> = spans.iter().map(|s| s.scope.as_str()).collect();
    for (tag, candidate) in out.iter_mut() {
        let Tag::Prefix(p) = tag else { continue };
        if leaves.contains(p.as_str()) {
            candidate.spans.retain(|&i| !is_counted_sibling(&spans[i].scope, p));
        }
    }
    out.retain(|_, c| !c.spans.is_empty());
    // Only a layer holding layers: one of its spans is named with more than its own name.
    for (head, idx) in heads {
        if idx.iter().any(|&i| spans[i].scope != head) {
            let family = head.to_string();
            out.entry(Tag::Prefix(family.clone()))
                .or_insert_with(|| Candidate { family, spans: Vec::new() })
                .spans
                .extend(idx);
        }
    }
    // Cells: the spans whose scopes end in the same id, if they are several layers.
    let worded = worded_ids(spans);
    let scopes: BTreeSet<&str> = spans.iter().map(|s| s.scope.as_str()).collect();
    let ids: Vec<Option<String>> =
        spans.iter().map(|s| cell_id(&s.scope, &worded, &scopes)).collect();
    let mut cells: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        if let Some(id) = id {
            cells.entry(id).or_default().push(i);
        }
    }
    for (id, idx) in cells {
        // A cell is one stretch of the forward: where another cell's layers come between
        // two of its own, the stretch with most of its layers is the cell, and the others
        // only share its number (`activation_1_2`, Keras' counter made unique by TF).
        let mut runs: Vec<Vec<usize>> = Vec::new();
        for &i in &idx {
            match runs.last_mut() {
                Some(run)
                    if !(run[run.len() - 1]..i)
                        .any(|k| ids[k].as_deref().is_some_and(|o| o != id)) =>
                {
                    run.push(i)
                }
                _ => runs.push(vec![i]),
            }
        }
        let named = |run: &Vec<usize>| {
            run.iter().map(|&i| spans[i].scope.as_str()).collect::<BTreeSet<_>>().len()
        };
        let Some(run) = runs.iter().rev().max_by_key(|r| named(r)) else { continue };
        if named(run) >= MIN_CELL_SCOPES {
            // Its last layers may be named like Keras' own (`normal_concat_5`): those right
            // after it that carry its id are its.
            let mut run = run.clone();
            let tail = format!("_{id}");
            while let Some(next) = run.last().map(|&l| l + 1).filter(|&n| n < spans.len())
                && ids[next].is_none()
                && spans[next].scope.ends_with(&tail)
            {
                run.push(next);
            }
            let candidate = Candidate { family: CELL_FAMILY.into(), spans: run };
            out.insert(Tag::Suffix(id.to_string()), candidate);
        }
    }
    out
}

/// Drops the candidates that are only a sequence of smaller blocks: a ResNet stage
/// (`conv2`) made of its blocks (`conv2_block1`, ...) is those blocks, which share their
/// class with every other stage's, and not a class of its own. One whose input an unnamed
/// add puts back after it (Xception's middle blocks: three separable convolutions, then
/// `add_3`) is a residual block of its own, and stays.
fn drop_stages(candidates: &mut BTreeMap<Tag, Candidate>, spans: &[Span]) {
    let size = |c: &Candidate| c.spans.iter().map(|&i| spans[i].stmts.len()).sum::<usize>();
    let mut stages = Vec::new();
    for (tag, c) in candidates.iter() {
        let Tag::Prefix(p) = tag else { continue };
        let inner = format!("{p}_");
        // The deeper prefixes sort right after `p_`.
        let blocks: Vec<&Candidate> = candidates
            .range(Tag::Prefix(inner.clone())..)
            .take_while(|(t, _)| matches!(t, Tag::Prefix(q) if q.starts_with(&inner)))
            .filter(|(_, b)| size(b) >= MIN_STATEMENTS)
            .map(|(_, b)| b)
            .collect();
        let covered = |i: &usize| blocks.iter().any(|b| b.spans.contains(i));
        let residual = c
            .spans
            .last()
            .and_then(|&l| spans.get(l + 1))
            .is_some_and(|s| s.movable && !s.shared && is_residual_add(s));
        if blocks.len() >= 2 && c.spans.iter().all(covered) && !residual {
            stages.push(tag.clone());
        }
    }
    for t in stages {
        candidates.remove(&t);
    }
}

/// The ids that are a word and a number (`reduce_4`, `stem_1`): the last two tokens of three
/// differently named layers or more.
fn worded_ids(spans: &[Span]) -> BTreeSet<String> {
    let mut scopes: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for s in spans {
        let tokens: Vec<&str> = s.scope.split('_').collect();
        if let [.., word, num] = tokens[..]
            && tokens.len() > 2
            && is_number(num)
            && !word.is_empty()
            && word.bytes().all(|b| b.is_ascii_lowercase())
            && !is_auto_named(&s.scope)
        {
            scopes.entry(format!("{word}_{num}")).or_default().insert(&s.scope);
        }
    }
    scopes.into_iter().filter(|(_, s)| s.len() >= MIN_CELL_SCOPES).map(|(id, _)| id).collect()
}

/// The cell a layer's name numbers it in, if it ends in a number that is not Keras' own
/// counter (`activation_5` numbers activations, not cells; `zero_padding2d_1_2` is such a
/// name made unique by TF): `normal_conv_1_5` is in cell `5`, `reduction_conv_1_reduce_4`
/// in cell `reduce_4` (one of `worded`).
///
/// A layer named after another and one word (Keras MobileNet's `conv_dw_1_bn` and
/// `conv_dw_1_relu` after the convolution `conv_dw_1`) is in that layer's cell; and that
/// layer was named by its author, even if its name looks like Keras' own (`conv_dw`).
fn cell_id(scope: &str, worded: &BTreeSet<String>, scopes: &BTreeSet<&str>) -> Option<String> {
    if let Some(layer) = parent_layer(scope, scopes) {
        return own_cell_id(layer, worded, true);
    }
    let children = format!("{scope}_");
    let has_children = scopes
        .range(children.as_str()..)
        .take_while(|s| s.starts_with(&children))
        .any(|s| parent_layer(s, scopes) == Some(scope));
    own_cell_id(scope, worded, has_children)
}

/// The layer `name` is named after with one more word, if that is a layer's name.
fn parent_layer<'a>(name: &'a str, scopes: &BTreeSet<&str>) -> Option<&'a str> {
    let (layer, word) = name.rsplit_once('_')?;
    let is_word = !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase());
    (is_word && scopes.contains(layer)).then_some(layer)
}

/// The cell `scope`'s own last token numbers it in (see [`cell_id`]); `named` where its
/// author named it.
fn own_cell_id(scope: &str, worded: &BTreeSet<String>, named: bool) -> Option<String> {
    let (head, num) = scope.rsplit_once('_')?;
    if head.is_empty() || !is_number(num) || (!named && is_auto_named(scope)) {
        return None;
    }
    let word = head.rsplit_once('_').map_or(head, |(_, w)| w);
    let two = format!("{word}_{num}");
    Some(if head.contains('_') && worded.contains(&two) { two } else { num.to_string() })
}

fn is_number(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// What a cell's layers are mostly named after, for its class (`normal_cell`): the word in
/// most of their scopes, its id and Keras' own names aside.
fn cell_title(scopes: &[&str], id: &str) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let distinct: BTreeSet<&str> =
        scopes.iter().copied().filter(|s| !is_unnamed_layer(s)).collect();
    for scope in distinct {
        let words: BTreeSet<&str> = scope
            .split('_')
            .filter(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_lowercase()))
            .filter(|w| !id.split('_').any(|t| t == *w))
            .collect();
        for w in words {
            *counts.entry(w).or_default() += 1;
        }
    }
    // Most scopes; ties to the first in alphabetical order (the map's order).
    let best = counts.iter().fold(None, |best: Option<(&str, usize)>, (&w, &n)| match best {
        Some((_, m)) if m >= n => best,
        _ => Some((w, n)),
    });
    match best {
        Some((word, _)) => format!("{word}_cell"),
        None => "cell".into(),
    }
}

/// What the whole forward looks like, for analysing candidates.
struct Forward<'a> {
    spans: &'a [Span],
    stmts: &'a [Assign],
    module: &'a Module,
    /// Every local name (`forward`'s parameters and assigned names).
    universe: BTreeSet<String>,
    /// The candidate families each span belongs to.
    families: Vec<BTreeSet<String>>,
    /// The same by each span's scope (`mixed9`'s).
    scope_families: BTreeMap<&'a str, BTreeSet<String>>,
    /// Each layer and buffer, and the statements that read it.
    attr_readers: BTreeMap<&'a str, Vec<usize>>,
    /// Instances of block classes made before, and how many statements each runs.
    inner_sizes: BTreeMap<&'a str, usize>,
    returns: &'a [Expr],
}

impl Forward<'_> {
    /// The candidate as a block member: with the unnamed layers before it and without (the
    /// grouping keeps whichever matches its siblings).
    fn analyse(&self, tag: &Tag, candidate: &Candidate) -> Vec<Member> {
        let spans = self.spans;
        let idx = &candidate.spans;
        // Spans between the candidate's own belong to it unless a sibling of its family owns
        // them: Keras names the activations and products inside `expanded_conv_4` after
        // their kind (`activation_190`, `multiply_12`), not after the block.
        let Some((&first, &last)) = idx.first().zip(idx.last()) else { return Vec::new() };
        let sibling = |i: usize| !idx.contains(&i) && self.families[i].contains(&candidate.family);
        if (first..=last).any(|i| !spans[i].movable || sibling(i)) {
            return Vec::new();
        }
        // So may the unnamed layers just before its first one: InceptionResNet's `block35_3`
        // begins with branches of `conv2d_25`, `batch_normalization_25`, `activation_247`
        // that only its `block35_3_mixed` reads.
        let mut start = first;
        // A run's blocks are as long as they repeat: nothing before them is theirs.
        let auto_named =
            matches!(tag, Tag::Prefix(p) if is_auto_named(p)) || matches!(tag, Tag::Run(..));
        // Or named after a layer of a block of its family with a counter (`mixed9_1`, inside
        // InceptionV3's `mixed10`): named for lack of a name of its own, as those are.
        let family = any_length(&candidate.family);
        let counted = |scope: &str| {
            kind_and_counter(scope).is_some_and(|layer| {
                self.scope_families
                    .get(layer)
                    .is_some_and(|fs| fs.iter().any(|f| any_length(f) == family))
            })
        };
        let unnamed = |i: usize| {
            let scope = &spans[i].scope;
            spans[i].movable
                && !spans[i].shared
                && !sibling(i)
                && (is_unnamed_layer(scope) || counted(scope))
        };
        while !auto_named && start > 0 && first - start <= MAX_UNNAMED_LEAD && unnamed(start - 1) {
            start -= 1;
        }
        // More than a stem's worth: a chain of layers named by kind, none of them the block's.
        if first - start > MAX_UNNAMED_LEAD {
            start = first;
        }
        // And an unnamed add just after its last one may end it: Keras' ConvNeXt adds each
        // block's input back outside the block's layers (`Add_1`).
        let residual = !auto_named
            && spans.get(last + 1).is_some_and(|s| s.movable && !s.shared && is_residual_add(s))
            && !sibling(last + 1);
        let mut members = Vec::new();
        for stop in if residual { vec![last, last + 1] } else { vec![last] } {
            let mut found = Vec::new();
            if start < first {
                found.extend(self.analyse_range(tag, candidate, start, stop));
                // Or from where it reads fewest values, nearest its own layers: the stem
                // before InceptionV3's `mixed0` is unnamed too, but its four branches fork
                // from the stem's last pooling.
                let cut = self.narrowest_start(start..first, stop);
                if start < cut && cut < first {
                    found.extend(self.analyse_range(tag, candidate, cut, stop));
                }
            }
            // A block of one named layer is one only with the unnamed ones before it
            // (InceptionV3's `mixed1` is the concat of its branches).
            if idx.len() >= 2 || stop > last {
                found.extend(self.analyse_range(tag, candidate, first, stop));
            }
            // An add after it is its own residual only where it adds the block's input back
            // (not Xception's add of a whole stage's input after its last separable conv).
            let adds_input = |m: &Member| {
                let input = m.inputs[0].as_str();
                let add = spans[stop].stmts.clone();
                let rebound = self.stmts[m.stmts.start..add.start]
                    .iter()
                    .any(|s| s.target.bound_names().contains(&input));
                !rebound && self.stmts[add].iter().any(|s| s.value.reads(input) > 0)
            };
            members.extend(found.into_iter().filter(|m| stop == last || adds_input(m)));
        }
        members
    }

    /// Of the spans in `starts` and the one after, the last from which the statements up to
    /// span `stop`'s end read fewest values made before them.
    fn narrowest_start(&self, starts: std::ops::Range<usize>, stop: usize) -> usize {
        let mut live: BTreeSet<String> = BTreeSet::new();
        let mut k = self.spans[stop].stmts.end;
        let mut take_in = |from: usize, live: &mut BTreeSet<String>| {
            while k > from {
                k -= 1;
                let s = &self.stmts[k];
                for t in s.target.bound_names() {
                    live.remove(t);
                }
                let read = s.value.names().into_iter().filter(|v| self.universe.contains(*v));
                live.extend(read.map(String::from));
            }
        };
        take_in(self.spans[starts.end].stmts.start, &mut live);
        let mut best = (live.len(), starts.end);
        for i in starts.rev() {
            take_in(self.spans[i].stmts.start, &mut live);
            // Ties to the later start.
            if live.len() < best.0 {
                best = (live.len(), i);
            }
        }
        best.1
    }

    fn analyse_range(
        &self,
        tag: &Tag,
        candidate: &Candidate,
        first: usize,
        last: usize,
    ) -> Option<Member> {
        let spans = self.spans;
        let mut range = spans[first].stmts.start..spans[last].stmts.end;
        // A block whose input arrives in the other layout starts by converting it
        // (`nchw = inputs.permute(0, 3, 1, 2)`, ConvNeXt's first block after the stem): the
        // conversion stays outside, so the block is the same as its siblings.
        // Unless the block reads what it converts too (its residual adds it back as it came).
        while range.start < range.end && is_layout_conversion(&self.stmts[range.start]) {
            let conversion = &self.stmts[range.start];
            let source = conversion.value.names();
            let rebinds = conversion.target.bound_names().iter().any(|t| source.contains(t));
            let rest = range.start + 1..range.end;
            if !rebinds
                && rest
                    .clone()
                    .any(|k| self.stmts[k].value.names().iter().any(|n| source.contains(n)))
            {
                break;
            }
            range.start += 1;
        }
        let layers: Vec<usize> = (first..=last).flat_map(|i| spans[i].layers.clone()).collect();
        let buffers: Vec<usize> = (first..=last).flat_map(|i| spans[i].buffers.clone()).collect();
        // A class must be worth reading: a conv + batch-norm pair stays inline. An inner
        // block's call counts as what it runs (HGNetV2's light block: a conv, a batch norm
        // and a `LightBlockConv`).
        let size: usize = self.stmts[range.clone()]
            .iter()
            .map(|s| {
                let attrs = s.value.self_attrs();
                let inner = attrs.iter().filter_map(|a| self.inner_sizes.get(a));
                inner.sum::<usize>().max(1)
            })
            .sum();
        // One call of an inner block is that block already.
        if size < MIN_STATEMENTS || range.len() < 2 || layers.is_empty() {
            return None;
        }
        // Its statements call its own layers, and only they do: a layer shared with code
        // outside (one variable read by two blocks) stays where both can reach it.
        let module = self.module;
        let own: BTreeSet<&str> = layers
            .iter()
            .map(|&l| module.layers[l].name.as_str())
            .chain(buffers.iter().map(|&b| module.buffers[b].name.as_str()))
            .collect();
        let read_outside = |a: &&str| {
            self.attr_readers.get(*a).is_some_and(|ks| ks.iter().any(|k| !range.contains(k)))
        };
        // Nor may it call the model's own methods (a loop's or a `tf.cond`'s branches),
        // which its class would not have.
        let method = |a: &str| module.methods.iter().any(|m| m.name == a);
        let foreign = |k: usize| {
            self.stmts[k]
                .value
                .self_attrs()
                .iter()
                .any(|a| (self.attr_readers.contains_key(a) && !own.contains(a)) || method(a))
        };
        if own.iter().any(read_outside) || range.clone().any(foreign) {
            return None;
        }
        // A few values in (a transformer layer reads its input and the mask), one value out
        // (a few where the block occurs once, see `Member::extra_outputs`).
        // Where each name was last bound, to order the outputs by it.
        let mut made: BTreeMap<String, usize> = BTreeMap::new();
        let mut inputs: Vec<String> = Vec::new();
        for (k, s) in self.stmts[range.clone()].iter().enumerate() {
            for id in s.value.names() {
                if self.universe.contains(id)
                    && !made.contains_key(id)
                    && !inputs.iter().any(|i| i == id)
                {
                    inputs.push(id.to_string());
                }
            }
            for t in s.target.bound_names() {
                made.insert(t.to_string(), k);
            }
        }
        // The main stream first, as a person writes `layer(x, mask)`: the input the first
        // of its layers reads (a table the block makes from a side input before may read
        // that one first), so a stack's loop passes it along.
        let layer_names: BTreeSet<&str> =
            layers.iter().map(|&l| module.layers[l].name.as_str()).collect();
        let main = self.stmts[range.clone()]
            .iter()
            .find(|s| s.value.self_attrs().iter().any(|a| layer_names.contains(a)))
            .and_then(|s| {
                let names = s.value.names();
                inputs.iter().position(|i| names.contains(&i.as_str()))
            });
        if let Some(at) = main {
            let stream = inputs.remove(at);
            inputs.insert(0, stream);
        }
        // In the order they are made (last bound): the last is the block's result.
        let mut live: Vec<(usize, String)> = made
            .into_iter()
            .filter(|(v, _)| read_later(v, self.stmts, range.end, self.returns))
            .map(|(v, k)| (k, v))
            .collect();
        live.sort();
        let mut outputs: Vec<String> = live.into_iter().map(|(_, v)| v).collect();
        if !(1..=MAX_INPUTS).contains(&inputs.len()) || !(1..=MAX_OUTPUTS).contains(&outputs.len())
        {
            return None;
        }
        // A block found by structure hands one value on: a stretch handing on two is cut
        // where no block ends.
        if matches!(tag, Tag::Run(..)) && outputs.len() > 1 {
            return None;
        }
        let output = outputs.pop().expect("one at least");
        let extra_outputs = outputs;
        let canon = self.canonical(tag, &range, &layers, &buffers, &inputs, &output);
        let mut signature = canon.signature();
        if !extra_outputs.is_empty() {
            signature.push_str(&format!("and {}\n", extra_outputs.len()));
        }
        let (instance, title) = match tag {
            Tag::Prefix(p) => (identifier(p), candidate.family.clone()),
            Tag::Run(run, _, r) => {
                // `block_1`, ...; a second run's `block2_1`, ...: no name of the model's.
                let run = if *run == 0 { String::new() } else { (run + 1).to_string() };
                let mut instance = format!("{RUN_TITLE}{run}_{}", r + 1);
                let taken = |n: &str| {
                    module.layers.iter().any(|l| l.name == n)
                        || module.buffers.iter().any(|b| b.name == n)
                };
                while taken(&instance) {
                    instance.push('_');
                }
                (instance, RUN_TITLE.to_string())
            }
            Tag::Suffix(id) => {
                let scopes: Vec<&str> = (first..=last).map(|i| spans[i].scope.as_str()).collect();
                let title = cell_title(&scopes, id);
                (identifier(&format!("{title}_{id}")), title)
            }
        };
        let extended = first < candidate.spans[0];
        Some(Member {
            tag: tag.clone(),
            instance,
            title,
            spans: first..last + 1,
            stmts: range,
            layers,
            buffers,
            inputs,
            output,
            extra_outputs,
            signature,
            canon,
            extended,
            size,
        })
    }

    /// The block's structure: statements with canonical names, and the layers' types and
    /// argument layout (constructor argument values aside).
    fn canonical(
        &self,
        tag: &Tag,
        range: &std::ops::Range<usize>,
        layers: &[usize],
        buffers: &[usize],
        inputs: &[String],
        output: &str,
    ) -> Canonical {
        let module = self.module;
        let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
        for (k, &l) in layers.iter().enumerate() {
            attrs.insert(&module.layers[l].name, format!("L{k}"));
        }
        for (k, &b) in buffers.iter().enumerate() {
            attrs.insert(&module.buffers[b].name, format!("B{k}"));
        }
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut globals: BTreeMap<String, String> = BTreeMap::new();
        for (k, i) in inputs.iter().enumerate() {
            vars.insert(i.clone(), format!("IN{k}"));
            globals.insert(format!("IN{k}"), i.clone());
        }
        // Every assignment gets a fresh canonical name (SSA), so reusing `x` does not matter.
        let mut next = 0;
        let mut stmts = Vec::new();
        let mut pads = Vec::new();
        for (k, s) in self.stmts[range.clone()].iter().enumerate() {
            let value = s.value.renamed(&|r| match r {
                Ref::Var(v) => vars.get(v).map(Expr::name),
                Ref::SelfAttr(a) => attrs.get(a).map(|c| Expr::self_attr(c)),
            });
            let mut found = Vec::new();
            let value = abstract_pads(&value, &mut |p| {
                found.push(p.clone());
                Expr::name(if matches!(p, Expr::Tuple(_)) { PAD } else { ACT })
            });
            pads.extend(found.into_iter().map(|p| (k, p)));
            let mut names = Vec::new();
            for t in s.target.bound_names() {
                vars.insert(t.to_string(), format!("V{next}"));
                globals.insert(format!("V{next}"), t.to_string());
                names.push(format!("V{next}"));
                next += 1;
            }
            stmts.push((names, value));
        }
        let layer_keys = layers.iter().map(|&l| layer_key(&module.layers[l].ctor)).collect();
        // Empty for layers outside the block's scope (the unnamed ones before it).
        let layer_names =
            layers.iter().map(|&l| tag.strip(&module.layers[l].name).unwrap_or_default()).collect();
        let buffer_keys = buffers
            .iter()
            .map(|&b| {
                let buf = &module.buffers[b];
                let kind = if buf.trainable { "parameter" } else { "buffer" };
                format!("{kind} {} rank {}", buf.torch_dtype, buf.shape.len())
            })
            .collect();
        Canonical {
            stmts,
            output: vars[output].clone(),
            layer_keys,
            layer_names,
            buffer_keys,
            globals,
            pads,
        }
    }
}

/// A layer's type and argument layout, its values aside: `nn.Conv2d/3/["bias"]`. Keywords
/// with a PyTorch default may be passed or not: a class parameter either way.
fn layer_key(ctor: &Expr) -> String {
    match ctor {
        Expr::Call(c) => {
            let func = flat(&c.func);
            // A block class's instance passes by keyword only what has a default.
            let block = c.func.as_name().is_some();
            let keys: Vec<&str> = c
                .kwargs
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !block && kwarg_default(&func, k).is_none())
                .collect();
            format!("{func}/{}/{keys:?}", c.args.len())
        }
        other => flat(other),
    }
}

/// A block with canonical names: inputs `IN0`, `IN1`, ..., each assigned value `V0`, `V1`, ...
/// in order, layers `self.L0`, ..., buffers `self.B0`, ....
pub(super) struct Canonical {
    /// Each statement's targets and value.
    pub stmts: Vec<(Vec<String>, Expr)>,
    pub output: String,
    pub layer_keys: Vec<String>,
    /// The layers' names in the block (`expand_conv`), which name optional parts; empty for
    /// layers not named in its scope.
    pub layer_names: Vec<String>,
    pub buffer_keys: Vec<String>,
    /// Canonical name → the member's own.
    pub globals: BTreeMap<String, String>,
    /// The paddings `F.pad` applies and the activations (statement, literal), in order:
    /// `PAD` and `ACT` in `stmts`, so blocks padding differently (the kernel sizes differ) or
    /// activating differently share a class.
    pub pads: Vec<(usize, Expr)>,
}

/// What stands for a literal padding in canonical statements.
pub(super) const PAD: &str = "PAD";

/// What stands for an activation function in canonical statements.
const ACT: &str = "ACT";

/// Activations a block may take as an argument, as torchvision's `InvertedResidual` takes
/// `activation_layer` (MobileNetV3's first blocks are ReLU, the later hard swish).
const ACTIVATIONS: &[&str] = &["F.relu", "F.relu6", "F.hardswish", "F.silu", "F.gelu", "F.elu"];

/// `e` with the literal padding of each `F.pad(x, (0, 1, 0, 1))` in it, and the function of
/// each activation `F.relu(x)`, replaced by `with` (called in evaluation order).
pub(super) fn abstract_pads(e: &Expr, with: &mut impl FnMut(&Expr) -> Expr) -> Expr {
    let Expr::Call(c) = e else {
        return match e {
            Expr::Attribute(v, a) => Expr::Attribute(Box::new(abstract_pads(v, with)), a.clone()),
            other => other.clone(),
        };
    };
    let activation =
        ACTIVATIONS.contains(&flat(&c.func).as_str()) && c.args.len() == 1 && c.kwargs.is_empty();
    let func = if activation { with(&c.func) } else { abstract_pads(&c.func, with) };
    let mut args: Vec<Expr> = c.args.iter().map(|a| abstract_pads(a, with)).collect();
    let literal = |t: &Expr| matches!(t, Expr::Tuple(items) if items.iter().all(Expr::is_literal));
    if flat(&c.func) == "F.pad" && args.len() == 2 && literal(&args[1]) {
        args[1] = with(&args[1]);
    }
    let kwargs = c.kwargs.iter().map(|(k, v)| (k.clone(), abstract_pads(v, with))).collect();
    Expr::Call(Box::new(crate::py::Call { func, args, kwargs }))
}

impl Canonical {
    /// Two blocks share a class when this is the same.
    fn signature(&self) -> String {
        let mut signature = String::new();
        for (names, value) in &self.stmts {
            signature.push_str(&format!("{} = {}\n", names.join(", "), flat(value)));
        }
        signature.push_str(&format!("return {}\n", self.output));
        for key in self.buffer_keys.iter().chain(&self.layer_keys) {
            signature.push_str(key);
            signature.push('\n');
        }
        signature
    }
}

/// `y = x.permute(...)` with literal axes: a value changing layout, not computing anything.
fn is_layout_conversion(stmt: &Assign) -> bool {
    let Expr::Call(c) = &stmt.value else { return false };
    let Expr::Attribute(recv, method) = &c.func else { return false };
    method == "permute"
        && recv.as_name().is_some()
        && stmt.target.as_name().is_some()
        && c.kwargs.is_empty()
        && c.args.iter().all(|a| matches!(a, Expr::Lit(crate::py::Lit::Int(_))))
}

/// The one member whose constructor arguments differ, somewhere, from all the others (which
/// agree there), and from those of the same layer in every block of its `kin` (the
/// members of every structure that may share its class) outside `group`.
fn lone_outlier(
    group: &[usize],
    kin: &[usize],
    members: &[Member],
    module: &Module,
) -> Option<usize> {
    let first = &members[*group.first()?];
    let signatures = class::Signatures::of(&module.classes);
    for k in 0..first.layers.len() {
        let ctors: Vec<&Expr> =
            group.iter().map(|&i| &module.layers[members[i].layers[k]].ctor).collect();
        let func = match &module.layers[first.layers[k]].ctor {
            Expr::Call(c) => flat(&c.func),
            _ => String::new(),
        };
        for (slot, (key, values)) in class::ctor_slots(&ctors, &signatures).into_iter().enumerate()
        {
            // Widths change from stage to stage (VGG's third block is 256 wide, the two
            // after it 512): a width is no edit, nor a depthwise conv's `groups`, its width.
            let width = key.is_none()
                && signatures
                    .positional(&func, slot)
                    .is_some_and(|n| n.ends_with("channels") || n.ends_with("features"))
                || key.as_deref() == Some("groups");
            if width {
                continue;
            }
            // One block passing PyTorch's default where the others do not is their plain
            // version (the first stage's `stride=1`), not an edit.
            let default = key.as_ref().and_then(|k| kwarg_default(&func, k));
            let odd = odd_one(&values).filter(|&i| default.as_ref() != Some(&values[i]));
            let at = |i: usize| Slot { member: group[i], layer: k, key: key.as_deref(), slot };
            if let Some(i) =
                odd.filter(|&i| !shared_by_kin(at(i), group, kin, members, module, &signatures))
            {
                return Some(group[i]);
            }
        }
    }
    // Paddings too: one block padding differently is an edit. Not an activation: models
    // change it from stage to stage as they change widths (MobileNetV3's ReLU blocks, then
    // hard swish).
    for p in 0..first.canon.pads.len() {
        let values: Vec<Option<&Expr>> =
            group.iter().map(|&i| members[i].canon.pads.get(p).map(|(_, e)| e)).collect();
        let function = |e: &Option<&Expr>| matches!(e, Some(Expr::Attribute(..)));
        if values.iter().all(function) {
            continue;
        }
        if let Some(j) = odd_one(&values) {
            return Some(group[j]);
        }
    }
    None
}

/// One constructor argument of one member's layer: the member, the layer's place in it, the
/// keyword (`None`: positional) and the argument's place in the call.
#[derive(Clone, Copy)]
struct Slot<'a> {
    member: usize,
    layer: usize,
    key: Option<&'a str>,
    slot: usize,
}

/// Whether a block of `kin` outside `group` passes the same value at `at` to its layer of
/// the same name.
fn shared_by_kin(
    at: Slot,
    group: &[usize],
    kin: &[usize],
    members: &[Member],
    module: &Module,
    signatures: &class::Signatures,
) -> bool {
    let odd = &members[at.member];
    let Some(name) = odd.canon.layer_names.get(at.layer).filter(|n| !n.is_empty()) else {
        return false;
    };
    let ctor = &module.layers[odd.layers[at.layer]].ctor;
    kin.iter().filter(|m| !group.contains(m)).any(|&m| {
        let other = &members[m];
        let Some(l) = other.canon.layer_names.iter().position(|n| n == name) else { return false };
        let slots = class::ctor_slots(&[ctor, &module.layers[other.layers[l]].ctor], signatures);
        slots.iter().enumerate().any(|(i, (key, values))| {
            key.as_deref() == at.key
                && (at.key.is_some() || i == at.slot)
                && values.len() == 2
                && values[0] == values[1]
        })
    })
}

/// The one of `values` that differs from all the others, which agree.
fn odd_one<T: PartialEq>(values: &[T]) -> Option<usize> {
    (0..values.len()).find(|&j| {
        let mut others = values.iter().enumerate().filter(|&(o, _)| o != j).map(|(_, v)| v);
        let first = others.next();
        first.is_some_and(|f| f != &values[j] && others.all(|o| o == f))
    })
}

/// Members that share a class: the first has every part of the class; `variants` says how
/// the others that lack some map onto it.
#[derive(Clone)]
struct Group {
    members: Vec<usize>,
    /// The class's optional parts, in statement order.
    parts: Vec<Optional>,
    variants: BTreeMap<usize, Variant>,
}

/// Whether `group`'s members, in order, each read all that the one before leaves live.
fn is_stack(group: &[usize], members: &[Member]) -> bool {
    let mut ordered = group.to_vec();
    ordered.sort_by_key(|&i| members[i].stmts.start);
    ordered.windows(2).all(|w| {
        let (before, after) = (&members[w[0]], &members[w[1]]);
        let mut left = std::iter::once(&before.output).chain(&before.extra_outputs);
        left.all(|v| after.inputs.contains(v))
    })
}

/// Groups of members that share a class: same signature, or the same but for an optional
/// part (see [`variants`]); no overlaps, larger blocks first. And the composite layers that
/// occur once that would be classes but for the repeated blocks inside them (HGNetV2's first
/// block, around one of the model's `EmbedderStem`s): classes once those are (see [`inner`]).
fn choose(members: &[Member], eligible: &[bool], module: &Module) -> (Vec<Group>, Vec<usize>) {
    let mut order: Vec<usize> = (0..members.len()).filter(|&i| eligible[i]).collect();
    // Larger blocks first; ties by position.
    order.sort_by_key(|&i| (std::cmp::Reverse(members[i].spans.len()), members[i].spans.start));
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for i in order {
        match groups.iter_mut().find(|(sig, _)| *sig == members[i].signature) {
            Some((_, g)) => g.push(i),
            None => groups.push((&members[i].signature, vec![i])),
        }
    }
    // Blocks leaving several values live share a class only as a stack of layers of several
    // streams (Stable Diffusion 3's image and text streams): each reads every value the one
    // before leaves. Pieces of layers that happen to give two values (a rotary embedding's
    // query and key), or that take in the unnamed layers before them, stay as they were.
    groups.retain(|(_, g)| {
        members[g[0]].extra_outputs.is_empty()
            || (g.iter().all(|&i| !members[i].extended) && is_stack(g, members))
    });
    // A member that alone differs from all the others in some argument (one changed kernel
    // size among twelve blocks) stays inline: making it a parameter would change every
    // instance's line, and a regenerated model should differ only where the model did. Not
    // where a block of another structure that would share its class has that value too
    // (MobileNetV3-Large's one 3x3 block with squeeze-excite and a residual add, beside
    // four 5x5 ones, is 3x3 as its blocks without squeeze-excite are).
    let mut family: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (_, g) in &groups {
        family.entry(class_name(&members[g[0]].title)).or_default().extend(g);
    }
    for (_, g) in groups.iter_mut() {
        let kin = &family[&class_name(&members[g[0]].title)];
        while g.len() >= 3 {
            let Some(odd) = lone_outlier(g, kin, members, module) else { break };
            g.retain(|&i| i != odd);
        }
    }
    // Only groups whose classes would have the same name may merge; the larger blocks are
    // the templates the smaller ones lack parts of.
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (k, (_, g)) in groups.iter().enumerate() {
        by_name.entry(class_name(&members[g[0]].title)).or_default().push(k);
    }
    let size = |k: usize| members[groups[k].1[0]].canon.stmts.len();
    let mut templates: Vec<usize> = (0..groups.len()).collect();
    // Ties to the structure most blocks have (MobileNet's residual blocks, not its strided).
    templates.sort_by_key(|&k| (std::cmp::Reverse(size(k)), std::cmp::Reverse(groups[k].1.len())));
    let mut merged: Vec<Option<Group>> = (0..groups.len()).map(|_| None).collect();
    let mut absorbed = vec![false; groups.len()];
    let mut attempts = MAX_ALIGNMENTS;
    for a in templates {
        if absorbed[a] {
            continue;
        }
        let mut group =
            Group { members: groups[a].1.clone(), parts: Vec::new(), variants: BTreeMap::new() };
        let full = &members[groups[a].1[0]];
        for &b in &by_name[&class_name(&full.title)] {
            // A smaller block lacks parts; one a little larger may pad where `a` does not.
            if b == a || absorbed[b] || size(a) + variants::MAX_PARTS <= size(b) || attempts == 0 {
                continue;
            }
            // The same block with and without the unnamed layers before it is no variant
            // (MobileNet's strided blocks with their padding, `conv_pad_2`, and without): the
            // others may be.
            let overlap = |i: usize, j: usize| {
                let (x, y) = (&members[i].spans, &members[j].spans);
                x.start < y.end && y.start < x.end
            };
            let others: Vec<usize> = groups[b]
                .1
                .iter()
                .copied()
                .filter(|&j| !groups[a].1.iter().any(|&i| overlap(i, j)))
                .collect();
            let Some(&other) = others.first() else { continue };
            attempts -= 1;
            let Some(v) = variants::align(&full.canon, &members[other].canon) else {
                continue;
            };
            // Parts of different variants are the same part or apart.
            let clash = v.lacks.iter().any(|o| {
                group
                    .parts
                    .iter()
                    .any(|p| p != o && p.run.start < o.run.end && o.run.start < p.run.end)
            });
            if clash {
                continue;
            }
            absorbed[b] = true;
            for o in v.lacks.iter().chain(v.adds.iter().map(|(o, _)| o)) {
                if !group.parts.contains(o) {
                    group.parts.push(o.clone());
                }
            }
            for &m in &others {
                group.members.push(m);
                group.variants.insert(m, v.clone());
            }
        }
        // A template that took no other may still be taken by a later one (of the same
        // size: EfficientNetV2's strided blocks lack the residual add its others have).
        if group.variants.is_empty() {
            continue;
        }
        absorbed[a] = true;
        // A padding inserted before statement `i` comes before a part starting there.
        group.parts.sort_by_key(|p| (p.run.start, p.run.end));
        merged[a] = Some(group);
    }
    for (k, (_, g)) in groups.iter().enumerate() {
        if !absorbed[k] {
            merged[k] =
                Some(Group { members: g.clone(), parts: Vec::new(), variants: BTreeMap::new() });
        }
    }
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    // The member of a repeated block's group that took each span.
    let mut owner: BTreeMap<usize, usize> = BTreeMap::new();
    let mut chosen = Vec::new();
    let mut lone = Vec::new();
    for mut group in merged.into_iter().flatten() {
        // Members of one group may overlap where an optional part brought in another
        // signature's: the earlier (larger) one wins.
        let mut mine: BTreeSet<usize> = BTreeSet::new();
        group.members.retain(|&i| {
            let free = members[i].spans.clone().all(|s| !taken.contains(&s) && !mine.contains(&s));
            if free {
                mine.extend(members[i].spans.clone());
            }
            free
        });
        // The class is written from its first member, which must have every part: without
        // it, the members lacking parts go.
        if group.members.first().is_some_and(|i| group.variants.contains_key(i)) {
            let variants = std::mem::take(&mut group.variants);
            group.members.retain(|i| !variants.contains_key(i));
            group.parts.clear();
        }
        // A part no remaining member lacks is no part.
        let lacked: Vec<&Optional> = group
            .members
            .iter()
            .filter_map(|i| group.variants.get(i))
            .flat_map(|v| v.lacks.iter().chain(v.adds.iter().map(|(o, _)| o)))
            .collect();
        group.parts.retain(|p| lacked.contains(&p));
        if group.members.len() < 2 {
            lone.extend(group.members.iter().copied().filter(|&i| alone(&members[i], module)));
            continue;
        }
        for &i in &group.members {
            taken.extend(members[i].spans.clone());
            owner.extend(members[i].spans.clone().map(|s| (s, i)));
        }
        chosen.push(group);
    }
    lone.extend((0..members.len()).filter(|&i| {
        eligible[i] && !members[i].extra_outputs.is_empty() && alone(&members[i], module)
    }));
    // Then the composite layers that occur once, where the repeated blocks left room: the
    // outermost first (a layer, not the attention inside it).
    lone.sort_by_key(|&i| (std::cmp::Reverse(members[i].spans.len()), members[i].spans.start));
    // Not a model of numbered layers (Gemma3n's `text_model` around `decoder_block_0`,
    // `decoder_block_1`): its layers are the classes to read, where they qualify.
    let holds_numbered = |i: usize| {
        let within = |j: usize| {
            j != i
                && members[i].spans.start <= members[j].spans.start
                && members[j].spans.end <= members[i].spans.end
        };
        let mut families: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for j in (0..members.len()).filter(|&j| within(j) && members[j].title.contains('#')) {
            families.entry(&members[j].title).or_default().insert(&members[j].instance);
        }
        // Numbered by the model (`decoder_block_0`, `decoder_block_1`), not by Keras'
        // counters over the whole model (MobileNetV5's `conv_norm_act_2` to `_5` inside its
        // first inverted residual block).
        let numbered = |n: &BTreeSet<&str>| {
            let numbers: BTreeSet<usize> = n
                .iter()
                .filter_map(|i| i.rsplit('_').next().and_then(|w| w.parse().ok()))
                .collect();
            let k = numbers.len();
            k == n.len()
                && (numbers.iter().copied().eq(0..k) || numbers.iter().copied().eq(1..k + 1))
        };
        families.values().any(|n| n.len() >= 2 && numbered(n))
    };
    // Whether what the repeated blocks took of it are whole blocks inside it.
    let holds_whole = |i: usize, taken: &BTreeSet<usize>| {
        let mut inside = members[i].spans.clone().filter(|s| taken.contains(s)).peekable();
        inside.peek().is_some()
            && inside.all(|s| owner.get(&s).is_some_and(|&m| inner::within(members, m, i)))
    };
    let mut alone_chosen = Vec::new();
    let mut holders = Vec::new();
    for i in lone {
        if holds_numbered(i) {
            continue;
        }
        if members[i].spans.clone().any(|s| taken.contains(&s)) {
            if holds_whole(i, &taken) {
                holders.push(i);
            }
            continue;
        }
        taken.extend(members[i].spans.clone());
        alone_chosen.push(i);
    }
    // Named in the order they run (`TransformerLayer` for layer 0, `TransformerLayer2` for
    // layer 1).
    alone_chosen.sort_by_key(|&i| members[i].spans.start);
    chosen.extend(alone_chosen.into_iter().map(|i| Group {
        members: vec![i],
        parts: Vec::new(),
        variants: BTreeMap::new(),
    }));
    (chosen, holders)
}

/// Layer names longer than this inside a composite layer make it a class even if it occurs
/// once: under the model, its layers are named with its whole scope
/// (`transformer_layer_0_self_attention_query`); in a class of their own, by the rest.
const LONG_NAME: usize = 30;

/// Whether a block no other repeats is worth a class of its own: a composite layer (a
/// named scope holding layers) or a cell its layers' names number (NASNet's two stem cells,
/// `separable_conv_1_reduction_left1_stem_1`, each unlike any other cell), not a stretch
/// that only repeats, every layer of which is its own, which has several layers and long
/// names for them. A ResNet's stem (`conv1_conv`, `conv1_bn`) stays in `forward`, as
/// torchvision writes it.
fn alone(member: &Member, module: &Module) -> bool {
    match &member.tag {
        // A nested Keras container (`sequential_2`) is a list of layers, no layer of its own
        // to name a class after.
        Tag::Prefix(p) => {
            let kind = kind_and_counter(p).unwrap_or(p);
            if matches!(kind, "sequential" | "functional" | "model") {
                return false;
            }
        }
        Tag::Suffix(_) => {}
        Tag::Run(..) => return false,
    }
    let mut names = member
        .layers
        .iter()
        .map(|&l| module.layers[l].name.as_str())
        .chain(member.buffers.iter().map(|&b| module.buffers[b].name.as_str()));
    !member.extended
        && member.layers.len() >= 2
        && member.size >= MIN_ALONE_STATEMENTS
        && member.canon.layer_names.iter().all(|n| !n.is_empty())
        && names.any(|n| n.len() > LONG_NAME)
}

/// The scopes of models called once inside another (`hg_net_v2_backbone_1`: numbered, by
/// the call, and alone in their family), each with a trailing `_`.
fn nested_models(candidates: &BTreeMap<Tag, Candidate>) -> Vec<String> {
    let mut family_size: BTreeMap<&str, usize> = BTreeMap::new();
    for c in candidates.values() {
        *family_size.entry(c.family.as_str()).or_default() += 1;
    }
    candidates
        .iter()
        .filter_map(|(t, c)| match t {
            Tag::Prefix(p) if family_size[c.family.as_str()] == 1 && c.family.ends_with("_#") => {
                Some(format!("{p}_"))
            }
            _ => None,
        })
        .collect()
}

/// Names blocks within the model that holds them where it is one called once inside another
/// (D-FINE's backbone, `hg_net_v2_backbone_1`, numbered by the call): its blocks are
/// `EncoderStageBlock`s, as they are in the backbone alone, not
/// `HgNetVBackboneEncoderStageBlock`s. Not within a named part (`decoder` around
/// `decoder_layer_0`), nor down to one word.
fn name_within_containers(members: &mut [Member], containers: &[String]) {
    for m in members.iter_mut() {
        let inner = containers
            .iter()
            .filter(|c| m.title.len() > c.len() && m.title.starts_with(c.as_str()))
            .max_by_key(|c| c.len());
        if let Some(c) = inner
            && m.title[c.len()..]
                .split('_')
                .filter(|w| w.chars().any(|ch| ch.is_ascii_alphabetic()))
                .count()
                >= 2
        {
            m.title = m.title[c.len()..].to_string();
        }
    }
}

/// Replaces the members' statements, layers and buffers by the instances, and renames the
/// moved weights.
fn rewrite(module: &mut Module, stmts: &mut Vec<Assign>, members: &[Member], inst: &Instances) {
    let by_first_stmt: BTreeMap<usize, usize> =
        inst.by_member.keys().map(|&i| (members[i].stmts.start, i)).collect();
    let by_first_layer: BTreeMap<usize, usize> =
        inst.by_member.keys().map(|&i| (members[i].layers[0], i)).collect();
    let moved_stmts: BTreeSet<usize> =
        inst.by_member.keys().flat_map(|&i| members[i].stmts.clone()).collect();
    let moved_layers: BTreeSet<usize> =
        inst.by_member.keys().flat_map(|&i| members[i].layers.clone()).collect();
    let moved_buffers: BTreeSet<usize> =
        inst.by_member.keys().flat_map(|&i| members[i].buffers.clone()).collect();
    let mut new_stmts = Vec::with_capacity(stmts.len());
    for (k, s) in stmts.iter().enumerate() {
        if let Some(i) = by_first_stmt.get(&k) {
            new_stmts.push(inst.by_member[i].1.clone());
        } else if !moved_stmts.contains(&k) {
            new_stmts.push(s.clone());
        }
    }
    *stmts = new_stmts;
    let mut new_layers = Vec::with_capacity(module.layers.len());
    for (k, l) in module.layers.iter().enumerate() {
        if let Some(i) = by_first_layer.get(&k) {
            new_layers.push(inst.by_member[i].0.clone());
        } else if !moved_layers.contains(&k) {
            new_layers.push(l.clone());
        }
    }
    module.layers = new_layers;
    let mut k = 0;
    module.buffers.retain(|_| {
        k += 1;
        !moved_buffers.contains(&(k - 1))
    });
    module.rename_weight_heads(|head| inst.renames.get(head).cloned());
}

/// Whether the block's result is its input added to what it computed.
fn ends_in_residual(canon: &Canonical) -> bool {
    let Some((_, value)) = canon.stmts.iter().rev().find(|(t, _)| t.contains(&canon.output)) else {
        return false;
    };
    let Expr::Binary(a, crate::py::BinOp::Add, b) = value else { return false };
    [a, b].iter().any(|e| e.as_name() == Some("IN0"))
}

/// Finds repeated blocks, moves them into classes; returns (class, instance count) pairs.
/// Blocks repeated inside the blocks (D-FINE's RepVGG bottlenecks, two in each CSP layer of
/// each encoder block) go first, into classes of their own, so each outer class holds
/// their instances rather than their layers spelled out under the whole inner scope
/// (`csp_rep1_bottleneck_0_conv1_convolution`).
pub fn extract(
    module: &mut Module,
    stmts: &mut Vec<Assign>,
    spans: &[Span],
    returns: &[Expr],
    names: &Scope,
    tensors: &BTreeMap<String, bool>,
) -> Vec<(String, usize)> {
    let mut report = Vec::new();
    let mut spans = spans.to_vec();
    // Each round makes the classes of the innermost repeated blocks, until none is left
    // inside another (bounded: a hostile graph may nest scopes thousands deep).
    for _ in 0..MAX_NESTING {
        let (mut members, chosen, holders) = find(module, stmts, &spans, returns);
        let inner = innermost(&mut members, &chosen, &holders, module);
        if inner.is_empty() {
            report.extend(emit(module, stmts, names, &members, &chosen));
            return report;
        }
        let sizes = (stmts.len(), module.layers.len(), module.buffers.len());
        report.extend(emit(module, stmts, names, &members, &inner));
        // Their instances are called from `forward` only until the outer blocks move.
        hint_tensors(module, stmts, tensors);
        let moved: Vec<&Member> =
            inner.iter().flat_map(|g| &g.members).map(|&i| &members[i]).collect();
        spans = respan(&spans, &moved, sizes);
    }
    let (members, chosen, _) = find(module, stmts, &spans, returns);
    report.extend(emit(module, stmts, names, &members, &chosen));
    report
}

/// Marks the block classes' inputs and output that are tensors in every instance's call in
/// `stmts`: names that only ever hold tensors (`tensors`), not sizes held as Python ints.
pub fn hint_tensors(module: &mut Module, stmts: &[Assign], tensors: &BTreeMap<String, bool>) {
    let is_tensor = |e: &Expr| e.as_name().and_then(|n| tensors.get(n)) == Some(&true);
    let class_of: BTreeMap<&str, usize> = module
        .layers
        .iter()
        .filter_map(|l| {
            let Expr::Call(c) = &l.ctor else { return None };
            let class = c.func.as_name()?;
            let k = module.classes.iter().position(|bc| bc.name == class)?;
            Some((l.name.as_str(), k))
        })
        .collect();
    let sizes = size_names(stmts);
    let is_size = |e: &Expr| e.as_name().is_some_and(|n| sizes.contains(n));
    // Per class whose instances are called: which inputs are tensors, which sizes, and
    // whether the output is a tensor, in every call.
    let mut hints: BTreeMap<usize, (Vec<bool>, Vec<bool>, bool)> = BTreeMap::new();
    for s in stmts {
        let Expr::Call(c) = &s.value else { continue };
        let Some(&k) = c.func.as_self_attr().and_then(|i| class_of.get(i)) else { continue };
        let n = module.classes[k].inputs.len();
        let (inputs, size_inputs, output) =
            hints.entry(k).or_insert((vec![true; n], vec![true; n], true));
        for ((t, z), arg) in inputs.iter_mut().zip(size_inputs.iter_mut()).zip(&c.args) {
            *t &= is_tensor(arg);
            *z &= is_size(arg);
        }
        *output &= match &s.target {
            Expr::Tuple(items) => items.iter().all(is_tensor),
            target => is_tensor(target),
        };
    }
    for (k, (inputs, size_inputs, output)) in hints {
        let class = &mut module.classes[k];
        class.tensor_inputs = inputs;
        class.size_inputs = size_inputs;
        class.tensor_output = output;
    }
}

/// Names `stmts` only ever bind to a size read from a shape (`seq_len = x.shape[1]`, or an
/// entry of `shape = x.shape` or of a tuple of such sizes).
fn size_names(stmts: &[Assign]) -> BTreeSet<&str> {
    let entry = crate::lower::chain::is_size;
    let shapes: BTreeSet<&str> = stmts
        .iter()
        .filter(|s| match &s.value {
            Expr::Tuple(items) => items.iter().all(entry),
            v => matches!(v, Expr::Attribute(_, a) if a == "shape"),
        })
        .filter_map(|s| s.target.as_name())
        .collect();
    let from_shape = |e: &Expr| {
        entry(e)
            || matches!(e, Expr::Subscript(v, i)
                if i.as_int().is_some() && v.as_name().is_some_and(|n| shapes.contains(n)))
    };
    let mut sizes = BTreeSet::new();
    let mut other = BTreeSet::new();
    for s in stmts {
        match s.target.as_name() {
            Some(n) if from_shape(&s.value) => {
                sizes.insert(n);
            }
            _ => other.extend(s.target.bound_names()),
        }
    }
    sizes.retain(|n| !other.contains(n));
    sizes
}

/// The block members and the groups chosen to share classes.
fn find(
    module: &Module,
    stmts: &[Assign],
    spans: &[Span],
    returns: &[Expr],
) -> (Vec<Member>, Vec<Group>, Vec<usize>) {
    let mut universe: BTreeSet<String> = module.params.iter().cloned().collect();
    for s in stmts.iter() {
        universe.extend(s.target.bound_names().into_iter().map(String::from));
    }
    let mut candidates = candidates(spans);
    // Before a nested model made only of blocks goes as a stage of them.
    let containers = nested_models(&candidates);
    drop_stages(&mut candidates, spans);
    candidates.extend(runs::structural_runs(spans, stmts, module));
    let mut families = vec![BTreeSet::new(); spans.len()];
    for c in candidates.values() {
        for &i in &c.spans {
            families[i].insert(c.family.clone());
        }
    }
    let mut attr_readers: BTreeMap<&str, Vec<usize>> = module
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .chain(module.buffers.iter().map(|b| b.name.as_str()))
        .map(|a| (a, Vec::new()))
        .collect();
    for (k, s) in stmts.iter().enumerate() {
        for a in s.value.self_attrs() {
            if let Some(readers) = attr_readers.get_mut(a) {
                readers.push(k);
            }
        }
    }
    // A call of an inner block's instance stands for the statements its class runs.
    let inner_sizes: BTreeMap<&str, usize> = module
        .layers
        .iter()
        .filter_map(|l| {
            let Expr::Call(c) = &l.ctor else { return None };
            let class =
                module.classes.iter().find(|k| Some(k.name.as_str()) == c.func.as_name())?;
            let parts = class.optional.iter().map(|p| p.body.len() + p.after.len());
            Some((l.name.as_str(), class.body.len() + parts.sum::<usize>()))
        })
        .collect();
    let scope_families =
        spans.iter().map(|s| s.scope.as_str()).zip(families.iter().cloned()).collect();
    let forward = Forward {
        spans,
        stmts,
        module,
        universe,
        families,
        scope_families,
        attr_readers,
        inner_sizes,
        returns,
    };
    let mut members: Vec<Member> =
        candidates.iter().flat_map(|(t, c)| forward.analyse(t, c)).collect();
    // A cell that is also a scope (`transformer_layer_0` ends in its id) is the scope's block.
    let scoped: BTreeSet<(usize, usize)> = members
        .iter()
        .filter(|m| matches!(m.tag, Tag::Prefix(_)))
        .map(|m| (m.stmts.start, m.stmts.end))
        .collect();
    members.retain(|m| {
        matches!(m.tag, Tag::Prefix(_)) || !scoped.contains(&(m.stmts.start, m.stmts.end))
    });
    // One block under two scopes, a stage of one block (`encoder_0` around `encoder_0_0`), is
    // the block's: its name says more and leaves its layers' names shorter.
    let mut deepest: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (k, m) in members.iter().enumerate() {
        let Tag::Prefix(p) = &m.tag else { continue };
        let slot = deepest.entry((m.stmts.start, m.stmts.end)).or_insert(k);
        let numbered_within = |q: &str| {
            p.strip_prefix(q).and_then(|r| r.strip_prefix('_')).is_some_and(|r| {
                !r.is_empty() && r.split('_').all(|t| t.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        if matches!(&members[*slot].tag, Tag::Prefix(q) if numbered_within(q)) {
            *slot = k;
        }
    }
    let mut k = 0;
    members.retain(|m| {
        k += 1;
        !matches!(m.tag, Tag::Prefix(_)) || deepest[&(m.stmts.start, m.stmts.end)] == k - 1
    });
    runs::one_phase_per_run(&mut members);
    name_within_containers(&mut members, &containers);
    let (chosen, holders) = choose(&members, &vec![true; members.len()], module);
    (members, chosen, holders)
}

/// Makes the classes of the `chosen` groups and puts their instances in place.
fn emit(
    module: &mut Module,
    stmts: &mut Vec<Assign>,
    names: &Scope,
    members: &[Member],
    chosen: &[Group],
) -> Vec<(String, usize)> {
    if chosen.is_empty() {
        return Vec::new();
    }
    // Class names must not shadow the model class, the classes made before, or what the
    // file imports (`F`, `nn`, ...).
    let mut class_names: BTreeSet<String> =
        [module.class_name.as_str(), "F", "Nn", "Torch", "Json", "Os", "Struct"]
            .iter()
            .map(|s| s.to_string())
            .chain(module.classes.iter().map(|c| c.name.clone()))
            .collect();
    let mut report = Vec::new();
    let mut instances = Instances { by_member: BTreeMap::new(), renames: BTreeMap::new() };
    let titles: Vec<Option<&str>> = chosen
        .iter()
        .map(|g| {
            // `block35_#` and `block35_##` (the tenth) are one family.
            let family = |m: usize| any_length(&members[m].title);
            let title = members[g.members[0]].title.as_str();
            g.members.iter().all(|&m| family(m) == family(g.members[0])).then_some(title)
        })
        .collect();
    let bases = class_bases(
        &titles,
        &chosen
            .iter()
            .map(|g| {
                let titles: Vec<&str> =
                    g.members.iter().map(|&m| members[m].title.as_str()).collect();
                class_name(&shared_title(&titles))
            })
            .collect::<Vec<_>>(),
    );
    // TF-Slim's `Conv2d_1_depthwise`, `Conv2d_1_pointwise` are a `Conv2dBlock`.
    let bases: Vec<String> = bases
        .into_iter()
        .map(|b| if crate::py::names::is_torch_layer_class(&b) { format!("{b}Block") } else { b })
        .collect();
    // A second class of the same name that ends adding its input back is the residual
    // kind (MobileNet's blocks that keep their size): so named, not numbered. Not where
    // the add is optional: then it is not what sets the class apart.
    let residual_kind = |g: &Group| {
        let optional_add = g.parts.iter().any(|p| p.part == variants::Part::Residual);
        !optional_add && ends_in_residual(&members[g.members[0]].canon)
    };
    // Else a part one has and the other lacks names it (`EncoderLayerWithDownsample`), or
    // how many layers of a kind each has (`TwoConvBlock`, `ThreeConvBlock`).
    let attributes: Vec<Vec<String>> =
        chosen.iter().map(|g| class::attribute_names(g, members, module).1).collect();
    let mut named: BTreeMap<usize, String> = BTreeMap::new();
    for (k, name) in naming::by_difference(&bases, &attributes, |j| residual_kind(&chosen[j])) {
        named.insert(k, name);
    }
    // Classes still sharing a name are told apart by where they run (`FirstEncoderLayer`,
    // `MixedA`), numbered only where that fails.
    let valid = crate::py::names::is_valid_class_name;
    let mut class_of: Vec<Option<String>> = vec![None; chosen.len()];
    let mut plain: BTreeMap<&str, usize> = BTreeMap::new();
    let mut alike: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, (group, base)) in chosen.iter().zip(&bases).enumerate() {
        let mut name = named.get(&k).cloned().unwrap_or_else(|| base.clone());
        if class_names.contains(&name) && !named.contains_key(&k) && residual_kind(group) {
            name = format!("Residual{base}");
        }
        if class_names.contains(&name) || !valid(&name) {
            alike.entry(base).or_default().push(k);
            continue;
        }
        if name == *base {
            plain.insert(base, k);
        }
        class_names.insert(name.clone());
        class_of[k] = Some(name);
    }
    let place = |g: &Group| {
        let starts = g.members.iter().map(|&m| members[m].spans.start);
        let (first, last) = (starts.clone().min().unwrap_or(0), starts.max().unwrap_or(0));
        naming::Place { first, last, instances: g.members.len() }
    };
    for (base, mut ks) in alike {
        // With the class that took the name first, which gives it up.
        let holder = plain.get(base).copied();
        ks.extend(holder);
        let classes: Vec<(usize, naming::Place)> =
            ks.iter().map(|&k| (k, place(&chosen[k]))).collect();
        let placed = naming::by_place(base, &classes).unwrap_or_default();
        let free =
            |n: &String| (holder.is_some() && n == base) || (!class_names.contains(n) && valid(n));
        if !placed.is_empty() && placed.iter().all(|(_, n)| free(n)) {
            if holder.is_some() {
                class_names.remove(base);
            }
            for (k, name) in placed {
                class_names.insert(name.clone());
                class_of[k] = Some(name);
            }
        }
        for k in ks {
            if class_of[k].is_some() {
                continue;
            }
            let mut n = 2;
            let mut name = format!("{base}{n}");
            while class_names.contains(&name) || !valid(&name) {
                n += 1;
                name = format!("{base}{n}");
            }
            class_names.insert(name.clone());
            class_of[k] = Some(name);
        }
    }
    let mut order: Vec<(&Group, Option<String>)> = chosen.iter().zip(class_of).collect();
    order.sort_by_key(|(g, _)| place(g).first);
    for (group, name) in order {
        let name = name.expect("every class is named");
        build_class(&name, group, members, module, stmts, names, &mut instances);
        report.push((name, group.members.len()));
    }
    rewrite(module, stmts, members, &instances);
    report
}

#[cfg(test)]
mod tests {
    use super::{Tag, local_name};
    use crate::ir::ValueRef;
    use crate::proto::AttrValue;
    use crate::proto::attr_value::Value;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras counts its own kinds of layers over the whole model: inside a block those
    /// counters go; the model's own numbers stay.
    #[test]
    fn keras_counters_leave_layer_paths_in_blocks() {
        let uncounted = super::keras_uncounted;
        assert_eq!(uncounted("layer_normalization_19"), "layer_normalization");
        assert_eq!(uncounted("modulation_2_dense_38"), "modulation_2_dense");
        assert_eq!(uncounted("conv_norm_act_1_2_conv2d_8"), "conv_norm_act_1_2_conv2d");
        assert_eq!(uncounted("ffn_0_intermediate_dense"), "ffn_0_intermediate_dense");
        assert_eq!(uncounted("stage_1_block_0"), "stage_1_block_0");
        assert_eq!(uncounted("normal_add_5"), "normal_add_5");
    }

    /// A size passed to a block (`seq_len = x.shape[1]`, or an entry of a tuple of sizes)
    /// is hinted `int`; a name also bound to a tensor, or an entry of a tensor, is not.
    #[test]
    fn sizes_read_from_shapes_are_known_as_sizes() {
        use crate::py::{Assign, Expr};
        let shape = |x: &str, i| Expr::name(x).attr("shape").index(Expr::int(i));
        let stmts = vec![
            Assign::new(Expr::name("seq_len"), shape("x", 1)),
            Assign::new(Expr::name("dims"), Expr::Tuple(vec![shape("x", 0), shape("x", 2)])),
            Assign::new(Expr::name("width"), Expr::name("dims").index(Expr::int(1))),
            Assign::new(Expr::name("n"), shape("x", 0)),
            Assign::new(Expr::name("n"), Expr::name("x").method("sum", vec![])),
            Assign::new(Expr::name("h"), Expr::name("x").index(Expr::int(0))),
        ];
        let sizes: Vec<&str> = super::size_names(&stmts).into_iter().collect();
        assert_eq!(sizes, ["seq_len", "width"]);
    }

    #[test]
    fn class_names_from_scope_families() {
        assert_eq!(super::class_name("conv2_block#"), "ConvBlock");
        // Families that collide keep their numbers where each group is one family.
        let titles = [Some("block35_#"), Some("block17_#"), Some("block8_#"), Some("conv2_block#")];
        let plain: Vec<String> = titles.iter().map(|t| super::class_name(t.unwrap())).collect();
        assert_eq!(
            super::class_bases(&titles, &plain),
            ["Block35", "Block17", "Block8", "ConvBlock"]
        );
        // Not after one stage of a group across stages.
        let titles = [None, Some("conv4_block#")];
        let plain = ["ConvBlock".to_string(), "ConvBlock".to_string()];
        assert_eq!(super::class_bases(&titles, &plain), ["ConvBlock", "ConvBlock"]);
        // Nor after a counter (SAM's `windowed_transformer_encoder` and, counted twice by
        // Keras and TF, `windowed_transformer_encoder_1_2`): not `WindowedTransformerEncoder1`.
        let titles =
            [Some("windowed_transformer_encoder"), Some("windowed_transformer_encoder_1_#")];
        let plain = ["WindowedTransformerEncoder".to_string(), "WindowedTransformerEncoder".into()];
        let bases = super::class_bases(&titles, &plain);
        assert_eq!(bases, ["WindowedTransformerEncoder", "WindowedTransformerEncoder"]);
        assert_eq!(super::class_name("transformer_layer_#"), "TransformerLayer");
        assert_eq!(super::class_name("###"), "Block");
        assert_eq!(super::class_name("encoder_layers_#"), "EncoderLayer");
        assert_eq!(super::class_name("dense_blocks_#"), "DenseBlock");
        assert_eq!(super::class_name("max_pooling2d_#"), "MaxPooling2d");
        assert_eq!(super::class_name("mixed#"), "Mixed");
        assert_eq!(super::class_name("block#a"), "Block");
        assert_eq!(super::class_name("block#b"), "Block");
        // A version stays, as a word or ending a capitalised one.
        assert_eq!(super::class_name("hg_net_v2_backbone"), "HgNetV2Backbone");
        assert_eq!(super::class_name("hg_net_v2_stage_#"), "HgNetV2Stage");
        assert_eq!(super::class_name("MobilenetV1_Conv2d_#"), "MobilenetV1Conv2d");
        assert_eq!(super::class_name("transformer_layer_0"), "TransformerLayer");
    }

    #[test]
    fn classes_are_named_after_what_their_instances_share() {
        let name = |t: &[&str]| super::class_name(&super::shared_title(t));
        assert_eq!(name(&["encoder_mid_block_#", "decoder_mid_block_#"]), "MidBlock");
        assert_eq!(name(&["conv2_block#", "conv3_block#"]), "ConvBlock");
        assert_eq!(name(&["transformer_layer_#"]), "TransformerLayer");
        assert_eq!(name(&["stem_#", "head_#"]), "Stem");
        let dfine = ["hybrid_encoder_fpn_block_#", "hybrid_encoder_pan_block_#"];
        assert_eq!(name(&dfine), "HybridEncoderBlock");
        assert_eq!(name(&["embedder_stem#", "embedder_stem#a"]), "EmbedderStem");
        assert_eq!(name(&["encoder_mid_block_#", "decoder_block_0_#"]), "Block");
    }

    /// Words every layer of a block shares up to a number are the instance's tag or one scope
    /// around the block: said by the class. Words without a number name the layers.
    #[test]
    fn words_every_layer_shares_up_to_a_number_are_dropped() {
        let strip = |names: &[&'static str]| -> Vec<String> {
            let map = names.iter().map(|&n| (n, n.to_string())).collect();
            super::without_shared_words(map).into_values().collect()
        };
        assert_eq!(
            strip(&["block3b_expand_conv", "block3b_se_reduce"]),
            ["expand_conv", "se_reduce"]
        );
        assert_eq!(
            strip(&["bottleneck_v1_conv1", "bottleneck_v1_conv1_batch_norm"]),
            ["conv1", "conv1_batch_norm"]
        );
        assert_eq!(strip(&["conv_dw", "conv_pw"]), ["conv_dw", "conv_pw"]);
        // Every name keeps a word, none starts with a digit, one name says its whole self.
        assert_eq!(strip(&["block1_conv", "block1_conv_2"]), ["conv", "conv_2"]);
        assert_eq!(strip(&["stage2_1", "stage2_2"]), ["stage2_1", "stage2_2"]);
        assert_eq!(strip(&["block3b_conv"]), ["block3b_conv"]);
    }

    /// A chain of thousands of composite layers named by kind alone (no counter, no digit),
    /// each a candidate block: none reaches back over all the others for its unnamed lead, which made the search quadratic
    /// (3,000 such layers took 18 s, 5,000 would take about a minute); now it is quick, and
    /// they stay inline.
    #[test]
    fn a_long_chain_of_kind_named_layers_is_quick() {
        let mut g = TestGraph::new();
        let mut y = g.input("x", &[-1, 8]);
        for i in 0..5000 {
            let scope = format!("m/{}/proj", letters(i));
            let w = g.variable(&format!("{scope}/kernel"), weights(&[8, 8]));
            y = g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[]);
        }
        let started = std::time::Instant::now();
        let code = g.lower(&[y]);
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        assert!(!code.contains("class ") && code.contains("self.zzd_proj = nn.Linear"), "{code}");
    }

    #[test]
    fn a_cells_kind_is_said_by_its_class_not_its_layers() {
        let names = |pairs: &[&'static str]| -> std::collections::BTreeMap<&'static str, String> {
            pairs.iter().map(|&n| (n, n.to_string())).collect()
        };
        let short = |m: std::collections::BTreeMap<&str, String>| -> Vec<String> {
            m.into_values().collect()
        };
        // NASNet's reduction cell: `reduction` goes wherever it stands; `adjust_bn` has none.
        let cell = names(&["reduction_conv", "separable_conv_1_reduction_left1", "adjust_bn"]);
        let got = short(super::without_title_word(cell, "reduction_cell"));
        assert_eq!(got, ["adjust_bn", "conv", "separable_conv_1_left1"]);
        // Names left empty, numbered or clashing with another keep it.
        let cell = names(&["reduction", "reduction_2", "reduction_bn", "bn", "normal_x"]);
        let got = super::without_title_word(cell, "reduction_cell");
        assert_eq!(got["reduction"], "reduction");
        assert_eq!(got["reduction_2"], "reduction_2");
        assert_eq!(got["reduction_bn"], "reduction_bn");
        // A word every name begins with names their kind: MobileNet's `conv_dw`, `conv_pw`.
        let cell = names(&["conv_dw", "conv_dw_bn", "conv_pw"]);
        assert_eq!(
            short(super::without_title_word(cell, "conv_cell")),
            ["conv_dw", "conv_dw_bn", "conv_pw"]
        );
    }

    #[test]
    fn local_names_read_naturally() {
        assert_eq!(local_name("conv2_block2_1_conv", &Tag::Prefix("conv2_block2".into())), "conv1");
        assert_eq!(local_name("conv2_block2_out", &Tag::Prefix("conv2_block2".into())), "out");
        assert_eq!(local_name("x", &Tag::Prefix("conv2_block2".into())), "x");
        assert_eq!(
            local_name("activation_190", &Tag::Prefix("expanded_conv_4".into())),
            "activation"
        );
        assert_eq!(local_name("mask_3", &Tag::Prefix("layer_1".into())), "mask");
        assert_eq!(local_name("conv2d_95_2", &Tag::Prefix("layer_1".into())), "conv2d_95_2");
        // Values named by a shorter tail of the block's scope than its layers are.
        let inner = Tag::Prefix("hg_net_v2_backbone_1_encoder_stage_2_block_1".into());
        assert_eq!(local_name("encoder_stage_2_block_1_agg_lab", &inner), "agg_lab");
        // Not down to a number, nor to one word.
        let vit = Tag::Prefix("encoder_transformer_block_1".into());
        assert_eq!(local_name("transformer_block_1_2", &vit), "transformer_block_1_2");
        let resnet = Tag::Prefix("conv2_block2".into());
        assert_eq!(local_name("block2_out", &resnet), "block2_out");
        assert!(super::is_auto_named("conv2d_25") && super::is_auto_named("activation_247"));
        assert!(!super::is_auto_named("block35_1") && !super::is_auto_named("normal_conv_1_5"));
        // TF's second counter where Keras' name was taken.
        assert!(super::is_auto_named("average_pooling2d_1_2"));
        assert!(
            super::is_unnamed_layer("average_pooling2d") && !super::is_unnamed_layer("conv1_bn")
        );
    }

    /// Keras' model-wide counters (InceptionV3's `conv2d_241` in one `Mixed` block) are
    /// counted afresh inside a block; one of a kind is its kind.
    #[test]
    fn layers_keras_counted_are_numbered_in_their_block() {
        let globals = [
            "conv2d_241",
            "batch_normalization_241",
            "conv2d_242",
            "average_pooling2d_4",
            "conv2d",
            "mixed7_out",
        ];
        let names = super::local_names(&globals, &Tag::Prefix("mixed7".into()));
        let locals: Vec<&str> = globals.iter().map(|g| names[g].as_str()).collect();
        assert_eq!(
            locals,
            ["conv2d_1", "batch_normalization", "conv2d_2", "average_pooling2d", "conv2d", "out"]
        );
    }

    /// A mask computed from the model input where the first layer first needs it, read by
    /// every layer: it moves above the first layer, which becomes an instance too.
    #[test]
    fn a_shared_mask_moves_out_of_the_first_block() {
        let mut g = TestGraph::new();
        let mut x = g.input("x", &[-1, 5, 8]);
        let ids = g.typed_input("ids", &[-1, 5], crate::tensor::DType::I32);
        let zero = g.constant("zero", int_tensor(&[], &[0]));
        let axis = g.constant("axis", int_tensor(&[], &[-1]));
        let mut mask = None;
        for b in 0..2 {
            let w = g.constant(&format!("w{b}"), weights(&[8, 8]));
            let y = g.op(&format!("m/layer_{b}/dense/MatMul"), "BatchMatMulV2", &[x, w], &[]);
            // Deeper than the mask, so computed first: the mask lands inside the layer.
            let y = g.op(&format!("m/layer_{b}/tanh"), "Tanh", &[y], &[]);
            let y = g.op(&format!("m/layer_{b}/sigmoid"), "Sigmoid", &[y], &[]);
            let m = *mask.get_or_insert_with(|| {
                let ne = g.op("m/mask/NotEqual", "NotEqual", &[ids, zero], &[]);
                let float = AttrValue { value: Some(Value::Type(1)) };
                let f = g.op("m/mask/Cast", "Cast", &[ne], &[("DstT", float)]);
                g.op("m/mask/ExpandDims", "ExpandDims", &[f, axis], &[])
            });
            let y = g.op(&format!("m/layer_{b}/mul"), "Mul", &[y, m], &[]);
            let y = g.op(&format!("m/layer_{b}/add"), "AddV2", &[x, y], &[]);
            x = g.op(&format!("m/layer_{b}/relu"), "Relu", &[y], &[]);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Layer():
          self.dense = nn.Linear(8, 8, bias=False)
          h = self.dense(x)
          h = torch.tanh(h)
          h = torch.sigmoid(h)
          h = h * mask
          h = x + h
          x = F.relu(h, inplace=True)
          return x (from x, mask)
        self.layers = nn.ModuleList([Layer() for _ in range(2)])
        # layers.0.dense.weight: [8, 8]
        # layers.1.dense.weight: [8, 8]
        ---
        mask = (ids != 0).to(torch.float32).unsqueeze(2)
        for layer in self.layers:
            x = layer(x, mask)
        return x
        ");
    }

    /// `relu(x + conv(relu(conv(x))))` on 4 channels, its five ops under `scopes` (conv,
    /// relu, conv, add, relu), weights numbered `k`.
    fn residual_block(g: &mut TestGraph, x: ValueRef, k: usize, scopes: [String; 5]) -> ValueRef {
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("SAME"))];
        let w1 = g.constant(&format!("w{k}a"), weights(&[3, 3, 4, 4]));
        let w2 = g.constant(&format!("w{k}b"), weights(&[1, 1, 4, 4]));
        let y = g.op(&format!("m/{}/Conv2D", scopes[0]), "Conv2D", &[x, w1], &pad);
        let y = g.op(&format!("m/{}/Relu", scopes[1]), "Relu", &[y], &[]);
        let y = g.op(&format!("m/{}/Conv2D", scopes[2]), "Conv2D", &[y, w2], &pad);
        let y = g.op(&format!("m/{}/add", scopes[3]), "AddV2", &[x, y], &[]);
        g.op(&format!("m/{}/Relu", scopes[4]), "Relu", &[y], &[])
    }

    /// A convolution of `x` from `cin` to `cout` channels: `k`×`k`, `stride`, SAME.
    fn conv(
        g: &mut TestGraph,
        scope: &str,
        x: ValueRef,
        k: usize,
        c: [usize; 2],
        stride: i64,
    ) -> ValueRef {
        let w = g.constant(&format!("w/{scope}"), weights(&[k, k, c[0], c[1]]));
        let attrs = [("strides", ints(&[1, stride, stride, 1])), ("padding", string("SAME"))];
        g.op(&format!("m/{scope}/Conv2D"), "Conv2D", &[x, w], &attrs)
    }

    /// One residual block with a 3x3 conv among 5x5 ones is not an edit to keep inline where
    /// blocks of the same class without the residual add are 3x3 too (MobileNetV3-Large):
    /// every block is an instance, the kernel size a parameter.
    #[test]
    fn an_odd_value_the_class_has_elsewhere_is_no_edit() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        let blocks = [(3, false), (3, false), (5, true), (5, true), (3, true), (5, true)];
        for (b, (k, residual)) in blocks.into_iter().enumerate() {
            let y = conv(&mut g, &format!("block{b}_conv1"), x, k, [4, 4], 1);
            let y = g.op(&format!("m/block{b}_relu/Relu"), "Relu", &[y], &[]);
            let y = conv(&mut g, &format!("block{b}_conv2"), y, 1, [4, 4], 1);
            let y = g.op(&format!("m/block{b}_tanh/Tanh"), "Tanh", &[y], &[]);
            x = if residual {
                g.op(&format!("m/block{b}_add/add"), "AddV2", &[x, y], &[])
            } else {
                y
            };
        }
        let code = g.lower(&[x]);
        assert!(code.contains("self.block4 = Block("), "{code}");
        assert!(!code.contains("self.block4_conv1"), "{code}");
    }

    /// VGG's last three blocks: the first 16 wide, the two after it 32: widths change from
    /// stage to stage, so the odd width is no edit keeping that block inline; one class.
    #[test]
    fn a_block_of_another_width_is_an_instance_too() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        for (b, [cin, c]) in [(3, [4, 16]), (4, [16, 32]), (5, [32, 32])] {
            let scope = |n: &str| format!("block{b}_{n}");
            let y = conv(&mut g, &scope("conv1"), x, 3, [cin, c], 1);
            let y = g.op(&format!("m/{}/Relu", scope("conv1")), "Relu", &[y], &[]);
            let y = conv(&mut g, &scope("conv2"), y, 3, [c, c], 1);
            x = g.op(&format!("m/{}/Relu", scope("conv2")), "Relu", &[y], &[]);
        }
        let code = g.lower(&[x]);
        assert!(code.contains("self.block3 = Block(4, 16)\n"), "{code}");
        assert!(code.contains("self.block5 = Block(32, 32)\n"), "{code}");
    }

    /// A stage of three residual blocks, the first halving the size and projecting its input
    /// (`conv0`) where the others add it as it is: one class with a `stride` and a
    /// `conv_shortcut` flag, as torchvision's `Bottleneck(stride, downsample)`; the
    /// projection's weights only in the first instance.
    #[test]
    fn a_projecting_shortcut_is_an_optional_part() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        for b in 1..=3 {
            let scope = |n: &str| format!("stage_block{b}_{n}");
            let (cin, stride) = if b == 1 { (4, 2) } else { (8, 1) };
            let y = conv(&mut g, &scope("1_conv"), x, 1, [cin, 8], stride);
            let y = g.op(&format!("m/{}/Relu", scope("1_relu")), "Relu", &[y], &[]);
            let y = conv(&mut g, &scope("2_conv"), y, 3, [8, 8], 1);
            let shortcut =
                if b == 1 { conv(&mut g, &scope("0_conv"), x, 1, [cin, 8], 2) } else { x };
            let y = g.op(&format!("m/{}/add", scope("add")), "AddV2", &[shortcut, y], &[]);
            x = g.op(&format!("m/{}/Relu", scope("out")), "Relu", &[y], &[]);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block(in_channels, stride=1, conv_shortcut=False):
          self.conv_shortcut = conv_shortcut
          self.conv1 = nn.Conv2d(in_channels, 8, 1, stride=stride, bias=False)
          self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
          self.conv0 = nn.Conv2d(in_channels, 8, 1, stride=stride, bias=False)
          x = self.conv1(inputs)
          x = F.relu(x, inplace=True)
          x = self.conv2(x)
          shortcut = inputs
          if conv_shortcut (conv0):
            shortcut = self.conv0(inputs)
          x = shortcut + x
          x = F.relu(x, inplace=True)
          return x (from inputs)
        self.block1 = Block(4, stride=2, conv_shortcut=True)
        self.blocks = nn.ModuleList([Block(8) for _ in range(2)])
        # block1.conv1.weight: [8, 4, 1, 1]
        # block1.conv2.weight: [8, 8, 3, 3]
        # block1.conv0.weight: [8, 4, 1, 1]
        # blocks.0.conv1.weight: [8, 8, 1, 1]
        # blocks.0.conv2.weight: [8, 8, 3, 3]
        # blocks.1.conv1.weight: [8, 8, 1, 1]
        # blocks.1.conv2.weight: [8, 8, 3, 3]
        ---
        image_nchw = image.permute(0, 3, 1, 2)
        x = self.block1(image_nchw)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Blocks ending in the residual add where their size allows, and one whose channels
    /// change without it (MobileNetV2's inverted residuals): one class with a `residual` flag.
    #[test]
    fn a_residual_add_is_an_optional_part() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 8, 8, 4]);
        let mut x = conv(&mut g, "stem", image, 1, [4, 4], 1);
        for b in 1..=3 {
            let scope = |n: &str| format!("block_{b}_{n}");
            let cin = if b == 1 { 4 } else { 8 };
            let y = conv(&mut g, &scope("expand"), x, 1, [cin, 16], 1);
            let y = g.op(&format!("m/{}/Relu6", scope("expand_relu")), "Relu6", &[y], &[]);
            let y = conv(&mut g, &scope("depthwise"), y, 3, [16, 16], 1);
            let y = conv(&mut g, &scope("project"), y, 1, [16, 8], 1);
            x = if b == 1 {
                y
            } else {
                g.op(&format!("m/{}/add", scope("add")), "AddV2", &[x, y], &[])
            };
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block(in_channels, residual=False):
          self.residual = residual
          self.expand = nn.Conv2d(in_channels, 16, 1, bias=False)
          self.depthwise = nn.Conv2d(16, 16, 3, padding=1, bias=False)
          self.project = nn.Conv2d(16, 8, 1, bias=False)
          x = self.expand(inputs)
          x = F.relu6(x, inplace=True)
          x = self.depthwise(x)
          x = self.project(x)
          if residual ():
            x = inputs + x
          return x (from inputs)
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.block_1 = Block(4)
        self.blocks = nn.ModuleList([Block(8, residual=True) for _ in range(2)])
        # stem.weight: [4, 4, 1, 1]
        # block_1.expand.weight: [16, 4, 1, 1]
        # block_1.depthwise.weight: [16, 16, 3, 3]
        # block_1.project.weight: [8, 16, 1, 1]
        # blocks.0.expand.weight: [16, 8, 1, 1]
        # blocks.0.depthwise.weight: [16, 16, 3, 3]
        # blocks.0.project.weight: [8, 16, 1, 1]
        # blocks.1.expand.weight: [16, 8, 1, 1]
        # blocks.1.depthwise.weight: [16, 16, 3, 3]
        # blocks.1.project.weight: [8, 16, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = self.block_1(x)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// EfficientNet's blocks, named `block1a`, `block2a`, `block2b` (stage, then block): the
    /// first has no expansion convolution, the later ones of a stage add their input back. One
    /// `Block` class, as torchvision's `MBConv`: the expansion a stage that is there unless an
    /// instance says `use_expand=False`, whose `in_channels` then is its `out_channels`.
    #[test]
    fn a_skipped_stage_is_an_optional_part() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 8, 8, 4]);
        let mut x = conv(&mut g, "stem", image, 1, [4, 4], 1);
        for (name, cin) in [("block1a", 4), ("block2a", 8), ("block2b", 8), ("block3a", 8)] {
            let scope = |n: &str| format!("{name}_{n}");
            let c = match name {
                "block1a" => 4,
                "block3a" => 24,
                _ => 16,
            };
            let y = if name == "block1a" {
                x
            } else {
                let y = conv(&mut g, &scope("expand_conv"), x, 1, [cin, c], 1);
                g.op(&format!("m/{}/Relu", scope("expand_activation")), "Relu", &[y], &[])
            };
            let y = conv(&mut g, &scope("dwconv"), y, 3, [c, c], 1);
            let y = g.op(&format!("m/{}/Relu", scope("activation")), "Relu", &[y], &[]);
            let y = conv(&mut g, &scope("project_conv"), y, 1, [c, 8], 1);
            let y = g.op(&format!("m/{}/Relu", scope("project_activation")), "Relu", &[y], &[]);
            x = if name == "block2b" {
                g.op(&format!("m/{}/add", scope("add")), "AddV2", &[y, x], &[])
            } else {
                y
            };
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block(out_channels, use_expand=True, residual=False):
          self.use_expand = use_expand
          self.residual = residual
          self.expand_conv = nn.Conv2d(8, out_channels, 1, bias=False)
          self.dwconv = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
          self.project_conv = nn.Conv2d(out_channels, 8, 1, bias=False)
          x = inputs
          if use_expand (expand_conv):
            x = self.expand_conv(inputs)
            x = F.relu(x, inplace=True)
          x = self.dwconv(x)
          x = F.relu(x, inplace=True)
          x = self.project_conv(x)
          x = F.relu(x, inplace=True)
          if residual ():
            x = x + inputs
          return x (from inputs)
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.block1a = Block(4, use_expand=False)
        self.block2a = Block(16)
        self.block2b = Block(16, residual=True)
        self.block3a = Block(24)
        # stem.weight: [4, 4, 1, 1]
        # block1a.dwconv.weight: [4, 4, 3, 3]
        # block1a.project_conv.weight: [8, 4, 1, 1]
        # block2a.expand_conv.weight: [16, 8, 1, 1]
        # block2a.dwconv.weight: [16, 16, 3, 3]
        # block2a.project_conv.weight: [8, 16, 1, 1]
        # block2b.expand_conv.weight: [16, 8, 1, 1]
        # block2b.dwconv.weight: [16, 16, 3, 3]
        # block2b.project_conv.weight: [8, 16, 1, 1]
        # block3a.expand_conv.weight: [24, 8, 1, 1]
        # block3a.dwconv.weight: [24, 24, 3, 3]
        # block3a.project_conv.weight: [8, 24, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = self.block1a(x)
        x = self.block2a(x)
        x = self.block2b(x)
        x = self.block3a(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// EfficientNetV2's fused blocks: the strided ones pad the block's input (TF's SAME) and
    /// add nothing back; the others add back their input, unpadded. One class, whose padding
    /// pads a copy (`x = inputs`) so that the add still reads the input.
    #[test]
    fn a_padding_of_the_input_leaves_the_input_to_the_residual_add() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 16, 16, 4]);
        let mut x = conv(&mut g, "stem", image, 1, [4, 8], 1);
        let pads = g.constant("pads", int_tensor(&[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]));
        for (name, stride) in [("block1a", 2), ("block1b", 1), ("block2a", 2), ("block2b", 1)] {
            let scope = |n: &str| format!("{name}_{n}");
            let y = if stride == 2 {
                let y = g.op(&format!("m/{}/Pad", scope("pad")), "Pad", &[x, pads], &[]);
                valid_conv(&mut g, &scope("expand_conv"), y, 8, 2)
            } else {
                conv(&mut g, &scope("expand_conv"), x, 3, [8, 8], 1)
            };
            let y = g.op(&format!("m/{}/Relu", scope("expand_activation")), "Relu", &[y], &[]);
            let y = conv(&mut g, &scope("project_conv"), y, 1, [8, 8], 1);
            x = if stride == 1 {
                g.op(&format!("m/{}/add", scope("add")), "AddV2", &[y, x], &[])
            } else {
                y
            };
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block(stride=1, padding=0, residual=False, pad=None):
          self.residual = residual
          self.pad = pad
          self.expand_conv = nn.Conv2d(8, 8, 3, stride=stride, padding=padding, bias=False)
          self.project_conv = nn.Conv2d(8, 8, 1, bias=False)
          x = inputs
          if pad is not None ():
            x = F.pad(x, self.pad)
          x = self.expand_conv(x)
          x = F.relu(x, inplace=True)
          x = self.project_conv(x)
          if residual ():
            x = x + inputs
          return x (from inputs)
        self.stem = nn.Conv2d(4, 8, 1, bias=False)
        self.block1a = Block(stride=2, pad=(0, 1, 0, 1))
        self.block1b = Block(padding=1, residual=True)
        self.block2a = Block(stride=2, pad=(0, 1, 0, 1))
        self.block2b = Block(padding=1, residual=True)
        # stem.weight: [8, 4, 1, 1]
        # block1a.expand_conv.weight: [8, 8, 3, 3]
        # block1a.project_conv.weight: [8, 8, 1, 1]
        # block1b.expand_conv.weight: [8, 8, 3, 3]
        # block1b.project_conv.weight: [8, 8, 1, 1]
        # block2a.expand_conv.weight: [8, 8, 3, 3]
        # block2a.project_conv.weight: [8, 8, 1, 1]
        # block2b.expand_conv.weight: [8, 8, 3, 3]
        # block2b.project_conv.weight: [8, 8, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = self.block1a(x)
        x = self.block1b(x)
        x = self.block2a(x)
        x = self.block2b(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// MobileNetV3's blocks: the first ones ReLU, the later ones another activation. One class
    /// taking the activation, as torchvision's `InvertedResidual(activation_layer=...)`.
    #[test]
    fn blocks_differing_in_activation_take_it_as_an_argument() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 8, 8, 4]);
        let mut x = conv(&mut g, "stem", image, 1, [4, 4], 1);
        for (b, act) in [(1, "Relu"), (2, "Relu6"), (3, "Relu6"), (4, "Relu6")] {
            let scope = |n: &str| format!("block_{b}_{n}");
            let y = conv(&mut g, &scope("expand"), x, 1, [4, 8], 1);
            let y = g.op(&format!("m/{}/{act}", scope("expand_act")), act, &[y], &[]);
            let y = conv(&mut g, &scope("depthwise"), y, 3, [8, 8], 1);
            let y = g.op(&format!("m/{}/{act}", scope("depthwise_act")), act, &[y], &[]);
            x = conv(&mut g, &scope("project"), y, 1, [8, 4], 1);
        }
        // One block of another activation among several is no outlier (MobileNetV3).
        assert_snapshot!(g.lower(&[x]), @"
        class Block(activation):
          self.activation = activation
          self.expand = nn.Conv2d(4, 8, 1, bias=False)
          self.depthwise = nn.Conv2d(8, 8, 3, padding=1, bias=False)
          self.project = nn.Conv2d(8, 4, 1, bias=False)
          x = self.expand(x)
          x = self.activation(x)
          x = self.depthwise(x)
          x = self.activation(x)
          x = self.project(x)
          return x (from x)
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.block_1 = Block(activation=F.relu)
        self.blocks = nn.ModuleList([Block(activation=F.relu6) for _ in range(3)])
        # stem.weight: [4, 4, 1, 1]
        # block_1.expand.weight: [8, 4, 1, 1]
        # block_1.depthwise.weight: [8, 8, 3, 3]
        # block_1.project.weight: [4, 8, 1, 1]
        # blocks.0.expand.weight: [8, 4, 1, 1]
        # blocks.0.depthwise.weight: [8, 8, 3, 3]
        # blocks.0.project.weight: [4, 8, 1, 1]
        # blocks.1.expand.weight: [8, 4, 1, 1]
        # blocks.1.depthwise.weight: [8, 8, 3, 3]
        # blocks.1.project.weight: [4, 8, 1, 1]
        # blocks.2.expand.weight: [8, 4, 1, 1]
        # blocks.2.depthwise.weight: [8, 8, 3, 3]
        # blocks.2.project.weight: [4, 8, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = self.block_1(x)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// A 3×3 VALID convolution of `x` on `c` channels with `stride`, after an explicit pad.
    fn valid_conv(g: &mut TestGraph, scope: &str, x: ValueRef, c: usize, stride: i64) -> ValueRef {
        let w = g.constant(&format!("w/{scope}"), weights(&[3, 3, c, c]));
        let attrs = [("strides", ints(&[1, stride, stride, 1])), ("padding", string("VALID"))];
        g.op(&format!("m/{scope}/Conv2D"), "Conv2D", &[x, w], &attrs)
    }

    /// Blocks whose 3×3 convolution strides after padding its input as TF's SAME would, more
    /// after than before (Keras' MobileNetV2 and EfficientNet: a `ZeroPadding2D`, then a VALID
    /// convolution), and blocks whose convolution pads itself: one class, the padding an
    /// argument that is `None` where there is none.
    #[test]
    fn a_padding_before_a_strided_conv_is_an_optional_part() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 16, 16, 4]);
        let mut x = conv(&mut g, "stem", image, 1, [4, 4], 1);
        let pads = g.constant("pads", int_tensor(&[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]));
        for (b, stride) in [(1, 2), (2, 1), (3, 2), (4, 1)] {
            let scope = |n: &str| format!("block_{b}_{n}");
            let c = [4 * b, 4 * b + 4];
            let y = conv(&mut g, &scope("expand"), x, 1, [c[0], c[1]], 1);
            let y = g.op(&format!("m/{}/Relu6", scope("expand_relu")), "Relu6", &[y], &[]);
            let y = if stride == 2 {
                let y = g.op(&format!("m/{}/Pad", scope("pad")), "Pad", &[y, pads], &[]);
                valid_conv(&mut g, &scope("depthwise"), y, c[1], 2)
            } else {
                conv(&mut g, &scope("depthwise"), y, 3, [c[1], c[1]], 1)
            };
            x = conv(&mut g, &scope("project"), y, 1, [c[1], c[1]], 1);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block(in_channels, out_channels, stride=1, padding=0, pad=None):
          self.pad = pad
          self.expand = nn.Conv2d(in_channels, out_channels, 1, bias=False)
          self.depthwise = nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=padding, bias=False)
          self.project = nn.Conv2d(out_channels, out_channels, 1, bias=False)
          x = self.expand(x)
          x = F.relu6(x, inplace=True)
          if pad is not None ():
            x = F.pad(x, self.pad)
          x = self.depthwise(x)
          x = self.project(x)
          return x (from x)
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.block_1 = Block(4, 8, stride=2, pad=(0, 1, 0, 1))
        self.block_2 = Block(8, 12, padding=1)
        self.block_3 = Block(12, 16, stride=2, pad=(0, 1, 0, 1))
        self.block_4 = Block(16, 20, padding=1)
        # stem.weight: [4, 4, 1, 1]
        # block_1.expand.weight: [8, 4, 1, 1]
        # block_1.depthwise.weight: [8, 8, 3, 3]
        # block_1.project.weight: [8, 8, 1, 1]
        # block_2.expand.weight: [12, 8, 1, 1]
        # block_2.depthwise.weight: [12, 12, 3, 3]
        # block_2.project.weight: [12, 12, 1, 1]
        # block_3.expand.weight: [16, 12, 1, 1]
        # block_3.depthwise.weight: [16, 16, 3, 3]
        # block_3.project.weight: [16, 16, 1, 1]
        # block_4.expand.weight: [20, 16, 1, 1]
        # block_4.depthwise.weight: [20, 20, 3, 3]
        # block_4.project.weight: [20, 20, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = self.block_1(x)
        x = self.block_2(x)
        x = self.block_3(x)
        x = self.block_4(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Keras' MobileNet names each depthwise-separable block's layers with its number inside
    /// (`conv_dw_2`, then `conv_dw_2_bn`, `conv_dw_2_relu`, `conv_pw_2`, ...), the strided
    /// ones padding first (`conv_pad_2`): the blocks are cells of one class.
    #[test]
    fn cells_numbered_inside_their_layers_names_share_a_class() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 16, 16, 4]);
        let mut x = conv(&mut g, "conv1", image, 1, [4, 4], 1);
        let pads = g.constant("pads", int_tensor(&[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]));
        for (b, stride) in [(1, 1), (2, 2), (3, 1), (4, 2), (5, 1), (6, 1)] {
            let c = 4 * b;
            let y = if stride == 2 {
                let y = g.op(&format!("m/conv_pad_{b}/Pad"), "Pad", &[x, pads], &[]);
                valid_conv(&mut g, &format!("conv_dw_{b}"), y, c, 2)
            } else {
                conv(&mut g, &format!("conv_dw_{b}"), x, 3, [c, c], 1)
            };
            let y = g.op(&format!("m/conv_dw_{b}_relu/Relu6"), "Relu6", &[y], &[]);
            let y = conv(&mut g, &format!("conv_pw_{b}"), y, 1, [c, c + 4], 1);
            x = g.op(&format!("m/conv_pw_{b}_relu/Relu6"), "Relu6", &[y], &[]);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class ConvCell(in_channels, out_channels, stride=1, padding=0, pad=None):
          self.pad = pad
          self.conv_dw = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=padding, bias=False)
          self.conv_pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
          if pad is not None ():
            x = F.pad(x, self.pad)
          x = self.conv_dw(x)
          x = F.relu6(x, inplace=True)
          x = self.conv_pw(x)
          x = F.relu6(x, inplace=True)
          return x (from x)
        self.conv1 = nn.Conv2d(4, 4, 1, bias=False)
        self.conv_cell_1 = ConvCell(4, 8, padding=1)
        self.conv_cell_2 = ConvCell(8, 12, stride=2, pad=(0, 1, 0, 1))
        self.conv_cell_3 = ConvCell(12, 16, padding=1)
        self.conv_cell_4 = ConvCell(16, 20, stride=2, pad=(0, 1, 0, 1))
        self.conv_cell_5 = ConvCell(20, 24, padding=1)
        self.conv_cell_6 = ConvCell(24, 28, padding=1)
        # conv1.weight: [4, 4, 1, 1]
        # conv_cell_1.conv_dw.weight: [4, 4, 3, 3]
        # conv_cell_1.conv_pw.weight: [8, 4, 1, 1]
        # conv_cell_2.conv_dw.weight: [8, 8, 3, 3]
        # conv_cell_2.conv_pw.weight: [12, 8, 1, 1]
        # conv_cell_3.conv_dw.weight: [12, 12, 3, 3]
        # conv_cell_3.conv_pw.weight: [16, 12, 1, 1]
        # conv_cell_4.conv_dw.weight: [16, 16, 3, 3]
        # conv_cell_4.conv_pw.weight: [20, 16, 1, 1]
        # conv_cell_5.conv_dw.weight: [20, 20, 3, 3]
        # conv_cell_5.conv_pw.weight: [24, 20, 1, 1]
        # conv_cell_6.conv_dw.weight: [24, 24, 3, 3]
        # conv_cell_6.conv_pw.weight: [28, 24, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv1(x)
        x = self.conv_cell_1(x)
        x = self.conv_cell_2(x)
        x = self.conv_cell_3(x)
        x = self.conv_cell_4(x)
        x = self.conv_cell_5(x)
        x = self.conv_cell_6(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// MobileNetV2: a strided block pads first and adds nothing back; the blocks after it
    /// add their input back and do not pad. The common structure is the template; the
    /// strided block lacks its residual add and has a padding it does not: one class.
    #[test]
    fn a_block_may_have_a_padding_the_others_lack() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 16, 16, 4]);
        let mut x = conv(&mut g, "stem", image, 1, [4, 4], 1);
        let pads = g.constant("pads", int_tensor(&[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]));
        for b in 1..=3 {
            let scope = |n: &str| format!("block_{b}_{n}");
            let cin = if b == 1 { 4 } else { 8 };
            let y = conv(&mut g, &scope("expand"), x, 1, [cin, 8], 1);
            let y = g.op(&format!("m/{}/Relu6", scope("expand_relu")), "Relu6", &[y], &[]);
            let y = if b == 1 {
                let y = g.op(&format!("m/{}/Pad", scope("pad")), "Pad", &[y, pads], &[]);
                valid_conv(&mut g, &scope("depthwise"), y, 8, 2)
            } else {
                conv(&mut g, &scope("depthwise"), y, 3, [8, 8], 1)
            };
            let y = conv(&mut g, &scope("project"), y, 1, [8, 8], 1);
            x = if b == 1 {
                y
            } else {
                g.op(&format!("m/{}/add", scope("add")), "AddV2", &[x, y], &[])
            };
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block(in_channels, stride=1, padding=0, residual=False, pad=None):
          self.residual = residual
          self.pad = pad
          self.expand = nn.Conv2d(in_channels, 8, 1, bias=False)
          self.depthwise = nn.Conv2d(8, 8, 3, stride=stride, padding=padding, bias=False)
          self.project = nn.Conv2d(8, 8, 1, bias=False)
          x = self.expand(inputs)
          x = F.relu6(x, inplace=True)
          if pad is not None ():
            x = F.pad(x, self.pad)
          x = self.depthwise(x)
          x = self.project(x)
          if residual ():
            x = inputs + x
          return x (from inputs)
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.block_1 = Block(4, stride=2, pad=(0, 1, 0, 1))
        self.blocks = nn.ModuleList([Block(8, padding=1, residual=True) for _ in range(2)])
        # stem.weight: [4, 4, 1, 1]
        # block_1.expand.weight: [8, 4, 1, 1]
        # block_1.depthwise.weight: [8, 8, 3, 3]
        # block_1.project.weight: [8, 8, 1, 1]
        # blocks.0.expand.weight: [8, 8, 1, 1]
        # blocks.0.depthwise.weight: [8, 8, 3, 3]
        # blocks.0.project.weight: [8, 8, 1, 1]
        # blocks.1.expand.weight: [8, 8, 1, 1]
        # blocks.1.depthwise.weight: [8, 8, 3, 3]
        # blocks.1.project.weight: [8, 8, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = self.block_1(x)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// keras-hub's ResNet: the first block of each stage projects its input; the first block
    /// of a later stage also strides its 3×3 convolution after padding; the other blocks do
    /// neither. One class with both parts optional.
    #[test]
    fn a_block_may_lack_several_parts() {
        let mut g = TestGraph::new();
        let image = g.input("image", &[-1, 16, 16, 4]);
        let mut x = conv(&mut g, "stem", image, 1, [4, 4], 1);
        let pads = g.constant("pads", int_tensor(&[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]));
        for (s, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let scope = |n: &str| format!("stack{s}_block{b}_{n}");
            let c = [8, 16][s];
            let cin = if b == 0 { [4, 8][s] } else { c };
            let y = conv(&mut g, &scope("1_conv"), x, 1, [cin, c], 1);
            let y = g.op(&format!("m/{}/Relu", scope("1_relu")), "Relu", &[y], &[]);
            let strided = s == 1 && b == 0;
            let y = if strided {
                let y = g.op(&format!("m/{}/Pad", scope("2_pad")), "Pad", &[y, pads], &[]);
                valid_conv(&mut g, &scope("2_conv"), y, c, 2)
            } else {
                conv(&mut g, &scope("2_conv"), y, 3, [c, c], 1)
            };
            let y = conv(&mut g, &scope("3_conv"), y, 1, [c, c], 1);
            let shortcut = if b == 0 {
                conv(&mut g, &scope("0_conv"), x, 1, [cin, c], if strided { 2 } else { 1 })
            } else {
                x
            };
            let y = g.op(&format!("m/{}/add", scope("add")), "AddV2", &[shortcut, y], &[]);
            x = g.op(&format!("m/{}/Relu", scope("out")), "Relu", &[y], &[]);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class StackBlock(in_channels, out_channels, stride=1, padding=0, conv_shortcut=False, pad=None):
          self.conv_shortcut = conv_shortcut
          self.pad = pad
          self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
          self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=padding, bias=False)
          self.conv3 = nn.Conv2d(out_channels, out_channels, 1, bias=False)
          self.conv0 = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
          x = self.conv1(inputs)
          x = F.relu(x, inplace=True)
          if pad is not None ():
            x = F.pad(x, self.pad)
          x = self.conv2(x)
          x = self.conv3(x)
          shortcut = inputs
          if conv_shortcut (conv0):
            shortcut = self.conv0(inputs)
          x = shortcut + x
          x = F.relu(x, inplace=True)
          return x (from inputs)
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.stack0_block0 = StackBlock(4, 8, padding=1, conv_shortcut=True)
        self.stack0_block1 = StackBlock(8, 8, padding=1)
        self.stack1_block0 = StackBlock(8, 16, stride=2, conv_shortcut=True, pad=(0, 1, 0, 1))
        self.stack1_block1 = StackBlock(16, 16, padding=1)
        # stem.weight: [4, 4, 1, 1]
        # stack0_block0.conv1.weight: [8, 4, 1, 1]
        # stack0_block0.conv2.weight: [8, 8, 3, 3]
        # stack0_block0.conv3.weight: [8, 8, 1, 1]
        # stack0_block0.conv0.weight: [8, 4, 1, 1]
        # stack0_block1.conv1.weight: [8, 8, 1, 1]
        # stack0_block1.conv2.weight: [8, 8, 3, 3]
        # stack0_block1.conv3.weight: [8, 8, 1, 1]
        # stack1_block0.conv1.weight: [16, 8, 1, 1]
        # stack1_block0.conv2.weight: [16, 16, 3, 3]
        # stack1_block0.conv3.weight: [16, 16, 1, 1]
        # stack1_block0.conv0.weight: [16, 8, 1, 1]
        # stack1_block1.conv1.weight: [16, 16, 1, 1]
        # stack1_block1.conv2.weight: [16, 16, 3, 3]
        # stack1_block1.conv3.weight: [16, 16, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = self.stack0_block0(x)
        x = self.stack0_block1(x)
        x = self.stack1_block0(x)
        x = self.stack1_block1(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Three sibling residual blocks, the first reading the input permuted to NCHW: the
    /// conversion stays outside, so all three are one class, run by a loop.
    #[test]
    fn sibling_blocks_share_a_class() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        for b in 1..=3 {
            let scopes = ["1_conv", "1_relu", "2_conv", "add", "out"];
            x = residual_block(&mut g, x, b, scopes.map(|s| format!("stage_block{b}_{s}")));
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block():
          self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
          x = self.conv1(inputs)
          x = F.relu(x, inplace=True)
          x = self.conv2(x)
          x = inputs + x
          x = F.relu(x, inplace=True)
          return x (from inputs)
        self.blocks = nn.ModuleList([Block() for _ in range(3)])
        # blocks.0.conv1.weight: [4, 4, 3, 3]
        # blocks.0.conv2.weight: [4, 4, 1, 1]
        # blocks.1.conv1.weight: [4, 4, 3, 3]
        # blocks.1.conv2.weight: [4, 4, 1, 1]
        # blocks.2.conv1.weight: [4, 4, 3, 3]
        # blocks.2.conv2.weight: [4, 4, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// InceptionV3: layers its author did not name (`conv2d_5`, `activation_5`) in the stem
    /// and in the branches of each block, whose concat alone is named (`mixed0`). Each block
    /// starts where its branches fork, not at the model's input: the stem stays in
    /// `forward`, and all three blocks are one class.
    #[test]
    fn a_block_of_unnamed_branches_starts_where_they_fork() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        x = conv(&mut g, "conv2d", x, 3, [4, 4], 1);
        x = g.op("m/activation/Relu", "Relu", &[x], &[]);
        let mut n = 1;
        for b in 0..3 {
            let mut unnamed = |g: &mut TestGraph, x: ValueRef, c: [usize; 2]| {
                let y = conv(g, &format!("conv2d_{n}"), x, 1, c, 1);
                let y = g.op(&format!("m/activation_{n}/Relu"), "Relu", &[y], &[]);
                n += 1;
                y
            };
            let left = unnamed(&mut g, x, [4, 2]);
            let right = unnamed(&mut g, x, [4, 2]);
            let right = unnamed(&mut g, right, [2, 2]);
            let axis = g.constant(&format!("axis{b}"), int_tensor(&[], &[3]));
            let attrs = [("N", int(2))];
            x = g.op(&format!("m/mixed{b}/concat"), "ConcatV2", &[left, right, axis], &attrs);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Mixed():
          self.conv2d_1 = nn.Conv2d(4, 2, 1, bias=False)
          self.conv2d_2 = nn.Conv2d(2, 2, 1, bias=False)
          self.conv2d_3 = nn.Conv2d(4, 2, 1, bias=False)
          x = self.conv2d_1(inputs)
          x = F.relu(x, inplace=True)
          x = self.conv2d_2(x)
          x = F.relu(x, inplace=True)
          y = self.conv2d_3(inputs)
          y = F.relu(y, inplace=True)
          x = torch.cat([y, x], dim=1)
          return x (from inputs)
        self.conv2d = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.mixeds = nn.ModuleList([Mixed() for _ in range(3)])
        # conv2d.weight: [4, 4, 3, 3]
        # mixeds.0.conv2d_1.weight: [2, 4, 1, 1]
        # mixeds.0.conv2d_2.weight: [2, 2, 1, 1]
        # mixeds.0.conv2d_3.weight: [2, 4, 1, 1]
        # mixeds.1.conv2d_1.weight: [2, 4, 1, 1]
        # mixeds.1.conv2d_2.weight: [2, 2, 1, 1]
        # mixeds.1.conv2d_3.weight: [2, 4, 1, 1]
        # mixeds.2.conv2d_1.weight: [2, 4, 1, 1]
        # mixeds.2.conv2d_2.weight: [2, 2, 1, 1]
        # mixeds.2.conv2d_3.weight: [2, 4, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv2d(x)
        x = F.relu(x, inplace=True)
        for layer in self.mixeds:
            x = layer(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Keras' ConvNeXt adds each block's input back outside the block's layers (a bare
    /// `Add_1`): that add ends the block, and the stage is a loop. The block converts its
    /// input for the convolution itself, as its residual reads the input as it came.
    #[test]
    fn a_residual_add_after_the_blocks_layers_is_the_blocks() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        for b in 0..3 {
            let y = conv(&mut g, &format!("stage_block_{b}_conv"), x, 3, [4, 4], 1);
            let w = g.constant(&format!("w/dense{b}"), weights(&[4, 4]));
            let y = g.op(&format!("m/stage_block_{b}_dense/MatMul"), "BatchMatMulV2", &[y, w], &[]);
            let y = g.op(&format!("m/stage_block_{b}_gelu/Relu"), "Relu", &[y], &[]);
            let add = if b == 0 { "Add".to_string() } else { format!("Add_{b}") };
            x = g.op(&format!("m/{add}"), "AddV2", &[x, y], &[]);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class StageBlock():
          self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.dense = nn.Linear(4, 4, bias=False)
          inputs_nchw = inputs.permute(0, 3, 1, 2)
          x = self.conv(inputs_nchw).permute(0, 2, 3, 1)
          x = self.dense(x)
          x = F.relu(x, inplace=True)
          x = inputs + x
          return x (from inputs)
        self.stage_blocks = nn.ModuleList([StageBlock() for _ in range(3)])
        # stage_blocks.0.conv.weight: [4, 4, 3, 3]
        # stage_blocks.0.dense.weight: [4, 4]
        # stage_blocks.1.conv.weight: [4, 4, 3, 3]
        # stage_blocks.1.dense.weight: [4, 4]
        # stage_blocks.2.conv.weight: [4, 4, 3, 3]
        # stage_blocks.2.dense.weight: [4, 4]
        ---
        for block in self.stage_blocks:
            image = block(image)
        return image
        ");
    }

    /// Xception's middle blocks: each of its separable convolutions is a block of its own
    /// (`block5_sepconv1`, ...), and the block (`block5`) only their sequence, but for the
    /// unnamed `add_3` after it that puts its input back: a residual block, a loop of them.
    #[test]
    fn a_stage_of_blocks_whose_input_is_added_back_is_a_block() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        for b in 5..8 {
            let input = x;
            let mut y = x;
            for c in 1..=2 {
                let scope = format!("block{b}_sepconv{c}");
                y = g.op(&format!("m/{scope}_act/Relu"), "Relu", &[y], &[]);
                y = conv(&mut g, &format!("{scope}_depthwise"), y, 3, [4, 4], 1);
                y = conv(&mut g, &format!("{scope}_pointwise"), y, 1, [4, 4], 1);
                y = g.op(&format!("m/{scope}_bn/Tanh"), "Tanh", &[y], &[]);
            }
            x = g.op(&format!("m/add_{b}/add"), "AddV2", &[y, input], &[]);
        }
        let code = g.lower(&[x]);
        assert!(code.contains("for block in self.blocks:"), "{code}");
        assert!(code.contains("x = x + inputs"), "{code}");
    }

    /// Values are named by their scope's short name (`attn`), numbered over the whole model:
    /// the class of the second and third layers names them as if it were the first
    /// (`attn`, `attn_2`), not after the first layer's values, which came before
    /// (`attn_4`, `attn_5`). There the first is the `residual`, and the number of the
    /// second tells it from nothing: it is `attn`.
    #[test]
    fn values_of_a_class_are_numbered_in_it() {
        let mut g = TestGraph::new();
        let mut h = g.input("x", &[-1, 8]);
        for layer in 0..3 {
            let s = format!("layer_{layer}/attn");
            let w = g.constant(&format!("{s}/proj/kernel"), weights(&[8, 8]));
            let p = g.op(&format!("{s}/proj/MatMul"), "MatMul", &[h, w], &[]);
            let mut a = g.op(&format!("{s}/Tanh"), "Tanh", &[p], &[]);
            if layer == 0 {
                // The first layer is another kind, and names the first values.
                a = g.op(&format!("{s}/Relu"), "Relu", &[a], &[]);
                a = g.op(&format!("{s}/Mul"), "Mul", &[a, a], &[]);
            }
            let b = g.op(&format!("{s}/mul"), "Mul", &[a, a], &[]);
            let c = g.op(&format!("{s}/Sigmoid"), "Sigmoid", &[b], &[]);
            let d = g.op(&format!("{s}/mul_1"), "Mul", &[c, c], &[]);
            // Both read again further on: held, they keep their names (a value read by the
            // next statement alone would run as `y`).
            let d = g.op(&format!("{s}/add"), "AddV2", &[d, a], &[]);
            let d = g.op(&format!("{s}/add_1"), "AddV2", &[d, c], &[]);
            h = g.op(&format!("layer_{layer}/add"), "AddV2", &[d, h], &[]);
        }
        assert_snapshot!(g.lower(&[h]), @"
        class Layer():
          self.attn_proj = nn.Linear(8, 8, bias=False)
          h = self.attn_proj(x)
          attn = torch.tanh(h)
          h = attn * attn
          attn_2 = torch.sigmoid(h)
          h = attn_2 * attn_2
          h = h + attn
          h = h + attn_2
          x = h + x
          return x (from x)
        self.layer_0_attn_proj = nn.Linear(8, 8, bias=False)
        self.layers = nn.ModuleList([Layer() for _ in range(2)])
        # layer_0_attn_proj.weight: [8, 8]
        # layers.0.attn_proj.weight: [8, 8]
        # layers.1.attn_proj.weight: [8, 8]
        ---
        h = self.layer_0_attn_proj(x)
        h = torch.tanh(h)
        y = F.relu(h)
        attn_2 = y * y
        h = attn_2 * attn_2
        attn_3 = torch.sigmoid(h)
        h = attn_3 * attn_3
        h = h + attn_2
        h = h + attn_3
        x = h + x
        for layer in self.layers:
            x = layer(x)
        return x
        ");
    }

    /// Layers of two streams that meet in each (Stable Diffusion 3's joint blocks: image and
    /// text, modulated by a conditioning vector) are one class returning both streams, though
    /// the demand order starts each layer's text stream and modulation before the previous
    /// layer's image stream is done; their stack is one loop carrying both.
    #[test]
    fn layers_of_two_streams_are_one_class() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8]);
        let mut ctx = g.input("text", &[-1, 8]);
        let c = g.input("cond", &[-1, 8]);
        for layer in 0..3 {
            let s = format!("joint_{layer}");
            let linear = |g: &mut TestGraph, name: &str, input: ValueRef| {
                let w = g.constant(&format!("{s}/{name}/kernel"), weights(&[8, 8]));
                g.op(&format!("{s}/{name}/MatMul"), "MatMul", &[input, w], &[])
            };
            let m = linear(&mut g, "modulation", c);
            let m = g.op(&format!("{s}/modulation/Sigmoid"), "Sigmoid", &[m], &[]);
            let xm = g.op(&format!("{s}/image/mul"), "Mul", &[x, m], &[]);
            let a = linear(&mut g, "image_in", xm);
            let b = linear(&mut g, "text_in", ctx);
            let joined = g.op(&format!("{s}/join/add"), "AddV2", &[a, b], &[]);
            let joined = g.op(&format!("{s}/join/Tanh"), "Tanh", &[joined], &[]);
            let dx = linear(&mut g, "image_out", joined);
            let dx = g.op(&format!("{s}/image_out/Relu"), "Relu", &[dx], &[]);
            x = g.op(&format!("{s}/image/add"), "AddV2", &[x, dx], &[]);
            let dc = linear(&mut g, "text_out", joined);
            let dc = g.op(&format!("{s}/text_out/Relu"), "Relu", &[dc], &[]);
            ctx = g.op(&format!("{s}/text/add"), "AddV2", &[ctx, dc], &[]);
        }
        assert_snapshot!(g.lower(&[x, ctx]), @"
        class Joint():
          self.modulation = nn.Linear(8, 8, bias=False)
          self.image_in = nn.Linear(8, 8, bias=False)
          self.text_in = nn.Linear(8, 8, bias=False)
          self.image_out = nn.Linear(8, 8, bias=False)
          self.text_out = nn.Linear(8, 8, bias=False)
          x = self.modulation(inputs)
          x = torch.sigmoid(x)
          x = image * x
          x = self.image_in(x)
          text_in = self.text_in(text)
          x = x + text_in
          join = torch.tanh(x)
          x = self.image_out(join)
          x = F.relu(x, inplace=True)
          image_2 = image + x
          x = self.text_out(join)
          x = F.relu(x, inplace=True)
          text_2 = text + x
          return text_2, image_2 (from inputs, image, text)
        self.joints = nn.ModuleList([Joint() for _ in range(3)])
        # joints.0.modulation.weight: [8, 8]
        # joints.0.image_in.weight: [8, 8]
        # joints.0.text_in.weight: [8, 8]
        # joints.0.image_out.weight: [8, 8]
        # joints.0.text_out.weight: [8, 8]
        # joints.1.modulation.weight: [8, 8]
        # joints.1.image_in.weight: [8, 8]
        # joints.1.text_in.weight: [8, 8]
        # joints.1.image_out.weight: [8, 8]
        # joints.1.text_out.weight: [8, 8]
        # joints.2.modulation.weight: [8, 8]
        # joints.2.image_in.weight: [8, 8]
        # joints.2.text_in.weight: [8, 8]
        # joints.2.image_out.weight: [8, 8]
        # joints.2.text_out.weight: [8, 8]
        ---
        for layer in self.joints:
            text, image = layer(cond, image, text)
        return image, text
        ");
    }

    /// Blocks inside a model called once inside another (`backbone_1`, numbered by the call)
    /// are named within it, as the inner model alone names them; blocks inside a named part
    /// (`decoder`) keep its name.
    #[test]
    fn blocks_are_named_within_a_nested_model() {
        for (outer, class) in [("backbone_1/", "StageBlock"), ("decoder/", "DecoderStageBlock")] {
            let mut g = TestGraph::new();
            let mut x = g.input("image", &[-1, 8, 8, 4]);
            for b in 1..=3 {
                let scopes = ["1_conv", "1_relu", "2_conv", "add", "out"];
                let scopes = scopes.map(|s| format!("{outer}stage_block{b}_{s}"));
                x = residual_block(&mut g, x, b, scopes);
            }
            // A head outside it, so the nested model is not the whole model's name prefix.
            let x = conv(&mut g, "head_conv", x, 1, [4, 4], 1);
            let code = g.lower(&[x]);
            assert!(code.contains(&format!("class {class}()")), "{code}");
        }
    }

    /// A composite layer, `image_encoder`, of two residual units (nested scopes, names past
    /// [`super::LONG_NAME`] under the model): each unit's output.
    fn image_encoder(g: &mut TestGraph, mut x: ValueRef) -> [ValueRef; 2] {
        let mut outs = [x; 2];
        for (k, part) in ["first", "second"].iter().enumerate() {
            let scopes = ["conv_in", "relu", "conv_out", "add", "out"];
            let scopes = scopes.map(|s| format!("image_encoder/{part}_residual_unit/{s}"));
            x = residual_block(g, x, k + 1, scopes);
            outs[k] = x;
        }
        outs
    }

    /// A composite layer no other repeats (`image_encoder`, nested scopes, names past
    /// [`super::LONG_NAME`] under the model) is a class of its own, its layers named inside
    /// it; the stem before it, short-named, stays in `forward`.
    #[test]
    fn a_composite_layer_that_occurs_once_is_a_class() {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 8, 8, 4]);
        let x = residual_block(
            &mut g,
            x,
            0,
            ["stem_conv", "stem_relu", "stem_conv2", "stem_add", "stem_out"].map(String::from),
        );
        let [_, x] = image_encoder(&mut g, x);
        assert_snapshot!(g.lower(&[x]), @"
        class ImageEncoder():
          self.first_residual_unit_conv_in = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.first_residual_unit_conv_out = nn.Conv2d(4, 4, 1, bias=False)
          self.second_residual_unit_conv_in = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.second_residual_unit_conv_out = nn.Conv2d(4, 4, 1, bias=False)
          x = self.first_residual_unit_conv_in(inputs)
          x = F.relu(x, inplace=True)
          x = self.first_residual_unit_conv_out(x)
          x = inputs + x
          residual = F.relu(x, inplace=True)
          x = self.second_residual_unit_conv_in(residual)
          x = F.relu(x, inplace=True)
          x = self.second_residual_unit_conv_out(x)
          x = residual + x
          x = F.relu(x, inplace=True)
          return x (from inputs)
        self.stem_conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.stem_conv2 = nn.Conv2d(4, 4, 1, bias=False)
        self.image_encoder = ImageEncoder()
        # stem_conv.weight: [4, 4, 3, 3]
        # stem_conv2.weight: [4, 4, 1, 1]
        # image_encoder.first_residual_unit_conv_in.weight: [4, 4, 3, 3]
        # image_encoder.first_residual_unit_conv_out.weight: [4, 4, 1, 1]
        # image_encoder.second_residual_unit_conv_in.weight: [4, 4, 3, 3]
        # image_encoder.second_residual_unit_conv_out.weight: [4, 4, 1, 1]
        ---
        image_nchw = image.permute(0, 3, 1, 2)
        x = self.stem_conv(image_nchw)
        x = F.relu(x, inplace=True)
        x = self.stem_conv2(x)
        x = image_nchw + x
        stem_out = F.relu(x, inplace=True)
        x = self.image_encoder(stem_out).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// A composite layer that occurs once may leave two values live (T5's first layer, its
    /// output and the position bias the later layers read): its class returns both.
    #[test]
    fn a_layer_that_occurs_once_may_give_two_values() {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 8, 8, 4]);
        let [first, x] = image_encoder(&mut g, x);
        let y = g.op("m/head/add", "AddV2", &[x, first], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        class ImageEncoder():
          self.first_residual_unit_conv_in = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.first_residual_unit_conv_out = nn.Conv2d(4, 4, 1, bias=False)
          self.second_residual_unit_conv_in = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.second_residual_unit_conv_out = nn.Conv2d(4, 4, 1, bias=False)
          x = self.first_residual_unit_conv_in(inputs)
          x = F.relu(x, inplace=True)
          x = self.first_residual_unit_conv_out(x)
          x = inputs + x
          first_residual_unit_out = F.relu(x, inplace=True)
          x = self.second_residual_unit_conv_in(first_residual_unit_out)
          x = F.relu(x, inplace=True)
          x = self.second_residual_unit_conv_out(x)
          x = first_residual_unit_out + x
          x = F.relu(x, inplace=True)
          return x, first_residual_unit_out (from inputs)
        self.image_encoder = ImageEncoder()
        # image_encoder.first_residual_unit_conv_in.weight: [4, 4, 3, 3]
        # image_encoder.first_residual_unit_conv_out.weight: [4, 4, 1, 1]
        # image_encoder.second_residual_unit_conv_in.weight: [4, 4, 3, 3]
        # image_encoder.second_residual_unit_conv_out.weight: [4, 4, 1, 1]
        ---
        image_nchw = image.permute(0, 3, 1, 2)
        x, first_residual_unit_out = self.image_encoder(image_nchw)
        x = (x + first_residual_unit_out).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// An 8-wide bias-free dense layer under `scope`.
    fn dense(g: &mut TestGraph, x: ValueRef, scope: &str) -> ValueRef {
        let w = g.constant(&format!("w/{scope}"), weights(&[8, 8]));
        g.op(&format!("m/{scope}/MatMul"), "MatMul", &[x, w], &[])
    }

    /// A gated mixture of experts (two projections of `h` multiplied, then one back) under
    /// scope `moe`.
    fn mixture_of_experts(g: &mut TestGraph, h: ValueRef, moe: &str) -> ValueRef {
        let gate = dense(g, h, &format!("{moe}/gate_projection_dense"));
        let gate = g.op(&format!("m/{moe}/Relu"), "Relu", &[gate], &[]);
        let up = dense(g, h, &format!("{moe}/up_projection_dense"));
        let y = g.op(&format!("m/{moe}/mul"), "Mul", &[gate, up], &[]);
        let y = g.op(&format!("m/{moe}/Tanh"), "Tanh", &[y], &[]);
        let y = dense(g, y, &format!("{moe}/down_projection_dense"));
        g.op(&format!("m/{moe}/Sigmoid"), "Sigmoid", &[y], &[])
    }

    /// A composite layer in each block whose layers' names in the block's class would be long
    /// (a mixture of experts) is a class nested in the block's, its weights under the
    /// instance; the block's own short-named layer stays in it.
    #[test]
    fn a_long_named_composite_layer_in_a_block_is_a_nested_class() {
        let mut g = TestGraph::new();
        let mut x = g.input("x", &[-1, 8]);
        for b in 0..3 {
            let scope = format!("layer_{b}");
            let h = dense(&mut g, x, &format!("{scope}/input_projection"));
            let moe = format!("{scope}/sparse_mixture_of_experts_block");
            let y = mixture_of_experts(&mut g, h, &moe);
            x = g.op(&format!("m/{scope}/add"), "AddV2", &[x, y], &[]);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class SparseMixtureOfExpertsBlock():
          self.gate_projection_dense = nn.Linear(8, 8, bias=False)
          self.up_projection_dense = nn.Linear(8, 8, bias=False)
          self.down_projection_dense = nn.Linear(8, 8, bias=False)
          h = F.relu(self.gate_projection_dense(x)) * self.up_projection_dense(x)
          h = torch.tanh(h)
          h = self.down_projection_dense(h)
          h = torch.sigmoid(h)
          return h (from x)
        class Layer():
          self.input_projection = nn.Linear(8, 8, bias=False)
          self.sparse_mixture_of_experts_block = SparseMixtureOfExpertsBlock()
          input_projection = self.input_projection(x)
          h = self.sparse_mixture_of_experts_block(input_projection)
          x = x + h
          return x (from x)
        self.layers = nn.ModuleList([Layer() for _ in range(3)])
        # layers.0.input_projection.weight: [8, 8]
        # layers.0.sparse_mixture_of_experts_block.gate_projection_dense.weight: [8, 8]
        # layers.0.sparse_mixture_of_experts_block.up_projection_dense.weight: [8, 8]
        # layers.0.sparse_mixture_of_experts_block.down_projection_dense.weight: [8, 8]
        # layers.1.input_projection.weight: [8, 8]
        # layers.1.sparse_mixture_of_experts_block.gate_projection_dense.weight: [8, 8]
        # layers.1.sparse_mixture_of_experts_block.up_projection_dense.weight: [8, 8]
        # layers.1.sparse_mixture_of_experts_block.down_projection_dense.weight: [8, 8]
        # layers.2.input_projection.weight: [8, 8]
        # layers.2.sparse_mixture_of_experts_block.gate_projection_dense.weight: [8, 8]
        # layers.2.sparse_mixture_of_experts_block.up_projection_dense.weight: [8, 8]
        # layers.2.sparse_mixture_of_experts_block.down_projection_dense.weight: [8, 8]
        ---
        for layer in self.layers:
            x = layer(x)
        return x
        ");
    }

    /// SegFormer's attention reads the output of a layer Keras named by kind and counter
    /// (`layer_normalization_22`, `layer_normalization_1` in the layer's class): inside the
    /// nested class that is `h`, not the counted name.
    #[test]
    fn a_nested_class_input_keras_counted_is_h() {
        let mut g = TestGraph::new();
        let mut x = g.input("x", &[-1, 8]);
        for b in 0..3 {
            let scope = format!("layer_{b}");
            let h = dense(&mut g, x, &format!("{scope}/dense_{}", 10 + 2 * b));
            let moe = format!("{scope}/sparse_mixture_of_experts_block");
            let y = mixture_of_experts(&mut g, h, &moe);
            let y = dense(&mut g, y, &format!("{scope}/dense_{}", 11 + 2 * b));
            x = g.op(&format!("m/{scope}/add"), "AddV2", &[x, y], &[]);
        }
        let code = g.lower(&[x]);
        let nested = code.split("class Layer").next().unwrap_or_default();
        assert!(nested.contains("(from x)") && !nested.contains("dense_10"), "{code}");
    }

    /// A model of numbered layers that occurs once (Gemma3n's `text_model` around
    /// `decoder_block_0` and `decoder_block_1`, which differ) is no class: its layers are.
    #[test]
    fn a_model_of_numbered_layers_is_its_layers() {
        let mut g = TestGraph::new();
        let mut x = g.input("tokens", &[-1, 8]);
        x = dense(&mut g, x, "embedding");
        for k in 0..2 {
            let block = format!("text_model/decoder_block_{k}");
            let mut y = x;
            for (j, layer) in
                ["attention_query", "attention_output", "feedforward_up"].iter().enumerate()
            {
                y = dense(&mut g, y, &format!("{block}/{layer}"));
                // The second block's activations differ: two classes, each alone.
                let act = if k == 0 || j == 0 { "Tanh" } else { "Sigmoid" };
                y = g.op(&format!("m/{block}/act_{j}/{act}"), act, &[y], &[]);
            }
            x = g.op(&format!("m/{block}/add/add"), "AddV2", &[x, y], &[]);
        }
        let x = dense(&mut g, x, "text_model/final_projection");
        let x = dense(&mut g, x, "head");
        let lowered = g.lower(&[x]);
        assert!(lowered.contains("self.text_model_decoder_block_0 = "), "{lowered}");
        assert!(lowered.contains("self.text_model_decoder_block_1 = "), "{lowered}");
        assert!(!lowered.contains("class TextModel()"), "{lowered}");
    }

    /// A layer of another scope made amid a composite layer, where the layer first reads
    /// it (FLUX's text projection and rotary tables inside its first double-stream block),
    /// moves before it: the composite layer is a class without it.
    #[test]
    fn another_layer_made_amid_a_composite_layer_moves_before_it() {
        let mut g = TestGraph::new();
        let x = g.input("tokens", &[-1, 8]);
        let side = g.input("side", &[-1, 8]);
        let mut y = dense(&mut g, x, "double_stream_block/image_attention_query");
        y = g.op("m/double_stream_block/image_act/Tanh", "Tanh", &[y], &[]);
        y = dense(&mut g, y, "double_stream_block/image_attention_output");
        y = g.op("m/double_stream_block/image_act_2/Tanh", "Tanh", &[y], &[]);
        y = dense(&mut g, y, "double_stream_block/image_feedforward");
        let side = dense(&mut g, side, "text_in");
        let mut t = dense(&mut g, side, "double_stream_block/text_attention_query");
        t = g.op("m/double_stream_block/text_act/Tanh", "Tanh", &[t], &[]);
        t = dense(&mut g, t, "double_stream_block/text_attention_output");
        let y = g.op("m/double_stream_block/mix/add", "AddV2", &[t, y], &[]);
        let y = g.op("m/double_stream_block/out/Tanh", "Tanh", &[y], &[]);
        let y = g.op("m/head/add", "AddV2", &[y, side], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        class DoubleStreamBlock():
          self.image_attention_query = nn.Linear(8, 8, bias=False)
          self.image_attention_output = nn.Linear(8, 8, bias=False)
          self.image_feedforward = nn.Linear(8, 8, bias=False)
          self.text_attention_query = nn.Linear(8, 8, bias=False)
          self.text_attention_output = nn.Linear(8, 8, bias=False)
          x = self.image_attention_query(inputs)
          x = torch.tanh(x)
          x = self.image_attention_output(x)
          x = torch.tanh(x)
          x = self.image_feedforward(x)
          text_attention_query = self.text_attention_query(text_in)
          text_act = torch.tanh(text_attention_query)
          text_attention_output = self.text_attention_output(text_act)
          x = text_attention_output + x
          x = torch.tanh(x)
          return x (from inputs, text_in)
        self.double_stream_block = DoubleStreamBlock()
        self.text_in = nn.Linear(8, 8, bias=False)
        # double_stream_block.image_attention_query.weight: [8, 8]
        # double_stream_block.image_attention_output.weight: [8, 8]
        # double_stream_block.image_feedforward.weight: [8, 8]
        # text_in.weight: [8, 8]
        # double_stream_block.text_attention_query.weight: [8, 8]
        # double_stream_block.text_attention_output.weight: [8, 8]
        ---
        text_in = self.text_in(side)
        x = self.double_stream_block(tokens, text_in)
        x = x + text_in
        return x
        ");
    }

    /// Cells numbered at the end of their layers' names (Keras NASNet's `normal_conv_1_5`),
    /// each ending in a layer named like Keras' own (`normal_out_2`), with an unnamed
    /// activation inside: one class, named after the word most of their layers carry, the
    /// layers inside named without the number.
    #[test]
    fn cells_numbered_by_a_suffix_share_a_class() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        // Ids from 2: Keras 3 traced names every layer `<name>_1`, which scopes drop.
        for i in 2..5 {
            let scopes = [
                format!("normal_conv_1_{i}"),
                format!("activation_{}", 7 + i),
                format!("normal_conv_2_{i}"),
                format!("normal_add_1_{i}"),
                format!("normal_out_{i}"),
            ];
            x = residual_block(&mut g, x, i, scopes);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class NormalCell():
          self.normal_conv_1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.normal_conv_2 = nn.Conv2d(4, 4, 1, bias=False)
          x = self.normal_conv_1(inputs)
          x = F.relu(x, inplace=True)
          x = self.normal_conv_2(x)
          x = inputs + x
          x = F.relu(x, inplace=True)
          return x (from inputs)
        self.normal_cells = nn.ModuleList([NormalCell() for _ in range(3)])
        # normal_cells.0.normal_conv_1.weight: [4, 4, 3, 3]
        # normal_cells.0.normal_conv_2.weight: [4, 4, 1, 1]
        # normal_cells.1.normal_conv_1.weight: [4, 4, 3, 3]
        # normal_cells.1.normal_conv_2.weight: [4, 4, 1, 1]
        # normal_cells.2.normal_conv_1.weight: [4, 4, 3, 3]
        # normal_cells.2.normal_conv_2.weight: [4, 4, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        for cell in self.normal_cells:
            x = cell(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }
}
