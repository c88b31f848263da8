//! Activation patterns TF spells out with several ops become one readable op:
//! `Mul(x, Sigmoid(x))` (Keras/TF swish) → `_SiLU(x)` → `F.silu(x)`, and the three ways TF
//! writes GELU (tf-formats.md §4.5) → `_Gelu(x)` → `F.gelu(x[, approximate="tanh"])`:
//! exact `0.5·x·erfc(−x·0.7071)`, exact `0.5·x·(1 + erf(x·0.7071))`, and
//! `0.5·x·(1 + tanh(0.7978846·(x + 0.044715·x³)))`.
//! Underscored names are tf2torch's own ops (TF's underscore prefix marks internal ops).

use crate::error::Result;
use crate::ir::{Graph, Node, ValueRef};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;

/// The two inputs of `v` when it is output 0 of `op` and used only once.
fn inner(g: &Graph, v: ValueRef, ops: &[&str]) -> Option<(ValueRef, ValueRef)> {
    if v.port != 0 || !ops.contains(&g.node(v.node).op.as_str()) || g.use_count(v) != 1 {
        return None;
    }
    let i = g.inputs(v.node);
    (i.len() == 2).then(|| (i[0], i[1]))
}

fn single(g: &Graph, v: ValueRef, op: &str) -> Option<ValueRef> {
    if v.port != 0 || g.node(v.node).op != op || g.use_count(v) != 1 {
        return None;
    }
    g.inputs(v.node).first().copied()
}

fn scalar(g: &Graph, v: ValueRef, want: f64, tol: f64) -> bool {
    g.const_value(v).and_then(|t| t.scalar_f64()).is_some_and(|x| (x - want).abs() <= tol)
}

/// `c · y` or `y · c` with the scalar `c` → `y`.
fn scaled(g: &Graph, v: ValueRef, c: f64, tol: f64) -> Option<ValueRef> {
    let (a, b) = inner(g, v, &["Mul"])?;
    if scalar(g, a, c, tol) {
        Some(b)
    } else if scalar(g, b, c, tol) {
        Some(a)
    } else {
        None
    }
}

/// `1 + y` or `y + 1` → `y`.
fn plus_one(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let (a, b) = inner(g, v, &["AddV2", "Add"])?;
    if scalar(g, a, 1.0, 0.0) {
        Some(b)
    } else if scalar(g, b, 1.0, 0.0) {
        Some(a)
    } else {
        None
    }
}

const SQRT_HALF: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// Matches GELU on output `out` (a `Mul`): returns `(x, approximate)`.
fn match_gelu(g: &Graph, out: ValueRef) -> Option<(ValueRef, bool)> {
    let i = g.inputs(out.node);
    if g.node(out.node).op != "Mul" || i.len() != 2 {
        return None;
    }
    for (half, rest) in [(i[0], i[1]), (i[1], i[0])] {
        let Some(x) = scaled(g, half, 0.5, 1e-7) else { continue };
        // 0.5·x · erfc(−x·0.7071)
        if let Some(arg) = single(g, rest, "Erfc")
            && let Some(neg) = scaled(g, arg, SQRT_HALF, 1e-6)
            && single(g, neg, "Neg") == Some(x)
        {
            return Some((x, false));
        }
        // 0.5·x · (1 + erf(x·0.7071))
        if let Some(e) = plus_one(g, rest)
            && let Some(arg) = single(g, e, "Erf")
            && scaled(g, arg, SQRT_HALF, 1e-6) == Some(x)
        {
            return Some((x, false));
        }
        // 0.5·x · (1 + tanh(0.7978846·(x + 0.044715·x³)))
        if let Some(t) = plus_one(g, rest)
            && let Some(arg) = single(g, t, "Tanh")
            && let Some(sum) = scaled(g, arg, 0.7978846, 1e-6)
            && let Some((p, q)) = inner(g, sum, &["AddV2", "Add"])
        {
            for (xx, cube) in [(p, q), (q, p)] {
                if xx != x {
                    continue;
                }
                if let Some(pow) = scaled(g, cube, 0.044715, 1e-6)
                    && let Some((base, e)) = inner(g, pow, &["Pow"])
                    && base == x
                    && scalar(g, e, 3.0, 0.0)
                {
                    return Some((x, true));
                }
            }
        }
    }
    None
}

/// Replaces the node of `out` by a one-input op fed by `x`.
fn replace(g: &mut Graph, out: ValueRef, op: &str, x: ValueRef, attrs: Vec<(&str, AttrValue)>) {
    let old = g.node(out.node).clone();
    let mut node = Node::new(old.name, op, old.ordinal);
    node.outputs = old.outputs;
    for (k, v) in attrs {
        node.attrs.insert(k.to_string(), v);
    }
    let new = g.add_node(node);
    g.connect(x, new, 0);
    g.replace_uses(out, ValueRef { node: new, port: 0 });
    g.g.remove_node(out.node);
}

pub fn fuse_activations(g: &mut Graph) -> Result<()> {
    let muls: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "Mul").collect();
    for n in muls {
        if !g.g.contains_node(n) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        if let Some((x, approximate)) = match_gelu(g, out) {
            let how = if approximate { "tanh" } else { "none" };
            let attr = AttrValue { value: Some(Value::S(how.as_bytes().to_vec())) };
            replace(g, out, "_Gelu", x, vec![("approximate", attr)]);
        }
    }
    let nodes: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "Mul").collect();
    for n in nodes {
        if !g.g.contains_node(n) {
            continue;
        }
        let inputs = g.inputs(n);
        if inputs.len() != 2 {
            continue;
        }
        for (x, s) in [(inputs[0], inputs[1]), (inputs[1], inputs[0])] {
            let is_sigmoid_of_x = s.port == 0
                && g.node(s.node).op == "Sigmoid"
                && g.inputs(s.node).first() == Some(&x)
                && g.use_count(s) == 1;
            if !is_sigmoid_of_x {
                continue;
            }
            let old = g.node(n).clone();
            let mut silu = Node::new(old.name, "_SiLU", old.ordinal);
            silu.outputs = old.outputs;
            let new = g.add_node(silu);
            g.connect(x, new, 0);
            g.replace_uses(ValueRef { node: n, port: 0 }, ValueRef { node: new, port: 0 });
            g.g.remove_node(n);
            g.g.remove_node(s.node);
            break;
        }
    }
    Ok(())
}
