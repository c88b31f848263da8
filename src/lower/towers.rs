//! Towers: a part of the model that holds blocks, written as a class of its own and called
//! once (SigLIP's vision and text encoders, Moonshine's encoder and decoder, Gemma3n's text
//! model), as Hugging Face writes `CLIPVisionTransformer` inside `CLIPModel`.
//!
//! Blocks are found where scopes repeat; a tower is one scope, the outermost layer of its
//! statements (`Span::head`), around blocks and layers of its own: an encoder with its
//! embeddings, its stack of layers and its final norm. Without it, every one of its layers
//! sits at the top level under the scope's name (`self.sig_lip_vision_encoder_post_layer_norm`
//! beside `self.sig_lip_text_encoder_post_layer_norm`). The tower's class takes the
//! statements that read its layers, as `forward` had them (loops included), so long as they
//! are one run no other layer's statement interrupts. Its layers lose the scope's words,
//! which the attribute holding the tower says once: `self.sig_lip_vision_encoder.blocks`.

use std::collections::{BTreeMap, BTreeSet};

use heck::ToUpperCamelCase;

use super::Span;
use super::blocks::uncounted;
use super::module::{Buffer, Layer, Module, Tower};
use crate::py::names::{Scope, is_valid_class_name};
use crate::py::{Assign, Expr, Ref, Stmt};

/// Statements a tower must have, loops counted once: fewer (a stack and its norm) read as
/// well where they are.
const MIN_STATEMENTS: usize = 4;

/// What a tower's class returns at most, as for block classes.
const MAX_OUTPUTS: usize = 3;

/// Towers a model may have: a few parts of it, not a stack (and a bound on the work).
const MAX_TOWERS: usize = 16;

/// Which scope each layer and buffer came from, taken before blocks are made, and for each
/// weight (in `Module::weights` order, which blocks and stacks keep while they rename keys).
pub struct Heads {
    by_name: BTreeMap<String, Option<String>>,
    by_weight: Vec<Option<String>>,
}

impl Heads {
    pub fn new(module: &Module, spans: &[Span]) -> Heads {
        let mut by_name: BTreeMap<String, Option<String>> = BTreeMap::new();
        for s in spans {
            let names = module.layers[s.layers.clone()].iter().map(|l| &l.name);
            let names = names.chain(module.buffers[s.buffers.clone()].iter().map(|b| &b.name));
            for n in names {
                by_name.insert(n.clone(), s.head.clone());
            }
        }
        let by_weight = module
            .weights
            .iter()
            .map(|(key, _)| by_name.get(attribute_of(key)).cloned().flatten())
            .collect();
        Heads { by_name, by_weight }
    }

    /// The scope each attribute's layers came from: its own, or that of every weight under
    /// it (a block instance, a list of them); none where they differ or none says.
    fn of_attributes(&self, module: &Module) -> BTreeMap<String, String> {
        // (the head, whether every weight under the attribute agrees)
        let mut under: BTreeMap<&str, (Option<&String>, bool)> = BTreeMap::new();
        for ((key, _), head) in module.weights.iter().zip(&self.by_weight) {
            let entry = under.entry(attribute_of(key)).or_insert((head.as_ref(), true));
            entry.1 &= entry.0 == head.as_ref();
        }
        let names = module.layers.iter().map(|l| &l.name);
        let names = names.chain(module.buffers.iter().map(|b| &b.name));
        names
            .filter_map(|a| {
                let head = match self.by_name.get(a) {
                    Some(head) => head.clone(),
                    None => {
                        under.get(a.as_str()).and_then(|(h, agree)| h.filter(|_| *agree)).cloned()
                    }
                };
                Some((a.clone(), head?))
            })
            .collect()
    }
}

/// `encoder_blocks` of the state-dict key `encoder_blocks.0.norm.weight`.
fn attribute_of(key: &str) -> &str {
    key.split_once('.').map_or(key, |(head, _)| head)
}

/// Self attributes read anywhere in a statement and those nested in it.
fn stmt_attrs(s: &Stmt) -> BTreeSet<&str> {
    let mut out: BTreeSet<&str> = s.exprs().into_iter().flat_map(|e| e.self_attrs()).collect();
    for c in s.children() {
        out.extend(stmt_attrs(c));
    }
    out
}

/// Walks statements in order: `read(name)` for each name read, `bind(name)` for each bound,
/// a value read before the target it binds.
fn walk<'a>(stmts: &'a [Stmt], read: &mut impl FnMut(&'a str), bind: &mut impl FnMut(&'a str)) {
    for s in stmts {
        match s {
            Stmt::Assign(a) => {
                a.value.names().into_iter().for_each(&mut *read);
                // A subscript or attribute target reads what it stores into.
                if !matches!(a.target, Expr::Name(_) | Expr::Tuple(_)) {
                    a.target.names().into_iter().for_each(&mut *read);
                }
                a.target.bound_names().into_iter().for_each(&mut *bind);
            }
            Stmt::For { target, iter, body } => {
                iter.names().into_iter().for_each(&mut *read);
                target.bound_names().into_iter().for_each(&mut *bind);
                walk(body, read, bind);
            }
            Stmt::If { test, body, orelse } => {
                test.names().into_iter().for_each(&mut *read);
                walk(body, read, bind);
                walk(orelse, read, bind);
            }
            Stmt::While { test, body } => {
                test.names().into_iter().for_each(&mut *read);
                walk(body, read, bind);
            }
            other => other.exprs().into_iter().flat_map(|e| e.names()).for_each(&mut *read),
        }
    }
}

/// A statement with each `self.<attr>` renamed.
fn renamed(s: &Stmt, rename: &impl Fn(Ref<'_>) -> Option<Expr>) -> Stmt {
    let all = |b: &[Stmt]| b.iter().map(|s| renamed(s, rename)).collect::<Vec<_>>();
    match s {
        Stmt::Assign(a) => {
            Stmt::Assign(Assign::new(a.target.renamed(rename), a.value.renamed(rename)))
        }
        Stmt::Expr(e) => Stmt::Expr(e.renamed(rename)),
        Stmt::Return(e) => Stmt::Return(e.as_ref().map(|e| e.renamed(rename))),
        Stmt::For { target, iter, body } => {
            Stmt::For { target: target.clone(), iter: iter.renamed(rename), body: all(body) }
        }
        Stmt::If { test, body, orelse } => {
            Stmt::If { test: test.renamed(rename), body: all(body), orelse: all(orelse) }
        }
        Stmt::While { test, body } => Stmt::While { test: test.renamed(rename), body: all(body) },
        other => other.clone(),
    }
}

/// The words all `names` begin with, whole, leaving each at least a word: `sig_lip_vision_encoder`
/// of `sig_lip_vision_encoder_blocks` and `sig_lip_vision_encoder_post_layer_norm`.
fn shared_prefix(names: &[&str]) -> String {
    let words: Vec<Vec<&str>> = names.iter().map(|n| n.split('_').collect()).collect();
    let Some(first) = words.first() else { return String::new() };
    let mut shared = 0;
    while words.iter().all(|w| w.len() > shared + 1 && w[shared] == first[shared]) {
        shared += 1;
    }
    first[..shared].join("_")
}

/// A tower found: its scope's attributes and the run of `forward`'s statements reading them.
struct Found {
    prefix: String,
    attrs: BTreeSet<String>,
    run: std::ops::Range<usize>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// Moves each tower into a class of its own; returns the classes made. `is_tensor` says
/// which names always hold tensors (for the class's hints).
pub fn extract(
    module: &mut Module,
    heads: &Heads,
    is_tensor: impl Fn(&str) -> bool,
) -> Vec<String> {
    let attrs: Vec<String> = module
        .layers
        .iter()
        .map(|l| l.name.clone())
        .chain(module.buffers.iter().map(|b| b.name.clone()))
        .collect();
    // What a branch binds it may not: the liveness below takes every binding as made.
    if module.body.iter().any(|s| matches!(s, Stmt::If { .. } | Stmt::While { .. })) {
        return Vec::new();
    }
    let head_of = heads.of_attributes(module);
    let mut by_head: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in &attrs {
        if let Some(h) = head_of.get(a) {
            by_head.entry(h).or_default().push(a.clone());
        }
    }
    // Scopes of one family (Swin's `stage_0`, `stage_1`) are stages of a repeated
    // structure, no one part of the model.
    let mut families: BTreeMap<&str, usize> = BTreeMap::new();
    for h in by_head.keys() {
        *families.entry(uncounted(h)).or_default() += 1;
    }
    // Whose attributes each statement reads: one scope's, none, or several (`Err`).
    let owners: Vec<Result<Option<&str>, ()>> = module
        .body
        .iter()
        .map(|s| {
            let mut owner = None;
            for a in stmt_attrs(s) {
                let h = head_of.get(a).map(String::as_str);
                if h.is_none() || owner.is_some_and(|o| Some(o) != h) {
                    return Err(());
                }
                owner = h;
            }
            Ok(owner)
        })
        .collect();
    let mut runs: BTreeMap<&str, std::ops::Range<usize>> = BTreeMap::new();
    for (k, o) in owners.iter().enumerate() {
        if let Ok(Some(h)) = o {
            runs.entry(h).and_modify(|r| r.end = k + 1).or_insert(k..k + 1);
        }
    }
    // A run no other scope's statement interrupts: each is scanned up to the first such
    // statement, after which another scope's run starts (scans do not overlap).
    let unbroken = |h: &str, run: &std::ops::Range<usize>| {
        owners[run.clone()].iter().all(|o| matches!(o, Ok(None)) || *o == Ok(Some(h)))
    };
    // Several blocks: a list of them, or two; one block and its scope's layers are a block.
    let classes: BTreeSet<&str> = module.classes.iter().map(|c| c.name.as_str()).collect();
    let blocks_in: BTreeMap<&str, usize> = module
        .layers
        .iter()
        .map(|l| {
            let Expr::Call(c) = &l.ctor else { return (l.name.as_str(), 0) };
            let func = crate::py::printer::flat(&c.func);
            let n = if func == "nn.ModuleList" {
                2
            } else {
                usize::from(classes.contains(func.as_str()))
            };
            (l.name.as_str(), n)
        })
        .collect();
    let holds_blocks = |group: &[String]| {
        group.iter().filter_map(|a| blocks_in.get(a.as_str())).sum::<usize>() >= 2
    };
    let in_methods: BTreeSet<&str> =
        module.methods.iter().flat_map(|m| &m.body).flat_map(stmt_attrs).collect();
    let mut found: Vec<Found> = by_head
        .iter()
        .filter(|(h, group)| families[uncounted(h)] == 1 && holds_blocks(group))
        .filter(|(_, group)| group.iter().all(|a| !in_methods.contains(a.as_str())))
        .filter_map(|(h, group)| Some((h, group, runs.get(h)?.clone())))
        .filter(|(h, _, run)| run.len() >= MIN_STATEMENTS && unbroken(h, run))
        .take(MAX_TOWERS)
        .filter_map(|(h, group, run)| tower(module, h, group, &attrs, run))
        .collect();
    let mut class_names: BTreeSet<String> = module.classes.iter().map(|c| c.name.clone()).collect();
    class_names.insert(module.class_name.clone());
    let mut made = Vec::new();
    // From the last run, so that the earlier ones' statement indices hold.
    found.sort_by_key(|f| std::cmp::Reverse(f.run.start));
    for f in found {
        // Keras' counter on a nested model (`hg_net_v2_backbone_1`) is no part of its name.
        let base = uncounted(&f.prefix).to_upper_camel_case();
        let mut name = base.clone();
        let mut k = 2;
        while class_names.contains(&name) || !is_valid_class_name(&name) {
            name = format!("{base}{k}");
            k += 1;
        }
        class_names.insert(name.clone());
        build(module, &f, &name, &is_tensor);
        made.push(name);
    }
    made.reverse();
    made
}

/// The tower a scope's attributes make, if they do (see the module's doc).
fn tower(
    module: &Module,
    head: &str,
    group: &[String],
    all: &[String],
    run: std::ops::Range<usize>,
) -> Option<Found> {
    if group.len() < 2 || group.len() == all.len() {
        return None;
    }
    let attrs: BTreeSet<String> = group.iter().cloned().collect();
    // The scope's own name where its layers' names begin with it, else what they share.
    let scoped = |a: &String| a.strip_prefix(head).is_some_and(|r| r.starts_with('_'));
    let prefix = if group.iter().all(scoped) {
        head.to_string()
    } else {
        shared_prefix(&group.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let outer = Scope::for_attributes();
    let stripped_ok = group.iter().all(|a| {
        let rest = &a[prefix.len() + 1..];
        outer.base(rest) == rest
    });
    let others: BTreeSet<&str> =
        all.iter().map(String::as_str).filter(|a| !attrs.contains(*a)).collect();
    if prefix.is_empty()
        || !stripped_ok
        || others.contains(prefix.as_str())
        || outer.base(&prefix) != prefix
    {
        return None;
    }
    let (mut run, (mut inputs, mut binds, mut outputs)) = (run.clone(), interface(module, run));
    // Statements after the run that read only what it made and leave fewer values to hand
    // out are the tower's too (SigLIP's vision head adds its attention's output back after
    // its last layer): its class gives back what the model reads, not a half-done sum.
    // Each step hands out fewer: a few steps at most, however long the model.
    let mut steps = MAX_OUTPUTS;
    while let Some(next) = module.body.get(run.end)
        && steps > 0
        && stmt_attrs(next).is_empty()
        && reads_only(next, &binds)
    {
        let longer = run.start..run.end + 1;
        let (i, b, o) = interface(module, longer.clone());
        if o.len() >= outputs.len() || o.is_empty() {
            break;
        }
        (run, inputs, binds, outputs) = (longer, i, b, o);
        steps -= 1;
    }
    if outputs.is_empty() || outputs.len() > MAX_OUTPUTS || inputs.is_empty() {
        return None;
    }
    Some(Found { prefix, attrs, run, inputs, outputs })
}

/// Whether `s` reads no local but those in `names` (module names, `torch` and `F`, aside:
/// they are bound nowhere).
fn reads_only(s: &Stmt, names: &[String]) -> bool {
    let mut ok = true;
    walk(
        std::slice::from_ref(s),
        &mut |n| ok &= names.iter().any(|m| m == n) || matches!(n, "torch" | "F" | "nn"),
        &mut |_| {},
    );
    ok
}

/// What statements `run` of `forward` take in (bound before it, or `forward`'s parameters,
/// read before it binds them), bind, and hand out (read after it, or returned), in order.
fn interface(
    module: &Module,
    run: std::ops::Range<usize>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut before: BTreeSet<&str> = module.params.iter().map(String::as_str).collect();
    walk(&module.body[..run.start], &mut |_| {}, &mut |n| {
        before.insert(n);
    });
    let bound = std::cell::RefCell::new(BTreeSet::new());
    let mut inputs: Vec<String> = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    walk(
        &module.body[run.clone()],
        &mut |n| {
            let fresh = !bound.borrow().contains(n) && !inputs.iter().any(|i| i == n);
            if fresh && before.contains(n) {
                inputs.push(n.to_string());
            }
        },
        &mut |n| {
            bound.borrow_mut().insert(n);
            if !binds.iter().any(|b| b == n) {
                binds.push(n.to_string());
            }
        },
    );
    // Read after the run before the code after it binds them again.
    let rebound = std::cell::RefCell::new(BTreeSet::new());
    let mut read_after: BTreeSet<&str> = BTreeSet::new();
    walk(
        &module.body[run.end..],
        &mut |n| {
            if !rebound.borrow().contains(n) {
                read_after.insert(n);
            }
        },
        &mut |n| {
            rebound.borrow_mut().insert(n);
        },
    );
    let rebound = rebound.into_inner();
    let returned = module.outputs.iter().flat_map(|e| e.names());
    read_after.extend(returned.filter(|n| !rebound.contains(n)));
    let outputs: Vec<String> =
        binds.iter().filter(|n| read_after.contains(n.as_str())).cloned().collect();
    (inputs, binds, outputs)
}

/// Locals the tower binds named after its scope, without the scope's words, which its class
/// says (`sig_lip_text_encoder_head` → `head`; the scope's name alone → `x`), where the name
/// is free in its statements.
fn local_renames(body: &[Stmt], prefix: &str, inputs: &[String]) -> BTreeMap<String, String> {
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut bound: Vec<String> = Vec::new();
    walk(
        body,
        &mut |n| {
            used.insert(n.to_string());
        },
        &mut |n| bound.push(n.to_string()),
    );
    used.extend(bound.iter().cloned());
    let locals = Scope::for_locals();
    let mut renames = BTreeMap::new();
    for name in inputs.iter().cloned().chain(bound) {
        // The value the scope itself computed (no layer of it named it) runs as `x`.
        let rest = if name == prefix {
            ["x", "y", "h", "out"].into_iter().find(|n| !used.contains(*n))
        } else {
            name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_'))
        };
        let Some(rest) = rest else { continue };
        if renames.contains_key(&name) || used.contains(rest) || locals.base(rest) != rest {
            continue;
        }
        used.insert(rest.to_string());
        renames.insert(name.clone(), rest.to_string());
    }
    renames
}

/// Names the statements bind to tensors, from `known` ones: what a layer, a block, a torch
/// function or a tensor's method returns (not its sizes), and arithmetic on tensors.
pub(crate) fn tensor_locals(body: &[Stmt], mut known: BTreeSet<String>) -> BTreeSet<String> {
    fn is_tensor(e: &Expr, known: &BTreeSet<String>) -> bool {
        match e {
            Expr::Name(n) => known.contains(n),
            Expr::Binary(l, _, r) => is_tensor(l, known) || is_tensor(r, known),
            Expr::Subscript(v, _) => is_tensor(v, known),
            // A buffer or parameter, or a layer's (`self.embedding.weight`).
            Expr::Attribute(..) => {
                e.as_self_attr().is_some()
                    || matches!(e, Expr::Attribute(v, _) if v.as_self_attr().is_some())
            }
            Expr::Call(c) => {
                let func = crate::py::printer::flat(&c.func);
                let method_of_tensor = match &c.func {
                    Expr::Attribute(obj, m) => {
                        is_tensor(obj, known)
                            && !matches!(m.as_str(), "size" | "item" | "tolist" | "dim" | "numel")
                    }
                    _ => false,
                };
                c.func.as_self_attr().is_some()
                    || method_of_tensor
                    || func.starts_with("torch.")
                    || func.starts_with("F.")
                    || c.func.as_name().is_some_and(|n| known.contains(n))
            }
            _ => false,
        }
    }
    for s in body {
        match s {
            Stmt::Assign(a) if is_tensor(&a.value, &known) => {
                known.extend(a.target.bound_names().into_iter().map(String::from));
            }
            Stmt::Assign(a) => {
                for n in a.target.bound_names() {
                    known.remove(n);
                }
            }
            // The loop's variable is a layer of a list: calling it gives a tensor.
            Stmt::For { target, body, .. } => {
                known.extend(target.bound_names().into_iter().map(String::from));
                known = tensor_locals(body, known);
            }
            _ => {}
        }
    }
    known
}

/// Moves a tower's layers, buffers, weights and statements into the class `name`.
fn build(module: &mut Module, f: &Found, name: &str, is_tensor: &impl Fn(&str) -> bool) {
    let strip = |a: &str| a[f.prefix.len() + 1..].to_string();
    let mut layers: Vec<Layer> = Vec::new();
    let mut kept: Vec<Layer> = Vec::new();
    for l in module.layers.drain(..) {
        if f.attrs.contains(&l.name) {
            if layers.is_empty() {
                kept.push(Layer { name: f.prefix.clone(), ctor: Expr::call(name, vec![]) });
            }
            layers.push(Layer { name: strip(&l.name), ctor: l.ctor });
        } else {
            kept.push(l);
        }
    }
    module.layers = kept;
    let (buffers, kept): (Vec<Buffer>, Vec<Buffer>) =
        module.buffers.drain(..).partition(|b| f.attrs.contains(&b.name));
    module.buffers = kept;
    let buffers: Vec<Buffer> =
        buffers.into_iter().map(|b| Buffer { name: strip(&b.name), ..b }).collect();
    module.rename_weight_heads(|head| {
        f.attrs.contains(head).then(|| format!("{}.{}", f.prefix, strip(head)))
    });
    let own = |r: Ref<'_>| match r {
        Ref::SelfAttr(a) if f.attrs.contains(a) => Some(Expr::self_attr(&strip(a))),
        _ => None,
    };
    let locals = local_renames(&module.body[f.run.clone()], &f.prefix, &f.inputs);
    let own = |r: Ref<'_>| match r {
        Ref::Var(v) => locals.get(v).map(Expr::name),
        other => own(other),
    };
    let body: Vec<Stmt> = module.body[f.run.clone()].iter().map(|s| renamed(s, &own)).collect();
    let args: Vec<Expr> = f.inputs.iter().map(Expr::name).collect();
    let target = match f.outputs.as_slice() {
        [one] => Expr::name(one),
        many => Expr::Tuple(many.iter().map(Expr::name).collect()),
    };
    let call = Assign::new(target, Expr::self_attr(&f.prefix).called(args, vec![]));
    module.body.splice(f.run.clone(), [Stmt::Assign(call)]);
    let known = module.params.iter().cloned().collect();
    let before = tensor_locals(&module.body[..f.run.start], known);
    let tensor = |n: &String| before.contains(n) || is_tensor(n);
    let inner = |n: &String| locals.get(n).cloned().unwrap_or_else(|| n.clone());
    let tensors = tensor_locals(&body, f.inputs.iter().filter(|n| tensor(n)).map(inner).collect());
    module.towers.insert(
        0,
        Tower {
            name: name.to_string(),
            layers,
            buffers,
            body,
            tensor_inputs: f.inputs.iter().map(tensor).collect(),
            tensor_output: f.outputs.iter().map(inner).all(|n| tensors.contains(&n)),
            inputs: f.inputs.iter().map(inner).collect(),
            outputs: f.outputs.iter().map(inner).collect(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::py::printer::print;
    use crate::testing::weights;
    use crate::weights::Weight;

    fn layer(name: &str, ctor: &str) -> Layer {
        Layer { name: name.to_string(), ctor: Expr::call(ctor, vec![]) }
    }

    fn assign(target: &str, value: Expr) -> Stmt {
        Stmt::assign(Expr::name(target), value)
    }

    fn layer_call(attr: &str, arg: &str) -> Expr {
        Expr::self_attr(attr).called(vec![Expr::name(arg)], vec![])
    }

    /// A text encoder (embedding, a stack of blocks, a norm) and a head outside it: `forward`
    /// as the model had it, the scopes each attribute came from, and the weights.
    fn model(body_after: Vec<Stmt>) -> (Module, Heads) {
        let mut module = Module { class_name: "Model".to_string(), ..Module::default() };
        module.params = vec!["ids".to_string()];
        module.layers = vec![
            layer("text_encoder_embedding", "nn.Embedding"),
            layer("text_encoder_blocks", "nn.ModuleList"),
            layer("text_encoder_norm", "nn.LayerNorm"),
            layer("head", "nn.Linear"),
        ];
        module.classes = Vec::new();
        let keys =
            ["text_encoder_embedding.weight", "text_encoder_blocks.0.fc.weight", "head.weight"];
        module.weights =
            keys.iter().map(|k| (k.to_string(), Weight::plain(weights(&[2])))).collect();
        let block_loop = Stmt::For {
            target: Expr::name("block"),
            iter: Expr::self_attr("text_encoder_blocks"),
            body: vec![assign("h", Expr::name("block").called(vec![Expr::name("h")], vec![]))],
        };
        module.body = vec![
            assign("h", layer_call("text_encoder_embedding", "ids")),
            assign("seq_len", Expr::name("h").attr("shape").index(Expr::int(1))),
            block_loop,
            assign("text_encoder", layer_call("text_encoder_norm", "h")),
        ];
        module.body.extend(body_after);
        module.outputs = vec![Expr::name("x")];
        let head = Some("text_encoder".to_string());
        let by_name = [
            ("text_encoder_embedding", head.clone()),
            ("text_encoder_norm", head.clone()),
            ("head", Some("head".to_string())),
        ];
        let by_name = by_name.into_iter().map(|(n, h)| (n.to_string(), h)).collect();
        let heads =
            Heads { by_name, by_weight: vec![head.clone(), head, Some("head".to_string())] };
        (module, heads)
    }

    /// The encoder's statements move into its class, its layers and weights lose the scope's
    /// words, and the model calls it once with what it reads and takes what is read after.
    #[test]
    fn a_scope_holding_blocks_is_a_class_called_once() {
        let after = vec![assign(
            "x",
            layer_call("head", "text_encoder").binop(crate::py::BinOp::Mul, Expr::name("seq_len")),
        )];
        let (mut module, heads) = model(after);
        let made = extract(&mut module, &heads, |n| n == "h");
        assert_eq!(made, ["TextEncoder"]);
        let classes: Vec<Stmt> = module.class_defs();
        insta::assert_snapshot!(print(&classes, 0), @r#"
        class TextEncoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding()
                self.blocks = nn.ModuleList()
                self.norm = nn.LayerNorm()

            def forward(self, ids: torch.Tensor):
                h = self.embedding(ids)
                seq_len = h.shape[1]
                for block in self.blocks:
                    h = block(h)
                x = self.norm(h)
                return seq_len, x


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.text_encoder = TextEncoder()
                self.head = nn.Linear()

            def forward(self, ids: torch.Tensor) -> torch.Tensor:
                """Runs the model on TF's inputs, with their dtypes and shapes (channels last).

                Args:

                Returns:
                """
                seq_len, text_encoder = self.text_encoder(ids)
                x = self.head(text_encoder) * seq_len
                return x
        "#);
        let keys: Vec<&str> = module.weights.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["text_encoder.embedding.weight", "text_encoder.blocks.0.fc.weight", "head.weight"]
        );
    }

    /// SigLIP's vision head adds its attention's output back after its last layer: that
    /// sum reads only what the tower made and leaves it one value to give back, not two.
    #[test]
    fn a_sum_of_the_towers_values_after_its_layers_is_its_own() {
        let sum = Expr::name("text_encoder").binop(crate::py::BinOp::Add, Expr::name("h"));
        let after = vec![assign("y", sum), assign("x", layer_call("head", "y"))];
        let (mut module, heads) = model(after);
        assert_eq!(extract(&mut module, &heads, |n| n == "h"), ["TextEncoder"]);
        let forward = module.body.iter().map(|s| print(std::slice::from_ref(s), 0));
        let forward: String = forward.collect();
        insta::assert_snapshot!(forward, @"
        y = self.text_encoder(ids)
        x = self.head(y)
        ");
    }

    /// Thousands of scopes that could each be a tower: a few are, found in time linear in
    /// the statements (a hostile graph must not make this quadratic).
    #[test]
    fn towers_are_few_however_many_scopes_could_be() {
        let mut module = Module { class_name: "Model".to_string(), ..Module::default() };
        module.params = vec!["x".to_string()];
        let mut by_name = BTreeMap::new();
        for k in 0..4000 {
            let (list, norm) = (format!("enc{k}_blocks"), format!("enc{k}_norm"));
            module.layers.push(layer(&list, "nn.ModuleList"));
            module.layers.push(layer(&norm, "nn.LayerNorm"));
            by_name.insert(list.clone(), Some(format!("enc{k}")));
            by_name.insert(norm.clone(), Some(format!("enc{k}")));
            for _ in 0..3 {
                module.body.push(assign("x", layer_call(&list, "x")));
            }
            module.body.push(assign("x", layer_call(&norm, "x")));
        }
        module.outputs = vec![Expr::name("x")];
        let heads = Heads { by_name, by_weight: Vec::new() };
        let made = extract(&mut module, &heads, |_| true);
        assert_eq!(made.len(), MAX_TOWERS);
        assert_eq!(made[..2], ["Enc0", "Enc1"]);
    }

    /// Not where another layer's statement falls amid the scope's, nor for a scope of one
    /// family among others (a stage), nor for fewer statements than a class is worth.
    #[test]
    fn no_tower_where_its_statements_are_not_one_run() {
        let (mut module, heads) = model(vec![assign("x", layer_call("head", "text_encoder"))]);
        let head_first = assign("z", layer_call("head", "h"));
        module.body.insert(2, head_first);
        assert!(extract(&mut module, &heads, |_| true).is_empty());
        let (mut module, heads) = model(vec![assign("x", layer_call("head", "text_encoder"))]);
        module.body.remove(1);
        assert!(extract(&mut module, &heads, |_| true).is_empty());
        assert_eq!(uncounted("stage_1"), "stage");
        assert_eq!(uncounted("universal_inverted_residual_1_2"), "universal_inverted_residual");
        assert_eq!(uncounted("hg_net_v2_backbone"), "hg_net_v2_backbone");
        assert_eq!(shared_prefix(&["enc_a_b", "enc_a_c", "enc_d"]), "enc");
        assert_eq!(shared_prefix(&["enc_a", "enc_a_b"]), "enc");
    }
}
