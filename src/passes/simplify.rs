//! Drops arithmetic that does nothing (`x * 1.0`, `x + 0.0`, `x - 0`, `x / 1`), as Keras'
//! Rescaling and swish emit it, when the constant does not broadcast `x` to a larger shape.
//! Exact in floating point (up to the sign of a zero). Also transposes that undo each other
//! and reshapes back to the shape a value had before it was reshaped (Keras' `UpSampling3D`
//! by 1 along an axis: `ExpandDims → Tile by ones → Reshape`).

use crate::error::Result;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::const_ints;

/// Which operand slot may hold the neutral constant, and its value (from the registry).
fn neutral(op: &str) -> Option<(&'static [usize], f64)> {
    crate::ops::lookup(op)?.neutral
}

/// `Transpose(Transpose(x, p), q)` with `p[q[i]] == i`: `x` itself (Keras' time-major
/// recurrent layers swap the first two axes on the way in and out).
fn transpose_pair(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let perm = |n: petgraph::stable_graph::NodeIndex| {
        let i = g.inputs(n);
        (g.node(n).op == "Transpose" && i.len() == 2)
            .then(|| const_ints(g, i[1]).map(|p| (i[0], p)))
            .flatten()
    };
    let (inner, q) = perm(n)?;
    let (x, p) = perm(inner.node)?;
    let identity = p.len() == q.len()
        && q.iter().enumerate().all(|(i, &qi)| {
            usize::try_from(qi).ok().and_then(|qi| p.get(qi)).is_some_and(|&v| v == i as i64)
        });
    identity.then_some(x)
}

/// `Reshape(r(x), target)` with `r` a Reshape, ExpandDims or Squeeze (or none) and `target`
/// provably `x`'s own shape: `x` itself. Provably: every size known and equal, except at
/// most one that the target leaves to `-1` (the element count then fixes it).
fn reshape_back(g: &Graph, n: petgraph::stable_graph::NodeIndex) -> Option<ValueRef> {
    let i = g.inputs(n);
    if g.node(n).op != "Reshape" || i.len() != 2 {
        return None;
    }
    let target = const_ints(g, i[1])?;
    let producer = g.node(i[0].node);
    let x = match producer.op.as_str() {
        "Reshape" | "ExpandDims" | "Squeeze" => *g.inputs(i[0].node).first()?,
        _ => i[0],
    };
    let shape = g.info(x).shape?;
    let mut free = 0;
    let same = shape.len() == target.len()
        && shape.iter().zip(&target).all(|(&d, &t)| match (d, t) {
            (Some(d), t) if t == d as i64 => true,
            (_, -1) => {
                free += 1;
                true
            }
            _ => false,
        });
    (same && free <= 1 && g.info(x).dtype == g.info(ValueRef { node: n, port: 0 }).dtype)
        .then_some(x)
}

pub fn simplify(g: &mut Graph) -> Result<()> {
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        if let Some(x) = transpose_pair(g, n) {
            g.replace_uses(ValueRef { node: n, port: 0 }, x);
            continue;
        }
        let Some((slots, value)) = neutral(&g.node(n).op) else {
            continue;
        };
        let inputs = g.inputs(n);
        if inputs.len() != 2 {
            continue;
        }
        for &slot in slots {
            let (c, other) = (inputs[slot], inputs[1 - slot]);
            let Some(t) = g.const_value(c) else { continue };
            let is_neutral = t.values().is_some_and(|v| match v {
                crate::tensor::Values::F(f) => f.iter().all(|&x| x == value),
                crate::tensor::Values::I(i) => i.iter().all(|&x| x as f64 == value),
            });
            let out = ValueRef { node: n, port: 0 };
            let (in_info, out_info) = (g.info(other), g.info(out));
            // A broadcasting op may grow its operand; a Tile by ones never does.
            let same_shape = (in_info.shape.is_some() && in_info.shape == out_info.shape)
                || g.node(n).op == "Tile";
            if is_neutral
                && same_shape
                && in_info.dtype == out_info.dtype
                && g.const_value(other).is_none()
            {
                g.replace_uses(out, other);
                if !g.outputs.contains(&out) {
                    g.g.remove_node(n);
                }
                break;
            }
        }
    }
    // After the Tiles by ones are gone.
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        if let Some(x) = reshape_back(g, n) {
            g.replace_uses(ValueRef { node: n, port: 0 }, x);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, simplify};
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn neutral_arithmetic_and_inverse_transposes_go() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let one = g.constant("one", Tensor::from_f32(vec![], &[1.0]));
        let zeros = g.constant("zeros", Tensor::from_f32(vec![3], &[0.0; 3]));
        let perm = g.constant("perm", int_tensor(&[2], &[1, 0]));
        let a = g.op("a", "Mul", &[one, x], &[]);
        let b = g.op("b", "AddV2", &[a, zeros], &[]);
        let t = g.op("t", "Transpose", &[b, perm], &[]);
        let u = g.op("u", "Transpose", &[t, perm], &[]);
        let y = g.op("y", "Relu", &[u], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [2, 3]
        y = Relu(x:0) -> float32 [2, 3]
        ");
    }

    /// `x + zeros` that broadcasts `x` to a larger shape is not neutral.
    #[test]
    fn broadcasting_arithmetic_stays() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[3]);
        let zeros = g.constant("zeros", Tensor::from_f32(vec![2, 3], &[0.0; 6]));
        let y = g.op("y", "AddV2", &[x, zeros], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: y:0
        x = Placeholder -> float32 [3]
        zeros = Const -> float32 [2, 3]
        y = AddV2(x:0, zeros:0) -> float32 [2, 3]
        ");
    }

    /// A reshape back to the shape a value had before ExpandDims (Keras' `UpSampling3D` by 1
    /// along an axis, once its Tile by ones is gone) is no reshape; one to another shape stays.
    #[test]
    fn reshapes_back_to_the_same_shape_go() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let axis = g.constant("axis", int_tensor(&[], &[2]));
        let e = g.op("e", "ExpandDims", &[x, axis], &[]);
        let same = g.constant("same", int_tensor(&[3], &[-1, 3, 4]));
        let back = g.op("back", "Reshape", &[e, same], &[]);
        let y = g.op("y", "Relu", &[back], &[]);
        let other = g.constant("other", int_tensor(&[3], &[-1, 4, 3]));
        let z = g.op("z", "Reshape", &[e, other], &[]);
        assert_snapshot!(g.after_passes(&[y, z], &[fold_and_infer, simplify]), @"
        inputs: x:0
        outputs: y:0, z:0
        x = Placeholder -> float32 [?, 3, 4]
        axis = Const -> int32 []
        e = ExpandDims(x:0, axis:0) -> float32 [?, 3, 1, 4]
        y = Relu(x:0) -> float32 [?, 3, 4]
        other = Const -> int32 [3]
        z = Reshape(e:0, other:0) -> float32 [?, 4, 3]
        ");
    }
}
