//! One block class: the first member's layers and statements with local names, constructor
//! arguments that differ between members as parameters, and an instance per member.

use std::collections::{BTreeMap, BTreeSet};

use super::variants::{Optional, Part, Variant};
use super::{
    Group, Member, kind_and_counter, kwarg_default, local_names, positional_names,
    without_shared_words,
};
use crate::lower::module::{BlockClass, Buffer, Layer, Module, OptionalPart};
use crate::py::names::{Scope, identifier};
use crate::py::printer::flat;
use crate::py::{Assign, BinOp, Call, Expr, Param, Ref};

/// A constructor parameter of a class: its name, the value each instance passes (`None` for
/// an instance without the layer that reads it), and its default (PyTorch's own, for a
/// keyword argument of a layer: `stride=1`).
struct ParamSlot {
    name: String,
    values: Vec<Option<Expr>>,
    default: Option<Expr>,
}

impl ParamSlot {
    /// A function (`F.hardswish`) is passed by keyword, as torchvision passes
    /// `activation_layer=`: a bare function among sizes does not say what it is for.
    fn by_keyword(&self) -> bool {
        let function = |e: &Expr| matches!(e, Expr::Attribute(m, _) if m.as_name() == Some("F"));
        self.default.is_none()
            && self.values.iter().any(Option::is_some)
            && self.values.iter().flatten().all(function)
    }
}

/// The constructors a class's layers may call: PyTorch's layers we emit, and the block
/// classes made before (an outer block holds inner blocks' instances, `CspRep(32)`): the
/// names of their positional parameters, which name the outer class's, and their defaults.
#[derive(Clone, Default)]
pub(super) struct Signatures(BTreeMap<String, Vec<Param>>);

impl Signatures {
    pub(super) fn of(classes: &[BlockClass]) -> Signatures {
        Signatures(classes.iter().map(|c| (c.name.clone(), c.params.clone())).collect())
    }

    /// The name of positional argument `slot` of constructor `func`, if known.
    pub(super) fn positional(&self, func: &str, slot: usize) -> Option<&str> {
        match self.0.get(func) {
            Some(params) => {
                params.iter().filter(|p| p.default.is_none()).nth(slot).map(|p| p.name.as_str())
            }
            None => positional_names(func).get(slot).copied(),
        }
    }

    /// What `func` takes for keyword `key` when a call does not pass it.
    pub(super) fn default(&self, func: &str, key: &str) -> Option<Expr> {
        match self.0.get(func) {
            Some(params) => params.iter().find(|p| p.name == key)?.default.clone(),
            None => kwarg_default(func, key),
        }
    }
}

/// Constructor parameters of a class, and the signatures of the constructors its layers call.
#[derive(Default)]
pub(super) struct Params(Vec<ParamSlot>, Signatures);

impl Params {
    pub(super) fn calling(signatures: Signatures) -> Params {
        Params(Vec::new(), signatures)
    }

    /// `keep` when every instance passes the same value (nothing when that is the default),
    /// else the parameter (shared by every slot with the same values), named after `label`.
    fn slot(
        &mut self,
        label: &str,
        layer: &str,
        values: Vec<Option<Expr>>,
        keep: &Expr,
        default: Option<&Expr>,
    ) -> Option<Expr> {
        let present: Vec<&Expr> = values.iter().flatten().collect();
        let agrees = |theirs: &[Option<Expr>]| {
            theirs.iter().zip(&values).all(|(a, b)| a.is_none() || b.is_none() || a == b)
        };
        // A keyword may share a parameter without a default (`groups=out_channels`).
        let compatible = |p: &ParamSlot| p.default.is_none() || p.default.as_ref() == default;
        // A value naming a parameter of an enclosing class (a unit's `out_channels` inside
        // a cell) is passed even where every instance agrees.
        let free = |v: &&Expr| v.names().iter().any(|n| !matches!(*n, "F" | "torch" | "nn"));
        if present.iter().all(|v| *v == present[0]) && !present.first().is_some_and(free) {
            // A layer only some instances have takes the parameter that agrees with it
            // (`conv0` reads `in_channels` and `stride` as `conv1` does), else its value.
            let partial = present.len() < values.len();
            if partial && let Some(p) = self.0.iter().find(|p| compatible(p) && agrees(&p.values)) {
                return Some(Expr::name(&p.name));
            }
            let value = present.first().copied().unwrap_or(keep);
            return (Some(value) != default).then(|| value.clone());
        }
        if let Some(p) = self.0.iter_mut().find(|p| compatible(p) && agrees(&p.values)) {
            for (mine, theirs) in p.values.iter_mut().zip(&values) {
                if mine.is_none() {
                    mine.clone_from(theirs);
                }
            }
            return Some(Expr::name(&p.name));
        }
        let base = identifier(label);
        let taken = |n: &str| self.0.iter().any(|p| p.name == n);
        let mut name = if taken(&base) && !layer.is_empty() {
            identifier(&format!("{layer}_{base}"))
        } else {
            base.clone()
        };
        // A second slot of one label and no layer (two activations): counted.
        let mut k = 2;
        while taken(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.0.push(ParamSlot { name: name.clone(), values, default: default.cloned() });
        Some(Expr::name(name))
    }

    /// A parameter for what only some instances have (`None` for the others, the default).
    pub(super) fn add_optional(&mut self, label: &str, values: Vec<Option<Expr>>) -> String {
        let mut name = identifier(label);
        let mut k = 2;
        while self.0.iter().any(|p| p.name == name) {
            name = format!("{}_{k}", identifier(label));
            k += 1;
        }
        let values = values.into_iter().map(|v| v.or_else(|| Some(Expr::none()))).collect();
        self.0.push(ParamSlot { name: name.clone(), values, default: Some(Expr::none()) });
        name
    }

    /// The `__init__` parameters: those without a default first (Python's rule), those
    /// passed by keyword last among them, each group in the order the layers need them.
    pub(super) fn order(&mut self) {
        self.0.sort_by_key(|p| (p.default.is_some(), p.by_keyword()));
    }

    /// As [`Params::order`], the sizes first in the order PyTorch's layers take them
    /// (`in_channels, out_channels, kernel_size`), for a class that is one such layer.
    pub(super) fn order_sizes_first(&mut self) {
        const SIZES: [&str; 3] = ["in_channels", "out_channels", "kernel_size"];
        let size = |p: &ParamSlot| SIZES.iter().position(|s| *s == p.name).unwrap_or(SIZES.len());
        self.0.sort_by_key(|p| (p.default.is_some(), p.by_keyword(), size(p)));
    }

    pub(super) fn params(&self) -> Vec<Param> {
        self.0
            .iter()
            .map(|p| match &p.default {
                Some(d) => Param::with_default(&p.name, d.clone()),
                None => Param::new(&p.name),
            })
            .collect()
    }

    /// Gives parameter `input` the value of parameter `output` in instance `k`, where it has
    /// none.
    fn pass_through(&mut self, input: &Expr, output: &Expr, k: usize) {
        let value =
            |name: &Expr| self.0.iter().position(|p| Some(p.name.as_str()) == name.as_name());
        let (Some(i), Some(o)) = (value(input), value(output)) else { return };
        if self.0[i].values[k].is_none() {
            self.0[i].values[k] = self.0[o].values[k].clone();
        }
    }

    /// The arguments instance `k` passes: positionally, then by keyword where it differs from
    /// the default or is a function (`ConvBlock(256, 128, 512, stride=2)`,
    /// `ExpandedConv(16, 64, 3, 16, 24, activation=F.relu)`).
    pub(super) fn call(&self, k: usize) -> (Vec<Expr>, Vec<(&str, Expr)>) {
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        for p in &self.0 {
            // A value no layer of this instance reads (a part it lacks): the default, else
            // `None` rather than another instance's value, which would read as its own.
            let value = p.values[k].clone().or_else(|| p.default.clone());
            let value = value.unwrap_or_else(Expr::none);
            match &p.default {
                Some(d) if *d == value => {}
                None if !p.by_keyword() => args.push(value),
                _ => kwargs.push((p.name.as_str(), value)),
            }
        }
        (args, kwargs)
    }
}

/// Each constructor's argument values, in the same slots: positional arguments, then every
/// keyword any of them passes (in the order they pass them), a constructor without it
/// passing PyTorch's default.
pub(super) fn ctor_slots(
    ctors: &[&Expr],
    signatures: &Signatures,
) -> Vec<(Option<String>, Vec<Expr>)> {
    let calls: Vec<Option<&Call>> =
        ctors.iter().map(|c| if let Expr::Call(c) = c { Some(c.as_ref()) } else { None }).collect();
    let Some(first) = calls.iter().flatten().next() else { return Vec::new() };
    let func = flat(&first.func);
    let mut keys: Vec<&str> = Vec::new();
    for c in calls.iter().flatten() {
        let theirs: Vec<&str> = c.kwargs.iter().map(|(k, _)| k.as_str()).collect();
        for (j, key) in theirs.iter().enumerate() {
            if keys.contains(key) {
                continue;
            }
            // Before the first of their later keys already placed, so the order stays theirs.
            let at = theirs[j + 1..].iter().find_map(|later| keys.iter().position(|k| k == later));
            keys.insert(at.unwrap_or(keys.len()), key);
        }
    }
    // In PyTorch's own order where one constructor passes what another does not.
    const ORDER: [&str; 6] = ["stride", "padding", "output_padding", "dilation", "groups", "bias"];
    keys.sort_by_key(|k| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    let mut slots: Vec<(Option<String>, Vec<Expr>)> = (0..first.args.len())
        .map(|j| {
            let values = calls
                .iter()
                .map(|c| c.and_then(|c| c.args.get(j)).cloned().unwrap_or(Expr::none()))
                .collect();
            (None, values)
        })
        .collect();
    for key in keys {
        let values = calls
            .iter()
            .map(|c| {
                c.and_then(|c| c.kwargs.iter().find(|(k, _)| k == key))
                    .map(|(_, v)| v.clone())
                    .or_else(|| signatures.default(&func, key))
                    .unwrap_or(Expr::none())
            })
            .collect();
        slots.push((Some(key.to_string()), values));
    }
    slots
}

/// A layer of the class: the first instance's constructor with the arguments that differ
/// between instances replaced by parameters. `ctors` has `None` for instances without it.
pub(super) fn class_layer(name: &str, ctors: &[Option<&Expr>], params: &mut Params) -> Layer {
    let present: Vec<&Expr> = ctors.iter().flatten().copied().collect();
    let Expr::Call(first) = present[0] else {
        return Layer { name: name.to_string(), ctor: present[0].clone() };
    };
    let func = flat(&first.func);
    let slots = ctor_slots(&present, &params.1);
    let mut args = Vec::new();
    let mut kwargs = Vec::new();
    for (j, (key, values)) in slots.into_iter().enumerate() {
        // Back to one value per instance, `None` where the instance has no such layer.
        let mut it = values.into_iter();
        let values: Vec<Option<Expr>> = ctors.iter().map(|c| c.and_then(|_| it.next())).collect();
        let keep = values.iter().flatten().next().cloned().unwrap_or(Expr::none());
        match key {
            None => {
                let label = params.1.positional(&func, j).unwrap_or("arg").to_string();
                let arg = params.slot(&label, name, values, &keep, None);
                args.push(arg.unwrap_or(keep));
            }
            Some(key) => {
                let default = params.1.default(&func, &key);
                if let Some(v) = params.slot(&key, name, values, &keep, default.as_ref()) {
                    kwargs.push((key, v));
                }
            }
        }
    }
    let ctor = Expr::Call(Box::new(Call { func: first.func.clone(), args, kwargs }));
    Layer { name: name.to_string(), ctor }
}

/// What one class turns into in the model: each member's instance layer and call.
pub(super) struct Instances {
    /// Member index → (instance layer, call statement).
    pub by_member: BTreeMap<usize, (Layer, Assign)>,
    /// Old top-level layer or buffer name → its key under the instance (`conv3_block2.conv1`).
    pub renames: BTreeMap<String, String>,
}

/// Where each member has the class's layers and buffers: positions in its own lists (`None`
/// for a layer of an optional part it lacks).
struct Positions<'a> {
    group: &'a Group,
    members: &'a [Member],
}

impl Positions<'_> {
    fn variant(&self, i: usize) -> Option<&Variant> {
        self.group.variants.get(&i)
    }

    /// Whether member `i` has optional part `part` (a part the first member lacks, where
    /// `run` is empty, only where its variant adds it).
    fn has(&self, i: usize, part: &Optional) -> bool {
        if part.run.is_empty() {
            return self.variant(i).is_some_and(|v| v.adds.iter().any(|(o, _)| o == part));
        }
        self.variant(i).is_none_or(|v| !v.lacks.contains(part))
    }

    /// Member `i`'s padding for a part the first member lacks.
    fn added_pad(&self, i: usize, part: &Optional) -> Option<Expr> {
        let (_, index) = self.variant(i)?.adds.iter().find(|(o, _)| o == part)?;
        self.members[i].canon.pads.get(*index).map(|(_, e)| e.clone())
    }

    /// Member `i`'s layer at the class's layer `k`.
    fn layer(&self, i: usize, k: usize) -> Option<usize> {
        match self.variant(i) {
            Some(v) => v.layers[k].map(|p| self.members[i].layers[p]),
            None => Some(self.members[i].layers[k]),
        }
    }

    /// Member `i`'s padding at the first member's padding `p` (`None` where it is in the
    /// optional part the member lacks).
    fn pad(&self, i: usize, p: usize) -> Option<Expr> {
        let full = &self.members[self.group.members[0]].canon.pads;
        let Some(v) = self.variant(i) else {
            return self.members[i].canon.pads.get(p).map(|(_, e)| e.clone());
        };
        let in_part =
            |q: usize| full.get(q).is_some_and(|(s, _)| v.lacks.iter().any(|o| o.run.contains(s)));
        if in_part(p) {
            return None;
        }
        let before = (0..p).filter(|&q| in_part(q)).count();
        // Its own paddings before this one come first.
        let stmt = full.get(p).map_or(usize::MAX, |(s, _)| *s);
        let added = v.adds.iter().filter(|(o, _)| o.run.start <= stmt).count();
        self.members[i].canon.pads.get(p - before + added).map(|(_, e)| e.clone())
    }

    fn buffer(&self, i: usize, k: usize) -> usize {
        match self.variant(i) {
            Some(v) => self.members[i].buffers[v.buffers[k]],
            None => self.members[i].buffers[k],
        }
    }
}

/// The class's name for each of its layers (or buffers), given what each instance calls it
/// (the first instance first): that name where they agree; where they differ only in
/// counters (Keras counts `t5_layer_norm_2`, `t5_layer_norm_4` over the whole model, and
/// scopes too: `mha_2_dense`, `mha_3_dense`), the name without them, counted afresh in the
/// class (`t5_layer_norm_1`, `t5_layer_norm_2`) if it has more than one; else the first
/// instance's.
fn uncounted(each: Vec<Vec<String>>) -> Vec<String> {
    let kind = |names: &[String]| -> Option<String> {
        let first = names.first()?;
        if names.iter().all(|n| n == first) {
            return None;
        }
        // Word by word: the same word in each, or numbers that differ, which count scopes
        // over the whole model (SAM's `multi_head_attention_with_relative_pe_2_dense_1`
        // beside `_3_dense_1`) and go.
        let words: Vec<Vec<&str>> = names.iter().map(|n| n.split('_').collect()).collect();
        let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
        let mut kept: Vec<&str> = Vec::new();
        for i in 0..words[0].len() {
            let column: Vec<&str> =
                words.iter().map(|w| w.get(i).copied()).collect::<Option<_>>()?;
            if column.iter().all(|w| *w == column[0]) {
                kept.push(column[0]);
            } else if i == 0 || !column.iter().all(|w| number(w)) {
                return None;
            }
        }
        let same_length = words.iter().all(|w| w.len() == words[0].len());
        (same_length && !kept.is_empty()).then(|| kept.join("_"))
    };
    let kinds: Vec<Option<String>> = each.iter().map(|names| kind(names)).collect();
    let mut total: BTreeMap<&str, usize> = BTreeMap::new();
    for k in kinds.iter().flatten() {
        *total.entry(k).or_default() += 1;
    }
    let mut counted: BTreeMap<&str, usize> = BTreeMap::new();
    each.iter()
        .zip(&kinds)
        .map(|(names, kind)| match kind {
            Some(k) if total[k.as_str()] == 1 => k.clone(),
            Some(k) => {
                let n = counted.entry(k).or_default();
                *n += 1;
                format!("{k}_{n}")
            }
            None => names.first().cloned().unwrap_or_default(),
        })
        .collect()
}

/// What each member calls each of the class's layers and buffers (the first member's
/// first), and the class's name for each: its layers', then its buffers', in order (names
/// that only count layers over the whole model go; see [`uncounted`]).
#[allow(clippy::type_complexity)]
pub(super) fn attribute_names<'m>(
    group: &Group,
    members: &[Member],
    module: &'m Module,
) -> (Vec<BTreeMap<&'m str, String>>, Vec<String>) {
    let at = Positions { group, members };
    let first = &members[group.members[0]];
    let own_names: Vec<BTreeMap<&str, String>> = group
        .members
        .iter()
        .map(|&i| {
            let m = &members[i];
            let layers = m.layers.iter().map(|&l| module.layers[l].name.as_str());
            let buffers = m.buffers.iter().map(|&b| module.buffers[b].name.as_str());
            let names = local_names(&layers.chain(buffers).collect::<Vec<_>>(), &m.tag);
            let names = without_shared_words(names);
            match m.tag {
                super::Tag::Suffix(_) => super::without_title_word(names, &m.title),
                _ => names,
            }
        })
        .collect();
    let named = |gi: usize, global: &str| own_names[gi].get(global).cloned();
    let layer_names = (0..first.layers.len()).map(|k| {
        let each = group.members.iter().enumerate();
        each.filter_map(|(gi, &i)| named(gi, &module.layers[at.layer(i, k)?].name)).collect()
    });
    let buffer_names = (0..first.buffers.len()).map(|k| {
        let each = group.members.iter().enumerate();
        each.filter_map(|(gi, &i)| named(gi, &module.buffers[at.buffer(i, k)].name)).collect()
    });
    let shared = super::counters::renumbered(uncounted(layer_names.chain(buffer_names).collect()));
    (own_names, shared)
}

/// Builds the class of `group` (its first member's statements with local names) into
/// `module.classes`, and the instances that replace the members.
pub(super) fn build_class(
    name: &str,
    group: &Group,
    members: &[Member],
    module: &mut Module,
    stmts: &[Assign],
    names: &Scope,
    out: &mut Instances,
) {
    let at = Positions { group, members };
    let first = &members[group.members[0]];
    // The class's attribute names, unique in it.
    let mut attrs = Scope::for_attributes();
    let (own_names, shared) = attribute_names(group, members, module);
    // The first instance's names the class replaces, for the values named after them.
    let mut relabel: BTreeMap<String, String> = BTreeMap::new();
    let globals = first.layers.iter().map(|&l| module.layers[l].name.as_str());
    let globals = globals.chain(first.buffers.iter().map(|&b| module.buffers[b].name.as_str()));
    let mut locals: Vec<String> = globals
        .zip(&shared)
        .map(|(global, name)| {
            if let Some(old) = own_names[0].get(global).filter(|old| *old != name) {
                relabel.insert(old.clone(), name.clone());
            }
            attrs.fresh(name)
        })
        .collect();
    let local_buffers = locals.split_off(first.layers.len());
    let local_layers = locals;
    let mut params = Params::calling(Signatures::of(&module.classes));
    let mut layers = Vec::new();
    for (k, local) in local_layers.iter().enumerate() {
        let ctors: Vec<Option<&Expr>> =
            group.members.iter().map(|&i| at.layer(i, k).map(|l| &module.layers[l].ctor)).collect();
        layers.push(class_layer(local, &ctors, &mut params));
    }
    let buffers = class_buffers(&at, module, &local_buffers, &mut params);
    // Each optional part's layers: those its statements call.
    let part_layers: Vec<Vec<String>> = group
        .parts
        .iter()
        .map(|o| {
            let attrs: BTreeSet<&str> =
                o.run.clone().flat_map(|i| first.canon.stmts[i].1.self_attrs()).collect();
            let k = |a: &&str| a.strip_prefix('L').and_then(|k| k.parse::<usize>().ok());
            attrs.iter().filter_map(k).map(|k| local_layers[k].clone()).collect()
        })
        .collect();
    // Whether an instance has an optional part: a flag (`conv_shortcut=True`), or for a
    // padding, the padding itself (`pad=(0, 1, 0, 1)`, `None` without).
    let mut switches: Vec<Option<(String, Expr)>> = Vec::new();
    for (o, own) in group.parts.iter().zip(&part_layers) {
        switches.push((o.part != Part::Pad).then(|| {
            let name = flag_name(o.part, &layers, own);
            let name = name.as_str();
            let values = group.members.iter().map(|&i| Some(Expr::boolean(at.has(i, o))));
            let keep = Expr::boolean(true);
            // A stage is there unless an instance says otherwise (`use_expand=False` on
            // EfficientNet's first block); shortcuts and adds where an instance asks for them.
            let default = Expr::boolean(o.part == Part::Stage);
            let param = params.slot(name, "", values.collect(), &keep, Some(&default));
            let name = param.as_ref().and_then(|p| p.as_name()).unwrap_or(name).to_string();
            (name.clone(), Expr::name(name))
        }));
    }
    // Paddings only some members that lack the first member's structure have.
    let mut attributes: Vec<String> = Vec::new();
    let mut inserted: BTreeMap<usize, String> = BTreeMap::new();
    for (k, o) in group.parts.iter().enumerate().filter(|(_, o)| o.run.is_empty()) {
        let values = group.members.iter().map(|&i| at.added_pad(i, o)).collect();
        let name = params.add_optional("pad", values);
        switches[k] = Some((name.clone(), Expr::name(&name).binop(BinOp::IsNot, Expr::none())));
        attributes.push(name.clone());
        inserted.insert(k, name);
    }
    // Paddings: a literal every instance shares, else a parameter `forward` reads.
    let mut pads = Vec::new();
    for (p, (stmt, literal)) in first.canon.pads.iter().enumerate() {
        let values: Vec<Option<Expr>> = group.members.iter().map(|&i| at.pad(i, p)).collect();
        let part = group.parts.iter().position(|o| o.part == Part::Pad && o.run.contains(stmt));
        let value = match part {
            Some(k) => {
                let name = params.add_optional("pad", values);
                let test = Expr::name(&name).binop(BinOp::IsNot, Expr::none());
                switches[k] = Some((name.clone(), test));
                Expr::name(name)
            }
            None => {
                let label = if matches!(literal, Expr::Tuple(_)) { "pad" } else { "activation" };
                params.slot(label, "", values, literal, None).unwrap_or_else(|| literal.clone())
            }
        };
        pads.push(match value.as_name() {
            Some(name) => {
                if !attributes.iter().any(|a| a == name) {
                    attributes.push(name.to_string());
                }
                Expr::self_attr(name)
            }
            None => value,
        });
    }
    let locals = Locals { layers: &local_layers, buffers: &local_buffers, relabel: &relabel };
    let mut forward = class_forward(first, module, stmts, names, &locals, &group.parts);
    let mut next = pads.into_iter();
    let mut fill = |stmts: &mut Vec<Assign>| {
        for s in stmts.iter_mut() {
            s.value = super::abstract_pads(&s.value, &mut |literal| {
                next.next().unwrap_or_else(|| literal.clone())
            });
        }
    };
    fill(&mut forward.body);
    for (part, after) in &mut forward.parts {
        fill(part);
        fill(after);
    }
    // An inserted padding pads its value in place: `x = F.pad(x, self.pad)`.
    for (k, name) in &inserted {
        let x = Expr::name(&forward.passes[*k]);
        let pad = Expr::call("F.pad", vec![x.clone(), Expr::self_attr(name)]);
        forward.parts[*k].0.push(Assign::new(x, pad));
    }
    // A stage an instance skips passes its input through: its input features are its output
    // features (EfficientNet's first block, without expansion, takes `in_channels` equal to
    // `out_channels`), not whatever another instance passes.
    let ctor = |name: &String| layers.iter().find(|l| &l.name == name).map(|l| &l.ctor);
    for (o, own) in group.parts.iter().zip(&part_layers).filter(|(o, _)| o.part == Part::Stage) {
        let input = own.first().and_then(ctor).and_then(|c| features(c, false));
        let output = own.last().and_then(ctor).and_then(|c| features(c, true));
        let (Some(input), Some(output)) = (input, output) else { continue };
        for (k, &i) in group.members.iter().enumerate() {
            if !at.has(i, o) {
                params.pass_through(input, output, k);
            }
        }
    }
    params.order();
    // `forward` tests the parts' parameters on `self`.
    for (param, _) in switches.iter().flatten().rev() {
        if !attributes.contains(param) {
            attributes.insert(0, param.clone());
        }
    }
    let optional = switches
        .into_iter()
        .zip(forward.parts)
        .zip(part_layers)
        .filter_map(|((switch, (body, after)), layers)| {
            let (param, test) = switch?;
            Some(OptionalPart { param, test, layers, body, after })
        })
        .collect();
    module.classes.push(BlockClass {
        name: name.to_string(),
        params: params.params(),
        layers,
        buffers,
        body: forward.body,
        optional,
        attributes,
        tensor_inputs: vec![false; forward.inputs.len()],
        inputs: forward.inputs,
        output: forward.output,
        extra_outputs: forward.extra_outputs,
        tensor_output: false,
        size_inputs: Vec::new(),
        temporaries: forward.temporaries,
        own_values: forward.own_values,
        unit: false,
    });
    for (gi, &i) in group.members.iter().enumerate() {
        let m = &members[i];
        let inst = m.instance.clone();
        let (args, kwargs) = params.call(gi);
        let layer = Layer { name: inst.clone(), ctor: Expr::name(name).called(args, kwargs) };
        let target = match m.extra_outputs.as_slice() {
            [] => Expr::name(&m.output),
            extra => Expr::Tuple(std::iter::once(&m.output).chain(extra).map(Expr::name).collect()),
        };
        let call = Assign::new(
            target,
            Expr::self_attr(&inst).called(m.inputs.iter().map(Expr::name).collect(), vec![]),
        );
        out.by_member.insert(i, (layer, call));
        for (k, local) in local_layers.iter().enumerate() {
            if let Some(l) = at.layer(i, k) {
                out.renames.insert(module.layers[l].name.clone(), format!("{inst}.{local}"));
            }
        }
        for (k, local) in local_buffers.iter().enumerate() {
            let b = at.buffer(i, k);
            out.renames.insert(module.buffers[b].name.clone(), format!("{inst}.{local}"));
        }
    }
}

/// The flag of an optional part: Keras' own name for a projecting shortcut
/// (`conv_shortcut`), `shortcut` for another, `residual` for the residual add.
fn flag_name(part: Part, layers: &[Layer], optional: &[String]) -> String {
    let conv = layers.iter().filter(|l| optional.contains(&l.name)).any(|l| match &l.ctor {
        Expr::Call(c) => flat(&c.func).starts_with("nn.Conv"),
        _ => false,
    });
    let name = match part {
        Part::Residual => "residual",
        Part::Shortcut if conv => "conv_shortcut",
        Part::Shortcut => "shortcut",
        // Not a flag: the padding itself says.
        Part::Pad => "pad",
        // torchvision's `use_se`.
        Part::Stage => {
            let stage = super::variants::stage_name(optional.iter().map(String::as_str));
            return format!("use_{}", stage.as_deref().unwrap_or("stage"));
        }
    };
    name.to_string()
}

/// Buffers: one per position; dims that differ between instances are parameters.
fn class_buffers(
    at: &Positions,
    module: &Module,
    local_buffers: &[String],
    params: &mut Params,
) -> Vec<Buffer> {
    let group = &at.group.members;
    let first = &at.members[group[0]];
    let mut buffers = Vec::new();
    for (k, &b) in first.buffers.iter().enumerate() {
        let buf = &module.buffers[b];
        let mut shape = Vec::new();
        for (d, dim) in buf.shape.iter().enumerate() {
            let values: Vec<Option<Expr>> = group
                .iter()
                .map(|&i| Some(module.buffers[at.buffer(i, k)].shape[d].clone()))
                .collect();
            let label = format!("{}_size", local_buffers[k]);
            let size = params.slot(&label, &local_buffers[k], values, dim, None);
            shape.push(size.unwrap_or_else(|| dim.clone()));
        }
        buffers.push(Buffer {
            name: local_buffers[k].clone(),
            torch_dtype: buf.torch_dtype,
            shape,
            trainable: buf.trainable,
        });
    }
    buffers
}

/// The class's layers' and buffers' local names, by position.
struct Locals<'a> {
    layers: &'a [String],
    buffers: &'a [String],
    /// Names of the first instance the class does not keep (`t5_layer_norm_2` →
    /// `t5_layer_norm_1`): its values named after its layers follow them.
    relabel: &'a BTreeMap<String, String>,
}

/// The class's `forward`, with local names.
struct Forward {
    body: Vec<Assign>,
    /// Each optional part and what follows it up to the next.
    parts: Vec<(Vec<Assign>, Vec<Assign>)>,
    /// The local name each part passes through.
    passes: Vec<String>,
    inputs: Vec<String>,
    output: String,
    extra_outputs: Vec<String>,
    temporaries: BTreeSet<String>,
    own_values: BTreeSet<String>,
}

/// The class's `forward`: the first member's statements with local names, its inputs and its
/// output; split around its optional parts.
/// A layout conversion of a value the class has named already, named after it
/// (`inputs_nchw`): its name in `forward` came from whichever layer made the value for the
/// first instance (`stem_layernorm_nchw`).
fn converted_name(s: &Assign, vars: &BTreeMap<String, String>) -> Option<String> {
    let target = s.target.as_name()?;
    let layout = ["nchw", "nhwc"].into_iter().find(|l| target.contains(&format!("_{l}")))?;
    let Expr::Call(c) = &s.value else { return None };
    let Expr::Attribute(source, _) = &c.func else { return None };
    if !super::is_layout_conversion(s) {
        return None;
    }
    Some(format!("{}_{layout}", vars.get(source.as_name()?)?))
}

fn class_forward(
    first: &Member,
    module: &Module,
    stmts: &[Assign],
    numbered: &Scope,
    locals_of: &Locals,
    parts: &[Optional],
) -> Forward {
    let mut attrs: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, &l) in first.layers.iter().enumerate() {
        attrs.insert(&module.layers[l].name, &locals_of.layers[k]);
    }
    for (k, &b) in first.buffers.iter().enumerate() {
        attrs.insert(&module.buffers[b].name, &locals_of.buffers[k]);
    }
    let own = &stmts[first.stmts.clone()];
    let assigned: BTreeSet<&str> = own.iter().flat_map(|s| s.target.bound_names()).collect();
    let mut locals = Scope::for_locals();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let main = &first.inputs[0];
    let input_local = if main == "x" || !assigned.contains("x") { "x" } else { "inputs" };
    locals.claim(input_local);
    vars.insert(main.clone(), input_local.to_string());
    let mut inputs = vec![input_local.to_string()];
    // A shortcut's statements all assign `shortcut`, unless their names are used elsewhere.
    for v in parts.iter().filter(|v| v.part == Part::Shortcut) {
        let part: BTreeSet<&str> =
            own[v.run.clone()].iter().flat_map(|s| s.target.bound_names()).collect();
        let elsewhere = own
            .iter()
            .enumerate()
            .filter(|(k, _)| !v.run.contains(k))
            .flat_map(|(_, s)| s.target.bound_names())
            .any(|n| part.contains(n));
        if !elsewhere && !part.iter().any(|n| first.inputs.iter().any(|i| i == n)) {
            let shortcut = locals.fresh("shortcut");
            vars.extend(part.iter().map(|n| (n.to_string(), shortcut.clone())));
        }
    }
    // Named as the code would have been had the block been the model's first: without the
    // numbers `forward` gave values to tell them from the model's others of the name
    // (`self_attention_12` is this class's first `self_attention`), numbered afresh below.
    let globals: Vec<&str> =
        first.inputs[1..].iter().map(String::as_str).chain(assigned.iter().copied()).collect();
    let bases: BTreeSet<&str> = globals.iter().map(|g| numbered.uncounted(g)).collect();
    let bases: Vec<&str> = bases.into_iter().collect();
    let by_base = local_names(&bases, &first.tag);
    let mut names: BTreeMap<&str, String> =
        globals.iter().map(|&g| (g, by_base[numbered.uncounted(g)].clone())).collect();
    // A cell's names without its kind, as its attributes (see `without_title_word`): those
    // that lost it are temporaries.
    let mut cut: BTreeSet<&str> = BTreeSet::new();
    if let super::Tag::Suffix(_) = first.tag {
        let short = super::without_title_word(names.clone(), &first.title);
        cut = short.iter().filter(|(g, n)| names[**g] != **n).map(|(&g, _)| g).collect();
        names = short;
    }
    // Names a pass gave (`q`, `mask`) carry counters only `forward`'s many layers needed
    // (`q_6`, `q_7`): inside the class they are numbered afresh.
    for (global, local) in names.iter_mut() {
        let base = kind_and_counter(global).unwrap_or(global);
        if crate::ir::ROLES.contains(&base) {
            *local = base.to_string();
        }
        if let Some(shared) = locals_of.relabel.get(local.as_str()) {
            *local = shared.clone();
        }
    }
    // A name `forward` gave for a role keeps saying it, numbered or not; one that named the
    // op alone says no more in the class.
    let fresh = |locals: &mut Scope, global: &str, local: &str| {
        if cut.contains(global) {
            locals.fresh_cut(local)
        } else if numbered.is_role(global) {
            locals.fresh_for_role(local)
        } else if numbered.is_op_named(global) {
            locals.fresh_for_op(local)
        } else {
            locals.fresh(local)
        }
    };
    for other in &first.inputs[1..] {
        let local = fresh(&mut locals, other, &names[other.as_str()]);
        vars.insert(other.clone(), local.clone());
        inputs.push(local);
    }
    // In the order the code makes them, so that fresh numbers count up through the body.
    for s in own {
        for v in s.target.bound_names() {
            if vars.contains_key(v) {
                continue;
            }
            let local = if v == "x" {
                if locals.claim("x") { "x".to_string() } else { locals.fresh("y") }
            } else if let Some(converted) = converted_name(s, &vars) {
                locals.fresh(&converted)
            } else {
                fresh(&mut locals, v, &names[v])
            };
            vars.insert(v.to_string(), local);
        }
    }
    let rename = |r: Ref<'_>| match r {
        Ref::Var(v) => vars.get(v).map(Expr::name),
        Ref::SelfAttr(a) => attrs.get(a).map(|l| Expr::self_attr(l)),
    };
    let mut body: Vec<Assign> = own
        .iter()
        .map(|s| Assign::new(s.target.renamed(&rename), s.value.renamed(&rename)))
        .collect();
    let mut output = vars[&first.output].clone();
    let whole = body.clone();
    // Split from the last part back: each part, and what follows it up to the next.
    let mut split = Vec::new();
    for v in parts.iter().rev() {
        let after = body.split_off(v.run.end);
        let part = body.split_off(v.run.start);
        split.push((v, part, after));
    }
    split.reverse();
    let mut segments: Vec<(Vec<Assign>, Vec<Assign>)> = Vec::new();
    // Names an earlier residual part gave back to what it passed through.
    let mut renamed: Vec<(String, String)> = Vec::new();
    let mut passes = Vec::new();
    for (k, (v, mut part, mut after)) in split.into_iter().enumerate() {
        for (from, to) in &renamed {
            let map = |r: Ref<'_>| match r {
                Ref::Var(n) if n == from => Some(Expr::name(to)),
                _ => None,
            };
            for s in part.iter_mut().chain(after.iter_mut()) {
                *s = Assign::new(s.target.renamed(&map), s.value.renamed(&map));
            }
        }
        // Without the part, its result is what it passes through.
        let pass = vars[&first.canon.globals[&v.pass]].clone();
        passes.push(pass.clone());
        let mut result = part.last().and_then(|s| s.target.as_name()).unwrap_or(&pass).to_string();
        // A residual add keeps the running name where nothing after reads the value it
        // passes through: `if self.residual: x = inputs + x`.
        let reads = |s: &Assign| s.value.reads(&pass) > 0 || s.target.reads(&pass) > 0;
        if v.part == Part::Residual && result != pass && !whole[v.run.end..].iter().any(reads) {
            let to_pass = |r: Ref<'_>| match r {
                Ref::Var(n) if n == result => Some(Expr::name(&pass)),
                _ => None,
            };
            let rename = |s: &mut Assign| {
                *s = Assign::new(s.target.renamed(&to_pass), s.value.renamed(&to_pass));
            };
            part.iter_mut().chain(after.iter_mut()).for_each(rename);
            renamed.push((result.clone(), pass.clone()));
            if output == result {
                output = pass.clone();
            }
            result = pass.clone();
        }
        // A padding only some instances have pads a copy where later statements read the
        // value unpadded: `x = inputs`, `if self.pad is not None: x = F.pad(x, self.pad)`.
        // (Read in the canonical statements: locals reuse `x`.)
        let later = |s: &(Vec<String>, Expr)| s.1.reads(&v.pass) > 0;
        let canon = &first.canon.stmts;
        if v.run.is_empty() && canon.get(v.run.end + 1..).is_some_and(|w| w.iter().any(later)) {
            let own = after.first().and_then(|s| s.target.as_name());
            let copy = match own {
                Some(n) if after[0].value.reads(n) == 0 => n.to_string(),
                _ => locals.fresh("padded"),
            };
            let to_copy = |r: Ref<'_>| match r {
                Ref::Var(n) if n == pass => Some(Expr::name(&copy)),
                _ => None,
            };
            if let Some(reader) = after.first_mut() {
                reader.value = reader.value.renamed(&to_copy);
            }
            *passes.last_mut().expect("pushed above") = copy.clone();
            result = copy;
        }
        // An optional part ending in the running name, on a value computed just before it
        // and read nowhere after (MobileNetV3's squeeze-and-excite on its activation): the
        // value takes the running name and the part's own steps another, so no copy
        // precedes the part (`x = self.activation(x)`, then `y = x.mean(...)` ...
        // `x = x * y`), as one writes it by hand.
        let previous = match segments.last_mut() {
            Some((_, previous_after)) if k > 0 => previous_after.last_mut(),
            _ => body.last_mut(),
        };
        if result != pass
            && v.part != Part::Residual
            && !whole[v.run.end..].iter().any(reads)
            && let Some(producer) = previous.filter(|s| s.target.as_name() == Some(pass.as_str()))
            && let Some(steps) = steps_name(&part, &result, &mut locals)
        {
            let map = |r: Ref<'_>| match r {
                Ref::Var(n) if n == result => Some(Expr::name(&steps)),
                Ref::Var(n) if n == pass => Some(Expr::name(&result)),
                _ => None,
            };
            let last = part.len() - 1;
            for (i, s) in part.iter_mut().enumerate() {
                let target = if i == last { s.target.clone() } else { s.target.renamed(&map) };
                *s = Assign::new(target, s.value.renamed(&map));
            }
            producer.target = Expr::name(&result);
            *passes.last_mut().expect("pushed above") = result.clone();
            if output == pass {
                output = result.clone();
            }
        } else if result != pass {
            let pre = Assign::new(Expr::name(&result), Expr::name(&pass));
            match segments.last_mut() {
                Some((_, previous_after)) if k > 0 => previous_after.push(pre),
                _ => body.push(pre),
            }
        }
        segments.push((part, after));
    }
    let extra_outputs = first.extra_outputs.iter().map(|o| vars[o].clone()).collect();
    let mut temporaries = locals.temporaries();
    // A value the block computes itself, outside any layer of its own, took the block's
    // scope for a name (`double_stream_block`): inside the block that says nothing.
    let own_values: BTreeSet<String> = match &first.tag {
        super::Tag::Prefix(prefix) => {
            let own = super::uncounted(&crate::py::names::identifier(prefix)).to_string();
            vars.values().filter(|n| super::uncounted(n) == own).cloned().collect()
        }
        _ => BTreeSet::new(),
    };
    temporaries.extend(own_values.iter().cloned());
    let mut forward = Forward {
        body,
        parts: segments,
        passes,
        inputs,
        output,
        extra_outputs,
        temporaries,
        own_values,
    };
    return_running_value(&mut forward);
    forward
}

/// The value a block gives back (the first, where it gives several) takes the running name
/// where its last statement makes it and nothing else holds it: `x = x + add` and `return
/// x`, not `add_2 = x + add` and `return add_2` (the name `forward` needed because the next
/// block and its residual both read the value).
fn return_running_value(f: &mut Forward) {
    let output = f.output.clone();
    // Beside other values given back (T5's first layer's position bias: `return x, mask`),
    // unless one of them is `x` already, or the value carries on a stream it takes in
    // (`text_2` of `text`): a block of several streams keeps each stream's name.
    let uncounted = super::uncounted;
    let stream = f.inputs.iter().any(|i| uncounted(i) == uncounted(&output));
    // Beside an `x` given back too, a temporary (a value named after the block itself) is
    // the second running name: `return y, x`.
    let taken = |r: &str| f.extra_outputs.iter().any(|o| o == r);
    let running = match (taken("x"), taken("y") || !f.temporaries.contains(&output)) {
        (false, _) => "x",
        (true, false) => "y",
        (true, true) => return,
    };
    if output == running
        || (!f.extra_outputs.is_empty() && stream)
        || f.inputs.contains(&output)
        || f.passes.contains(&output)
    {
        return;
    }
    // The last statement, unless it is inside an optional part.
    let last_is_unconditional = match f.parts.last() {
        Some((_, after)) => !after.is_empty(),
        None => !f.body.is_empty(),
    };
    let segments = f.parts.iter_mut().flat_map(|(part, after)| [part, after]);
    let mut all: Vec<&mut Assign> =
        std::iter::once(&mut f.body).chain(segments).flat_map(|s| s.iter_mut()).collect();
    let Some((last, earlier)) = all.split_last_mut() else { return };
    let mentions = |s: &Assign| s.value.reads(&output) > 0 || s.target.reads(&output) > 0;
    let binds = |s: &Assign| s.target.bound_names().contains(&output.as_str());
    if !last_is_unconditional
        || last.target.as_name() != Some(output.as_str())
        || last.value.reads(&output) > 0
        || earlier.iter().any(|s| mentions(s) || binds(s))
    {
        return;
    }
    last.target = Expr::name(running);
    f.output = running.to_string();
}

/// A name for an optional part's intermediate steps where the part ends binding `result`
/// and each step binds `result` before reading it (so the steps read only their own
/// values under it): `y`, or a fresh one. `None` when a step reads the outer `result`.
fn steps_name(part: &[Assign], result: &str, locals: &mut Scope) -> Option<String> {
    let (last, steps) = part.split_last()?;
    if last.target.as_name() != Some(result) || steps.is_empty() {
        return None;
    }
    let mut bound = false;
    for s in steps {
        if !bound && s.value.reads(result) > 0 {
            return None;
        }
        bound |= s.target.bound_names().contains(&result);
    }
    if !bound {
        return None;
    }
    Some(if locals.claim("y") { "y".to_string() } else { locals.fresh("y") })
}

/// A layer's input features (`in_channels` of a convolution, `in_features` of a linear layer,
/// the features of a norm), or its output features.
fn features(ctor: &Expr, output: bool) -> Option<&Expr> {
    let Expr::Call(c) = ctor else { return None };
    let func = flat(&c.func);
    let k = if func.starts_with("nn.Conv") || func == "nn.Linear" {
        usize::from(output)
    } else if func.starts_with("nn.BatchNorm") {
        0
    } else {
        return None;
    };
    c.args.get(k)
}

#[cfg(test)]
mod tests {
    use super::{Forward, Params, return_running_value, uncounted};
    use crate::py::{Assign, BinOp, Expr};

    /// Two activations that differ between instances independently (in MobileNetV3's first
    /// block, the stem's hard swish before it and ReLU inside it; hard swish in both of a
    /// later block) are two parameters, not one name given twice (a syntax error).
    #[test]
    fn two_slots_of_one_label_are_two_parameters() {
        let mut params = Params::default();
        let (swish, relu) = (Expr::path("F.hardswish"), Expr::path("F.relu"));
        let first = vec![Some(swish.clone()), Some(relu.clone())];
        let second = vec![Some(relu.clone()), Some(swish.clone())];
        let keep = Expr::none();
        let a = params.slot("activation", "", first, &keep, None);
        let b = params.slot("activation", "", second, &keep, None);
        assert_eq!(a.and_then(|e| e.as_name().map(String::from)).as_deref(), Some("activation"));
        assert_eq!(b.and_then(|e| e.as_name().map(String::from)).as_deref(), Some("activation_2"));
    }

    fn names(each: &[&[&str]]) -> Vec<Vec<String>> {
        each.iter().map(|n| n.iter().map(|s| s.to_string()).collect()).collect()
    }

    #[test]
    fn names_counted_over_the_model_are_counted_in_the_class() {
        // Two norms per layer, numbered by Keras across three layers; the layers' own names
        // agree and stay; a name that differs in more than a counter stays the first's.
        let each = names(&[
            &["t5_layer_norm_2", "t5_layer_norm_4", "t5_layer_norm_6"],
            &["query", "query", "query"],
            &["t5_layer_norm_3", "t5_layer_norm_5", "t5_layer_norm_7"],
            &["dense_1", "dense_1", "dense_1"],
            &["conv_a", "conv_b", "conv_c"],
            &["pool_3", "norm_4", "pool_5"],
        ]);
        let got = uncounted(each);
        let want = ["t5_layer_norm_1", "query", "t5_layer_norm_2", "dense_1", "conv_a", "pool_3"];
        assert_eq!(got, want);
        // Only one of its kind: the kind alone.
        assert_eq!(uncounted(names(&[&["activation_7", "activation_9"]])), ["activation"]);
        // A scope Keras counted, inside the block: its counter goes, the layers' stay.
        let each = names(&[
            &["multi_head_attention_1_query", "multi_head_attention_2_query"],
            &["mlp_1_dense_1", "mlp_2_dense_1"],
            &["mlp_1_dense_2", "mlp_2_dense_2"],
            &["stage_1_conv", "stage_x_conv"],
        ]);
        let want = ["multi_head_attention_query", "mlp_dense_1", "mlp_dense_2", "stage_1_conv"];
        assert_eq!(uncounted(each), want);
    }

    /// Flux's double-stream block gives back its text stream beside the image stream `x`:
    /// the last sum, a value named after the block, is the other running name
    /// (`y = residual + y`, `return y, x`). A value whose name says something keeps it.
    #[test]
    fn a_block_giving_back_x_too_returns_a_temporary_as_y() {
        let forward = |output: &str| Forward {
            body: vec![Assign::new(
                Expr::name(output),
                Expr::name("residual").binop(BinOp::Add, Expr::name("y")),
            )],
            parts: Vec::new(),
            passes: Vec::new(),
            inputs: vec!["inputs".into(), "text".into()],
            output: output.into(),
            extra_outputs: vec!["x".into()],
            temporaries: ["double_stream_block_21".to_string()].into(),
            own_values: ["double_stream_block_21".to_string()].into(),
        };
        let mut f = forward("double_stream_block_21");
        return_running_value(&mut f);
        assert_eq!(f.output, "y");
        assert_eq!(f.body[0].target.as_name(), Some("y"));
        let mut named = forward("text_out");
        return_running_value(&mut named);
        assert_eq!(named.output, "text_out");
    }
}
