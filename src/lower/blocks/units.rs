//! Units: a short chain of layers a model repeats inside its blocks and between them, written
//! once as a small class. Keras' NASNet builds every branch of its cells with
//! `_separable_conv_block` (ReLU, separable conv, batch norm, twice), so each of its cells
//! would otherwise spell out the same eight statements and six layers five times:
//!
//! ```python
//! class SeparableConv(nn.Module):
//!     def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
//!         ...
//!         self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, ...)
//!         self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
//!         self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
//!
//!     def forward(self, x: torch.Tensor) -> torch.Tensor:
//!         x = F.relu(x)
//!         x = self.depthwise(x)
//!         ...
//! ```
//!
//! and a cell calls `self.separable_conv_1_normal_left1(x)`. A unit is a chain of statements
//! each reading only the one before (a layer call, or a function of it with literal
//! arguments), or one period of a chain that repeats a period (`relu, depthwise, pointwise,
//! bn` twice), or a kind of unit that occurs so often found inside a longer chain; units of
//! the same structure (constructor arguments aside, which become parameters) found at least
//! [`MIN_OCCURRENCES`] times in the code share a class. Layer names say what the unit is:
//! the words all its layers share name the instance (`separable_conv_1_normal_left1`), the
//! rest name its layers (`depthwise`, `pointwise`, `bn`), and the words every instance shares
//! name the class. Where Keras named the layers after their kinds (`conv2d_5`,
//! `batch_normalization_5`: InceptionV3's `conv2d_bn`), the class is named after what it
//! does (`ConvBnRelu`, torchvision's `BasicConv2d`), its layers after their kinds (`conv`,
//! `bn`) and the instance after its first layer. Where names say neither, there is no unit:
//! a class called `Unit3` would say less than the layers it hides. Nor is a transformer's
//! MLP of linear layers one: people spell it out.
//!
//! A unit that pads with zeros before a layer where the others do not (NASNet's separable
//! convolutions that downsample: TF's SAME padding, uneven on an even size, is Keras'
//! `ZeroPadding2D` there) is an instance of the same class, told its padding
//! (`SeparableConv(22, 22, 5, stride=2, pad=(1, 2, 1, 2))`), as a block's is.
//!
//! Runs after block classes are made, on the model's statements and on each class's, so a
//! unit may sit inside a block; the weights move under the instance
//! (`normal_cell_5.separable_conv_1_normal_left1.depthwise.weight`).

use std::collections::{BTreeMap, BTreeSet};

use heck::ToUpperCamelCase;

use super::class::{Params, class_layer};
use super::layer_key;
use crate::lower::keras_names::keras_kind;
use crate::lower::module::{BlockClass, Layer, Module, OptionalPart};
use crate::py::names::{is_torch_layer_class, is_valid_class_name};
use crate::py::printer::flat;
use crate::py::{Assign, BinOp, Call, Expr, Ref};

/// A unit has at least this many statements,
const MIN_STATEMENTS: usize = 3;

/// and this many layers,
const MIN_LAYERS: usize = 2;

/// and occurs at least this often in the code (fewer would not save what the class costs).
const MIN_OCCURRENCES: usize = 3;

/// Longer chains are not searched for a period (a hostile graph may be one long chain).
const MAX_CHAIN: usize = 256;

/// Kinds of unit looked for in every chain, at most (a hostile graph may have thousands).
const MAX_KINDS: usize = 64;

/// Where a body's statements and layers are: the model's, or class `k`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Body {
    Model,
    Class(usize),
}

/// One occurrence of a unit: statements `stmts` of `body`, calling `layers` in order.
#[derive(Clone, Debug)]
struct Occurrence {
    body: Body,
    stmts: std::ops::Range<usize>,
    layers: Vec<String>,
    /// Where among `stmts` a zero padding stands that the unit's kind lacks (see
    /// [`padded_fit`]).
    pad: Option<usize>,
}

/// One statement of a chain: what it reads, and what it computes with that name left out.
struct Step<'a> {
    input: &'a str,
    output: &'a str,
    fingerprint: String,
    layer: Option<&'a str>,
    /// `F.pad(x, (...))`: zeros around it, by literal amounts.
    zero_pad: bool,
}

/// `y = self.layer(x)` with `layer` a PyTorch layer, or `y = F.relu(x)` (any `F.` or
/// `torch.` function of `x` and literals).
fn step<'a>(stmt: &'a Assign, layers: &BTreeMap<&str, &Expr>) -> Option<Step<'a>> {
    let output = stmt.target.as_name()?;
    let Expr::Call(c) = &stmt.value else { return None };
    let input = c.args.first()?.as_name()?;
    if let Some(attr) = c.func.as_self_attr() {
        let ctor = layers.get(attr)?;
        let Expr::Call(ctor_call) = ctor else { return None };
        let torch_layer = flat(&ctor_call.func).starts_with("nn.");
        if !torch_layer || c.args.len() != 1 || !c.kwargs.is_empty() {
            return None;
        }
        let fingerprint = format!("layer {}", layer_key(ctor));
        return Some(Step { input, output, fingerprint, layer: Some(attr), zero_pad: false });
    }
    let func = flat(&c.func);
    let function = func.starts_with("F.") || func.starts_with("torch.");
    let literal = |e: &Expr| match e {
        Expr::Tuple(items) | Expr::List(items) => items.iter().all(Expr::is_literal),
        e => e.is_literal(),
    };
    let literals = c.args[1..].iter().all(literal) && c.kwargs.iter().all(|(_, v)| literal(v));
    let zero_pad = func == "F.pad" && c.args.len() == 2 && c.kwargs.is_empty();
    (function && literals).then(|| {
        let value = stmt.value.renamed(&|r| (r == Ref::Var(input)).then(|| Expr::name("IN")));
        Step { input, output, fingerprint: flat(&value), layer: None, zero_pad }
    })
}

/// The chains of one body: steps each reading only the one before, which nothing else
/// reads.
fn chains_of(body: Body, stmts: &[Assign], layers: &[Layer], live: &[&str]) -> Vec<Chain> {
    let ctors: BTreeMap<&str, &Expr> = layers.iter().map(|l| (l.name.as_str(), &l.ctor)).collect();
    // How often each statement's value is read: names may be rebound (`x = f(x)`), so
    // counted backwards, the reads after a binding up to the next.
    let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
    for n in live {
        *pending.entry(n).or_default() += 1;
    }
    let mut readers = vec![usize::MAX; stmts.len()];
    for (k, s) in stmts.iter().enumerate().rev() {
        if let Some(target) = s.target.as_name() {
            readers[k] = pending.insert(target, 0).unwrap_or(0);
        }
        for n in s.value.names() {
            *pending.entry(n).or_default() += 1;
        }
    }
    // A layer called twice (ALBERT's shared layers) belongs to no unit.
    let mut calls: BTreeMap<&str, usize> = BTreeMap::new();
    for s in stmts {
        for a in s.value.self_attrs() {
            *calls.entry(a).or_default() += 1;
        }
    }
    let steps: Vec<Option<Step>> = stmts
        .iter()
        .map(|s| step(s, &ctors).filter(|st| st.layer.is_none_or(|l| calls[l] == 1)))
        .collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < stmts.len() {
        let Some(first) = &steps[i] else {
            i += 1;
            continue;
        };
        let mut end = i + 1;
        let mut last = first.output;
        while end < stmts.len() && end - i < MAX_CHAIN {
            let Some(next) = &steps[end] else { break };
            if next.input != last || readers[end - 1] != 1 {
                break;
            }
            last = next.output;
            end += 1;
        }
        let steps: Vec<&Step> = steps[i..end].iter().flatten().collect();
        let (fingerprints, layers) =
            steps.iter().map(|s| (s.fingerprint.clone(), s.layer.map(String::from))).unzip();
        let pads = steps.iter().map(|s| s.zero_pad).collect();
        found.push(Chain { body, start: i, fingerprints, layers, pads });
        i = end;
    }
    found
}

/// A chain of steps: the statements from `start` of `body`, each reading only the one before.
struct Chain {
    body: Body,
    start: usize,
    fingerprints: Vec<String>,
    /// The layer each statement calls, if it calls one.
    layers: Vec<Option<String>>,
    /// Which statements pad with zeros (see [`Step::zero_pad`]).
    pads: Vec<bool>,
}

impl Chain {
    /// The units a chain is on its own: one per period where it repeats one (`relu,
    /// depthwise, pointwise, bn` twice), else the whole chain.
    fn own_units(&self) -> Vec<std::ops::Range<usize>> {
        let n = self.fingerprints.len();
        let f = &self.fingerprints;
        // (A period shorter than a unit would split a chain of layers of one kind.)
        let period = (MIN_STATEMENTS..=n / 2)
            .filter(|&p| n.is_multiple_of(p))
            .find(|&p| (p..n).all(|k| f[k] == f[k - p]))
            .unwrap_or(n);
        (0..n).step_by(period).map(|s| s..s + period).collect()
    }

    /// Statements `r` as a unit, where they are long enough and call enough layers.
    fn unit(&self, r: std::ops::Range<usize>) -> Option<Occurrence> {
        let layers: Vec<String> = self.layers[r.clone()].iter().flatten().cloned().collect();
        let stmts = self.start + r.start..self.start + r.end;
        (r.len() >= MIN_STATEMENTS && layers.len() >= MIN_LAYERS).then_some(Occurrence {
            body: self.body,
            stmts,
            layers,
            pad: None,
        })
    }
}

/// Where statements `rest` hold a unit of `kind` with one zero padding more, just before a
/// layer (TF's SAME padding of a strided convolution, uneven where the input's size is even,
/// so spelled out: NASNet's reduction cells pad only the separable convolutions that
/// downsample): the padding's place.
fn padded_fit(
    kind: &[String],
    rest: &[String],
    pads: &[bool],
    layers: &[Option<String>],
) -> Option<usize> {
    if rest.len() <= kind.len() {
        return None;
    }
    let j = pads.iter().take(kind.len()).position(|&p| p)?;
    let fits =
        layers[j + 1].is_some() && rest[..j] == kind[..j] && rest[j + 1..=kind.len()] == kind[j..];
    fits.then_some(j)
}

/// The units of all chains. A kind of unit that occurs often enough on its own is looked
/// for in every chain (InceptionV3's pooling branch is a pool, then the `conv, bn, relu`
/// every other branch repeats), the smallest kinds only: a kind holding another is cut.
fn units(chains: &[Chain]) -> Vec<Occurrence> {
    let mut counts: BTreeMap<&[String], usize> = BTreeMap::new();
    for c in chains {
        for r in c.own_units() {
            if c.unit(r.clone()).is_some() {
                *counts.entry(&c.fingerprints[r]).or_default() += 1;
            }
        }
    }
    let mut frequent: Vec<(&[String], usize)> =
        counts.into_iter().filter(|(_, n)| *n >= MIN_OCCURRENCES).collect();
    // The most frequent first, and only so many: each kind is looked for in every chain.
    frequent.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    frequent.truncate(MAX_KINDS);
    let frequent: Vec<&[String]> = frequent.into_iter().map(|(k, _)| k).collect();
    let holds = |big: &[String], small: &[String]| {
        big.len() > small.len() && big.windows(small.len()).any(|w| w == small)
    };
    let mut kinds: Vec<&[String]> =
        frequent.iter().copied().filter(|k| !frequent.iter().any(|s| holds(k, s))).collect();
    // Longest first where two start alike.
    kinds.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let mut found = Vec::new();
    for c in chains {
        let mut i = 0;
        while i < c.fingerprints.len() {
            let rest = &c.fingerprints[i..];
            if let Some(k) = kinds.iter().find(|k| rest.starts_with(k)) {
                found.extend(c.unit(i..i + k.len()));
                i += k.len();
                continue;
            }
            let padded = kinds.iter().find_map(|k| {
                let j = padded_fit(k, rest, &c.pads[i..], &c.layers[i..])?;
                Some((k.len() + 1, j))
            });
            match padded {
                Some((n, j)) => {
                    found.extend(c.unit(i..i + n).map(|o| Occurrence { pad: Some(j), ..o }));
                    i += n;
                }
                None => i += 1,
            }
        }
    }
    found
}

/// How a unit is named: its instance in the body, its layers in the class.
struct Names {
    instance: String,
    layers: Vec<String>,
    /// The class's name, for a unit of layers Keras named after their kinds (see
    /// [`kind_names`]); else the words its instances share name it.
    class: Option<String>,
}

/// The words all of a unit's layers share name it (`separable_conv_1_normal_left1` of
/// `separable_conv_1_normal_left1_depthwise` and `separable_conv_1_bn_normal_left1`), the
/// others each layer (`depthwise`, `bn`). `None` where that leaves a name empty, a number,
/// or two layers alike.
fn unit_names(layers: &[String]) -> Option<Names> {
    let words: Vec<Vec<&str>> = layers.iter().map(|l| l.split('_').collect()).collect();
    let shared: Vec<&str> =
        words[0].iter().copied().filter(|w| words.iter().all(|ws| ws.contains(w))).collect();
    let shared_set: BTreeSet<&str> = shared.iter().copied().collect();
    let instance = shared.join("_");
    let named = |n: &str| n.starts_with(|c: char| c.is_ascii_lowercase());
    if !named(&instance) {
        return None;
    }
    let layers: Vec<String> = words
        .iter()
        .map(|ws| ws.iter().filter(|w| !shared_set.contains(*w)).copied().collect::<Vec<_>>())
        .map(|ws| ws.join("_"))
        .collect();
    let distinct: BTreeSet<&String> = layers.iter().collect();
    (distinct.len() == layers.len() && layers.iter().all(|l| named(l))).then_some(Names {
        instance,
        layers,
        class: None,
    })
}

/// What a layer of a PyTorch class is called in a unit of layers Keras named after their
/// kinds (torchvision's names: `conv`, `bn`).
fn kind_name(ctor: &Expr) -> Option<&'static str> {
    let Expr::Call(c) = ctor else { return None };
    let func = flat(&c.func);
    let kind = func.strip_prefix("nn.")?.trim_end_matches(|c: char| c.is_ascii_digit() || c == 'd');
    Some(match kind {
        "Conv" => "conv",
        "ConvTranspose" => "conv_transpose",
        "BatchNorm" => "bn",
        "LayerNorm" | "GroupNorm" | "RMSNorm" | "InstanceNorm" => "norm",
        "Linear" => "linear",
        "MaxPool" | "AvgPool" => "pool",
        "Embedding" => "embedding",
        _ => return None,
    })
}

/// Names for a unit of layers Keras named after their kinds and a counter (Keras' own
/// InceptionV3 builds each with `conv2d_bn`: `conv2d_5`, `batch_normalization_5`, then a
/// ReLU): the instance is named after its first layer (`conv2d_5`), its layers after their
/// kinds (`conv`, `bn`), the class after what its statements do (`ConvBnRelu`). `steps` are
/// the unit's statements: a layer's constructor, or a function's name.
fn kind_names(globals: &[String], steps: &[Result<&Expr, String>]) -> Option<Names> {
    if !globals.iter().all(|l| keras_kind(l).is_some()) {
        return None;
    }
    let mut class = String::new();
    let mut own = Vec::new();
    for step in steps {
        match step {
            Ok(ctor) => {
                let kind = kind_name(ctor)?;
                class.push_str(&kind.to_upper_camel_case());
                own.push(kind);
            }
            Err(func) => {
                let name = func.rsplit('.').next().unwrap_or(func);
                class.push_str(&name.to_upper_camel_case());
            }
        }
    }
    // Two of a kind are numbered (`conv1`, `conv2`).
    let layers = own
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let same: Vec<usize> = (0..own.len()).filter(|&j| own[j] == *kind).collect();
            match same.iter().position(|&j| j == k) {
                Some(i) if same.len() > 1 => format!("{kind}{}", i + 1),
                _ => kind.to_string(),
            }
        })
        .collect();
    let class = if is_torch_layer_class(&class) { format!("{class}Block") } else { class };
    let instance = globals[0].clone();
    is_valid_class_name(&class).then_some(Names { instance, layers, class: Some(class) })
}

/// The class name: the words (numbers dropped) every instance's name has
/// (`SeparableConv` of `separable_conv_1_normal_left1`, `separable_conv_2_reduction_right3`).
fn class_name(instances: &[&str]) -> Option<String> {
    let words = |n: &str| -> Vec<String> {
        n.split('_')
            .map(|w| w.trim_end_matches(|c: char| c.is_ascii_digit()).to_string())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let each: Vec<Vec<String>> = instances.iter().map(|n| words(n)).collect();
    let shared: Vec<&String> =
        each[0].iter().filter(|w| each.iter().all(|ws| ws.contains(w))).collect();
    let mut seen = BTreeSet::new();
    let shared: Vec<&str> =
        shared.into_iter().filter(|w| seen.insert(w.as_str())).map(String::as_str).collect();
    let name = shared.join("_").to_upper_camel_case();
    let name = if is_torch_layer_class(&name) { format!("{name}Block") } else { name };
    is_valid_class_name(&name).then_some(name)
}

/// The statements and layers of `body` in `module` (the model's are `stmts`).
fn parts<'m>(module: &'m Module, stmts: &'m [Assign], body: Body) -> (&'m [Assign], &'m [Layer]) {
    match body {
        Body::Model => (stmts, &module.layers),
        Body::Class(k) => (&module.classes[k].body, &module.classes[k].layers),
    }
}

/// Finds the units of the model's statements and its block classes' (those without optional
/// parts), makes a class of each kind that occurs often enough, and calls an instance of it
/// where each occurred. Returns the classes made and their instance counts.
pub fn extract(
    module: &mut Module,
    stmts: &mut Vec<Assign>,
    outs: &[Expr],
) -> Vec<(String, usize)> {
    let mut chains = Vec::new();
    let model_live: Vec<&str> = outs.iter().flat_map(|e| e.names()).collect();
    chains.extend(chains_of(Body::Model, stmts, &module.layers, &model_live));
    for (k, class) in module.classes.iter().enumerate() {
        if !class.optional.is_empty() {
            continue;
        }
        let live: Vec<&str> = std::iter::once(class.output.as_str())
            .chain(class.extra_outputs.iter().map(String::as_str))
            .collect();
        chains.extend(chains_of(Body::Class(k), &class.body, &class.layers, &live));
    }
    let all = units(&chains);
    if std::env::var_os("TF2TORCH_DEBUG_UNITS").is_some() {
        for o in &all {
            eprintln!("unit {:?} {:?} {:?}", o.body, o.stmts, o.layers);
        }
    }
    // Group by structure: the statements with names left out, and the layers' kinds.
    let mut groups: BTreeMap<String, Vec<(Occurrence, Names)>> = BTreeMap::new();
    for occ in all {
        let (body_stmts, layers) = parts(module, stmts, occ.body);
        let ctors: BTreeMap<&str, &Expr> =
            layers.iter().map(|l| (l.name.as_str(), &l.ctor)).collect();
        // A transformer's MLP (`dense`, activation, `dense`) reads better spelled out, as
        // people write it: a unit of linear layers only is none.
        let linear = |l: &String| matches!(ctors.get(l.as_str()), Some(Expr::Call(c)) if flat(&c.func) == "nn.Linear");
        if occ.layers.iter().all(linear) {
            continue;
        }
        // Each statement's fingerprint, and what it calls: a layer's constructor, or a
        // function by name.
        // An inserted padding aside: it is the class's optional part.
        let (key, unit): (Vec<String>, Vec<Result<&Expr, String>>) = body_stmts[occ.stmts.clone()]
            .iter()
            .enumerate()
            .filter(|&(k, _)| Some(k) != occ.pad)
            .filter_map(|(_, s)| {
                let st = step(s, &ctors)?;
                let called = match st.layer {
                    Some(a) => Ok(*ctors.get(a)?),
                    None => Err(match &s.value {
                        Expr::Call(c) => flat(&c.func),
                        _ => return None,
                    }),
                };
                Some((st.fingerprint, called))
            })
            .unzip();
        let names = unit_names(&occ.layers).or_else(|| kind_names(&occ.layers, &unit));
        let Some(names) = names else { continue };
        groups.entry(key.join("\n")).or_default().push((occ, names));
    }
    // One class per name: the kind that occurs most keeps it.
    let mut by_class: BTreeMap<String, Vec<(Occurrence, Names)>> = BTreeMap::new();
    let taken: BTreeSet<String> = module
        .classes
        .iter()
        .map(|c| c.name.clone())
        .chain([module.class_name.clone()])
        .chain(["F", "Nn", "Torch", "Json", "Os", "Struct"].map(String::from))
        .collect();
    for (_, group) in groups {
        if group.len() < MIN_OCCURRENCES {
            continue;
        }
        let instances: Vec<&str> = group.iter().map(|(_, n)| n.instance.as_str()).collect();
        let named = match &group[0].1.class {
            Some(kinds) => group.iter().all(|(_, n)| n.class.is_some()).then(|| kinds.clone()),
            None => class_name(&instances),
        };
        let Some(name) = named else { continue };
        if taken.contains(&name) {
            continue;
        }
        let slot = by_class.entry(name).or_default();
        if group.len() > slot.len() {
            *slot = group;
        }
    }
    let mut new_classes = Vec::new();
    let mut edits: Vec<Edit> = Vec::new();
    for (name, group) in by_class {
        let Some((class, calls)) = build(&name, &group, module, stmts) else { continue };
        for ((occ, names), (instance, call)) in group.into_iter().zip(calls) {
            let renames = occ
                .layers
                .iter()
                .zip(&names.layers)
                .map(|(old, new)| (old.clone(), format!("{}.{new}", names.instance)))
                .collect();
            edits.push(Edit { class: new_classes.len(), occ, instance, call, renames });
        }
        new_classes.push(class);
    }
    // Last to first in each body, so statement positions hold.
    edits.sort_by_key(|e| std::cmp::Reverse((e.occ.body, e.occ.stmts.start)));
    // An instance's name must be new in its body (or a layer the unit replaces), not a
    // buffer's, a parameter's or an attribute's (ConvNeXt's layer scale `layers_0`).
    let mut taken_attrs: BTreeSet<(Body, String)> =
        module.buffers.iter().map(|b| (Body::Model, b.name.clone())).collect();
    for (k, c) in module.classes.iter().enumerate() {
        let names = c.buffers.iter().map(|b| &b.name).chain(&c.attributes);
        let names = names.chain(c.params.iter().map(|p| &p.name));
        taken_attrs.extend(names.map(|n| (Body::Class(k), n.clone())));
    }
    let mut weight_renames: Vec<(Body, Vec<(String, String)>)> = Vec::new();
    let mut used = vec![0; new_classes.len()];
    for Edit { class, occ, instance, call, renames } in edits {
        let (body_stmts, layers) = match occ.body {
            Body::Model => (&mut *stmts, &mut module.layers),
            Body::Class(k) => {
                let c = &mut module.classes[k];
                (&mut c.body, &mut c.layers)
            }
        };
        let Some(at) = layers.iter().position(|l| l.name == occ.layers[0]) else { continue };
        let clash = layers.iter().any(|l| l.name == instance.name && !occ.layers.contains(&l.name))
            || taken_attrs.contains(&(occ.body, instance.name.clone()));
        if clash {
            continue;
        }
        layers.retain(|l| !occ.layers.contains(&l.name));
        layers.insert(at.min(layers.len()), instance);
        body_stmts.splice(occ.stmts.clone(), [call]);
        weight_renames.push((occ.body, renames));
        used[class] += 1;
    }
    rename_weights(module, &weight_renames);
    let mut report = Vec::new();
    let mut kept = Vec::new();
    for (class, n) in new_classes.into_iter().zip(used) {
        if n > 0 {
            report.push((class.name.clone(), n));
            kept.push(class);
        }
    }
    // Before the classes that use them (which their instances' calls name, not number).
    module.classes.splice(0..0, kept);
    report
}

/// One occurrence replaced by an instance of unit class `class`: its layer, its call, and
/// the new names of the layers it replaces.
struct Edit {
    class: usize,
    occ: Occurrence,
    instance: Layer,
    call: Assign,
    renames: Vec<(String, String)>,
}

/// The unit class, and each occurrence's instance layer and call.
fn build(
    name: &str,
    group: &[(Occurrence, Names)],
    module: &Module,
    stmts: &[Assign],
) -> Option<(BlockClass, Vec<(Layer, Assign)>)> {
    let (first, first_names) = &group[0];
    let (first_stmts, _) = parts(module, stmts, first.body);
    let mut params = Params::default();
    let mut layers = Vec::new();
    for (k, local) in first_names.layers.iter().enumerate() {
        let ctors: Vec<Option<&Expr>> = group
            .iter()
            .map(|(occ, _)| {
                let (_, body_layers) = parts(module, stmts, occ.body);
                body_layers.iter().find(|l| l.name == occ.layers[k]).map(|l| &l.ctor)
            })
            .collect();
        if ctors.iter().any(Option::is_none) {
            return None;
        }
        layers.push(class_layer(local, &ctors, &mut params));
    }
    // A padding some instances insert (see [`padded_fit`]): a parameter, `None` for the
    // others, tested where the padded ones pad.
    let pad_at = padding_place(group)?;
    let pad_param = pad_at.map(|_| {
        let values = group
            .iter()
            .map(|(occ, _)| {
                let (body_stmts, _) = parts(module, stmts, occ.body);
                let pad = &body_stmts[occ.stmts.start + occ.pad?];
                let Expr::Call(c) = &pad.value else { return None };
                c.args.get(1).cloned()
            })
            .collect();
        params.add_optional("pad", values)
    });
    params.order_sizes_first();
    let local: BTreeMap<&str, &str> = first
        .layers
        .iter()
        .map(String::as_str)
        .zip(first_names.layers.iter().map(String::as_str))
        .collect();
    let unit = &first_stmts[first.stmts.clone()];
    // The unit's own values: its input and what each statement binds.
    let mut values: BTreeSet<&str> = unit.iter().filter_map(|s| s.target.as_name()).collect();
    if let Expr::Call(c) = &unit[0].value {
        values.extend(c.args[0].as_name());
    }
    let mut body: Vec<Assign> = unit
        .iter()
        .enumerate()
        .filter(|&(k, _)| Some(k) != first.pad)
        .map(|(_, s)| {
            let value = s.value.renamed(&|r| match r {
                Ref::Var(v) => values.contains(v).then(|| Expr::name("x")),
                Ref::SelfAttr(a) => local.get(a).map(|l| Expr::self_attr(l)),
            });
            Assign::new(Expr::name("x"), value)
        })
        .collect();
    let mut optional = Vec::new();
    if let (Some(at), Some(param)) = (pad_at, &pad_param) {
        let x = Expr::name("x");
        let pad = Expr::call("F.pad", vec![x.clone(), Expr::self_attr(param)]);
        optional.push(OptionalPart {
            param: param.to_string(),
            test: Expr::name(param).binop(BinOp::IsNot, Expr::none()),
            layers: Vec::new(),
            body: vec![Assign::new(x, pad)],
            after: body.split_off(at),
        });
    }
    let class = BlockClass {
        name: name.to_string(),
        params: params.params(),
        layers,
        buffers: Vec::new(),
        body,
        optional,
        attributes: pad_param.into_iter().collect(),
        inputs: vec!["x".to_string()],
        output: "x".to_string(),
        extra_outputs: Vec::new(),
        tensor_inputs: vec![true],
        tensor_output: true,
        size_inputs: Vec::new(),
        temporaries: BTreeSet::new(),
        own_values: BTreeSet::new(),
        unit: true,
    };
    let calls = group
        .iter()
        .enumerate()
        .map(|(k, (occ, names))| {
            let (body_stmts, _) = parts(module, stmts, occ.body);
            let unit = &body_stmts[occ.stmts.clone()];
            let (args, kwargs) = params.call(k);
            let ctor = Expr::call_kw(name, args, kwargs);
            let input = match &unit[0].value {
                Expr::Call(c) => c.args[0].clone(),
                _ => unreachable!("a unit's statements are calls"),
            };
            let call = Expr::Call(Box::new(Call {
                func: Expr::self_attr(&names.instance),
                args: vec![input],
                kwargs: Vec::new(),
            }));
            let target = unit[unit.len() - 1].target.clone();
            (Layer { name: names.instance.clone(), ctor }, Assign::new(target, call))
        })
        .collect();
    Some((class, calls))
}

/// Where the instances of a unit that pad do so (see [`padded_fit`]): `Some(None)` where none
/// does, `None` where they disagree (no class then).
fn padding_place(group: &[(Occurrence, Names)]) -> Option<Option<usize>> {
    let places: BTreeSet<usize> = group.iter().filter_map(|(occ, _)| occ.pad).collect();
    match places.len() {
        0 => Some(None),
        1 => Some(places.first().copied()),
        _ => None,
    }
}

/// Moves the weights of the units' layers under their instances: a layer of the model's
/// (`separable_conv_1_left1_stem_1_depthwise.weight`), or of every instance of a class
/// (`normal_cell_5.separable_conv_1_normal_left1_depthwise.weight`).
fn rename_weights(module: &mut Module, renames: &[(Body, Vec<(String, String)>)]) {
    let mut by_prefix: BTreeMap<String, String> = BTreeMap::new();
    for (body, pairs) in renames {
        let prefixes: Vec<String> = match body {
            Body::Model => vec![String::new()],
            Body::Class(k) => module.instance_paths(&module.classes[*k].name),
        };
        for prefix in &prefixes {
            for (old, new) in pairs {
                by_prefix.insert(format!("{prefix}{old}."), format!("{prefix}{new}."));
            }
        }
    }
    for (key, _) in &mut module.weights {
        // A layer of the model's is the key's first part; of a class's, the path of an
        // instance and its own name: the longest that is a layer of a unit.
        let dots: Vec<usize> = key.match_indices('.').map(|(i, _)| i).collect();
        let hit = dots.iter().rev().find_map(|&d| by_prefix.get(&key[..=d]).map(|new| (d, new)));
        if let Some((d, new)) = hit {
            *key = format!("{new}{}", &key[d + 1..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::testing::*;
    use insta::assert_snapshot;

    fn conv(g: &mut TestGraph, scope: &str, x: ValueRef, k: usize) -> ValueRef {
        g.conv4(scope, x, k)
    }

    /// Three branches of ReLU and three convolutions (one with a wider kernel): `name(b, k)`
    /// names branch `b`'s `k`-th layer.
    fn branches(name: impl Fn(usize, usize) -> String) -> String {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 8, 8, 4]);
        let mut outs = Vec::new();
        for (b, k) in [3, 3, 5].into_iter().enumerate() {
            let y = g.op(&format!("m/relu_{b}/Relu"), "Relu", &[x], &[]);
            let y = conv(&mut g, &name(b, 0), y, 1);
            let y = conv(&mut g, &name(b, 1), y, k);
            outs.push(conv(&mut g, &name(b, 2), y, 1));
        }
        let sum = g.op("m/add/add", "AddV2", &[outs[0], outs[1]], &[]);
        let sum = g.op("m/add_1/add", "AddV2", &[sum, outs[2]], &[]);
        g.lower(&[sum])
    }

    #[test]
    fn a_chain_of_layers_repeated_is_a_class() {
        let name = |b: usize, k: usize| {
            format!("branch_{}_{}", ["left", "right", "top"][b], ["reduce", "mid", "expand"][k])
        };
        assert_snapshot!(branches(name), @"
        class Branch(kernel_size, padding=0):
          self.reduce = nn.Conv2d(4, 4, 1, bias=False)
          self.mid = nn.Conv2d(4, 4, kernel_size, padding=padding, bias=False)
          self.expand = nn.Conv2d(4, 4, 1, bias=False)
          x = self.reduce(x)
          x = self.mid(x)
          x = self.expand(x)
          return x (from x)
        self.branch_left = Branch(3, padding=1)
        self.branch_right = Branch(3, padding=1)
        self.branch_top = Branch(5, padding=2)
        # branch_left.reduce.weight: [4, 4, 1, 1]
        # branch_left.mid.weight: [4, 4, 3, 3]
        # branch_left.expand.weight: [4, 4, 1, 1]
        # branch_right.reduce.weight: [4, 4, 1, 1]
        # branch_right.mid.weight: [4, 4, 3, 3]
        # branch_right.expand.weight: [4, 4, 1, 1]
        # branch_top.reduce.weight: [4, 4, 1, 1]
        # branch_top.mid.weight: [4, 4, 5, 5]
        # branch_top.expand.weight: [4, 4, 1, 1]
        ---
        relu_nchw = F.relu(image).permute(0, 3, 1, 2)
        x = self.branch_left(relu_nchw)
        branch_right_expand = self.branch_right(relu_nchw)
        x = x + branch_right_expand
        branch_top_expand = self.branch_top(relu_nchw)
        x = (x + branch_top_expand).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn a_unit_that_pads_unevenly_before_a_layer_is_the_same_class_told_its_padding() {
        // Three branches of three convolutions; the fourth pads before its second, unevenly
        // (as Keras' `ZeroPadding2D` before a strided convolution), which convolves without
        // SAME.
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 8, 8, 4]);
        let x = conv(&mut g, "stem", x, 3);
        let mut outs = Vec::new();
        for b in ["left", "right", "top", "down"] {
            let y = conv(&mut g, &format!("branch_{b}_reduce"), x, 1);
            let y = if b == "down" {
                let amounts = int_tensor(&[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]);
                let amounts = g.constant(&format!("m/branch_{b}_pad/paddings"), amounts);
                let y = g.op(&format!("m/branch_{b}_pad/Pad"), "Pad", &[y, amounts], &[]);
                let w = g.constant(&format!("w/branch_{b}_mid"), weights(&[3, 3, 4, 4]));
                let attrs = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
                g.op(&format!("m/branch_{b}_mid/Conv2D"), "Conv2D", &[y, w], &attrs)
            } else {
                conv(&mut g, &format!("branch_{b}_mid"), y, 3)
            };
            outs.push(conv(&mut g, &format!("branch_{b}_expand"), y, 1));
        }
        let code = g.lower(&outs);
        let class = code.split("self.stem").next().unwrap_or_default();
        assert_snapshot!(class, @"
        class Branch(padding=0, pad=None):
          self.pad = pad
          self.reduce = nn.Conv2d(4, 4, 1, bias=False)
          self.mid = nn.Conv2d(4, 4, 3, padding=padding, bias=False)
          self.expand = nn.Conv2d(4, 4, 1, bias=False)
          x = self.reduce(x)
          if pad is not None ():
            x = F.pad(x, self.pad)
          x = self.mid(x)
          x = self.expand(x)
          return x (from x)
        ");
        assert!(code.contains("self.branch_down = Branch(pad=(0, 1, 0, 1))"), "{code}");
    }

    #[test]
    fn units_are_named_after_the_words_their_layers_share() {
        let names = |l: &[&str]| l.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let nasnet = names(&[
            "separable_conv_1_normal_left1_depthwise",
            "separable_conv_1_normal_left1_pointwise",
            "separable_conv_1_bn_normal_left1",
        ]);
        let unit = super::unit_names(&nasnet).expect("named");
        assert_eq!(unit.instance, "separable_conv_1_normal_left1");
        assert_eq!(unit.layers, ["depthwise", "pointwise", "bn"]);
        let instances =
            ["separable_conv_1_normal_left1", "separable_conv_2_reduction_right3_stem_1"];
        assert_eq!(super::class_name(&instances).as_deref(), Some("SeparableConv"));
        // Keras' counters: the layers share no word, or only a number.
        assert!(super::unit_names(&names(&["conv2d_4", "batch_normalization_4"])).is_none());
        assert!(super::unit_names(&names(&["conv2d_4", "conv2d_5"])).is_none());
        // Two layers that would be named alike.
        assert!(super::unit_names(&names(&["a_x_conv", "a_y_conv", "a_conv"])).is_none());
        // Layers Keras named after their kinds: named after what they do.
        let conv = crate::py::Expr::call("nn.Conv2d", vec![]);
        let bn = crate::py::Expr::call("nn.BatchNorm2d", vec![]);
        let counted = names(&["conv2d_5", "batch_normalization_5"]);
        let steps = [Ok(&conv), Ok(&bn), Err("F.relu".to_string())];
        let unit = super::kind_names(&counted, &steps).expect("named by kinds");
        assert_eq!(
            (unit.instance.as_str(), unit.class.as_deref()),
            ("conv2d_5", Some("ConvBnRelu"))
        );
        assert_eq!(unit.layers, ["conv", "bn"]);
        let two = names(&["conv2d_5", "conv2d_6"]);
        let unit = super::kind_names(&two, &[Ok(&conv), Ok(&conv)]).expect("named by kinds");
        assert_eq!(unit.layers, ["conv1", "conv2"]);
        assert!(
            super::kind_names(&names(&["branch_conv", "conv2d_6"]), &[Ok(&conv), Ok(&conv)])
                .is_none()
        );
        // A class that would read as PyTorch's layer.
        assert_eq!(super::class_name(&["conv2d_a", "conv2d_b"]).as_deref(), Some("Conv2dBlock"));
    }
}
