//! Keras' int8 quantization of a layer's inputs (`quantizers.abs_max_quantize`, which every
//! layer of a `model.quantize("int8")` or `("int4")` model runs on what it reads):
//!
//! ```text
//! scale = 127 / (Max(Abs(x), axes, keep_dims) + eps)
//! q     = Cast<int8>(clip(Round(x * scale), -127, 127))
//! ```
//!
//! becomes one [`Fused::QuantizeInt8`] node with two outputs, `q` and `scale`:
//! `quantized, scale = quantize_int8(x, dim)` (templates/quantize_int8.py), nine ops a person
//! reads as one step. The clip may be TF's `ClipByValue` or a `Minimum` and a `Maximum` in
//! either order, each product and sum's operands in either order.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{
    both_orders, const_ints, const_scalar, inputs_of, replace_with_fused,
};
use crate::tensor::DType;

/// The bound of int8 codes Keras quantizes to (symmetric: -127 to 127).
const BOUND: f64 = 127.0;

pub fn fuse_quantize(g: &mut Graph) -> Result<()> {
    let casts: Vec<NodeIndex> = g
        .g
        .node_indices()
        .filter(|&n| g.node(n).op == "Cast" && g.node(n).attr_type("DstT").ok() == Some(DType::I8))
        .collect();
    for cast in casts {
        let Some(m) = quantized(g, cast) else { continue };
        // The cast's output (int8 codes), then the scale's.
        let codes = g.info(ValueRef { node: cast, port: 0 });
        let scale_info = g.info(m.scale);
        let node =
            replace_with_fused(g, cast, Fused::QuantizeInt8 { epsilon: m.epsilon }, &[m.x, m.axes]);
        g.node_mut(node).outputs = vec![codes, scale_info];
        // Whatever else reads the scale (the product's rescaling) reads the fused node's.
        g.replace_uses(m.scale, ValueRef { node, port: 1 });
    }
    Ok(())
}

/// What a quantization matched: its input, the axes of its maximum, the scale's value and
/// the epsilon added to the maximum.
struct Quantization {
    x: ValueRef,
    axes: ValueRef,
    scale: ValueRef,
    epsilon: f32,
}

/// The quantization whose int8 cast is node `cast` (see the module's doc).
fn quantized(g: &Graph, cast: NodeIndex) -> Option<Quantization> {
    let clipped = *g.inputs(cast).first()?;
    let rounded = clipped_to_bound(g, clipped)?;
    let product = *inputs_of(g, rounded, &["Round"])?.first()?;
    both_orders(g, product, &["Mul"]).into_iter().find_map(|(x, scale)| {
        let float = g.info(x).dtype.is_some_and(|d| d.is_float());
        let (axes, epsilon) = scale_of(g, scale, x)?;
        float.then_some(Quantization { x, axes, scale, epsilon })
    })
}

/// `r` where `v` is `r` clipped to `[-127, 127]`: `ClipByValue(r, -127, 127)`, or a
/// `Minimum` with 127 and a `Maximum` with -127 in either order.
fn clipped_to_bound(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let is = |c: ValueRef, x: f64| const_scalar(g, c) == Some(x);
    if let Some(&[r, lo, hi]) = inputs_of(g, v, &["ClipByValue"]).as_deref() {
        return (is(lo, -BOUND) && is(hi, BOUND)).then_some(r);
    }
    // A maximum is with the lower bound, a minimum with the upper one.
    let bound = |op: &str| if op == "Maximum" { -BOUND } else { BOUND };
    let with_bound = |v: ValueRef, op: &str| {
        both_orders(g, v, &[op]).into_iter().find(|&(_, c)| is(c, bound(op))).map(|(r, _)| r)
    };
    [("Maximum", "Minimum"), ("Minimum", "Maximum")]
        .into_iter()
        .find_map(|(outer, inner)| with_bound(with_bound(v, outer)?, inner))
}

/// `(axes, eps)` where `scale` is `127 / (Max(Abs(x), axes, keep_dims) + eps)`.
fn scale_of(g: &Graph, scale: ValueRef, x: ValueRef) -> Option<(ValueRef, f32)> {
    let &[bound, sum] = inputs_of(g, scale, &["RealDiv", "Div"])?.as_slice() else { return None };
    if const_scalar(g, bound) != Some(BOUND) {
        return None;
    }
    both_orders(g, sum, &["AddV2", "Add"]).into_iter().find_map(|(max, eps)| {
        let epsilon = const_scalar(g, eps)? as f32;
        let &[abs, axes] = inputs_of(g, max, &["Max"])?.as_slice() else { return None };
        let keep = g.node(max.node).attr_bool_or("keep_dims", false).ok()?;
        let of_x = inputs_of(g, abs, &["Abs"])?.first() == Some(&x);
        let positive = epsilon > 0.0 && epsilon.is_finite();
        (keep && of_x && positive && const_ints(g, axes).is_some()).then_some((axes, epsilon))
    })
}

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras' int8 dense layer on `x [N, 8]`: the input quantized per row, its codes
    /// multiplied in float and divided by the scale. `bound` is the codes' bound (127 for
    /// int8); `clip_op`: TF's `ClipByValue`, or a `Minimum` then `Maximum` with the
    /// operands of each product and sum swapped.
    fn int8_dense(bound: f32, clip_op: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let scalar = |g: &mut TestGraph, name: &str, v: f32| {
            g.constant(name, Tensor::from_f32(vec![], &[v]))
        };
        let axes = g.constant("q/axes", int_tensor(&[1], &[-1]));
        let abs = g.op("q/Abs", "Abs", &[x], &[]);
        let max = g.op("q/Max", "Max", &[abs, axes], &[("keep_dims", boolean(true))]);
        let eps = scalar(&mut g, "q/eps", 1e-7);
        let sum = if clip_op {
            g.op("q/Add", "AddV2", &[max, eps], &[])
        } else {
            g.op("q/Add", "AddV2", &[eps, max], &[])
        };
        let b = scalar(&mut g, "q/bound", bound);
        let scale = g.op("q/truediv", "RealDiv", &[b, sum], &[]);
        let product = if clip_op {
            g.op("q/Mul", "Mul", &[x, scale], &[])
        } else {
            g.op("q/Mul", "Mul", &[scale, x], &[])
        };
        let rounded = g.op("q/Round", "Round", &[product], &[]);
        let (lo, hi) = (scalar(&mut g, "q/lo", -bound), scalar(&mut g, "q/hi", bound));
        let clipped = if clip_op {
            g.op("q/clip", "ClipByValue", &[rounded, lo, hi], &[])
        } else {
            let m = g.op("q/clip/Minimum", "Minimum", &[hi, rounded], &[]);
            g.op("q/clip", "Maximum", &[m, lo], &[])
        };
        let to_int8 = [("SrcT", dtype(DType::F32)), ("DstT", dtype(DType::I8))];
        let codes = g.op("q/Cast", "Cast", &[clipped], &to_int8);
        let to_float = [("SrcT", dtype(DType::I8)), ("DstT", dtype(DType::F32))];
        let codes = g.op("q/Cast_1", "Cast", &[codes], &to_float);
        let w = g.input("w", &[8, 4]);
        let y = g.op("q/MatMul", "MatMul", &[codes, w], &[]);
        let y = g.op("q/truediv_1", "RealDiv", &[y, scale], &[]);
        g.lower(&[y])
    }

    #[test]
    fn keras_int8_quantization_is_one_call() {
        let fused = int8_dense(127.0, true);
        assert_eq!(fused, int8_dense(127.0, false), "either clip, either operand order");
        assert_snapshot!(fused, @"
        ---
        x, scale = quantize_int8(x, 1)
        x = x.to(torch.float32)
        x = x @ w
        x = x / scale
        return x
        ");
    }

    /// Codes of another range are not Keras' int8 ones: the arithmetic stays.
    #[test]
    fn another_bound_stays_arithmetic() {
        assert_snapshot!(int8_dense(100.0, true), @"
        ---
        h = torch.abs(x)
        h = h.amax(1, keepdim=True)
        h = h + 1e-7
        truediv = 100.0 / h
        h = x * truediv
        h = torch.round(h)
        h = h.clamp(-100.0, 100.0).to(torch.int8).to(torch.float32)
        h = h @ w
        h = h / truediv
        return h
        ");
    }
}
