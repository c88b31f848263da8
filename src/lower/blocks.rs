//! Repeated blocks: where sibling scopes (`conv3_block2`, `conv3_block3`, ...) hold the same
//! computation, emit one `nn.Module` class for it and one instance per scope, with the
//! weights under nested state_dict keys (`conv3_block2.conv1.weight`).
//!
//! Runs on the lowered statements. A scope prefix ending in a numbered token is a candidate
//! block; a candidate qualifies when its statements are contiguous, it moves no buffers or
//! stubs, reads exactly one outside value and leaves exactly one value live. Candidates with
//! the same structure (statements and layer types, constructor arguments aside) share a
//! class; constructor arguments that differ between instances become class parameters.

use std::collections::{BTreeMap, BTreeSet};

use heck::ToUpperCamelCase;

use super::{Span, Stmt};
use crate::py::names::{Scope, identifier};
use crate::py::{BlockClass, Layer, Module, PyExpr};

/// A block reads at most this many outside values.
const MAX_INPUTS: usize = 3;

/// Fewer statements than this do not make a block class.
const MIN_STATEMENTS: usize = 4;

/// Names of the positional arguments of the layers we emit, to name class parameters.
fn positional_names(func: &str) -> &'static [&'static str] {
    match func {
        "nn.Conv2d" => &["in_channels", "out_channels", "kernel_size"],
        "nn.BatchNorm2d" | "nn.BatchNorm1d" => &["num_features"],
        "nn.Linear" => &["in_features", "out_features"],
        "nn.MaxPool2d" | "nn.AvgPool2d" => &["kernel_size", "stride"],
        "nn.LocalResponseNorm" => &["size"],
        _ => &[],
    }
}

struct Member {
    prefix: String,
    family: String,
    spans: std::ops::Range<usize>,
    stmts: std::ops::Range<usize>,
    layers: Vec<usize>,
    buffers: Vec<usize>,
    /// Outside values read, in order of first use.
    inputs: Vec<String>,
    output: String,
    signature: String,
}

fn targets(s: &Stmt) -> Vec<String> {
    s.target
        .split(", ")
        .map(|t| t.trim_end_matches(',').to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `var` is read after statement `from` before being assigned again.
fn live_after(var: &str, stmts: &[Stmt], from: usize, returns: &[String]) -> bool {
    for s in &stmts[from..] {
        if s.expr.identifiers().iter().any(|i| i == var) {
            return true;
        }
        if targets(s).iter().any(|t| t == var) {
            return false;
        }
    }
    returns
        .iter()
        .any(|r| crate::py::expr::identifier_spans(r).iter().any(|&(a, b)| &r[a..b] == var))
}

/// `1_conv` → `conv1`: a leading number reads better at the end.
fn local_name(global: &str, prefix: &str) -> String {
    let p = format!("{}_", identifier(prefix));
    let rest = global.strip_prefix(&p).unwrap_or(global);
    match rest.split_once('_') {
        Some((num, tail)) if num.chars().all(|c| c.is_ascii_digit()) && !tail.is_empty() => {
            format!("{tail}{num}")
        }
        _ => rest.to_string(),
    }
}

fn class_name(family: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for t in family.split('_') {
        let w: String = t.chars().filter(|c| c.is_ascii_alphabetic()).collect();
        if !w.is_empty() && words.last() != Some(&w) {
            words.push(w);
        }
    }
    let name = words.join("_").to_upper_camel_case();
    if name.is_empty() { "Block".into() } else { name }
}

fn candidates(spans: &[Span]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in spans {
        let tokens: Vec<&str> = s.scope.split('_').collect();
        // Whole scopes too: `transformer_layer_0` is a block of its own nested ops.
        for k in 1..=tokens.len() {
            if !tokens[k - 1].chars().any(|c| c.is_ascii_digit()) {
                continue;
            }
            let prefix = tokens[..k].join("_");
            let mut fam: Vec<String> = tokens[..k - 1].iter().map(|t| t.to_string()).collect();
            fam.push(
                tokens[k - 1].chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect(),
            );
            out.insert(prefix, fam.join("_"));
        }
    }
    out
}

fn analyse(
    prefix: &str,
    family: &str,
    spans: &[Span],
    stmts: &[Stmt],
    module: &Module,
    universe: &BTreeSet<String>,
    returns: &[String],
) -> Option<Member> {
    let inside = |s: &Span| s.scope == prefix || s.scope.starts_with(&format!("{prefix}_"));
    let idx: Vec<usize> = (0..spans.len()).filter(|&i| inside(&spans[i])).collect();
    let (&first, &last) = (idx.first()?, idx.last()?);
    if idx.len() < 2 || last - first + 1 != idx.len() || idx.iter().any(|&i| !spans[i].movable) {
        return None;
    }
    let range = spans[first].stmts.start..spans[last].stmts.end;
    let layers: Vec<usize> = idx.iter().flat_map(|&i| spans[i].layers.clone()).collect();
    let buffers: Vec<usize> = idx.iter().flat_map(|&i| spans[i].buffers.clone()).collect();
    // A class must be worth reading: a conv + batch-norm pair stays inline.
    if range.len() < MIN_STATEMENTS || layers.is_empty() {
        return None;
    }
    // A few values in (a transformer layer reads its input and the mask), one value out.
    let mut defined = BTreeSet::new();
    let mut inputs: Vec<String> = Vec::new();
    for s in &stmts[range.clone()] {
        for id in s.expr.identifiers() {
            if universe.contains(&id) && !defined.contains(&id) && !inputs.contains(&id) {
                inputs.push(id);
            }
        }
        defined.extend(targets(s));
    }
    let outputs: Vec<&String> =
        defined.iter().filter(|v| live_after(v, stmts, range.end, returns)).collect();
    if !(1..=MAX_INPUTS).contains(&inputs.len()) || outputs.len() != 1 {
        return None;
    }
    let output = outputs[0].clone();
    // Structure: statements with canonical names, and the layers' types and argument layout.
    let mut map = BTreeMap::new();
    for (k, &l) in layers.iter().enumerate() {
        map.insert(format!("self.{}", module.layers[l].name), format!("self.L{k}"));
    }
    for (k, &b) in buffers.iter().enumerate() {
        map.insert(format!("self.{}", module.buffers[b].name), format!("self.B{k}"));
    }
    for (k, i) in inputs.iter().enumerate() {
        map.insert(i.clone(), format!("IN{k}"));
    }
    // Every assignment gets a fresh canonical name (SSA), so reusing `x` does not matter.
    let mut next = 0;
    let mut signature = String::new();
    for s in &stmts[range.clone()] {
        let expr = s.expr.renamed(&map);
        let mut names = Vec::new();
        for t in targets(s) {
            map.insert(t, format!("V{next}"));
            names.push(format!("V{next}"));
            next += 1;
        }
        signature.push_str(&format!("{} = {expr}\n", names.join(", ")));
    }
    signature.push_str(&format!("return {}\n", map[&output]));
    for &b in &buffers {
        let buf = &module.buffers[b];
        signature.push_str(&format!("buffer {} rank {}\n", buf.torch_dtype, buf.shape.len()));
    }
    for &l in &layers {
        match &module.layers[l].ctor {
            PyExpr::Call { func, args, kwargs } => {
                let keys: Vec<&str> = kwargs.iter().map(|(k, _)| k.as_str()).collect();
                signature.push_str(&format!("{func}/{}/{keys:?}\n", args.len()));
            }
            other => signature.push_str(&format!("{other}\n")),
        }
    }
    Some(Member {
        prefix: prefix.to_string(),
        family: family.to_string(),
        spans: first..last + 1,
        stmts: range,
        layers,
        buffers,
        inputs,
        output,
        signature,
    })
}

/// The one member whose constructor arguments differ, somewhere, from all the others (which
/// agree there).
fn lone_outlier(group: &[usize], members: &[Member], module: &Module) -> Option<usize> {
    let texts: Vec<Vec<String>> = group
        .iter()
        .map(|&i| {
            members[i]
                .layers
                .iter()
                .flat_map(|&l| match &module.layers[l].ctor {
                    PyExpr::Call { args, kwargs, .. } => args
                        .iter()
                        .map(|a| a.to_string())
                        .chain(kwargs.iter().map(|(k, v)| format!("{k}={v}")))
                        .collect::<Vec<_>>(),
                    other => vec![other.to_string()],
                })
                .collect()
        })
        .collect();
    let positions = texts.first()?.len();
    for p in 0..positions {
        for (k, t) in texts.iter().enumerate() {
            let others: Vec<&String> =
                texts.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, o)| &o[p]).collect();
            if others.iter().all(|o| *o == others[0]) && *others[0] != t[p] {
                return Some(group[k]);
            }
        }
    }
    None
}

/// Finds repeated blocks, moves them into classes; returns (class, instance count) pairs.
pub fn extract(
    module: &mut Module,
    stmts: &mut Vec<Stmt>,
    spans: &[Span],
    returns: &[String],
) -> Vec<(String, usize)> {
    let mut universe: BTreeSet<String> = module.params.iter().cloned().collect();
    for s in stmts.iter() {
        universe.extend(targets(s));
    }
    let mut members: Vec<Member> = candidates(spans)
        .iter()
        .filter_map(|(p, f)| analyse(p, f, spans, stmts, module, &universe, returns))
        .collect();
    // Larger blocks first; ties by position.
    members.sort_by_key(|m| (std::cmp::Reverse(m.spans.len()), m.spans.start));
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        match groups.iter_mut().find(|(sig, _)| *sig == m.signature) {
            Some((_, g)) => g.push(i),
            None => groups.push((m.signature.clone(), vec![i])),
        }
    }
    // A member that alone differs from all the others in some argument (one changed kernel
    // size among twelve blocks) stays inline: making it a parameter would change every
    // instance's line, and a regenerated model should differ only where the model did.
    for (_, g) in groups.iter_mut() {
        while g.len() >= 3 {
            let Some(odd) = lone_outlier(g, &members, module) else { break };
            g.retain(|&i| i != odd);
        }
    }
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    let mut chosen: Vec<(usize, Vec<usize>)> = Vec::new(); // (class index, members)
    for (_, g) in &groups {
        let free: Vec<usize> = g
            .iter()
            .copied()
            .filter(|&i| members[i].spans.clone().all(|s| !taken.contains(&s)))
            .collect();
        if free.len() < 2 {
            continue;
        }
        for &i in &free {
            taken.extend(members[i].spans.clone());
        }
        chosen.push((chosen.len(), free));
    }
    if chosen.is_empty() {
        return Vec::new();
    }

    // Class names must not shadow the model class or what the file imports (`F`, `nn`, ...).
    let mut class_names: BTreeSet<String> =
        [module.class_name.as_str(), "F", "Nn", "Torch", "Json", "Os", "Struct"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let mut report = Vec::new();
    // Per member: (instance layer, call statement).
    let mut instance_of: BTreeMap<usize, (Layer, Stmt)> = BTreeMap::new();
    let mut weight_renames: BTreeMap<String, String> = BTreeMap::new();
    for (_, group) in &chosen {
        let first = &members[group[0]];
        let base = class_name(&first.family);
        let mut name = base.clone();
        let mut k = 2;
        while class_names.contains(&name) || !crate::py::names::is_valid_class_name(&name) {
            name = format!("{base}{k}");
            k += 1;
        }
        class_names.insert(name.clone());
        // Local names from the first instance.
        let mut attrs = Scope::for_attributes();
        let local_layers: Vec<String> = first
            .layers
            .iter()
            .map(|&l| attrs.fresh(&local_name(&module.layers[l].name, &first.prefix)))
            .collect();
        // Constructor arguments that differ between instances become parameters.
        let ctors = |m: &Member| -> Vec<PyExpr> {
            m.layers.iter().map(|&l| module.layers[l].ctor.clone()).collect()
        };
        let all: Vec<Vec<PyExpr>> = group.iter().map(|&i| ctors(&members[i])).collect();
        let mut params: Vec<(String, Vec<String>)> = Vec::new();
        let mut class_layers = Vec::new();
        for (k, ctor) in all[0].iter().enumerate() {
            let PyExpr::Call { func, args, kwargs } = ctor else {
                class_layers.push(Layer { name: local_layers[k].clone(), ctor: ctor.clone() });
                continue;
            };
            let func_name = func.to_string();
            let mut slot = |label: &str, values: Vec<String>, keep: &PyExpr| -> PyExpr {
                if values.iter().all(|v| *v == values[0]) {
                    return keep.clone();
                }
                if let Some((n, _)) = params.iter().find(|(_, v)| *v == values) {
                    return PyExpr::name(n.clone());
                }
                let base = identifier(label);
                let n = if params.iter().any(|(p, _)| *p == base) {
                    identifier(&format!("{}_{base}", local_layers[k]))
                } else {
                    base
                };
                params.push((n.clone(), values));
                PyExpr::name(n)
            };
            let arg_of = |c: &PyExpr, j: usize| -> String {
                match c {
                    PyExpr::Call { args, .. } => {
                        args.get(j).map(|a| a.to_string()).unwrap_or_default()
                    }
                    _ => String::new(),
                }
            };
            let kw_of = |c: &PyExpr, key: &str| -> String {
                match c {
                    PyExpr::Call { kwargs, .. } => kwargs
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default(),
                    _ => String::new(),
                }
            };
            let names = positional_names(&func_name);
            let new_args: Vec<PyExpr> = args
                .iter()
                .enumerate()
                .map(|(j, a)| {
                    let label = names.get(j).copied().unwrap_or("arg");
                    slot(label, all.iter().map(|c| arg_of(&c[k], j)).collect(), a)
                })
                .collect();
            let new_kwargs: Vec<(String, PyExpr)> = kwargs
                .iter()
                .map(|(key, v)| {
                    (key.clone(), slot(key, all.iter().map(|c| kw_of(&c[k], key)).collect(), v))
                })
                .collect();
            class_layers.push(Layer {
                name: local_layers[k].clone(),
                ctor: PyExpr::Call { func: func.clone(), args: new_args, kwargs: new_kwargs },
            });
        }
        // Buffers: one per position; dims that differ between instances are parameters.
        let local_buffers: Vec<String> = first
            .buffers
            .iter()
            .map(|&b| attrs.fresh(&local_name(&module.buffers[b].name, &first.prefix)))
            .collect();
        let mut class_buffers = Vec::new();
        for (k, &b) in first.buffers.iter().enumerate() {
            let buf = &module.buffers[b];
            let mut dims = Vec::new();
            for d in 0..buf.shape.len() {
                let values: Vec<String> = group
                    .iter()
                    .map(|&i| module.buffers[members[i].buffers[k]].shape[d].to_string())
                    .collect();
                if values.iter().all(|v| *v == values[0]) {
                    dims.push(PyExpr::int(buf.shape[d] as i64));
                } else if let Some((n, _)) = params.iter().find(|(_, v)| *v == values) {
                    dims.push(PyExpr::name(n.clone()));
                } else {
                    let n = identifier(&format!("{}_size", local_buffers[k]));
                    params.push((n.clone(), values));
                    dims.push(PyExpr::name(n));
                }
            }
            class_buffers.push((local_buffers[k].clone(), buf.torch_dtype, dims));
        }
        // The forward: the first instance's statements with local names.
        let mut locals = Scope::for_locals();
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (k, &l) in first.layers.iter().enumerate() {
            map.insert(
                format!("self.{}", module.layers[l].name),
                format!("self.{}", local_layers[k]),
            );
        }
        for (k, &b) in first.buffers.iter().enumerate() {
            map.insert(
                format!("self.{}", module.buffers[b].name),
                format!("self.{}", local_buffers[k]),
            );
        }
        let assigned: BTreeSet<String> =
            stmts[first.stmts.clone()].iter().flat_map(targets).collect();
        let main = &first.inputs[0];
        let input_local = if main == "x" || !assigned.contains("x") { "x" } else { "inputs" };
        locals.claim(input_local);
        map.insert(main.clone(), input_local.to_string());
        let mut input_locals = vec![input_local.to_string()];
        for other in &first.inputs[1..] {
            let local = locals.fresh(&local_name(other, &first.prefix));
            map.insert(other.clone(), local.clone());
            input_locals.push(local);
        }
        for v in &assigned {
            if map.contains_key(v) {
                continue;
            }
            let local = if v == "x" {
                if locals.claim("x") { "x".to_string() } else { locals.fresh("y") }
            } else {
                locals.fresh(&local_name(v, &first.prefix))
            };
            map.insert(v.clone(), local);
        }
        let body: Vec<Stmt> = stmts[first.stmts.clone()]
            .iter()
            .map(|s| Stmt {
                target: targets(s).iter().map(|t| map[t].clone()).collect::<Vec<_>>().join(", "),
                expr: s.expr.renamed(&map),
            })
            .collect();
        module.classes.push(BlockClass {
            name: name.clone(),
            params: params.iter().map(|(n, _)| n.clone()).collect(),
            layers: class_layers,
            buffers: class_buffers,
            body,
            inputs: input_locals,
            output: map[&first.output].clone(),
        });
        for (gi, &i) in group.iter().enumerate() {
            let m = &members[i];
            let inst = identifier(&m.prefix);
            let args: Vec<PyExpr> =
                params.iter().map(|(_, v)| PyExpr::Atom(v[gi].clone())).collect();
            let layer = Layer { name: inst.clone(), ctor: PyExpr::call(&name, args) };
            let call = Stmt {
                target: m.output.clone(),
                expr: PyExpr::call(
                    &format!("self.{inst}"),
                    m.inputs.iter().map(|i| PyExpr::name(i.clone())).collect(),
                ),
            };
            instance_of.insert(i, (layer, call));
            for (k, &l) in m.layers.iter().enumerate() {
                weight_renames
                    .insert(module.layers[l].name.clone(), format!("{inst}.{}", local_layers[k]));
            }
            for (k, &b) in m.buffers.iter().enumerate() {
                weight_renames
                    .insert(module.buffers[b].name.clone(), format!("{inst}.{}", local_buffers[k]));
            }
        }
        report.push((name, group.len()));
    }

    // Rewrite statements, layers and weight keys.
    let by_first_stmt: BTreeMap<usize, usize> =
        instance_of.keys().map(|&i| (members[i].stmts.start, i)).collect();
    let by_first_layer: BTreeMap<usize, usize> =
        instance_of.keys().map(|&i| (members[i].layers[0], i)).collect();
    let moved_stmts: BTreeSet<usize> =
        instance_of.keys().flat_map(|&i| members[i].stmts.clone()).collect();
    let moved_layers: BTreeSet<usize> =
        instance_of.keys().flat_map(|&i| members[i].layers.clone()).collect();
    let mut new_stmts = Vec::with_capacity(stmts.len());
    for (k, s) in stmts.iter().enumerate() {
        if let Some(i) = by_first_stmt.get(&k) {
            new_stmts.push(instance_of[i].1.clone());
        } else if !moved_stmts.contains(&k) {
            new_stmts.push(s.clone());
        }
    }
    *stmts = new_stmts;
    let mut new_layers = Vec::with_capacity(module.layers.len());
    for (k, l) in module.layers.iter().enumerate() {
        if let Some(i) = by_first_layer.get(&k) {
            new_layers.push(instance_of[i].0.clone());
        } else if !moved_layers.contains(&k) {
            new_layers.push(l.clone());
        }
    }
    module.layers = new_layers;
    let moved_buffers: BTreeSet<usize> =
        instance_of.keys().flat_map(|&i| members[i].buffers.clone()).collect();
    let mut k = 0;
    module.buffers.retain(|_| {
        k += 1;
        !moved_buffers.contains(&(k - 1))
    });
    for (key, _) in module.weights.iter_mut() {
        let (head, rest) = key.split_once('.').map_or((key.as_str(), None), |(h, r)| (h, Some(r)));
        if let Some(new) = weight_renames.get(head) {
            *key = match rest {
                Some(r) => format!("{new}.{r}"),
                None => new.clone(),
            };
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::local_name;
    use crate::ops::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn class_names_from_scope_families() {
        assert_eq!(super::class_name("conv2_block#"), "ConvBlock");
        assert_eq!(super::class_name("transformer_layer_#"), "TransformerLayer");
        assert_eq!(super::class_name("###"), "Block");
    }

    #[test]
    fn local_names_read_naturally() {
        assert_eq!(local_name("conv2_block2_1_conv", "conv2_block2"), "conv1");
        assert_eq!(local_name("conv2_block2_out", "conv2_block2"), "out");
        assert_eq!(local_name("x", "conv2_block2"), "x");
    }

    /// Three sibling residual blocks; the first reads the permuted input, so its statements
    /// differ and it stays inline, the other two share a class.
    #[test]
    fn sibling_blocks_share_a_class() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("SAME"))];
        for b in 1..=3 {
            let c = 4;
            let w1 = g.constant(&format!("w{b}a"), weights(&[3, 3, c, c]));
            let w2 = g.constant(&format!("w{b}b"), weights(&[1, 1, c, c]));
            let y = g.op(&format!("m/stage_block{b}_1_conv/Conv2D"), "Conv2D", &[x, w1], &pad);
            let y = g.op(&format!("m/stage_block{b}_1_relu/Relu"), "Relu", &[y], &[]);
            let y = g.op(&format!("m/stage_block{b}_2_conv/Conv2D"), "Conv2D", &[y, w2], &pad);
            let y = g.op(&format!("m/stage_block{b}_add/add"), "AddV2", &[x, y], &[]);
            x = g.op(&format!("m/stage_block{b}_out/Relu"), "Relu", &[y], &[]);
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Block():
          self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
          x = self.conv1(inputs)
          x = F.relu(x)
          x = self.conv2(x)
          x = inputs + x
          out = F.relu(x)
          return out (from inputs)
        self.block1_1_conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.block1_2_conv = nn.Conv2d(4, 4, 1, bias=False)
        self.block2 = Block()
        self.block3 = Block()
        # block1_1_conv.weight: [4, 4, 3, 3]
        # block1_2_conv.weight: [4, 4, 1, 1]
        # block2.conv1.weight: [4, 4, 3, 3]
        # block2.conv2.weight: [4, 4, 1, 1]
        # block3.conv1.weight: [4, 4, 3, 3]
        # block3.conv2.weight: [4, 4, 1, 1]
        ---
        image_nchw = image.permute(0, 3, 1, 2)
        x = self.block1_1_conv(image_nchw)
        x = F.relu(x)
        x = self.block1_2_conv(x)
        x = image_nchw + x
        block1_out = F.relu(x)
        block2_out = self.block2(block1_out)
        x = self.block3(block2_out).permute(0, 2, 3, 1)
        return x
        ");
    }
}
