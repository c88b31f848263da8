//! Blocks that differ by an optional part, written as one class with a flag, the way
//! torchvision's `Bottleneck(downsample=...)` and Keras' own `block1(conv_shortcut=True)` are:
//!
//! - a **shortcut** branch: the first block of a ResNet stage adds a projected input
//!   (`bn0(conv0(inputs))`) where the others add the input itself;
//! - a **residual** add: MobileNetV2's blocks that keep their size end in `inputs + x`, the
//!   others do not;
//! - a **padding**: the blocks whose depthwise convolution has a stride pad its input first
//!   (`F.pad(x, (0, 1, 0, 1))`, TF's SAME), the others let the convolution pad;
//! - a named **stage** of the block's own path: EfficientNet's first blocks have no
//!   expansion convolution (`expand_conv`, `expand_bn`), some of MobileNetV3's no
//!   squeeze-and-excitation; torchvision's `MBConv` and `InvertedResidual` test the same.
//!
//! The smaller block must be the larger one with that part taken out, the part passing its
//! input through: found by aligning the two blocks' canonical statements.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::Canonical;
use crate::py::printer::flat;
use crate::py::{BinOp, Expr, Ref};

/// What the optional part is, which names its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// Statements computing what is added to the block's result instead of its input.
    Shortcut,
    /// The add of the block's input to its result.
    Residual,
    /// The padding before a strided convolution (TF's SAME pads after more than before).
    Pad,
    /// Statements of the block's own path with layers named for what they do (see
    /// [`stage_name`]), which some blocks skip.
    Stage,
}

/// Words that say a layer's kind, not its role: `expand_conv` and `expand_bn` are the
/// `expand` stage.
const KIND_WORDS: &[&str] = &["conv", "bn", "norm", "dense", "linear", "act", "activation"];

/// The name of a stage made of layers so named: their common leading words, without kind
/// words (`se_reduce`, `se_expand` → `se`). None where nothing names it, or where it is one of
/// numbered layers (VGG's `conv3` is the third convolution, not an optional stage).
pub(super) fn stage_name<'a>(layers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut common: Option<Vec<&str>> = None;
    for name in layers {
        let words: Vec<&str> = name.split('_').collect();
        common = Some(match common {
            None => words,
            Some(c) => c.iter().zip(&words).take_while(|(a, b)| a == b).map(|(a, _)| *a).collect(),
        });
    }
    let mut words = common?;
    while words.last().is_some_and(|w| KIND_WORDS.contains(w)) {
        words.pop();
    }
    let last = words.last()?;
    let named = last.starts_with(|c: char| c.is_ascii_lowercase())
        && !last.ends_with(|c: char| c.is_ascii_digit());
    named.then(|| words.join("_"))
}

/// One optional part of a block: where it is in the full block and what it passes through.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Optional {
    pub part: Part,
    /// Its statements, as positions in the full block's statements.
    pub run: Range<usize>,
    /// What its result is when it is absent: the full block's canonical name.
    pub pass: String,
}

/// How a block without some optional parts maps onto the one with all of them.
#[derive(Clone, Debug)]
pub(super) struct Variant {
    /// The parts it lacks, in statement order.
    pub lacks: Vec<Optional>,
    /// The paddings it has that the full block lacks (an empty `run` where it goes), and the
    /// index of each in its own paddings.
    pub adds: Vec<(Optional, usize)>,
    /// Each layer of the full block: its position in the other block, if it has it.
    pub layers: Vec<Option<usize>>,
    /// Each buffer of the full block: its position in the other block.
    pub buffers: Vec<usize>,
}

/// A block lacks at most this many parts of another (ResNet's: the padding of its strided
/// convolution and its projecting shortcut).
pub(super) const MAX_PARTS: usize = 3;

/// Alignments tried before giving up: blocks are tens of statements, and each statement of
/// the full block either matches the next of the other or is dropped.
const BUDGET: usize = 4096;

/// The state of an alignment: the full block's names, layers and buffers as the other's.
#[derive(Clone, Default)]
struct State {
    vars: BTreeMap<String, String>,
    layers: BTreeMap<String, String>,
    /// (statement, the name it passes through) for each statement dropped.
    dropped: Vec<(usize, String)>,
    /// (statement of `full` it comes before, the name it pads, `small`'s statement) for each
    /// padding only `small` has.
    inserted: Vec<(usize, String, usize)>,
}

/// How `small` is `full` without an optional part, if it is.
pub(super) fn align(full: &Canonical, small: &Canonical) -> Option<Variant> {
    let inputs = |c: &Canonical| c.globals.keys().filter(|k| k.starts_with("IN")).count();
    if full.stmts.len() + MAX_PARTS < small.stmts.len() || inputs(full) != inputs(small) {
        return None;
    }
    let mut state = State::default();
    for k in 0..inputs(full) {
        state.vars.insert(format!("IN{k}"), format!("IN{k}"));
    }
    let mut budget = BUDGET;
    step(full, small, 0, 0, state, &mut budget)
}

/// A statement's value with its layers and buffers replaced by their kinds, and its names by
/// `names` (unknown names by a marker no statement has).
fn typed(c: &Canonical, value: &Expr, names: Option<&BTreeMap<String, String>>) -> String {
    let kind = |a: &str| {
        let (keys, k) = match a.as_bytes().first() {
            Some(b'L') => (&c.layer_keys, &a[1..]),
            _ => (&c.buffer_keys, a.get(1..).unwrap_or_default()),
        };
        let key = k.parse::<usize>().ok().and_then(|k| keys.get(k));
        Expr::self_attr(&crate::py::names::identifier(key.map_or("?", String::as_str)))
    };
    let renamed = value.renamed(&|r| match r {
        Ref::SelfAttr(a) => Some(kind(a)),
        Ref::Var(v) => match names {
            Some(map) if c.globals.contains_key(v) => {
                Some(Expr::name(map.get(v).map_or("__unknown__", String::as_str)))
            }
            _ => None,
        },
    });
    flat(&renamed)
}

fn step(
    full: &Canonical,
    small: &Canonical,
    i: usize,
    j: usize,
    state: State,
    budget: &mut usize,
) -> Option<Variant> {
    *budget = budget.checked_sub(1)?;
    let Some((targets, value)) = full.stmts.get(i) else {
        // What is left out must be optional parts, else another alignment may be (the
        // expansion convolution may match the depthwise one, leaving out the depthwise stage,
        // which is no stage the names say).
        return if j == small.stmts.len() { variant(full, small, &state) } else { None };
    };
    // The next statement of `small`, if this one is it.
    if let Some((theirs, their_value)) = small.stmts.get(j)
        && theirs.len() == targets.len()
        && typed(full, value, Some(&state.vars)) == typed(small, their_value, None)
    {
        let mut next = state.clone();
        let mut consistent = true;
        for (mine, theirs) in value.self_attrs().into_iter().zip(their_value.self_attrs()) {
            let previous = next.layers.insert(mine.to_string(), theirs.to_string());
            consistent &= previous.is_none_or(|p| p == theirs);
            // A layer is the one of the same name (a fused block's `expand_conv` is no
            // depthwise `dwconv`, though both are convolutions).
            consistent &= layer_name(full, mine) == layer_name(small, theirs);
        }
        for (t, u) in targets.iter().zip(theirs) {
            next.vars.insert(t.clone(), u.clone());
        }
        if consistent && let Some(done) = step(full, small, i + 1, j + 1, next, budget) {
            return Some(done);
        }
    }
    let runs = state.dropped.windows(2).filter(|w| w[0].0 + 1 != w[1].0).count()
        + usize::from(!state.dropped.is_empty())
        + state.inserted.len();
    // Or `small` pads a value here that `full` does not (its convolution strides).
    if let Some((theirs, their_value)) = small.stmts.get(j)
        && let [padded] = theirs.as_slice()
        && let Some(u) = padding_of(their_value)
        && runs < MAX_PARTS
        && state.inserted.len() < MAX_PARTS
        && let Some(f) = state.vars.iter().find(|(_, v)| *v == u).map(|(f, _)| f.clone())
    {
        let mut next = state.clone();
        next.vars.insert(f.clone(), padded.clone());
        next.inserted.push((i, f, j));
        if let Some(done) = step(full, small, i, j + 1, next, budget) {
            return Some(done);
        }
    }
    // Or it is part of what `small` leaves out, passing one of its inputs through: a part
    // is consecutive statements, each reading the one before.
    let [target] = targets.as_slice() else { return None };
    let previous = state.dropped.last().map(|&(k, _)| (k, &full.stmts[k].0[0]));
    let previous = previous.filter(|&(k, _)| k + 1 == i);
    if state.dropped.len() + small.stmts.len() >= full.stmts.len() + MAX_PARTS
        || (previous.is_none() && runs >= MAX_PARTS)
    {
        return None;
    }
    let mut read: Vec<&str> = value.names();
    read.retain(|n| state.vars.contains_key(*n) && previous.is_none_or(|(_, t)| t == n));
    read.dedup();
    for pass in read {
        let mut next = state.clone();
        next.vars.insert(target.clone(), state.vars[pass].clone());
        next.dropped.push((i, pass.to_string()));
        if let Some(done) = step(full, small, i + 1, j, next, budget) {
            return Some(done);
        }
    }
    None
}

/// The alignment as a [`Variant`], if what it drops is optional parts: each consecutive
/// statements each reading the one before (a chain from an input of the part to its result),
/// with layers of their own, and a shortcut, a residual add or a padding.
fn variant(full: &Canonical, small: &Canonical, state: &State) -> Option<Variant> {
    if state.vars.get(&full.output) != Some(&small.output)
        || (state.dropped.is_empty() && state.inserted.is_empty())
    {
        return None;
    }
    let mut runs: Vec<Vec<(usize, String)>> = Vec::new();
    for d in &state.dropped {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|l| l.0 + 1 == d.0) => run.push(d.clone()),
            _ => runs.push(vec![d.clone()]),
        }
    }
    let dropped: BTreeSet<usize> = state.dropped.iter().map(|d| d.0).collect();
    let mut lacks = Vec::new();
    for run in &runs {
        lacks.push(optional(full, run, &dropped)?);
    }
    // A padding only `small` has pads a value its one reader reads right after; what
    // `small` leaves out may read the value unpadded (EfficientNetV2's residual add of the
    // block's input, which its strided blocks pad).
    let mut adds = Vec::new();
    for (at, padded, j) in &state.inserted {
        let readers: Vec<usize> = (0..full.stmts.len())
            .filter(|&k| !dropped.contains(&k) && full.stmts[k].1.reads(padded) > 0)
            .collect();
        if readers != [*at] || dropped.contains(at) {
            return None;
        }
        let index = small.pads.iter().position(|(s, _)| s == j)?;
        let part = Optional { part: Part::Pad, run: *at..*at, pass: padded.clone() };
        adds.push((part, index));
    }
    // Every layer and buffer of `small` is one of `full`'s.
    let position = |a: &str| a.get(1..).and_then(|k| k.parse::<usize>().ok());
    let mut layers = vec![None; full.layer_keys.len()];
    let mut buffers = vec![usize::MAX; full.buffer_keys.len()];
    for (mine, theirs) in &state.layers {
        let (m, t) = (position(mine)?, position(theirs)?);
        match mine.as_bytes().first() {
            Some(b'L') => *layers.get_mut(m)? = Some(t),
            _ => *buffers.get_mut(m)? = t,
        }
    }
    let mapped: BTreeSet<usize> = layers.iter().flatten().copied().collect();
    let buffer_set: BTreeSet<usize> = buffers.iter().copied().collect();
    let all_buffers = (0..small.buffer_keys.len()).collect::<BTreeSet<_>>();
    if mapped.len() != small.layer_keys.len()
        || mapped.len() != layers.iter().flatten().count()
        || buffers.len() != small.buffer_keys.len()
        || buffer_set != all_buffers
    {
        return None;
    }
    Some(Variant { lacks, adds, layers, buffers })
}

/// What `value` pads, if it is `F.pad(u, PAD)`.
fn padding_of(value: &Expr) -> Option<&str> {
    let Expr::Call(c) = value else { return None };
    let padding = flat(&c.func) == "F.pad" && c.args.len() == 2 && c.kwargs.is_empty();
    (padding && c.args[1].as_name() == Some(super::PAD)).then(|| c.args[0].as_name()).flatten()
}

/// One dropped run as an optional part, if it is one: only its result is read after it, its
/// layers are its own, and it is a shortcut, a residual add or a padding.
fn optional(
    full: &Canonical,
    run: &[(usize, String)],
    dropped: &BTreeSet<usize>,
) -> Option<Optional> {
    let (first, last) = (run.first()?.0, run.last()?.0);
    let range = first..last + 1;
    let target = |i: usize| full.stmts[i].0[0].clone();
    let inner: BTreeSet<String> = range.clone().take(range.len() - 1).map(target).collect();
    let kept = || (0..full.stmts.len()).filter(|i| !dropped.contains(i)).map(|i| &full.stmts[i].1);
    let outside = || (0..full.stmts.len()).filter(|i| !range.contains(i)).map(|i| &full.stmts[i].1);
    if outside().any(|v| v.names().iter().any(|n| inner.contains(*n))) {
        return None;
    }
    let part_attrs: BTreeSet<&str> =
        range.clone().flat_map(|i| full.stmts[i].1.self_attrs()).collect();
    if part_attrs.iter().any(|a| !a.starts_with('L'))
        || outside().any(|v| v.self_attrs().iter().any(|a| part_attrs.contains(a)))
    {
        return None;
    }
    let result = target(last);
    let pass = run[0].1.clone();
    let is_add = |v: &Expr| matches!(v, Expr::Binary(_, BinOp::Add, _));
    let is_pad = |v: &Expr| match v {
        Expr::Call(c) => {
            flat(&c.func) == "F.pad"
                && c.args.len() == 2
                && c.args[0].as_name() == Some(pass.as_str())
                && c.args[1].as_name() == Some(super::PAD)
        }
        _ => false,
    };
    let part = if range.len() == 1 && is_add(&full.stmts[first].1) {
        Part::Residual
    } else if range.len() == 1 && is_pad(&full.stmts[first].1) {
        Part::Pad
    } else if kept().any(|v| is_add(v) && v.names().contains(&result.as_str()))
        // A branch beside the block's own path, from the same value: what the part reads is
        // read outside it too (a part that alone reads the input is a different block).
        && kept().any(|v| v.names().contains(&pass.as_str()))
    {
        Part::Shortcut
    } else if !part_attrs.is_empty() && stage_name(part_layer_names(full, &part_attrs)).is_some() {
        Part::Stage
    } else {
        return None;
    };
    Some(Optional { part, run: range, pass })
}

/// The names of the layers `attrs` (`L3`) are.
fn part_layer_names<'a>(
    full: &'a Canonical,
    attrs: &'a BTreeSet<&str>,
) -> impl Iterator<Item = &'a str> + 'a {
    let index = |a: &&str| a.strip_prefix('L').and_then(|k| k.parse::<usize>().ok());
    attrs.iter().filter_map(index).filter_map(|k| full.layer_names.get(k)).map(String::as_str)
}

/// The name of layer `attr` (`L3`) in the block; None for a buffer.
fn layer_name<'a>(c: &'a Canonical, attr: &str) -> Option<&'a str> {
    let k = attr.strip_prefix('L')?.parse::<usize>().ok()?;
    c.layer_names.get(k).map(String::as_str)
}
