//! L2 normalisation along one axis, as `tf.math.l2_normalize` and Keras 3's `ops.normalize`
//! (`UnitNormalization`, CLIP-style embedding heads) write it:
//!
//! ```text
//! x * Rsqrt(Maximum(Sum(x², axis, keep_dims), eps²))     (TF)
//! x * Minimum(Rsqrt(Sum(x², axis, keep_dims)), 1 / eps)  (Keras)
//! ```
//!
//! both `x / max(‖x‖, eps)`, become one [`Fused::L2Normalize`] node: `F.normalize(x, dim,
//! eps=eps)`, torch's spelling of the same formula.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{
    both_orders, const_ints, const_scalar, inputs_of, replace_with_fused, squared,
};

pub fn fuse_l2norm(g: &mut Graph) -> Result<()> {
    let muls: Vec<NodeIndex> = g.g.node_indices().filter(|&n| g.node(n).op == "Mul").collect();
    for n in muls {
        if let Some((x, axes, epsilon)) = l2_normalized(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, Fused::L2Normalize { epsilon }, &[x, axes]);
        }
    }
    Ok(())
}

/// `(x, axis, eps)` when `mul` is `x` times the inverse of its L2 norm along one constant
/// axis, at most `1 / eps`.
fn l2_normalized(g: &Graph, mul: ValueRef) -> Option<(ValueRef, ValueRef, f32)> {
    both_orders(g, mul, &["Mul"]).into_iter().find_map(|(x, inv)| {
        let (sum, eps) = inverse_norm(g, inv)?;
        let [sq, axes] = inputs_of(g, sum, &["Sum"])?[..] else { return None };
        let keep = g.node(sum.node).attr_bool_or("keep_dims", false).ok()?;
        let one_axis = const_ints(g, axes).is_some_and(|a| a.len() == 1);
        let float = g.info(x).dtype.is_some_and(|d| d.is_float());
        let positive = eps > 0.0 && eps.is_finite();
        (squared(g, sq) == Some(x) && keep && one_axis && float && positive)
            .then_some((x, axes, eps))
    })
}

/// `Rsqrt(Maximum(s, eps²))` or `Minimum(Rsqrt(s), 1 / eps)` → `(s, eps)`.
fn inverse_norm(g: &Graph, v: ValueRef) -> Option<(ValueRef, f32)> {
    if let Some(i) = inputs_of(g, v, &["Rsqrt"]) {
        return both_orders(g, *i.first()?, &["Maximum"]).into_iter().find_map(|(s, c)| {
            let floor = const_scalar(g, c)?;
            Some((s, floor.sqrt() as f32))
        });
    }
    both_orders(g, v, &["Minimum"]).into_iter().find_map(|(r, c)| {
        let s = *inputs_of(g, r, &["Rsqrt"])?.first()?;
        let ceiling = const_scalar(g, c)?;
        Some((s, (1.0 / ceiling) as f32))
    })
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `x [N, 8]` normalised along its last axis, TF's way or Keras' way.
    fn normalized(keras: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let axes = g.constant("axes", int_tensor(&[1], &[-1]));
        let sq = g.op("sq", "Square", &[x], &[]);
        let s = g.op("s", "Sum", &[sq, axes], &[("keep_dims", boolean(true))]);
        let inv = if keras {
            let r = g.op("r", "Rsqrt", &[s], &[]);
            let c = g.constant("c", Tensor::from_f32(vec![], &[1e7]));
            g.op("inv", "Minimum", &[r, c], &[])
        } else {
            let c = g.constant("c", Tensor::from_f32(vec![], &[1e-12]));
            let m = g.op("m", "Maximum", &[s, c], &[]);
            g.op("inv", "Rsqrt", &[m], &[])
        };
        let y = g.op("y", "Mul", &[x, inv], &[]);
        g.lower(&[y])
    }

    #[test]
    fn l2_normalize_is_f_normalize() {
        assert_snapshot!(normalized(false), @"
            ---
            x = F.normalize(x, dim=1, eps=1e-6)
            return x
            ");
        assert_snapshot!(normalized(true), @"
            ---
            x = F.normalize(x, dim=1, eps=1e-7)
            return x
            ");
    }
}
