//! Activation patterns TF spells out with several ops become one readable op:
//! `Mul(x, Sigmoid(x))` (Keras/TF swish) → [`Fused::SiLU`] → `F.silu(x)`, and the three ways TF
//! writes GELU (tf-formats.md §4.5) → [`Fused::Gelu`] → `F.gelu(x[, approximate="tanh"])`:
//! exact `0.5·x·erfc(−x·0.7071)`, exact `0.5·x·(1 + erf(x·0.7071))`, and
//! `0.5·x·(1 + tanh(0.7978846·(x + 0.044715·x³)))`. MobileNetV3's and Keras' hard sigmoid,
//! `relu6(x + 3) / 6` (or `· (1/6)`), → [`Fused::HardSigmoid`] → `F.hardsigmoid(x)`, and
//! `x · hard_sigmoid(x)` → [`Fused::HardSwish`] → `F.hardswish(x)`. Also `x · tanh(softplus(x))`
//! → [`Fused::Mish`], `−softplus(−x)` → [`Fused::LogSigmoid`], and a clip written as a
//! `Minimum` then a `Maximum` (`tf.clip_by_value`, Keras' hard_tanh) → one `ClipByValue`,
//! `x.clamp(lo, hi)`.

use crate::error::Result;
use crate::ir::fused::{Fused, HARD_SIGMOID};
use crate::ir::{Graph, Node, ValueRef};
use crate::passes::pattern::{
    binary, const_scalar, inputs_of, is_scalar, replace_with_fused, replace_with_op, sole_binary,
    sole_unary_input,
};

/// `c · y` or `y · c` with the scalar `c` → `y`.
fn scaled(g: &Graph, v: ValueRef, c: f64, tol: f64) -> Option<ValueRef> {
    let (a, b) = sole_binary(g, v, &["Mul"])?;
    if is_scalar(g, a, c, tol) {
        Some(b)
    } else if is_scalar(g, b, c, tol) {
        Some(a)
    } else {
        None
    }
}

/// `c + y` or `y + c` with the scalar `c` → `y`, when the sum has no other reader.
fn plus(g: &Graph, v: ValueRef, c: f64) -> Option<ValueRef> {
    let (a, b) = sole_binary(g, v, &["AddV2", "Add"])?;
    if is_scalar(g, a, c, 0.0) {
        Some(b)
    } else if is_scalar(g, b, c, 0.0) {
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
        if let Some(arg) = sole_unary_input(g, rest, "Erfc")
            && let Some(neg) = scaled(g, arg, SQRT_HALF, 1e-6)
            && sole_unary_input(g, neg, "Neg") == Some(x)
        {
            return Some((x, false));
        }
        // 0.5·x · (1 + erf(x·0.7071))
        if let Some(e) = plus(g, rest, 1.0)
            && let Some(arg) = sole_unary_input(g, e, "Erf")
            && scaled(g, arg, SQRT_HALF, 1e-6) == Some(x)
        {
            return Some((x, false));
        }
        // 0.5·x · (1 + tanh(0.7978846·(x + 0.044715·x³)))
        if let Some(t) = plus(g, rest, 1.0)
            && let Some(arg) = sole_unary_input(g, t, "Tanh")
            && let Some(sum) = scaled(g, arg, 0.7978846, 1e-6)
            && let Some((p, q)) = sole_binary(g, sum, &["AddV2", "Add"])
        {
            for (xx, cube) in [(p, q), (q, p)] {
                if xx != x {
                    continue;
                }
                if let Some(pow) = scaled(g, cube, 0.044715, 1e-6)
                    && let Some((base, e)) = sole_binary(g, pow, &["Pow"])
                    && base == x
                    && is_scalar(g, e, 3.0, 0.0)
                {
                    return Some((x, true));
                }
            }
        }
    }
    None
}

/// Matches `relu6(x + 3) / 6` or `relu6(x + 3) · (1/6)` on `out` (its intermediate values
/// read by nothing else): returns `x`.
fn match_hard_sigmoid(g: &Graph, out: ValueRef) -> Option<ValueRef> {
    let (a, b) = binary(g, out, &["Mul", "RealDiv", "Div"])?;
    let divides = matches!(g.node(out.node).op.as_str(), "RealDiv" | "Div");
    let relu6 = if divides {
        is_scalar(g, b, 6.0, 0.0).then_some(a)?
    } else if is_scalar(g, b, 1.0 / 6.0, 1e-7) {
        a
    } else {
        is_scalar(g, a, 1.0 / 6.0, 1e-7).then_some(b)?
    };
    plus(g, sole_unary_input(g, relu6, "Relu6")?, 3.0)
}

/// Replaces the node of `out` by a one-input op fed by `x`.
fn replace(g: &mut Graph, out: ValueRef, op: Fused, x: ValueRef) {
    let old = g.node(out.node);
    let mut node = Node::fused(old.name.clone(), op, old.ordinal);
    node.outputs = old.outputs.clone();
    let new = g.add_node(node);
    g.connect(x, new, 0);
    g.replace_uses(out, ValueRef { node: new, port: 0 });
    g.g.remove_node(out.node);
}

/// `x · tanh(softplus(x))` on `out` (its intermediate values read by nothing else) → `x`.
fn match_mish(g: &Graph, out: ValueRef) -> Option<ValueRef> {
    let (a, b) = binary(g, out, &["Mul"])?;
    [(a, b), (b, a)].into_iter().find_map(|(x, t)| {
        let sp = sole_unary_input(g, t, "Tanh")?;
        (sole_unary_input(g, sp, "Softplus")? == x).then_some(x)
    })
}

/// `−softplus(−x)` on `out` → `x`.
fn match_log_sigmoid(g: &Graph, out: ValueRef) -> Option<ValueRef> {
    let sp = *inputs_of(g, out, &["Neg"])?.first()?;
    let neg = sole_unary_input(g, sp, "Softplus")?;
    sole_unary_input(g, neg, "Neg")
}

/// `Maximum(Minimum(x, hi), lo)` or `Minimum(Maximum(x, lo), hi)` with scalar constants
/// `lo ≤ hi` (Keras' `ops.clip`, float or integer), the inner value read by nothing else →
/// `(x, lo, hi)`.
fn match_clip(g: &Graph, out: ValueRef) -> Option<(ValueRef, ValueRef, ValueRef)> {
    let outer = g.node(out.node).op.as_str();
    let inner_op = match outer {
        "Maximum" => "Minimum",
        "Minimum" => "Maximum",
        _ => return None,
    };
    let scalar = |v: ValueRef| const_scalar(g, v).map(|c| (v, c));
    let (a, b) = binary(g, out, &[outer])?;
    let (inner, (c_out, v_out)) =
        [(a, b), (b, a)].into_iter().find_map(|(i, c)| Some((i, scalar(c)?)))?;
    let (p, q) = sole_binary(g, inner, &[inner_op])?;
    let (x, (c_in, v_in)) =
        [(p, q), (q, p)].into_iter().find_map(|(x, c)| Some((x, scalar(c)?)))?;
    let ((lo, lo_v), (hi, hi_v)) = if outer == "Maximum" {
        ((c_out, v_out), (c_in, v_in))
    } else {
        ((c_in, v_in), (c_out, v_out))
    };
    let numeric = g.info(x).dtype.is_some_and(|d| d.is_float() || d.is_int());
    // The bounds must not broadcast `x` to more axes: one-element constants of no more axes
    // than `x` leave its shape as it is, known or not.
    let rank = |v: ValueRef| g.info(v).shape.as_ref().map(Vec::len);
    let within = |c: ValueRef| rank(c).zip(rank(x)).is_some_and(|(c, x)| c <= x);
    let same_shape = g.info(x).shape.is_some() && g.info(x).shape == g.info(out).shape;
    (lo_v <= hi_v && numeric && (same_shape || within(lo) && within(hi))).then_some((x, lo, hi))
}

pub fn fuse_activations(g: &mut Graph) -> Result<()> {
    let clips: Vec<_> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).op.as_str(), "Maximum" | "Minimum"))
            .collect();
    for n in clips {
        if !g.g.contains_node(n) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        if let Some((x, lo, hi)) = match_clip(g, out) {
            replace_with_op(g, n, "ClipByValue", &[x, lo, hi]);
        }
    }
    let softpluses: Vec<_> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "Mul" | "Neg")).collect();
    for n in softpluses {
        if !g.g.contains_node(n) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        if let Some(x) = match_mish(g, out) {
            replace(g, out, Fused::Mish, x);
        } else if let Some(x) = match_log_sigmoid(g, out) {
            replace(g, out, Fused::LogSigmoid, x);
        }
    }
    let muls: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "Mul").collect();
    for n in muls {
        if !g.g.contains_node(n) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        if let Some((x, approximate)) = match_gelu(g, out) {
            replace(g, out, Fused::Gelu { approximate }, x);
        }
    }
    let ends: Vec<_> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).op.as_str(), "Mul" | "RealDiv" | "Div"))
            .collect();
    for n in ends {
        if !g.g.contains_node(n) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        if g.info(out).dtype.is_none_or(|d| d.is_float())
            && let Some(x) = match_hard_sigmoid(g, out)
        {
            replace_with_fused(g, n, Fused::HardSigmoid, &[x]);
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
            let gate = match (s.port, g.node(s.node).op.as_str()) {
                (0, "Sigmoid") => Fused::SiLU,
                (0, HARD_SIGMOID) => Fused::HardSwish,
                _ => continue,
            };
            if g.inputs(s.node).first() != Some(&x) || g.use_count(s) != 1 {
                continue;
            }
            replace(g, ValueRef { node: n, port: 0 }, gate, x);
            g.g.remove_node(s.node);
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, fuse_activations};
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    fn scalar(g: &mut TestGraph, name: &str, v: f32) -> crate::ir::ValueRef {
        g.constant(name, Tensor::from_f32(vec![], &[v]))
    }

    #[test]
    fn swish_is_silu() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let s = g.op("sig", "Sigmoid", &[x], &[]);
        let y = g.op("swish", "Mul", &[x, s], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fuse_activations]), @"
        inputs: x:0
        outputs: swish:0
        x = Placeholder -> float32 [2, 3]
        swish = _SiLU(x:0) -> ?
        ");
    }

    /// MobileNetV3's `x · (relu6(x + 3) · (1/6))` is a hard swish; Keras' `relu6(y + 3) / 6`
    /// read by something else is a hard sigmoid gate; `relu6(x + 2) / 6` is neither.
    #[test]
    fn hard_sigmoid_and_hard_swish() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let y = g.input("y", &[2, 3]);
        let three = scalar(&mut g, "three", 3.0);
        let two = scalar(&mut g, "two", 2.0);
        let sixth = scalar(&mut g, "sixth", 1.0 / 6.0);
        let six = scalar(&mut g, "six", 6.0);
        let a = g.op("hs/add", "AddV2", &[x, three], &[]);
        let r = g.op("hs/relu6", "Relu6", &[a], &[]);
        let s = g.op("hs/mul", "Mul", &[r, sixth], &[]);
        let swish = g.op("hs/mul_1", "Mul", &[x, s], &[]);
        let a = g.op("gate/add", "AddV2", &[three, y], &[]);
        let r = g.op("gate/relu6", "Relu6", &[a], &[]);
        let s = g.op("gate/truediv", "RealDiv", &[r, six], &[]);
        let gated = g.op("gate/mul", "Mul", &[x, s], &[]);
        let a = g.op("other/add", "AddV2", &[x, two], &[]);
        let r = g.op("other/relu6", "Relu6", &[a], &[]);
        let other = g.op("other/truediv", "RealDiv", &[r, six], &[]);
        assert_snapshot!(g.after_passes(&[swish, gated, other], &[fuse_activations]), @"
        inputs: x:0, y:0
        outputs: hs/mul_1:0, gate/mul:0, other/truediv:0
        x = Placeholder -> float32 [2, 3]
        y = Placeholder -> float32 [2, 3]
        two = Const -> float32 []
        six = Const -> float32 []
        hs/mul_1 = _HardSwish(x:0) -> ?
        gate/truediv = _HardSigmoid(y:0) -> ?
        gate/mul = Mul(x:0, gate/truediv:0) -> ?
        other/add = AddV2(x:0, two:0) -> ?
        other/relu6 = Relu6(other/add:0) -> ?
        other/truediv = RealDiv(other/relu6:0, six:0) -> ?
        ");
    }

    /// `0.5·x·(1 + erf(x·0.7071))`: the exact GELU.
    #[test]
    fn erf_formula_is_exact_gelu() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let c = scalar(&mut g, "c", std::f32::consts::FRAC_1_SQRT_2);
        let half = scalar(&mut g, "half", 0.5);
        let one = scalar(&mut g, "one", 1.0);
        let a = g.op("gelu/mul", "Mul", &[x, c], &[]);
        let e = g.op("gelu/Erf", "Erf", &[a], &[]);
        let p = g.op("gelu/add", "AddV2", &[one, e], &[]);
        let h = g.op("gelu/mul_1", "Mul", &[half, x], &[]);
        let y = g.op("gelu/mul_2", "Mul", &[h, p], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_activations]), @r#"
        inputs: x:0
        outputs: gelu/mul_2:0
        x = Placeholder -> float32 [2, 3]
        gelu/mul_2 = _Gelu(x:0) {approximate="none"} -> float32 [2, 3]
        "#);
    }

    /// Keras' `ops.clip` on integers of unknown sizes (T5's and DeBERTa's relative position
    /// buckets) is one clamp; bounds the wrong way round, or of more axes than `x` (which
    /// broadcast it), stay a minimum and a maximum.
    #[test]
    fn min_then_max_is_one_clamp() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, -1], crate::tensor::DType::I64);
        let hi = g.constant("hi", Tensor::from_i64(vec![], &[15]));
        let lo = g.constant("lo", Tensor::from_i64(vec![], &[0]));
        let m = g.op("clip/Minimum", "Minimum", &[x, hi], &[]);
        let clip = g.op("clip/Maximum", "Maximum", &[m, lo], &[]);
        let m = g.op("wrong/Minimum", "Minimum", &[x, lo], &[]);
        let wrong = g.op("wrong/Maximum", "Maximum", &[m, hi], &[]);
        let wide = g.constant("wide", Tensor::from_i64(vec![1, 1, 1], &[0]));
        let m = g.op("wide/Minimum", "Minimum", &[x, hi], &[]);
        let wide = g.op("wide/Maximum", "Maximum", &[m, wide], &[]);
        assert_snapshot!(g.lower(&[clip, wrong, wide]), @"
        self.wide_const: [1, 1, 1] int64
        # wide_const: [1, 1, 1]
        ---
        h = x.clamp(0, 15)
        y = x.clamp(max=0)
        wrong = y.clamp(min=15)
        x = x.clamp(max=15)
        wide = torch.maximum(x, self.wide_const)
        return h, wrong, wide
        ");
    }

    /// A sigmoid read twice is not fused away.
    #[test]
    fn shared_sigmoid_stays() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let s = g.op("sig", "Sigmoid", &[x], &[]);
        let y = g.op("swish", "Mul", &[x, s], &[]);
        assert_snapshot!(g.after_passes(&[y, s], &[fuse_activations]), @"
        inputs: x:0
        outputs: swish:0, sig:0
        x = Placeholder -> float32 [2, 3]
        sig = Sigmoid(x:0) -> ?
        swish = Mul(x:0, sig:0) -> ?
        ");
    }
}
