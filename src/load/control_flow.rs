//! Functional control flow (`If`/`StatelessIf`, `Case`/`StatelessCase`, `While`/
//! `StatelessWhile`) inlined in the frame form TF itself lowers it to, what frozen graphs
//! contain, so that `passes::conds` and `passes::loops` see one form for both kinds of file.
//! Part of [`super::inline`]: each branch or body is inlined like any function call.

use super::inline::*;
use crate::error::{Error, Result};
use crate::proto::attr_value::Value;
use crate::proto::{AttrValue, ListValue, NodeDef};

/// The library function a node's attribute `attr` names.
fn function_attr<'a>(n: &NodeDef, lib: &Library<'a>, attr: &str) -> Result<&'a str> {
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    match n.attr.get(attr).and_then(|a| a.value.as_ref()) {
        Some(Value::Func(f)) => lib
            .functions
            .get_key_value(f.name.as_str())
            .map(|(k, _)| *k)
            .ok_or_else(|| err(format!("its {attr} function {} is not in the library", f.name))),
        _ => Err(err(format!("attribute '{attr}' is missing or not a function"))),
    }
}

/// `If`/`StatelessIf` → the form TF itself lowers conditionals to (what frozen graphs contain):
/// each input through a `Switch` on the predicate, the `then` function inlined on the switches'
/// output 1 and the `else` function on output 0, one `Merge` per result. `passes::conds`
/// then sees one form for both kinds of file.
pub(super) fn emit_if(
    n: NodeDef,
    lib: &Library,
    out: &mut Vec<NodeDef>,
    depth: usize,
) -> Result<()> {
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    let func = |attr: &str| function_attr(&n, lib, attr);
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
        // Two constants of one type and shape: nothing in the graph would tell which branch
        // each came from (no switch feeds either), so pick one by the predicate directly.
        let op = if same_constant_kind(out, &t, &e) { "SelectV2" } else { "Merge" };
        let inputs = if op == "Merge" { vec![t, e] } else { vec![pred.clone(), t, e] };
        out.push(node(merges[k].clone(), op, inputs));
    }
    let mut identity = node(c.clone(), "IdentityN", merges);
    identity.attr.insert("T".into(), AttrValue { value: Some(Value::List(Box::new(types))) });
    out.push(identity);
    Ok(())
}

/// Whether `a` and `b` name `Const` nodes already emitted (directly or through `Identity`
/// nodes) with the same dtype and shape.
fn same_constant_kind(out: &[NodeDef], a: &str, b: &str) -> bool {
    let kind = |name: &str| {
        let mut name = name.strip_suffix(":0").unwrap_or(name);
        let mut n = out.iter().rev().find(|n| n.name == name)?;
        for _ in 0..8 {
            if n.op != "Identity" {
                break;
            }
            name = n.input.first()?.as_str();
            name = name.strip_suffix(":0").unwrap_or(name);
            n = out.iter().rev().find(|n| n.name == name)?;
        }
        if n.op != "Const" {
            return None;
        }
        match n.attr.get("value").and_then(|v| v.value.as_ref()) {
            Some(Value::Tensor(t)) => {
                let dims: Vec<i64> = t.tensor_shape.as_ref()?.dim.iter().map(|d| d.size).collect();
                Some((t.dtype, dims))
            }
            _ => None,
        }
    };
    matches!((kind(a), kind(b)), (Some(x), Some(y)) if x == y)
}

/// `Case`/`StatelessCase` (`tf.switch_case`) → conditionals in the form `emit_if` writes, one
/// per branch but the last: `if index == 0: ... elif index == 1: ... else: <last>` (TF runs
/// the last branch for an index out of range).
pub(super) fn emit_case(
    n: NodeDef,
    lib: &Library,
    out: &mut Vec<NodeDef>,
    depth: usize,
) -> Result<()> {
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
    let k32 = i32::try_from(k).map_err(|_| Error::node(&n.name, &n.op, "too many branches"))?;
    out.push(int32_scalar(format!("{c}/index"), k32));
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
pub(super) fn emit_while(
    n: NodeDef,
    lib: &Library,
    out: &mut Vec<NodeDef>,
    depth: usize,
) -> Result<()> {
    let err = |msg: String| Error::node(&n.name, &n.op, msg);
    let func = |attr: &str| function_attr(&n, lib, attr);
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
