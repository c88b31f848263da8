//! Joining tensors: `ConcatV2` → `torch.cat` (on the NCHW axis when its inputs run in NCHW),
//! `Pack` → `torch.stack`. Both fold when they assemble shape vectors.

use crate::ir::{Dim, Partial, ValueInfo};
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::{is_host, is_host_value};
use crate::ops::util::{as_tensor, norm_axis, phys_axis};
use crate::ops::{Folded, OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::Tensor;

pub const OPS: &[OpDef] = &[
    op("ConcatV2", concat).infer(concat_infer).fold(concat_fold),
    op("Pack", pack).infer(pack_infer).fold(pack_fold),
];

fn list(items: Vec<Expr>) -> Expr {
    Expr::List(items)
}

fn concat(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = ctx.num_inputs().checked_sub(1).ok_or("no axis input")?;
    let axis = *ctx.const_ints(n)?.first().ok_or("axis must be a scalar")?;
    if matches!(axis, 0 | -1) && ctx.rank(0) == Some(1) {
        // The axis input is not part of the tuple.
        if let Some(expr) = host_concat(ctx, n)? {
            return Ok(Lowered::Expr { expr, layout: Layout::Host });
        }
    }
    let Some(rank) = ctx.rank(0) else {
        // torch counts a negative dim as TF does: TF layout and the raw axis.
        let items = (0..n).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
        let expr = Expr::call_kw("torch.cat", vec![list(items)], vec![("dim", Expr::int(axis))]);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    };
    let axis = norm_axis(axis, rank)?;
    let mut layout = Layout::Tf;
    if crate::ops::contract::channels_first_rank(Some(rank)) {
        for i in 0..n {
            if !ctx.is_const(i) && ctx.layout(i)? == Layout::ChannelsFirst {
                layout = Layout::ChannelsFirst;
            }
        }
    }
    let items = (0..n).map(|i| ctx.input_in(i, layout)).collect::<OpResult<Vec<_>>>()?;
    let dim = phys_axis(axis, layout, rank) as i64;
    let expr = Expr::call_kw("torch.cat", vec![list(items)], vec![("dim", Expr::int(dim))]);
    Ok(Lowered::Expr { expr, layout })
}

/// `ConcatV2(a, b, axis)` of integer vectors held as Python ints: `(*a, *b)`.
fn host_concat(ctx: &mut Ctx, n: usize) -> OpResult<Option<Expr>> {
    let ints = |ctx: &Ctx, i: usize| {
        ctx.rank(i) == Some(1) && ctx.info(i).dtype.is_some_and(|d| d.is_int())
    };
    if !(0..n).all(|i| ints(ctx, i) && is_host(ctx, i)) || !(0..n).any(|i| is_host_value(ctx, i)) {
        return Ok(None);
    }
    let mut items = Vec::new();
    for i in 0..n {
        match ctx.input_in(i, Layout::Host)? {
            Expr::Tuple(v) => items.extend(v),
            e => items.push(Expr::Starred(Box::new(e))),
        }
    }
    Ok(Some(Expr::Tuple(items)))
}

fn concat_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let n = inp.infos.len().checked_sub(1)?;
    let first = inp.infos.first()?;
    let rank = first.shape.as_ref()?.len();
    let axis = norm_axis(*inp.const_ints(n)?.first()?, rank).ok()?;
    let mut out = first.shape.clone()?;
    let mut total = Some(0usize);
    for info in &inp.infos[..n] {
        let s = info.shape.as_ref().filter(|s| s.len() == rank)?;
        total = match (total, s.get(axis).copied().flatten()) {
            (Some(t), Some(d)) => t.checked_add(d),
            _ => None,
        };
        for (i, d) in s.iter().enumerate() {
            if i != axis && out[i].is_none() {
                out[i] = *d;
            }
        }
    }
    out[axis] = total;
    Some(vec![ValueInfo { dtype: first.dtype, shape: Some(out) }])
}

/// Folds 1-D concatenations of (partly) known integer vectors, and constant concats.
fn concat_fold(inp: &OpInputs) -> Option<Folded> {
    let n = inp.infos.len().checked_sub(1).filter(|&n| n > 0)?;
    let all_const = inp.consts[..n].iter().all(|c| c.is_some());
    if all_const {
        let ts: Vec<&Tensor> = inp.consts[..n].iter().map(|c| c.unwrap()).collect();
        let rank = ts[0].rank();
        let axis = norm_axis(*inp.const_ints(n)?.first()?, rank).ok()?;
        if axis != 0
            || ts.iter().any(|t| {
                t.dtype != ts[0].dtype || t.rank() != rank || t.shape[1..] != ts[0].shape[1..]
            })
        {
            return None;
        }
        let mut shape = ts[0].shape.clone();
        shape[0] = ts.iter().map(|t| t.shape[0]).sum();
        let mut data = Vec::new();
        for t in &ts {
            data.extend_from_slice(&t.data);
        }
        return Some(Folded::Tensor(Tensor { dtype: ts[0].dtype, shape, data: data.into() }));
    }
    // Entries known or read at run time; a piece known only by its length (a `SplitV` of a
    // shape, whose later outputs carry no entries) holds that many unknown ones.
    let (mut values, mut pieces_unknown) = (Vec::new(), false);
    for i in 0..n {
        match inp.dims(i) {
            Some(dims) => values.extend(dims),
            None => match inp.infos.get(i)?.shape.as_deref()? {
                [Some(len)] if *len <= MAX_UNKNOWN_PIECE => {
                    values.extend(std::iter::repeat_n(Dim::Unknown, *len));
                    pieces_unknown = true;
                }
                _ => return None,
            },
        }
    }
    // Such pieces are worth entries only beside something known.
    let worth = !pieces_unknown || values.iter().any(|d| *d != Dim::Unknown);
    worth.then_some(Folded::Partial(Partial { scalar: false, values }))
}

/// The longest piece of unknown entries a concatenated shape may hold (a shape's length is
/// a rank: small).
const MAX_UNKNOWN_PIECE: usize = 64;

/// `Pack` of constants of one dtype and shape: for each index before the axis, one slice of
/// each input in turn.
fn pack_constants(inp: &OpInputs) -> Option<Tensor> {
    let ts: Vec<&Tensor> = inp.consts.iter().copied().collect::<Option<_>>()?;
    let first = *ts.first()?;
    if ts.iter().any(|t| t.dtype != first.dtype || t.shape != first.shape) {
        return None;
    }
    let axis = norm_axis(inp.node.attr_int_or("axis", 0).ok()?, first.rank() + 1).ok()?;
    let outer: usize = first.shape[..axis].iter().product();
    let chunk = first.data.len().checked_div(outer)?;
    let mut data = Vec::with_capacity(first.data.len() * ts.len());
    for o in 0..outer {
        for t in &ts {
            data.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
        }
    }
    let mut shape = first.shape.clone();
    shape.insert(axis, ts.len());
    Some(Tensor { dtype: first.dtype, shape, data: data.into() })
}

fn pack(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = ctx.num_inputs();
    let axis = ctx.node().attr_int_or("axis", 0)?;
    let axis = match (axis, ctx.rank(0)) {
        (a, _) if a >= 0 => a as usize,
        (a, Some(rank)) => norm_axis(a, rank + 1)?,
        (a, None) => {
            // torch counts a negative dim from the end of the output, as TF does.
            let items = (0..n).map(|i| tensor_input(ctx, i)).collect::<OpResult<Vec<_>>>()?;
            let dim = Expr::int(crate::ops::util::unranked_axis(a)?);
            let expr = Expr::call_kw("torch.stack", vec![list(items)], vec![("dim", dim)]);
            return Ok(Lowered::Expr { expr, layout: Layout::Tf });
        }
    };
    if axis == 0
        && let Some(item_rank @ (0 | 1)) = ctx.rank(0)
        && let Some(expr) = host_tuple(ctx, item_rank)?
    {
        return Ok(Lowered::Expr { expr, layout: Layout::Host });
    }
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        items.push(tensor_input(ctx, i)?);
    }
    // One tensor stacked is that tensor with a new axis (Keras stacks a decoder's only layer's
    // outputs: `torch.stack([x], dim=1)`).
    if let [item] = items.as_slice() {
        let expr = item.clone().method("unsqueeze", vec![Expr::int(axis as i64)]);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    let expr =
        Expr::call_kw("torch.stack", vec![list(items)], vec![("dim", Expr::int(axis as i64))]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// Sizes packed (`(x.shape[0], -1)`; paddings `((0, 0), (0, p))`): a tuple of Python ints
/// when every input is an integer scalar (`item_rank` 0) or vector (1) written as Python ints
/// and one at least is held so (else `None`: tensors).
fn host_tuple(ctx: &mut Ctx, item_rank: usize) -> OpResult<Option<Expr>> {
    let n = ctx.num_inputs();
    let ints = |ctx: &Ctx, i: usize| {
        ctx.rank(i) == Some(item_rank) && ctx.info(i).dtype.is_some_and(|d| d.is_int())
    };
    if n == 0
        || !(0..n).all(|i| ints(ctx, i) && is_host(ctx, i))
        || !(0..n).any(|i| is_host_value(ctx, i))
    {
        return Ok(None);
    }
    let items = (0..n).map(|i| ctx.input_in(i, Layout::Host)).collect::<OpResult<Vec<_>>>()?;
    Ok(Some(Expr::Tuple(items)))
}

/// Input `i` as a tensor, a scalar constant included (`torch.stack` takes no Python numbers).
fn tensor_input(ctx: &mut Ctx, i: usize) -> OpResult<Expr> {
    let e = ctx.input_tf(i)?;
    as_tensor(ctx, i, e)
}

fn pack_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let first = inp.infos.first()?;
    // Every input has the same shape: any one that is known gives it.
    let mut shape = inp.infos.iter().find_map(|i| i.shape.clone())?;
    let axis = norm_axis(inp.node.attr_int_or("axis", 0).ok()?, shape.len() + 1).ok()?;
    shape.insert(axis, Some(inp.infos.len()));
    Some(vec![ValueInfo { dtype: first.dtype, shape: Some(shape) }])
}

/// Packs constants (a pad's `[[0, 0], [0, p], ...]`), or scalars into a vector (shape
/// arithmetic) known or partly known.
fn pack_fold(inp: &OpInputs) -> Option<Folded> {
    if let Some(t) = pack_constants(inp) {
        return Some(Folded::Tensor(t));
    }
    let mut values = Vec::new();
    for i in 0..inp.infos.len() {
        // An integer scalar computed at run time is an unknown entry.
        let scalar = inp.infos[i].shape.as_ref().is_some_and(|s| s.is_empty());
        let v = match inp.dims(i) {
            Some(v) => v,
            None if scalar && inp.infos[i].dtype.is_some_and(|d| d.is_int()) => vec![Dim::Unknown],
            None => return None,
        };
        if v.len() != 1 || inp.infos[i].shape.as_ref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        values.extend(v);
    }
    crate::ops::shape::int_vector(inp.infos.first()?.dtype?, values, false)
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn concat_on_channels_stays_nchw() {
        assert_snapshot!(after_conv(|g, y| {
            let r = g.op("relu", "Relu", &[y], &[]);
            let a = g.constant("axis", int_tensor(&[], &[-1]));
            g.op("cat", "ConcatV2", &[y, r, a], &[("N", int(2))])
        }), @"
        x = image.permute(0, 3, 1, 2)
        conv = self.conv(x)
        x = F.relu(conv)
        x = torch.cat([conv, x], dim=1).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Constants packed fold, on any axis: `[[0, 0], [1, 2]]` (a pad's sizes), and on axis 1
    /// the same rows interleaved.
    #[test]
    fn pack_of_constants_folds() {
        for (axis, want) in [(0, [0, 0, 1, 2]), (1, [0, 1, 0, 2])] {
            let mut g = TestGraph::new();
            let a = g.constant("a", int_tensor(&[2], &[0, 0]));
            let b = g.constant("b", int_tensor(&[2], &[1, 2]));
            let p = g.op("p", "Pack", &[a, b], &[("axis", int(axis)), ("N", int(2))]);
            let mut graph = g.build(&[p]);
            crate::passes::fold_and_infer(&mut graph).expect("folds");
            let t = graph.const_value(graph.outputs[0]).expect("a constant");
            assert_eq!((t.shape.as_slice(), t.to_i64()), (&[2, 2][..], Some(want.to_vec())));
        }
    }

    #[test]
    fn pack_of_tensors() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[-1, 3]);
        let b = g.input("b", &[-1, 3]);
        let p = g.op("stack", "Pack", &[a, b], &[("axis", int(1)), ("N", int(2))]);
        let _ = Tensor::from_f32(vec![], &[0.0]);
        assert_snapshot!(g.lower(&[p]), @"
        ---
        x = torch.stack([a, b], dim=1)
        return x
        ");
    }

    /// One tensor stacked: a new axis, as a person writes it.
    #[test]
    fn pack_of_one_tensor_adds_an_axis() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[-1, 3]);
        let p = g.op("stack", "Pack", &[a], &[("axis", int(-1)), ("N", int(1))]);
        assert_snapshot!(g.lower(&[p]), @"
        ---
        x = a.unsqueeze(2)
        return x
        ");
    }

    #[test]
    fn pack_on_a_negative_axis_needs_no_rank() {
        let mut g = TestGraph::new();
        let a = g.unranked_input("a");
        let s = g.op("sin", "Sin", &[a], &[]);
        let p = g.op("stack", "Pack", &[a, s], &[("axis", int(-1)), ("N", int(2))]);
        assert_snapshot!(g.lower(&[p]), @"
        ---
        x = torch.sin(a)
        x = torch.stack([a, x], dim=-1)
        return x
        ");
    }

    /// A shape concatenated from a later output of a split (no entries known, but its
    /// length) and a constant: the constant's sizes stay known (`tf.signal.frame` reshapes
    /// to `[outer.., n, 32]` this way).
    #[test]
    fn a_piece_known_only_by_its_length_keeps_the_rest_known() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 64]);
        let shape = g.op("Shape", "Shape", &[x], &[]);
        let sizes = g.constant("sizes", int_tensor(&[2], &[2, 1]));
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let split = g.op("split", "SplitV", &[shape, sizes, axis], &[("num_split", int(2))]);
        let outer = crate::ir::ValueRef { node: split.node, port: 1 };
        let sub = g.constant("sub", int_tensor(&[2], &[-1, 32]));
        let target = g.op("target", "ConcatV2", &[outer, sub, axis], &[("N", int(2))]);
        let y = g.op("Reshape", "Reshape", &[x, target], &[]);
        assert_snapshot!(g.after_passes(&[y], &[crate::passes::fold_and_infer]), @"
        inputs: x:0
        outputs: Reshape:0
        x = Placeholder -> float32 [?, ?, 64]
        Shape = Shape(x:0) -> int32 [3] = [x:0.shape[0], x:0.shape[1], 64]
        sizes = Const -> int32 [2]
        axis = Const -> int32 []
        split = SplitV(Shape:0, sizes:0, axis:0) {num_split=2} -> int32 [2], int32 [1]
        sub = Const -> int32 [2]
        target = ConcatV2(split:1, sub:0, axis:0) {N=2} -> int32 [3] = [?, -1, 32]
        Reshape = Reshape(x:0, target:0) -> float32 [?, ?, 32]
        ");
    }
}
