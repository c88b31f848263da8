//! Function inlining: `StatefulPartitionedCall`/`PartitionedCall` nodes (and nodes whose op is
//! a library function) are replaced by the function's body, recursively, so that the rest of
//! the converter sees one flat graph. Body input names (`arg`, `node:outarg:k`) are translated
//! to graph form (`prefix/node:flat_index`); each call becomes an `IdentityN` of the function's
//! results under the call's own name, so readers of `call:k` need no change.
//!
//! Also fills attributes stripped because they equal their OpDef default, and turns
//! `ReadVariableOp` into `Identity` (variables are constants by then).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::proto::attr_value::Value;
use crate::proto::{AttrValue, FunctionDef, ListValue, NodeDef, OpDef};

/// Deeper nesting than this is treated as recursion (a hostile or broken file).
const MAX_DEPTH: usize = 64;

/// More nodes than this after inlining means a file that multiplies itself (a function calling
/// another twice per level grows exponentially long before `MAX_DEPTH` stops it). Checked on an
/// estimate before anything is inlined.
const MAX_NODES: usize = 5_000_000;

/// More bytes of node names than this after inlining likewise (each level of inlining prefixes
/// the caller's name).
const MAX_NAME_BYTES: usize = 512 << 20;

/// Output argument names of multi-output ops, for graphs that carry no OpDefs (frozen
/// GraphDefs with a function library). Ops not listed have a single output argument.
const BUILTIN_OUTPUT_ARGS: &[(&str, &[&str])] = &[
    (
        "FusedBatchNorm",
        &["y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"],
    ),
    (
        "FusedBatchNormV3",
        &[
            "y",
            "batch_mean",
            "batch_variance",
            "reserve_space_1",
            "reserve_space_2",
            "reserve_space_3",
        ],
    ),
    ("TopKV2", &["values", "indices"]),
    ("Unique", &["y", "idx"]),
];

pub struct Library<'a> {
    functions: BTreeMap<&'a str, &'a FunctionDef>,
    ops: BTreeMap<&'a str, &'a OpDef>,
}

impl<'a> Library<'a> {
    pub fn new(functions: &'a [FunctionDef], ops: &'a [OpDef]) -> Library<'a> {
        let functions = functions
            .iter()
            .filter_map(|f| f.signature.as_ref().map(|s| (s.name.as_str(), f)))
            .collect();
        let ops = ops.iter().map(|o| (o.name.as_str(), o)).collect();
        Library { functions, ops }
    }

    /// The function a node calls, if it is a call.
    fn callee(&self, n: &NodeDef) -> Option<&'a str> {
        if matches!(n.op.as_str(), "StatefulPartitionedCall" | "PartitionedCall") {
            return match n.attr.get("f").and_then(|a| a.value.as_ref()) {
                Some(Value::Func(f)) => {
                    Some(self.functions.get_key_value(f.name.as_str()).map_or("", |(k, _)| k))
                }
                _ => Some(""),
            };
        }
        self.functions.get_key_value(n.op.as_str()).map(|(k, _)| *k)
    }

    /// Fills attributes missing from `n` with their OpDef defaults.
    fn fill_defaults(&self, n: &mut NodeDef) {
        if let Some(op) = self.ops.get(n.op.as_str()) {
            for a in &op.attr {
                if let Some(d) = &a.default_value
                    && !n.attr.contains_key(&a.name)
                {
                    n.attr.insert(a.name.clone(), d.clone());
                }
            }
        }
    }

    /// Flat output index of `outarg:k` on a body node.
    fn flat_index(&self, node: &NodeDef, outarg: &str, k: usize) -> Option<usize> {
        if matches!(node.op.as_str(), "StatefulPartitionedCall" | "PartitionedCall") {
            return (outarg == "output").then_some(k);
        }
        if let Some(f) = self.functions.get(node.op.as_str()) {
            let args = &f.signature.as_ref()?.output_arg;
            return args.iter().position(|a| a.name == outarg).map(|i| i + k);
        }
        if let Some(op) = self.ops.get(node.op.as_str()) {
            let mut base = 0;
            for a in &op.output_arg {
                if a.name == outarg {
                    return Some(base + k);
                }
                base += arity(node, &a.number_attr, &a.type_list_attr)?;
            }
            return None;
        }
        match BUILTIN_OUTPUT_ARGS.iter().find(|(op, _)| *op == node.op) {
            Some((_, args)) => args.iter().position(|a| *a == outarg).map(|i| i + k),
            None => Some(k),
        }
    }
}

/// How many tensors an output argument stands for.
fn arity(node: &NodeDef, number_attr: &str, type_list_attr: &str) -> Option<usize> {
    let get = |name: &str| node.attr.get(name).and_then(|a| a.value.as_ref());
    if !number_attr.is_empty() {
        return match get(number_attr) {
            Some(Value::I(n)) => usize::try_from(*n).ok(),
            _ => None,
        };
    }
    if !type_list_attr.is_empty() {
        return match get(type_list_attr) {
            Some(Value::List(l)) => Some(l.r#type.len()),
            _ => None,
        };
    }
    Some(1)
}

/// What inlining a function body produces, at an empty name prefix: its nodes (recursively)
/// and the bytes of their names. Saturates rather than overflows.
#[derive(Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    name_bytes: usize,
}

impl Cost {
    /// The cost of a body inlined under a name `prefix` bytes long.
    fn at(self, prefix: usize) -> Cost {
        Cost {
            nodes: self.nodes,
            name_bytes: self.name_bytes.saturating_add(self.nodes.saturating_mul(prefix)),
        }
    }

    fn add(self, other: Cost) -> Cost {
        Cost {
            nodes: self.nodes.saturating_add(other.nodes),
            name_bytes: self.name_bytes.saturating_add(other.name_bytes),
        }
    }
}

/// The cost of emitting node `n` (a call, a loop, or a plain node) at an empty prefix.
fn node_cost<'a>(
    n: &NodeDef,
    lib: &Library<'a>,
    memo: &mut BTreeMap<&'a str, Cost>,
    depth: usize,
) -> Result<Cost> {
    let mut total = Cost { nodes: 1, name_bytes: n.name.len() };
    if matches!(n.op.as_str(), "While" | "StatelessWhile") {
        // Six frame nodes per variable, then cond and body under `name/cond/`, `name/body/`.
        let frame = Cost { nodes: 6, name_bytes: 6 * (n.name.len() + 24) };
        for _ in 0..n.input.len() {
            total = total.add(frame);
        }
        for attr in ["cond", "body"] {
            let f = match n.attr.get(attr).and_then(|v| v.value.as_ref()) {
                Some(Value::Func(f)) => {
                    lib.functions.get_key_value(f.name.as_str()).map(|(k, _)| *k)
                }
                _ => None,
            };
            if let Some(f) = f {
                total = total.add(function_cost(f, lib, memo, depth + 1, n)?.at(n.name.len() + 6));
            }
        }
    } else if matches!(n.op.as_str(), "Case" | "StatelessCase") {
        let frame = Cost { nodes: 4, name_bytes: 4 * (n.name.len() + 24) };
        if let Some(Value::List(l)) = n.attr.get("branches").and_then(|v| v.value.as_ref()) {
            for f in &l.func {
                for _ in 0..n.input.len() {
                    total = total.add(frame);
                }
                if let Some((f, _)) = lib.functions.get_key_value(f.name.as_str()) {
                    total =
                        total.add(function_cost(f, lib, memo, depth + 1, n)?.at(n.name.len() + 12));
                }
            }
        }
    } else if matches!(n.op.as_str(), "If" | "StatelessIf") {
        // A switch per input, a merge per result, then each branch under `name/then/`, ...
        let frame = Cost { nodes: 2, name_bytes: 2 * (n.name.len() + 16) };
        for _ in 0..n.input.len() {
            total = total.add(frame);
        }
        for attr in ["then_branch", "else_branch"] {
            if let Some(Value::Func(f)) = n.attr.get(attr).and_then(|v| v.value.as_ref())
                && let Some((f, _)) = lib.functions.get_key_value(f.name.as_str())
            {
                total = total.add(function_cost(f, lib, memo, depth + 1, n)?.at(n.name.len() + 6));
            }
        }
    } else if let Some(f) = lib.callee(n).filter(|f| !f.is_empty()) {
        total = total.add(function_cost(f, lib, memo, depth + 1, n)?.at(n.name.len() + 1));
    }
    Ok(total)
}

/// The cost of inlining function `fname` (memoised).
fn function_cost<'a>(
    fname: &'a str,
    lib: &Library<'a>,
    memo: &mut BTreeMap<&'a str, Cost>,
    depth: usize,
    caller: &NodeDef,
) -> Result<Cost> {
    if let Some(&c) = memo.get(fname) {
        return Ok(c);
    }
    if depth >= MAX_DEPTH {
        return Err(Error::node(
            &caller.name,
            &caller.op,
            format!("function calls nest deeper than {MAX_DEPTH} (recursive functions?)"),
        ));
    }
    let Some(f) = lib.functions.get(fname) else { return Ok(Cost::default()) };
    let mut total = Cost::default();
    for b in &f.node_def {
        total = total.add(node_cost(b, lib, memo, depth)?);
    }
    memo.insert(fname, total);
    Ok(total)
}

/// Refuses a graph whose inlined form would be implausibly large, before building any of it.
fn check_size(nodes: &[NodeDef], lib: &Library) -> Result<()> {
    let mut memo = BTreeMap::new();
    let mut total = Cost::default();
    for n in nodes {
        total = total.add(node_cost(n, lib, &mut memo, 0)?);
        if total.nodes > MAX_NODES || total.name_bytes > MAX_NAME_BYTES {
            return Err(Error::node(
                &n.name,
                &n.op,
                format!(
                    "inlining its function calls would give more than {MAX_NODES} nodes or \
                     {} MiB of names (a function library that multiplies itself?)",
                    MAX_NAME_BYTES >> 20
                ),
            ));
        }
    }
    Ok(())
}

/// Inlines every call in `nodes` (recursively) and returns the flat node list.
pub fn inline_calls(nodes: Vec<NodeDef>, lib: &Library) -> Result<Vec<NodeDef>> {
    check_size(&nodes, lib)?;
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        emit(n, lib, &mut out, 0)?;
    }
    Ok(out)
}

fn emit(mut n: NodeDef, lib: &Library, out: &mut Vec<NodeDef>, depth: usize) -> Result<()> {
    if out.len() > MAX_NODES {
        return Err(Error::node(
            &n.name,
            &n.op,
            format!("inlining functions gives more than {MAX_NODES} nodes"),
        ));
    }
    if matches!(n.op.as_str(), "While" | "StatelessWhile") {
        return emit_while(n, lib, out, depth);
    }
    if matches!(n.op.as_str(), "If" | "StatelessIf") {
        return emit_if(n, lib, out, depth);
    }
    if matches!(n.op.as_str(), "Case" | "StatelessCase") {
        return emit_case(n, lib, out, depth);
    }
    let Some(fname) = lib.callee(&n) else {
        lib.fill_defaults(&mut n);
        if n.op == "ReadVariableOp" {
            // Variables are constants by now: reading one is the identity.
            n.op = "Identity".into();
        }
        out.push(n);
        return Ok(());
    };
    let data_inputs: Vec<String> =
        n.input.iter().filter(|s| !s.starts_with('^')).cloned().collect();
    let prefix = format!("{}/", n.name);
    let (results, types) = inline_body(&n, fname, &data_inputs, &prefix, lib, out, depth)?;
    let mut identity = NodeDef {
        name: n.name.clone(),
        op: "IdentityN".into(),
        input: results,
        ..Default::default()
    };
    identity.attr.insert("T".into(), AttrValue { value: Some(Value::List(Box::new(types))) });
    out.push(identity);
    Ok(())
}

/// How names inside a function body map to the graph it is inlined into.
struct BodyNames<'a> {
    call: &'a NodeDef,
    fname: &'a str,
    prefix: &'a str,
    lib: &'a Library<'a>,
    /// Argument name → the value the call passes.
    bindings: BTreeMap<&'a str, &'a str>,
    body: BTreeMap<&'a str, &'a NodeDef>,
}

impl BodyNames<'_> {
    fn err(&self, msg: String) -> Error {
        Error::node(&self.call.name, &self.call.op, format!("{}: {msg}", self.fname))
    }

    /// A body input (`arg`, `node:out_arg:k`) as a graph input; `None` for control inputs,
    /// which only order side effects (data flow is what we convert).
    fn resolve(&self, s: &str) -> Result<Option<String>> {
        if s.starts_with('^') {
            return Ok(None);
        }
        let prefix = self.prefix;
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [arg] => match self.bindings.get(arg) {
                Some(b) => Ok(Some((*b).to_string())),
                None if self.body.contains_key(arg) => Ok(Some(format!("{prefix}{arg}"))),
                None => Err(self.err(format!("input '{s}' names neither an argument nor a node"))),
            },
            [node, outarg, k] => {
                let b = self
                    .body
                    .get(node)
                    .ok_or_else(|| self.err(format!("input '{s}' names no node")))?;
                let k: usize = k.parse().map_err(|_| self.err(format!("bad input '{s}'")))?;
                let idx = self.lib.flat_index(b, outarg, k).ok_or_else(|| {
                    self.err(format!("cannot resolve output '{outarg}' of {} ({})", b.name, b.op))
                })?;
                Ok(Some(format!("{prefix}{node}:{idx}")))
            }
            _ => Err(self.err(format!("bad input '{s}'"))),
        }
    }
}

/// Emits the body of function `fname` called by `n` with `data_inputs`, its nodes named
/// `prefix` + their name; returns the graph names of its results and their types.
fn inline_body(
    n: &NodeDef,
    fname: &str,
    data_inputs: &[String],
    prefix: &str,
    lib: &Library,
    out: &mut Vec<NodeDef>,
    depth: usize,
) -> Result<(Vec<String>, ListValue)> {
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    if depth >= MAX_DEPTH {
        return Err(err(format!(
            "function calls nest deeper than {MAX_DEPTH} (recursive functions?)"
        )));
    }
    let f = lib
        .functions
        .get(fname)
        .ok_or_else(|| err(format!("calls a function ({fname}) missing from the library")))?;
    let sig =
        f.signature.as_ref().ok_or_else(|| err(format!("function {fname} has no signature")))?;
    if data_inputs.len() != sig.input_arg.len() {
        return Err(err(format!(
            "passes {} inputs to {fname}, which takes {}",
            data_inputs.len(),
            sig.input_arg.len()
        )));
    }
    let names = BodyNames {
        call: n,
        fname,
        prefix,
        lib,
        bindings: sig
            .input_arg
            .iter()
            .map(|a| a.name.as_str())
            .zip(data_inputs.iter().map(|s| s.as_str()))
            .collect(),
        body: f.node_def.iter().map(|b| (b.name.as_str(), b)).collect(),
    };
    let translate = |s: &str| names.resolve(s);
    for b in &f.node_def {
        let mut inner = b.clone();
        inner.name = format!("{prefix}{}", b.name);
        inner.input = Vec::with_capacity(b.input.len());
        for s in &b.input {
            if let Some(t) = translate(s)? {
                inner.input.push(t);
            }
        }
        emit(inner, lib, out, depth + 1)?;
    }
    // The call's outputs, in `output_arg` order (never the map's).
    let mut results = Vec::with_capacity(sig.output_arg.len());
    for a in &sig.output_arg {
        let r = f
            .ret
            .get(&a.name)
            .ok_or_else(|| err(format!("{fname}: no result for output '{}'", a.name)))?;
        results.push(translate(r)?.ok_or_else(|| err(format!("{fname}: bad result '{r}'")))?);
    }
    let types = ListValue {
        r#type: sig.output_arg.iter().map(|a| a.r#type).collect(),
        ..Default::default()
    };
    Ok((results, types))
}

/// `If`/`StatelessIf` → the form TF itself lowers conditionals to (what frozen graphs contain):
/// each input through a `Switch` on the predicate, the `then` function inlined on the switches'
/// output 1 and the `else` function on output 0, one `Merge` per result. `passes::conds`
/// then sees one form for both kinds of file.
fn emit_if(n: NodeDef, lib: &Library, out: &mut Vec<NodeDef>, depth: usize) -> Result<()> {
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    let func = |attr: &str| -> Result<&str> {
        match n.attr.get(attr).and_then(|a| a.value.as_ref()) {
            Some(Value::Func(f)) => {
                lib.functions.get_key_value(f.name.as_str()).map(|(k, _)| *k).ok_or_else(|| {
                    err(format!("its {attr} function {} is not in the library", f.name))
                })
            }
            _ => Err(err(format!("attribute '{attr}' is missing or not a function"))),
        }
    };
    let (then_f, else_f) = (func("then_branch")?, func("else_branch")?);
    let inputs: Vec<String> = n.input.iter().filter(|s| !s.starts_with('^')).cloned().collect();
    let Some((pred, args)) = inputs.split_first() else {
        return Err(err("has no predicate input".into()));
    };
    let c = &n.name;
    let node = |name: String, op: &str, input: Vec<String>| NodeDef {
        name,
        op: op.into(),
        input,
        ..Default::default()
    };
    for (i, arg) in args.iter().enumerate() {
        out.push(node(format!("{c}/switch_{i}"), "Switch", vec![arg.clone(), pred.clone()]));
    }
    let side = |port: usize| -> Vec<String> {
        (0..args.len()).map(|i| format!("{c}/switch_{i}:{port}")).collect()
    };
    let (then_out, types) =
        inline_body(&n, then_f, &side(1), &format!("{c}/then/"), lib, out, depth + 1)?;
    let (else_out, _) =
        inline_body(&n, else_f, &side(0), &format!("{c}/else/"), lib, out, depth + 1)?;
    if then_out.len() != else_out.len() {
        return Err(err(format!(
            "its branches give {} and {} results",
            then_out.len(),
            else_out.len()
        )));
    }
    let mut merges = Vec::with_capacity(then_out.len());
    for (k, (t, e)) in then_out.into_iter().zip(else_out).enumerate() {
        merges.push(format!("{c}/merge_{k}"));
        out.push(node(merges[k].clone(), "Merge", vec![t, e]));
    }
    let mut identity = node(c.clone(), "IdentityN", merges);
    identity.attr.insert("T".into(), AttrValue { value: Some(Value::List(Box::new(types))) });
    out.push(identity);
    Ok(())
}

/// `Case`/`StatelessCase` (`tf.switch_case`) → conditionals in the form `emit_if` writes, one
/// per branch but the last: `if index == 0: ... elif index == 1: ... else: <last>` (TF runs
/// the last branch for an index out of range).
fn emit_case(n: NodeDef, lib: &Library, out: &mut Vec<NodeDef>, depth: usize) -> Result<()> {
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    let branches: Vec<&str> = match n.attr.get("branches").and_then(|a| a.value.as_ref()) {
        Some(Value::List(l)) if !l.func.is_empty() => l
            .func
            .iter()
            .map(|f| {
                lib.functions.get_key_value(f.name.as_str()).map(|(k, _)| *k).ok_or_else(|| {
                    err(format!("its branch function {} is not in the library", f.name))
                })
            })
            .collect::<Result<_>>()?,
        _ => return Err(err("attribute 'branches' is missing or empty".into())),
    };
    let inputs: Vec<String> = n.input.iter().filter(|s| !s.starts_with('^')).cloned().collect();
    let Some((index, args)) = inputs.split_first() else {
        return Err(err("has no branch index input".into()));
    };
    let (results, types) = emit_case_from(&n, index, args, &branches, 0, lib, out, depth)?;
    let mut identity = NodeDef {
        name: n.name.clone(),
        op: "IdentityN".into(),
        input: results,
        ..Default::default()
    };
    identity.attr.insert("T".into(), AttrValue { value: Some(Value::List(Box::new(types))) });
    out.push(identity);
    Ok(())
}

/// Branches `k..` of a case over `args`: the results' names and types.
#[allow(clippy::too_many_arguments)]
fn emit_case_from(
    n: &NodeDef,
    index: &str,
    args: &[String],
    branches: &[&str],
    k: usize,
    lib: &Library,
    out: &mut Vec<NodeDef>,
    depth: usize,
) -> Result<(Vec<String>, ListValue)> {
    let c = format!("{}/branch_{k}", n.name);
    if k + 1 == branches.len() {
        return inline_body(n, branches[k], args, &format!("{c}/"), lib, out, depth + 1);
    }
    let node = |name: String, op: &str, input: Vec<String>| NodeDef {
        name,
        op: op.into(),
        input,
        ..Default::default()
    };
    let mut kth = node(format!("{c}/index"), "Const", vec![]);
    kth.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(3)) });
    let t = crate::proto::TensorProto { dtype: 3, int_val: vec![k as i32], ..Default::default() };
    kth.attr.insert("value".into(), AttrValue { value: Some(Value::Tensor(Box::new(t))) });
    out.push(kth);
    let pred = format!("{c}/is_{k}");
    out.push(node(pred.clone(), "Equal", vec![index.to_string(), format!("{c}/index")]));
    for (i, arg) in args.iter().enumerate() {
        out.push(node(format!("{c}/switch_{i}"), "Switch", vec![arg.clone(), pred.clone()]));
    }
    let side = |port: usize| -> Vec<String> {
        (0..args.len()).map(|i| format!("{c}/switch_{i}:{port}")).collect()
    };
    let (then_out, types) =
        inline_body(n, branches[k], &side(1), &format!("{c}/then/"), lib, out, depth + 1)?;
    let (else_out, _) = emit_case_from(n, index, &side(0), branches, k + 1, lib, out, depth)?;
    if then_out.len() != else_out.len() {
        return Err(Error::node(&n.name, &n.op, "its branches give different numbers of results"));
    }
    let mut merges = Vec::with_capacity(then_out.len());
    for (j, (t, e)) in then_out.into_iter().zip(else_out).enumerate() {
        merges.push(format!("{c}/merge_{j}"));
        out.push(node(merges[j].clone(), "Merge", vec![t, e]));
    }
    Ok((merges, types))
}

/// `While`/`StatelessWhile` → the frame form TF itself lowers loops to (what frozen graphs
/// contain): per loop variable `Enter → Merge → Switch`, `Switch:1` into the inlined body,
/// the body's result through `NextIteration` back into the `Merge`, `Switch:0 → Exit`; the
/// inlined `cond` feeds one `LoopCond`. Both file forms then reach the IR as one form.
fn emit_while(n: NodeDef, lib: &Library, out: &mut Vec<NodeDef>, depth: usize) -> Result<()> {
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    let func = |attr: &str| -> Result<&str> {
        match n.attr.get(attr).and_then(|a| a.value.as_ref()) {
            Some(Value::Func(f)) => {
                lib.functions.get_key_value(f.name.as_str()).map(|(k, _)| *k).ok_or_else(|| {
                    err(format!("its {attr} function {} is not in the library", f.name))
                })
            }
            _ => Err(err(format!("attribute '{attr}' is missing or not a function"))),
        }
    };
    let (cond, body) = (func("cond")?, func("body")?);
    let inputs: Vec<String> = n.input.iter().filter(|s| !s.starts_with('^')).cloned().collect();
    let w = &n.name;
    let node = |name: String, op: &str, input: Vec<String>| NodeDef {
        name,
        op: op.into(),
        input,
        ..Default::default()
    };
    let merges: Vec<String> = (0..inputs.len()).map(|i| format!("{w}/merge_{i}")).collect();
    for (i, input) in inputs.iter().enumerate() {
        let mut enter = node(format!("{w}/enter_{i}"), "Enter", vec![input.clone()]);
        let frame = crate::proto::attr_value::Value::S(w.as_bytes().to_vec());
        enter.attr.insert("frame_name".into(), AttrValue { value: Some(frame) });
        out.push(enter);
        let next = format!("{w}/next_iteration_{i}");
        out.push(node(merges[i].clone(), "Merge", vec![format!("{w}/enter_{i}"), next]));
    }
    let (cond_out, _) = inline_body(&n, cond, &merges, &format!("{w}/cond/"), lib, out, depth + 1)?;
    let [cond_out] = cond_out.as_slice() else {
        return Err(err(format!("its cond function {cond} has {} results, not 1", cond_out.len())));
    };
    let loop_cond = format!("{w}/loop_cond");
    out.push(node(loop_cond.clone(), "LoopCond", vec![cond_out.clone()]));
    let args: Vec<String> = (0..inputs.len()).map(|i| format!("{w}/switch_{i}:1")).collect();
    let (results, types) =
        inline_body(&n, body, &args, &format!("{w}/body/"), lib, out, depth + 1)?;
    if results.len() != inputs.len() {
        return Err(err(format!(
            "its body function {body} has {} results for {} loop variables",
            results.len(),
            inputs.len()
        )));
    }
    let mut exits = Vec::with_capacity(inputs.len());
    for (i, result) in results.into_iter().enumerate() {
        out.push(node(
            format!("{w}/switch_{i}"),
            "Switch",
            vec![merges[i].clone(), loop_cond.clone()],
        ));
        out.push(node(format!("{w}/next_iteration_{i}"), "NextIteration", vec![result]));
        exits.push(format!("{w}/exit_{i}"));
        out.push(node(exits[i].clone(), "Exit", vec![format!("{w}/switch_{i}")]));
    }
    let mut identity = node(w.clone(), "IdentityN", exits);
    identity.attr.insert("T".into(), AttrValue { value: Some(Value::List(Box::new(types))) });
    out.push(identity);
    Ok(())
}
