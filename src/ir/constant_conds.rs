//! A lowered `tf.cond` whose branches each return a constant (Swin's shift size, Funnel's
//! pooling choice): in the frozen graph each `Const` is tied to its branch only by a control
//! edge from the branch's pivot, `Identity(Switch(pred, pred):port)`. The IR keeps no control
//! edges, so nothing would tell which branch each constant belongs to: such a `Merge` becomes
//! `SelectV2(pred, then, else)`, as a functional `If` of two constants does at load time.

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::attr_value::Value;
use crate::proto::{NodeDef, parse_tensor_name};

/// Longest `Identity` chain followed from a branch result to its constant.
const MAX_CHAIN: usize = 8;

pub fn select_constant_merges(nodes: &mut [NodeDef]) {
    let index: BTreeMap<&str, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    // A Merge whose second output (which branch ran) is read stays a Merge.
    let read_ports: BTreeSet<(&str, usize)> =
        nodes.iter().flat_map(|n| n.input.iter().filter_map(|s| parse_tensor_name(s))).collect();
    let mut rewrites = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.op != "Merge" || read_ports.contains(&(n.name.as_str(), 1)) {
            continue;
        }
        let data: Vec<&String> = n.input.iter().filter(|s| !s.starts_with('^')).collect();
        let [x, y] = data[..] else { continue };
        let (Some(a), Some(b)) =
            (branch_constant(nodes, &index, x), branch_constant(nodes, &index, y))
        else {
            continue;
        };
        if a.switch != b.switch || a.port == b.port || a.kind != b.kind {
            continue;
        }
        let switch = &nodes[a.switch];
        let Some(pred) = switch.input.get(1).filter(|p| !p.starts_with('^')) else {
            continue;
        };
        // TF1's cond also keeps `scope/pred_id = Identity(pred)`, which only its switches
        // read: read it here, or it would be taken for a model output.
        let scope = switch.name.rsplit_once('/').map_or("", |(s, _)| s);
        let pred_id = format!("{scope}/pred_id");
        let by_id = index.get(pred_id.as_str()).map(|&k| &nodes[k]);
        let pred = match by_id {
            Some(id) if id.op == "Identity" && id.input.first() == Some(pred) => &id.name,
            _ => pred,
        };
        // The branch results themselves (the constants through their identities): what
        // only the Merge read stays read.
        let (then, other) = if a.port == 1 { (x, y) } else { (y, x) };
        rewrites.push((i, vec![pred.clone(), then.clone(), other.clone()]));
    }
    for (i, inputs) in rewrites {
        let n = &mut nodes[i];
        n.op = "SelectV2".into();
        n.input = inputs;
        n.attr.remove("N");
    }
}

/// A branch's constant: the `Switch` whose output `port` its pivot reads, and its dtype and
/// shape.
struct BranchConstant {
    switch: usize,
    port: usize,
    kind: (i32, Vec<i64>),
}

/// `input` followed through `Identity` nodes to a `Const`, with the pivot one of them (or the
/// constant) waits for.
fn branch_constant(
    nodes: &[NodeDef],
    index: &BTreeMap<&str, usize>,
    input: &str,
) -> Option<BranchConstant> {
    let (mut name, port) = parse_tensor_name(input)?;
    if port != 0 {
        return None;
    }
    let mut pivot = None;
    for _ in 0..MAX_CHAIN {
        let n = &nodes[*index.get(name)?];
        let controls = n.input.iter().filter_map(|s| s.strip_prefix('^'));
        pivot = pivot.or_else(|| controls.filter_map(|c| switch_port(nodes, index, c)).next());
        match n.op.as_str() {
            "Identity" => name = parse_tensor_name(n.input.first()?)?.0,
            "Const" => {
                let (switch, port) = pivot?;
                let Some(Value::Tensor(t)) = n.attr.get("value").and_then(|v| v.value.as_ref())
                else {
                    return None;
                };
                let dims = t.tensor_shape.as_ref()?.dim.iter().map(|d| d.size).collect();
                return Some(BranchConstant { switch, port, kind: (t.dtype, dims) });
            }
            _ => return None,
        }
    }
    None
}

/// `(switch, port)` when `pivot` is `Identity(Switch:port)`, the node TF's lowering makes
/// each branch wait for, or a `NoOp` waiting for one (a function body's
/// `input_control_node`).
fn switch_port(
    nodes: &[NodeDef],
    index: &BTreeMap<&str, usize>,
    pivot: &str,
) -> Option<(usize, usize)> {
    let mut name = pivot;
    for _ in 0..MAX_CHAIN {
        let p = &nodes[*index.get(name)?];
        match p.op.as_str() {
            "Identity" => {
                let (switch, port) = parse_tensor_name(p.input.first()?)?;
                let s = *index.get(switch)?;
                return (nodes[s].op == "Switch" && port <= 1).then_some((s, port));
            }
            "NoOp" => {
                let mut controls = p.input.iter().filter_map(|s| s.strip_prefix('^'));
                name = controls.next()?;
            }
            _ => return None,
        }
    }
    None
}
