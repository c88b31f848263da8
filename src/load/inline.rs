//! Function inlining: `StatefulPartitionedCall`/`PartitionedCall` nodes (and nodes whose op is
//! a library function) are replaced by the function's body, recursively, so that the rest of
//! the converter sees one flat graph. Body input names (`arg`, `node:outarg:k`) are translated
//! to graph form (`prefix/node:flat_index`); each call becomes an `IdentityN` of the function's
//! results under the call's own name, so readers of `call:k` need no change.
//!
//! Also fills attributes stripped because they equal their OpDef default, and turns
//! `ReadVariableOp` into `Identity` and `ResourceGather` into `GatherV2` (variables are
//! constants by then).

use std::collections::BTreeMap;

use super::control_flow::{emit_case, emit_if, emit_while};
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
    pub(super) functions: BTreeMap<&'a str, &'a FunctionDef>,
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

pub(super) fn emit(
    mut n: NodeDef,
    lib: &Library,
    out: &mut Vec<NodeDef>,
    depth: usize,
) -> Result<()> {
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
        // Variables are constants by now: reading one is the identity, and gathering from
        // one (`tf.gather(variable, ids)` is `ResourceGather`) is gathering from a tensor.
        match n.op.as_str() {
            "ReadVariableOp" => n.op = "Identity".into(),
            "ResourceGatherNd" => n.op = "GatherNd".into(),
            "ResourceGather" => {
                // Always along axis 0, the input `GatherV2` reads third.
                let axis = int32_scalar(format!("{}/axis", n.name), 0);
                n.op = "GatherV2".into();
                n.input.insert(2.min(n.input.len()), axis.name.clone());
                out.push(axis);
            }
            _ => {}
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

/// A `Const` node holding the int32 scalar `v` (a gather's axis, a `Case` branch's index).
pub(super) fn int32_scalar(name: String, v: i32) -> NodeDef {
    use crate::proto::TensorProto;
    let mut n = NodeDef { name, op: "Const".into(), ..Default::default() };
    n.attr.insert("dtype".into(), AttrValue { value: Some(Value::Type(3)) });
    let t = TensorProto { dtype: 3, int_val: vec![v], ..Default::default() };
    n.attr.insert("value".into(), AttrValue { value: Some(Value::Tensor(Box::new(t))) });
    n
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
pub(super) fn inline_body(
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
        // Marked: what a function body computes for nothing is no model output.
        let marker = AttrValue { value: Some(Value::B(true)) };
        inner.attr.insert(crate::proto::INLINED_ATTR.into(), marker);
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
