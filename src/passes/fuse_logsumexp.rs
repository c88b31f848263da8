//! `tf.reduce_logsumexp` as TF writes it (a max kept aside, made 0 where it is not finite, so
//! that all -inf or an inf stay exact):
//!
//! ```text
//! m = Select(IsFinite(M), M, 0) with M = Max(x, axes, keep_dims)
//! y = Log(Sum(Exp(x - m), axes)) + m      (m reshaped to y's shape without keep_dims)
//! ```
//!
//! becomes one [`Fused::LogSumExp`] node, `x.logsumexp(axes)`: torch's is as exact on the
//! same inputs (all -inf gives -inf, an inf gives inf), and it is what a person writes (CRF
//! forward algorithms, mixture densities, losses) instead of eight temporaries.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{
    binary, both_orders, const_ints, inputs_of, is_one_of, is_zeros, replace_with_fused,
};

pub fn fuse_logsumexp(g: &mut Graph) -> Result<()> {
    let adds: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op.as_str(), "AddV2" | "Add")).collect();
    for n in adds {
        if let Some((x, axes, keep_dims)) = logsumexp(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, Fused::LogSumExp { keep_dims }, &[x, axes]);
        }
    }
    Ok(())
}

/// `(x, axes, keep_dims)` when `add` is TF's log-sum-exp of `x` over constant `axes`.
fn logsumexp(g: &Graph, add: ValueRef) -> Option<(ValueRef, ValueRef, bool)> {
    both_orders(g, add, &["AddV2", "Add"]).into_iter().find_map(|(log, max)| {
        let sum = *inputs_of(g, log, &["Log"])?.first()?;
        let [exp, axes] = inputs_of(g, sum, &["Sum"])?[..] else { return None };
        let keep_dims = g.node(sum.node).attr_bool_or("keep_dims", false).ok()?;
        let (x, m) = binary(g, *inputs_of(g, exp, &["Exp"])?.first()?, &["Sub"])?;
        let (mx, max_axes) = finite_max(g, m)?;
        let same_max = if keep_dims { max == m } else { reshaped_to(g, max, log) == Some(m) };
        let float = g.info(x).dtype.is_some_and(|d| d.is_float());
        let same_axes = const_ints(g, axes).is_some() && const_ints(g, axes) == max_axes;
        (same_max && mx == x && float && same_axes).then_some((x, axes, keep_dims))
    })
}

/// `Select(IsFinite(M), M, 0)` with `M = Max(x, axes, keep_dims)` → `(x, axes)`.
fn finite_max(g: &Graph, m: ValueRef) -> Option<(ValueRef, Option<Vec<i64>>)> {
    let [finite, max, zero] = inputs_of(g, m, &["SelectV2", "Select"])?[..] else { return None };
    let zero_like = is_zeros(g, zero)
        || (is_one_of(g, zero, &["ZerosLike"]) && inputs_of(g, zero, &["ZerosLike"])? == [max]);
    let [x, axes] = inputs_of(g, max, &["Max"])?[..] else { return None };
    let kept = g.node(max.node).attr_bool_or("keep_dims", false).ok()?;
    let tested = inputs_of(g, finite, &["IsFinite"])?;
    (zero_like && kept && tested == [max]).then(|| (x, const_ints(g, axes)))
}

/// `m` when `v` is `Reshape(m, target)` to the shape of `like`: `Shape(like)`, or the
/// constant TF folded it to (its unknown sizes `-1`).
fn reshaped_to(g: &Graph, v: ValueRef, like: ValueRef) -> Option<ValueRef> {
    let [m, target] = inputs_of(g, v, &["Reshape"])?[..] else { return None };
    if inputs_of(g, target, &["Shape"]).is_some_and(|i| i == [like]) {
        return Some(m);
    }
    let want = g.info(like).shape?;
    let got = const_ints(g, target)?;
    let fits = got.len() == want.len()
        && got.iter().zip(&want).all(|(&t, w)| match w {
            Some(w) => t == *w as i64 || t == -1,
            None => t == -1,
        });
    (fits && got.iter().filter(|&&t| t == -1).count() <= 1).then_some(m)
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// TF's `reduce_logsumexp(x, axis)`, with and without keep_dims.
    fn logsumexp(keep: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 5]);
        let axes = g.constant("axes", int_tensor(&[1], &[1]));
        let max = g.op("max", "Max", &[x, axes], &[("keep_dims", boolean(true))]);
        let finite = g.op("finite", "IsFinite", &[max], &[]);
        let zero = g.constant("zero", crate::tensor::Tensor::from_f32(vec![], &[0.0]));
        let m = g.op("m", "SelectV2", &[finite, max, zero], &[]);
        let d = g.op("d", "Sub", &[x, m], &[]);
        let e = g.op("e", "Exp", &[d], &[]);
        let s = g.op("s", "Sum", &[e, axes], &[("keep_dims", boolean(keep))]);
        let log = g.op("log", "Log", &[s], &[]);
        let m = if keep {
            m
        } else {
            let shape = g.op("shape", "Shape", &[log], &[]);
            g.op("flat", "Reshape", &[m, shape], &[])
        };
        let y = g.op("y", "AddV2", &[log, m], &[]);
        g.lower(&[y])
    }

    #[test]
    fn reduce_logsumexp_is_one_call() {
        assert_snapshot!(logsumexp(false), @"
            ---
            x = x.logsumexp(1)
            return x
            ");
        assert_snapshot!(logsumexp(true), @"
            ---
            x = x.logsumexp(1, keepdim=True)
            return x
            ");
    }
}
