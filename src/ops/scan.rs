//! Running reductions along an axis: `Cumsum` → `cumsum`, `Cumprod` → `cumprod`,
//! `CumulativeLogsumexp` → `logcumsumexp`, with TF's `exclusive` (each position leaves itself
//! out) and `reverse` (from the end). An integer `Cumsum` of constants folds: offsets computed
//! from split sizes (D-FINE's deformable attention) become literals, not buffers.

use crate::ir::{Dim, Partial};
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{norm_axis, same_as_input};
use crate::ops::{Folded, OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::{Tensor, Values};

pub const OPS: &[OpDef] = &[
    op("Cumsum", |c| scan(c, "cumsum")).infer(same_as_input).fold(cumsum_fold),
    op("Cumprod", |c| scan(c, "cumprod")).infer(same_as_input),
    op("CumulativeLogsumexp", |c| scan(c, "logcumsumexp")).infer(same_as_input),
];

/// An integer `Cumsum` of a constant (any rank), or of a partly known vector (a shape's
/// entries): each running sum is known until the first unknown entry. Sums wrap as TF's do.
fn cumsum_fold(inp: &OpInputs) -> Option<Folded> {
    let exclusive = inp.node.attr_bool_or("exclusive", false).ok()?;
    let reverse = inp.node.attr_bool_or("reverse", false).ok()?;
    let [axis] = inp.const_ints(1)?[..] else { return None };
    let Some(t) = inp.consts.first().copied().flatten() else {
        let partial = inp.partials.first().copied().flatten()?;
        if partial.scalar || norm_axis(axis, 1).ok()? != 0 {
            return None;
        }
        let known: Vec<Option<i64>> = partial.values.iter().map(|d| d.known()).collect();
        let sums = running_sums(&known, exclusive, reverse);
        let values = sums.into_iter().map(|v| v.map_or(Dim::Unknown, Dim::Known)).collect();
        return Some(Folded::Partial(Partial { scalar: false, values }));
    };
    if !t.dtype.is_int() {
        return None; // a float sum's rounding is TF's kernel's business
    }
    let axis = norm_axis(axis, t.rank()).ok()?;
    let values = t.to_i64()?;
    let (len, inner) = (t.shape[axis], t.shape[axis + 1..].iter().product::<usize>());
    let mut out = values.clone();
    if !values.is_empty() {
        for (block, chunk) in values.chunks(len * inner).enumerate() {
            for j in 0..inner {
                let lane: Vec<Option<i64>> = (0..len).map(|i| Some(chunk[i * inner + j])).collect();
                for (i, s) in running_sums(&lane, exclusive, reverse).into_iter().enumerate() {
                    out[block * len * inner + i * inner + j] = s?;
                }
            }
        }
    }
    Tensor::with_values_like(t.dtype, t.shape.clone(), &Values::I(out)).map(Folded::Tensor)
}

/// TF's running sums along one lane, `None` from the first unknown entry on.
fn running_sums(lane: &[Option<i64>], exclusive: bool, reverse: bool) -> Vec<Option<i64>> {
    let mut out = vec![None; lane.len()];
    let mut sum = Some(0i64);
    let order: Vec<usize> =
        if reverse { (0..lane.len()).rev().collect() } else { (0..lane.len()).collect() };
    for i in order {
        let next = sum.zip(lane[i]).map(|(s, v)| s.wrapping_add(v));
        out[i] = if exclusive { sum } else { next };
        sum = next;
    }
    out
}

fn scan(ctx: &mut Ctx, method: &str) -> OpResult<Lowered> {
    // In TF layout torch counts axes as TF does, a negative one too: the rank is only
    // needed to check it.
    let axis = match (ctx.const_ints(1)?.as_slice(), ctx.rank(0)) {
        ([a], Some(rank)) => norm_axis(*a, rank)? as i64,
        ([a], None) => *a,
        _ => return Err("axis must be a scalar".into()),
    };
    let exclusive = ctx.node().attr_bool_or("exclusive", false)?;
    let reverse = ctx.node().attr_bool_or("reverse", false)?;
    let mut x = ctx.input_tf(0)?;
    if reverse {
        x = x.method("flip", vec![Expr::int(axis)]);
    }
    let mut expr = x.clone().method(method, vec![Expr::int(axis)]);
    if exclusive {
        expr = if method == "cumsum" {
            expr.binop(BinOp::Sub, x)
        } else {
            // Shift by one: the identity first (1 for a product, -inf for a log-sum-exp),
            // the last value dropped. (Dividing by `x` would fail on zeros.)
            let n = x.clone().attr("shape").index(Expr::int(axis));
            let first = x.method("narrow", vec![Expr::int(axis), Expr::int(0), Expr::int(1)]);
            let head = if method == "cumprod" {
                Expr::call("torch.ones_like", vec![first])
            } else {
                Expr::call("torch.full_like", vec![first, Expr::f64(f64::NEG_INFINITY)])
            };
            let body = expr.method(
                "narrow",
                vec![Expr::int(axis), Expr::int(0), n.binop(BinOp::Sub, Expr::int(1))],
            );
            Expr::call_kw(
                "torch.cat",
                vec![Expr::List(vec![head, body])],
                vec![("dim", Expr::int(axis))],
            )
        };
    }
    if reverse {
        expr = expr.method("flip", vec![Expr::int(axis)]);
    }
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

#[cfg(test)]
mod tests {
    use crate::ir::{Dim, Graph};
    use crate::testing::*;

    fn folded(data: crate::tensor::Tensor, axis: i64, attrs: &[(&str, bool)]) -> Graph {
        let mut g = TestGraph::new();
        let x = g.constant("x", data);
        let a = g.constant("axis", int_tensor(&[], &[axis]));
        let attrs: Vec<_> = attrs.iter().map(|&(k, v)| (k, boolean(v))).collect();
        let c = g.op("c", "Cumsum", &[x, a], &attrs);
        let mut graph = g.build(&[c]);
        crate::passes::fold_and_infer(&mut graph).expect("folds");
        graph
    }

    /// Offsets from split sizes (`[0] + cumsum(sizes)`, D-FINE's deformable attention) are
    /// literals: an integer Cumsum of constants folds, on any axis, exclusive and reversed
    /// as TF counts them.
    #[test]
    fn an_integer_cumsum_of_constants_folds() {
        let m = int_tensor(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        for (axis, attrs, want) in [
            (0, &[][..], [1, 2, 3, 5, 7, 9]),
            (-1, &[][..], [1, 3, 6, 4, 9, 15]),
            (1, &[("exclusive", true)][..], [0, 1, 3, 0, 4, 9]),
            (1, &[("reverse", true)][..], [6, 5, 3, 15, 11, 6]),
            (1, &[("exclusive", true), ("reverse", true)][..], [5, 3, 0, 11, 6, 0]),
        ] {
            let g = folded(m.clone(), axis, attrs);
            let t = g.const_value(g.outputs[0]).expect("a constant");
            assert_eq!((t.shape.as_slice(), t.to_i64()), (&[2, 3][..], Some(want.to_vec())));
        }
        let floats = crate::tensor::Tensor::from_f32(vec![2], &[0.1, 0.2]);
        let g = folded(floats, 0, &[]);
        assert!(g.const_value(g.outputs[0]).is_none(), "a float sum is left to run");
    }

    /// A running sum of a shape's entries is known up to its first run-time entry.
    #[test]
    fn a_cumsum_of_a_partly_known_shape_is_known_up_to_its_first_unknown() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3, -1, 4]);
        let s = g.op("s", "Shape", &[x], &[]);
        let a = g.constant("axis", int_tensor(&[], &[0]));
        let c = g.op("c", "Cumsum", &[s, a], &[]);
        let mut graph = g.build(&[c]);
        crate::passes::fold_and_infer(&mut graph).expect("folds");
        let partial = graph.node(graph.outputs[0].node).partial.clone().expect("partly known");
        assert_eq!(partial.values, [Dim::Known(2), Dim::Known(5), Dim::Unknown, Dim::Unknown]);
    }
}
