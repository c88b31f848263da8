//! One block class: the first member's layers and statements with local names, constructor
//! arguments that differ between members as parameters, and an instance per member.

use std::collections::{BTreeMap, BTreeSet};

use super::{Member, kind_and_counter, local_names, positional_names};
use crate::lower::module::{BlockClass, Buffer, Layer, Module};
use crate::py::names::{Scope, identifier};
use crate::py::printer::flat;
use crate::py::{Assign, Call, Expr, Ref};

/// Constructor parameters of a class: name, and the value each instance passes.
#[derive(Default)]
struct Params(Vec<(String, Vec<Expr>)>);

impl Params {
    /// `keep` when every instance passes the same value, else the parameter (shared by every
    /// slot with the same values), named after `label`.
    fn slot(&mut self, label: &str, layer: &str, values: Vec<Expr>, keep: &Expr) -> Expr {
        if values.iter().all(|v| *v == values[0]) {
            return keep.clone();
        }
        if let Some((n, _)) = self.0.iter().find(|(_, v)| *v == values) {
            return Expr::name(n);
        }
        let base = identifier(label);
        let n = if self.0.iter().any(|(p, _)| *p == base) {
            identifier(&format!("{layer}_{base}"))
        } else {
            base
        };
        self.0.push((n.clone(), values));
        Expr::name(n)
    }
}

/// A layer of the class: the first instance's constructor with the arguments that differ
/// between instances replaced by parameters.
fn class_layer(name: &str, ctors: &[&Expr], params: &mut Params) -> Layer {
    let Expr::Call(first) = ctors[0] else {
        return Layer { name: name.to_string(), ctor: ctors[0].clone() };
    };
    let calls: Vec<Option<&Call>> =
        ctors.iter().map(|c| if let Expr::Call(c) = c { Some(c.as_ref()) } else { None }).collect();
    let names = positional_names(&flat(&first.func));
    let args = first
        .args
        .iter()
        .enumerate()
        .map(|(j, a)| {
            let values = calls
                .iter()
                .map(|c| c.and_then(|c| c.args.get(j)).cloned().unwrap_or(Expr::none()))
                .collect();
            params.slot(names.get(j).copied().unwrap_or("arg"), name, values, a)
        })
        .collect();
    let kwargs = first
        .kwargs
        .iter()
        .map(|(key, v)| {
            let values = calls
                .iter()
                .map(|c| {
                    c.and_then(|c| c.kwargs.iter().find(|(k, _)| k == key))
                        .map(|(_, v)| v.clone())
                        .unwrap_or(Expr::none())
                })
                .collect();
            (key.clone(), params.slot(key, name, values, v))
        })
        .collect();
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

/// Builds the class of `group` (its first member's statements with local names) into
/// `module.classes`, and the instances that replace the members.
pub(super) fn build_class(
    name: &str,
    group: &[usize],
    members: &[Member],
    module: &mut Module,
    stmts: &[Assign],
    out: &mut Instances,
) {
    let first = &members[group[0]];
    // Local names from the first instance.
    let mut attrs = Scope::for_attributes();
    let globals: Vec<&str> = first
        .layers
        .iter()
        .map(|&l| module.layers[l].name.as_str())
        .chain(first.buffers.iter().map(|&b| module.buffers[b].name.as_str()))
        .collect();
    let names = local_names(&globals, &first.tag);
    let local_layers: Vec<String> =
        first.layers.iter().map(|&l| attrs.fresh(&names[module.layers[l].name.as_str()])).collect();
    let mut params = Params::default();
    let mut layers = Vec::new();
    for (k, local) in local_layers.iter().enumerate() {
        let ctors: Vec<&Expr> =
            group.iter().map(|&i| &module.layers[members[i].layers[k]].ctor).collect();
        layers.push(class_layer(local, &ctors, &mut params));
    }
    let local_buffers: Vec<String> = first
        .buffers
        .iter()
        .map(|&b| attrs.fresh(&names[module.buffers[b].name.as_str()]))
        .collect();
    let buffers = class_buffers(group, members, module, &local_buffers, &mut params);
    let (body, inputs, output) = class_forward(first, module, stmts, &local_layers, &local_buffers);
    module.classes.push(BlockClass {
        name: name.to_string(),
        params: params.0.iter().map(|(n, _)| n.clone()).collect(),
        layers,
        buffers,
        body,
        inputs,
        output,
    });
    for (gi, &i) in group.iter().enumerate() {
        let m = &members[i];
        let inst = m.instance.clone();
        let args: Vec<Expr> = params.0.iter().map(|(_, v)| v[gi].clone()).collect();
        let layer = Layer { name: inst.clone(), ctor: Expr::name(name).called(args, vec![]) };
        let call = Assign::new(
            Expr::name(&m.output),
            Expr::self_attr(&inst).called(m.inputs.iter().map(Expr::name).collect(), vec![]),
        );
        out.by_member.insert(i, (layer, call));
        for (k, &l) in m.layers.iter().enumerate() {
            out.renames
                .insert(module.layers[l].name.clone(), format!("{inst}.{}", local_layers[k]));
        }
        for (k, &b) in m.buffers.iter().enumerate() {
            out.renames
                .insert(module.buffers[b].name.clone(), format!("{inst}.{}", local_buffers[k]));
        }
    }
}

/// Buffers: one per position; dims that differ between instances are parameters.
fn class_buffers(
    group: &[usize],
    members: &[Member],
    module: &Module,
    local_buffers: &[String],
    params: &mut Params,
) -> Vec<Buffer> {
    let first = &members[group[0]];
    let mut buffers = Vec::new();
    for (k, &b) in first.buffers.iter().enumerate() {
        let buf = &module.buffers[b];
        let mut shape = Vec::new();
        for (d, dim) in buf.shape.iter().enumerate() {
            let values: Vec<Expr> = group
                .iter()
                .map(|&i| module.buffers[members[i].buffers[k]].shape[d].clone())
                .collect();
            let label = format!("{}_size", local_buffers[k]);
            shape.push(params.slot(&label, &local_buffers[k], values, dim));
        }
        buffers.push(Buffer {
            name: local_buffers[k].clone(),
            torch_dtype: buf.torch_dtype,
            shape,
        });
    }
    buffers
}

/// The class's `forward`: the first member's statements with local names, its inputs and its
/// output.
fn class_forward(
    first: &Member,
    module: &Module,
    stmts: &[Assign],
    local_layers: &[String],
    local_buffers: &[String],
) -> (Vec<Assign>, Vec<String>, String) {
    let mut attrs: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, &l) in first.layers.iter().enumerate() {
        attrs.insert(&module.layers[l].name, &local_layers[k]);
    }
    for (k, &b) in first.buffers.iter().enumerate() {
        attrs.insert(&module.buffers[b].name, &local_buffers[k]);
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
    let globals: Vec<&str> =
        first.inputs[1..].iter().map(String::as_str).chain(assigned.iter().copied()).collect();
    let mut names = local_names(&globals, &first.tag);
    // Names a pass gave (`q`, `mask`) carry counters only `forward`'s many layers needed
    // (`q_6`, `q_7`): inside the class they are numbered afresh.
    for (global, local) in names.iter_mut() {
        let base = kind_and_counter(global).unwrap_or(global);
        if crate::ir::ROLES.contains(&base) {
            *local = base.to_string();
        }
    }
    for other in &first.inputs[1..] {
        let local = locals.fresh(&names[other.as_str()]);
        vars.insert(other.clone(), local.clone());
        inputs.push(local);
    }
    // In the order the code makes them, so that fresh numbers count up through the body.
    for v in own.iter().flat_map(|s| s.target.bound_names()) {
        if vars.contains_key(v) {
            continue;
        }
        let local = if v == "x" {
            if locals.claim("x") { "x".to_string() } else { locals.fresh("y") }
        } else {
            locals.fresh(&names[v])
        };
        vars.insert(v.to_string(), local);
    }
    let rename = |r: Ref<'_>| match r {
        Ref::Var(v) => vars.get(v).map(Expr::name),
        Ref::SelfAttr(a) => attrs.get(a).map(|l| Expr::self_attr(l)),
    };
    let body = own
        .iter()
        .map(|s| Assign::new(s.target.renamed(&rename), s.value.renamed(&rename)))
        .collect();
    let output = vars[&first.output].clone();
    (body, inputs, output)
}
