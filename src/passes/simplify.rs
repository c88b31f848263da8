//! Drops arithmetic that does nothing (`x * 1.0`, `x + 0.0`, `x - 0`, `x / 1`), as Keras'
//! Rescaling and swish emit it, when the constant does not broadcast `x` to a larger shape.
//! Exact in floating point (up to the sign of a zero).

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
}
