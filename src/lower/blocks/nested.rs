//! Composite layers inside a block class, as classes of their own: Mixtral's
//! `MixtralSparseMoeBlock` inside each transformer layer. Its layers would otherwise carry
//! its whole scope in the layer's class (`self.mixtral_sparse_moe_block_sparse_feedforward_
//! gate_dense`, `self.qwen_sparse_moe_block_shared_expert_dense_feedforward_output_dense`)
//! and its twenty statements would sit among the attention's. Hugging Face nests it
//! (`self.block_sparse_moe = MixtralSparseMoeBlock(config)`), and so do we:
//!
//! ```python
//! class MixtralSparseMoeBlock(nn.Module):
//!     def __init__(self):
//!         ...
//!         self.sparse_feedforward_gate_dense = nn.Linear(32, 4, bias=False)
//!         self.experts = nn.Parameter(torch.empty((4, 32, 64), dtype=torch.float32))
//!
//!     def forward(self, h):
//!         ...
//!
//! class TransformerLayer(nn.Module):
//!     ...
//!     x = self.mixtral_sparse_moe_block(h)
//! ```
//!
//! A composite layer is a group of the class's layers (and buffers), one or more, whose
//! names begin with the same words, the rest of each naming a layer of its own (not a
//! number), some of them long ([`NESTED_NAME`]): a layer whose name is short (a transformer's
//! `self_attention_query`) stays where it is, as people write attention. Its statements are
//! those that call its layers and what lies between, with what only they read before them
//! and what they leave to give back one value after them; they read no other layer of the
//! class. The layers' weights move under the instance
//! (`transformer_layer_0.mixtral_sparse_moe_block.experts`).

use std::collections::{BTreeMap, BTreeSet};

use heck::ToUpperCamelCase;

use crate::lower::constant_names::ROLES;
use crate::lower::towers::tensor_locals;

use super::{MAX_INPUTS, MIN_ALONE_STATEMENTS, uncounted};
use crate::lower::module::{BlockClass, Layer, Module};
use crate::py::names::is_valid_class_name;
use crate::py::{Assign, Expr, Ref, Stmt};

/// A composite layer with a member whose name in its class is longer than this is a class
/// of its own: a decoder's attention (`cross_attention_layer_attention_output`, 38
/// characters) reads as people write it spelled out in the layer, a mixture of experts
/// (`mixtral_sparse_moe_block_sparse_feedforward_gate_dense`, 52) does not.
const NESTED_NAME: usize = 45;

/// Composite layers moved out of one class, at most.
const MAX_PER_CLASS: usize = 4;

/// Classes with more layers and buffers than this, or more statements, or names of more
/// words, are not searched (a hostile graph may make one of thousands; the search is
/// quadratic in them).
const MAX_MEMBERS: usize = 256;
const MAX_STATEMENTS: usize = 1024;
const MAX_WORDS: usize = super::MAX_PREFIX_TOKENS;

/// A composite layer of class `class`: its name (the words its members share), its members
/// (layers and buffers) and statements.
struct Composite {
    prefix: String,
    members: BTreeSet<String>,
    stmts: std::ops::Range<usize>,
    inputs: Vec<String>,
    output: String,
}

/// Moves composite layers of block classes into classes of their own; returns (class,
/// instance count) pairs.
pub fn extract(module: &mut Module) -> Vec<(String, usize)> {
    let mut report: Vec<(String, usize)> = Vec::new();
    let mut nested_classes = Vec::new();
    let count = module.classes.len();
    // A name two classes' composites would both take is neither's: the two differ (one
    // attends within windows, the other globally), and one nested beside one spelled out
    // would read as if they did not.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for class in &module.classes {
        if let Some(found) =
            (!class.unit && class.optional.is_empty()).then(|| composite(class)).flatten()
        {
            *seen.entry(uncounted(&found.prefix).to_upper_camel_case()).or_default() += 1;
        }
    }
    for k in 0..count {
        // A class may hold several composite layers, each its own class.
        for _ in 0..MAX_PER_CLASS {
            let class = &module.classes[k];
            if class.unit || !class.optional.is_empty() {
                break;
            }
            let Some(found) = composite(class) else { break };
            let name = uncounted(&found.prefix).to_upper_camel_case();
            let taken = module.classes.iter().chain(nested_classes.iter().map(|(_, c)| c));
            let taken = taken.map(|c| c.name.as_str()).any(|c| c == name);
            let torch = crate::py::names::is_torch_layer_class(&name);
            let shared = seen.get(&name).is_some_and(|&n| n > 1);
            if taken || shared || module.class_name == name || !is_valid_class_name(&name) || torch
            {
                break;
            }
            let nested = nest(module, k, &found, &name);
            let outer = &module.classes[k].name;
            report.push((name, module.layers.iter().filter(|l| calls(l, outer)).count()));
            nested_classes.push((k, nested));
        }
    }
    // Each before the class that uses it, in the order they were found.
    for (k, nested) in nested_classes.into_iter().rev() {
        module.classes.insert(k, nested);
    }
    report
}

/// Whether layer `l` is an instance of class `class`.
fn calls(l: &Layer, class: &str) -> bool {
    matches!(&l.ctor, Expr::Call(c) if c.func.as_name() == Some(class))
}

/// The class's composite layer, if it has one (the largest, where several would do).
fn composite(class: &BlockClass) -> Option<Composite> {
    let names: Vec<&str> = class
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .chain(class.buffers.iter().map(|b| b.name.as_str()))
        .collect();
    if names.len() > MAX_MEMBERS || class.body.len() > MAX_STATEMENTS {
        return None;
    }
    // Each prefix of words, with the members it groups; the longest prefix of each group.
    let mut groups: BTreeMap<BTreeSet<&str>, &str> = BTreeMap::new();
    for name in &names {
        for (cut, _) in name.match_indices('_').take(MAX_WORDS) {
            let prefix = &name[..cut];
            let members: BTreeSet<&str> = names
                .iter()
                .copied()
                .filter(|n| {
                    n.strip_prefix(prefix)
                        .and_then(|r| r.strip_prefix('_'))
                        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_lowercase()))
                })
                .collect();
            if members.is_empty() || members.len() == names.len() || names.contains(&prefix) {
                continue;
            }
            if members.len() == 1 && cuts_a_role(name, prefix) {
                continue;
            }
            let slot = groups.entry(members).or_insert(prefix);
            if prefix.len() > slot.len() {
                *slot = prefix;
            }
        }
    }
    let mut candidates: Vec<(BTreeSet<&str>, &str)> = groups
        .into_iter()
        .filter(|(members, _)| members.iter().any(|n| n.len() > NESTED_NAME))
        .collect();
    candidates.sort_by_key(|(members, prefix)| (std::cmp::Reverse(members.len()), *prefix));
    // Not one of two sibling layers of a kind (Moonshine's cross-attention beside its
    // self-attention, `moonshine_multi_head_attention_1_2` and `moonshine_multi_head_attention`):
    // both or neither would be classes.
    let sibling = |members: &BTreeSet<&str>, prefix: &str| {
        let kind = format!("{}_", uncounted(prefix));
        names.iter().any(|n| !members.contains(n) && n.starts_with(&kind))
    };
    candidates.retain(|(members, prefix)| !sibling(members, prefix));
    candidates.into_iter().find_map(|(members, prefix)| {
        let members: BTreeSet<String> = members.into_iter().map(String::from).collect();
        statements(class, prefix, members)
    })
}

/// Whether `prefix` cuts `name` inside a table's name of several words (`dim_t`, its
/// counter aside): a composite of that one table would be named after half of it.
fn cuts_a_role(name: &str, prefix: &str) -> bool {
    let base = crate::lower::scopes::without_counter(name).unwrap_or(name);
    ROLES.iter().any(|role| {
        base.strip_suffix(role)
            .is_some_and(|head| head.ends_with('_') && prefix.len() >= head.len())
    })
}

/// The composite layer of `members`, where its statements can move into a class.
fn statements(class: &BlockClass, prefix: &str, members: BTreeSet<String>) -> Option<Composite> {
    // Built alike by every instance: no constructor reads a class parameter.
    let fixed = class.layers.iter().filter(|l| members.contains(&l.name)).all(|l| {
        l.ctor
            .names()
            .iter()
            .all(|n| is_module(n) || n.starts_with(|c: char| c.is_ascii_uppercase()))
    }) && class
        .buffers
        .iter()
        .filter(|b| members.contains(&b.name))
        .all(|b| b.shape.iter().all(|d| d.as_int().is_some()));
    if !fixed {
        return None;
    }
    let body = &class.body;
    let reads = |s: &Assign| -> (bool, bool) {
        let attrs = s.value.self_attrs();
        (attrs.iter().any(|a| members.contains(*a)), attrs.iter().any(|a| !members.contains(*a)))
    };
    let own: Vec<usize> = (0..body.len()).filter(|&i| reads(&body[i]).0).collect();
    let (&first, &last) = (own.first()?, own.last()?);
    if (first..=last).any(|i| reads(&body[i]).1) {
        return None;
    }
    let returned: Vec<&str> = std::iter::once(class.output.as_str())
        .chain(class.extra_outputs.iter().map(String::as_str))
        .collect();
    let (mut a, mut b) = (first, last + 1);
    // Before: what only the composite reads.
    while a > 0 && !reads(&body[a - 1]).1 {
        let (_, now) = interface(body, a, b, &returned);
        let (_, wider) = interface(body, a - 1, b, &returned);
        if wider.len() > now.len() {
            break;
        }
        a -= 1;
    }
    // After: until it gives back one value, then what reads only that and its inputs.
    while interface(body, a, b, &returned).1.len() > 1 && b < body.len() && !reads(&body[b]).1 {
        b += 1;
    }
    loop {
        let (inputs, live) = interface(body, a, b, &returned);
        let Some(next) = body.get(b).filter(|s| !reads(s).1 && live.len() == 1) else { break };
        let own: BTreeSet<&str> = inputs.iter().chain(&live).map(String::as_str).collect();
        let names = next.value.names();
        let called = next.value.called_names();
        if !names
            .iter()
            .all(|n| *n == "self" || own.contains(n) || is_module(n) || called.contains(n))
        {
            break;
        }
        if interface(body, a, b + 1, &returned).1.len() != 1 {
            break;
        }
        b += 1;
    }
    let (inputs, live) = interface(body, a, b, &returned);
    let [output] = live.as_slice() else { return None };
    let worth = b - a >= MIN_ALONE_STATEMENTS;
    (worth && inputs.len() <= MAX_INPUTS).then(|| Composite {
        prefix: prefix.to_string(),
        members,
        stmts: a..b,
        inputs,
        output: output.clone(),
    })
}

/// `torch`, `F`, `nn`: names every body reads, no value of its own.
fn is_module(name: &str) -> bool {
    matches!(name, "torch" | "F" | "nn")
}

/// What statements `a..b` of `body` read from before them (in order of first read), and
/// which of their values is read after them (or returned).
fn interface(body: &[Assign], a: usize, b: usize, returned: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut bound: BTreeSet<&str> = BTreeSet::new();
    let mut inputs: Vec<String> = Vec::new();
    for s in &body[a..b] {
        // A function the file defines (`top_k`, `apply_rotary`) is no value either.
        let called = s.value.called_names();
        for n in s.value.names() {
            let value = n != "self" && !is_module(n) && !called.contains(&n);
            if value && !bound.contains(n) && !inputs.iter().any(|i| i == n) {
                inputs.push(n.to_string());
            }
        }
        bound.extend(s.target.bound_names());
    }
    // A value bound in the range is live where a later statement reads it before binding
    // it again, or the class returns it.
    let mut live: Vec<String> = Vec::new();
    for name in &bound {
        let mut read = returned.contains(name);
        for s in &body[b..] {
            if s.value.names().contains(name) {
                read = true;
                break;
            }
            if s.target.bound_names().contains(name) {
                read = false;
                break;
            }
        }
        if read || (b == body.len() && returned.contains(name)) {
            live.push(name.to_string());
        }
    }
    (inputs, live)
}

/// The nested class for `found` in class `k`, which calls an instance of it instead; the
/// weights' keys move under the instance.
fn nest(module: &mut Module, k: usize, found: &Composite, name: &str) -> BlockClass {
    let prefix = format!("{}_", found.prefix);
    let local = |n: &str| n.strip_prefix(&prefix).map(str::to_string);
    let outer = &mut module.classes[k];
    let at = outer.layers.iter().position(|l| found.members.contains(&l.name)).unwrap_or(0);
    let layers: Vec<Layer> = outer
        .layers
        .iter()
        .filter(|l| found.members.contains(&l.name))
        .map(|l| Layer { name: local(&l.name).unwrap_or_default(), ctor: l.ctor.clone() })
        .collect();
    let buffers = outer
        .buffers
        .iter()
        .filter(|b| found.members.contains(&b.name))
        .map(|b| crate::lower::module::Buffer {
            name: local(&b.name).unwrap_or_default(),
            ..b.clone()
        })
        .collect();
    let body: Vec<Assign> = outer.body[found.stmts.clone()]
        .iter()
        .map(|s| {
            let value = s.value.renamed(&|r| match r {
                Ref::SelfAttr(a) => local(a).map(|l| Expr::self_attr(&l)),
                Ref::Var(_) => None,
            });
            Assign::new(s.target.clone(), value)
        })
        .collect();
    // Values named after the composite's scope (`mixtral_sparse_moe_block_3`) say nothing
    // inside it.
    let temporaries: BTreeSet<String> = body
        .iter()
        .flat_map(|s| s.target.bound_names())
        .filter(|n| *n == found.prefix || n.starts_with(&prefix))
        .map(String::from)
        .collect();
    // An input named after the outer class's layer that made it (`feedforward_layernorm`),
    // or after a layer Keras named by its kind (`layer_normalization_22`, which the outer
    // class calls `layer_normalization_1`; `dense`), is `h` inside, as a norm's output is (or
    // `x`, where the body uses `h`; `x` or `inputs` where it has a norm of its own).
    let outer_layers: BTreeSet<&str> = outer.layers.iter().map(|l| l.name.as_str()).collect();
    let auto_named = |i: &str| super::is_unnamed_layer(i);
    let used: BTreeSet<&str> = body
        .iter()
        .flat_map(|s| s.value.names().into_iter().chain(s.target.bound_names()))
        .collect();
    let bound: BTreeSet<&str> = body.iter().flat_map(|s| s.target.bound_names()).collect();
    let renamed = found.inputs.iter().find(|i| {
        (outer_layers.contains(i.as_str()) || auto_named(i)) && !bound.contains(i.as_str())
    });
    // Not `h` where a norm inside will want it for its own output.
    let norm_inside = !crate::lower::roles::norm_layers(&layers).is_empty();
    let order = if norm_inside { ["x", "inputs", "h"] } else { ["h", "x", "inputs"] };
    let fresh =
        order.into_iter().find(|n| !used.contains(n) && !found.inputs.iter().any(|i| i == n));
    let (inputs, body): (Vec<String>, Vec<Assign>) = match renamed.zip(fresh) {
        Some((old, new)) => {
            let rename = |r: Ref<'_>| (r == Ref::Var(old)).then(|| Expr::name(new));
            let body = body
                .iter()
                .map(|s| Assign::new(s.target.clone(), s.value.renamed(&rename)))
                .collect();
            let inputs =
                found.inputs.iter().map(|i| if i == old { new.to_string() } else { i.clone() });
            (inputs.collect(), body)
        }
        None => (found.inputs.clone(), body),
    };
    // A layer's output is a tensor, and so is what the outer class computed as one before
    // the call (`patch_embedding.flatten(2)`, `self.position_embedding.weight[None]`); the
    // output is a tensor where the body makes one of those.
    let outer_known = outer.inputs.iter().zip(&outer.tensor_inputs).filter(|(_, t)| **t);
    let before: Vec<Stmt> =
        outer.body[..found.stmts.start].iter().cloned().map(Stmt::Assign).collect();
    let before = tensor_locals(&before, outer_known.map(|(i, _)| i.clone()).collect());
    let tensor_inputs: Vec<bool> = found
        .inputs
        .iter()
        .map(|i| renamed.is_some_and(|r| r == i) || before.contains(i))
        .collect();
    let known = inputs.iter().zip(&tensor_inputs).filter(|(_, t)| **t).map(|(i, _)| i.clone());
    let inner: Vec<Stmt> = body.iter().cloned().map(Stmt::Assign).collect();
    let tensor_output = tensor_locals(&inner, known.collect()).contains(&found.output);
    // The instance is named without Keras' counters where that name is free in the class
    // (`moonshine_multi_head_attention`, not `moonshine_multi_head_attention_1_2`).
    let short = uncounted(&found.prefix);
    let free = |n: &str| {
        !outer.layers.iter().any(|l| l.name == n) && !outer.buffers.iter().any(|b| b.name == n)
    };
    let free = free(short)
        && !outer.attributes.iter().any(|a| a == short)
        && !outer.params.iter().any(|p| p.name == short);
    let instance_name = if free { short.to_string() } else { found.prefix.clone() };
    let call = Assign::new(
        Expr::name(&found.output),
        Expr::self_attr(&instance_name)
            .called(found.inputs.iter().map(Expr::name).collect(), vec![]),
    );
    outer.body.splice(found.stmts.clone(), [call]);
    outer.layers.retain(|l| !found.members.contains(&l.name));
    outer.buffers.retain(|b| !found.members.contains(&b.name));
    let instance =
        Layer { name: instance_name.clone(), ctor: Expr::name(name).called(vec![], vec![]) };
    outer.layers.insert(at.min(outer.layers.len()), instance);
    let outer_name = outer.name.clone();
    // Each instance's weights, under the composite's instance.
    let instances = module.instance_paths(&outer_name);
    for (key, _) in &mut module.weights {
        let Some(inst) = instances.iter().find(|i| key.starts_with(i.as_str())) else { continue };
        let rest = &key[inst.len()..];
        let (member, tail) = rest.split_once('.').map_or((rest, ""), |(m, t)| (m, t));
        if found.members.contains(member) {
            let moved = local(member).unwrap_or_default();
            let dot = if tail.is_empty() { "" } else { "." };
            *key = format!("{inst}{instance_name}.{moved}{dot}{tail}");
        }
    }
    BlockClass {
        name: name.to_string(),
        params: Vec::new(),
        layers,
        buffers,
        body,
        optional: Vec::new(),
        attributes: Vec::new(),
        tensor_inputs,
        inputs,
        output: found.output.clone(),
        extra_outputs: Vec::new(),
        tensor_output,
        size_inputs: Vec::new(),
        own_values: temporaries.clone(),
        temporaries,
        unit: false,
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;

    /// A composite reading a tensor its block computed before calling it (`pre * 2.0`, not
    /// a layer's output) is told it is one, and gives one back: its `forward` is hinted.
    #[test]
    fn a_composite_of_tensors_computed_before_it_is_hinted() {
        let mut g = TestGraph::new();
        let mut x = g.input("x", &[-1, 8]);
        let dense = |g: &mut TestGraph, scope: &str, y| {
            let w = g.variable(&format!("{scope}/kernel"), weights(&[8, 8]));
            g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[])
        };
        // The block's own layers share the composite's layers' names: those keep its scope,
        // 50 characters, and it becomes a class.
        let moe = "sparse_mixture_of_experts_block";
        for i in 0..2 {
            let layer = format!("m/encoder_layer_{i}");
            let pre = dense(&mut g, &format!("{layer}/first_expert_dense"), x);
            let two = g.constant(&format!("{layer}/two"), Tensor::from_f32(vec![], &[2.0]));
            let twice = g.op(&format!("{layer}/mul"), "Mul", &[pre, two], &[]);
            // Seven statements, the block's own product read after them too.
            let mut a = dense(&mut g, &format!("{layer}/{moe}/first_expert_dense"), pre);
            let mut b = dense(&mut g, &format!("{layer}/{moe}/second_expert_dense"), twice);
            for k in 0..2 {
                a = g.op(&format!("{layer}/{moe}/relu_{k}"), "Relu", &[a], &[]);
                b = g.op(&format!("{layer}/{moe}/tanh_{k}"), "Tanh", &[b], &[]);
            }
            let sum = g.op(&format!("{layer}/{moe}/add"), "AddV2", &[a, b], &[]);
            let sum = g.op(&format!("{layer}/add"), "AddV2", &[sum, twice], &[]);
            x = dense(&mut g, &format!("{layer}/second_expert_dense"), sum);
        }
        let graph = g.finish(&[x]);
        let (m, _) = crate::lower::lower(&graph, "M", "test").expect("lowers");
        let names: Vec<&str> = m.classes.iter().map(|c| c.name.as_str()).collect();
        let class = m.classes.iter().find(|c| c.name == "SparseMixtureOfExpertsBlock");
        let class = class.unwrap_or_else(|| panic!("no composite class: {names:?}"));
        assert_eq!(
            (class.tensor_inputs.as_slice(), class.tensor_output),
            (&[true, true][..], true)
        );
    }

    /// A composite of one long-named member (a position encoding's table, read by seven
    /// statements) is a class too: the table is its own short-named buffer.
    #[test]
    fn a_composite_of_one_member_is_a_class() {
        let mut g = TestGraph::new();
        let mut x = g.input("x", &[-1, 8]);
        let scope = "sinusoidal_position_encoding_of_the_image";
        for i in 0..2 {
            let layer = format!("m/encoder_layer_{i}");
            let w = g.variable(&format!("{layer}/dense/kernel"), weights(&[8, 8]));
            let h = g.op(&format!("{layer}/dense/MatMul"), "MatMul", &[x, w], &[]);
            let freq = (0..8).map(|k| k as f32 + 1.0).collect::<Vec<_>>();
            let freq =
                g.constant(&format!("{layer}/{scope}/freq"), Tensor::from_f32(vec![8], &freq));
            let mut p = g.op(&format!("{layer}/{scope}/mul"), "Mul", &[h, freq], &[]);
            for k in 0..3 {
                p = g.op(&format!("{layer}/{scope}/sin_{k}"), "Sin", &[p], &[]);
                p = g.op(&format!("{layer}/{scope}/cos_{k}"), "Cos", &[p], &[]);
            }
            x = g.op(&format!("{layer}/add"), "AddV2", &[h, p], &[]);
        }
        let graph = g.finish(&[x]);
        let (m, _) = crate::lower::lower(&graph, "M", "test").expect("lowers");
        let names: Vec<&str> = m.classes.iter().map(|c| c.name.as_str()).collect();
        let class = m.classes.iter().find(|c| c.name == "SinusoidalPositionEncodingOfTheImage");
        let class = class.unwrap_or_else(|| panic!("no composite class: {names:?}"));
        let buffers: Vec<&str> = class.buffers.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(buffers, ["const"]);
    }

    /// A one-table composite is cut before the table's name of several words, counter aside.
    #[test]
    fn a_tables_name_is_not_cut() {
        use super::cuts_a_role;
        assert!(cuts_a_role("position_encoding_dim_t", "position_encoding_dim"));
        assert!(cuts_a_role("position_encoding_inv_freq_2", "position_encoding_inv"));
        assert!(!cuts_a_role("position_encoding_dim_t", "position_encoding"));
        assert!(!cuts_a_role("position_encoding_const", "position_encoding"));
    }
}
