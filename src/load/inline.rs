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

/// Inlines every call in `nodes` (recursively) and returns the flat node list.
pub fn inline_calls(nodes: Vec<NodeDef>, lib: &Library) -> Result<Vec<NodeDef>> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        emit(n, lib, &mut out, 0)?;
    }
    Ok(out)
}

fn emit(mut n: NodeDef, lib: &Library, out: &mut Vec<NodeDef>, depth: usize) -> Result<()> {
    let Some(fname) = lib.callee(&n) else {
        lib.fill_defaults(&mut n);
        if n.op == "ReadVariableOp" {
            // Variables are constants by now: reading one is the identity.
            n.op = "Identity".into();
        }
        out.push(n);
        return Ok(());
    };
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    if depth >= MAX_DEPTH {
        return Err(err(format!(
            "function calls nest deeper than {MAX_DEPTH} (recursive functions?)"
        )));
    }
    let f = lib
        .functions
        .get(fname)
        .ok_or_else(|| err("calls a function missing from the library".into()))?;
    let sig =
        f.signature.as_ref().ok_or_else(|| err(format!("function {fname} has no signature")))?;
    let data_inputs: Vec<&String> = n.input.iter().filter(|s| !s.starts_with('^')).collect();
    if data_inputs.len() != sig.input_arg.len() {
        return Err(err(format!(
            "passes {} inputs to {fname}, which takes {}",
            data_inputs.len(),
            sig.input_arg.len()
        )));
    }
    let bindings: BTreeMap<&str, &str> = sig
        .input_arg
        .iter()
        .map(|a| a.name.as_str())
        .zip(data_inputs.iter().map(|s| s.as_str()))
        .collect();
    let body: BTreeMap<&str, &NodeDef> = f.node_def.iter().map(|b| (b.name.as_str(), b)).collect();
    let prefix = format!("{}/", n.name);
    let translate = |s: &str| -> Result<Option<String>> {
        if let Some(ctrl) = s.strip_prefix('^') {
            // Control inputs only order side effects; data flow is what we convert.
            let _ = ctrl;
            return Ok(None);
        }
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [arg] => match bindings.get(arg) {
                Some(b) => Ok(Some((*b).to_string())),
                None if body.contains_key(arg) => Ok(Some(format!("{prefix}{arg}"))),
                None => {
                    Err(err(format!("{fname}: input '{s}' names neither an argument nor a node")))
                }
            },
            [node, outarg, k] => {
                let b = body
                    .get(node)
                    .ok_or_else(|| err(format!("{fname}: input '{s}' names no node")))?;
                let k: usize = k.parse().map_err(|_| err(format!("{fname}: bad input '{s}'")))?;
                let idx = lib.flat_index(b, outarg, k).ok_or_else(|| {
                    err(format!(
                        "{fname}: cannot resolve output '{outarg}' of {} ({})",
                        b.name, b.op
                    ))
                })?;
                Ok(Some(format!("{prefix}{node}:{idx}")))
            }
            _ => Err(err(format!("{fname}: bad input '{s}'"))),
        }
    };
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
    let mut identity = NodeDef {
        name: n.name.clone(),
        op: "IdentityN".into(),
        input: results,
        ..Default::default()
    };
    identity.attr.insert("T".into(), AttrValue { value: Some(Value::List(types)) });
    out.push(identity);
    Ok(())
}
