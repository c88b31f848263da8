//! Moving spatial blocks into the batch and back (`SpaceToBatchND`, `BatchToSpaceND`) or into
//! the channels and back (`SpaceToDepth`, `DepthToSpace`; tf-opdefs.txt). TF's dilated convolutions are built from them (pad, fold each `b`-th
//! pixel into the batch, run the conv undilated, unfold, crop); `passes::fuse_dilated` turns
//! that sandwich back into one dilated conv, so what reaches these translators is the ops used
//! on their own. Both run in TF's layout as reshape → permute → reshape, with the block
//! sizes constant, paddings and crops constant or read at run time (a dilated conv on an
//! image of any size), and the other sizes known or read off the input.
//! Depth moves run channels-first when their input is held so (TF orders the channels
//! block-major, `(i·b + j)·C + c`, not as `F.pixel_shuffle` does, so it is spelled out too).

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult, TranslateError};
use crate::ops::util::phys_axis;
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::Tensor;

pub const OPS: &[OpDef] = &[
    op("SpaceToBatchND", space_to_batch).infer(space_to_batch_infer),
    op("BatchToSpaceND", batch_to_space).infer(batch_to_space_infer),
    op("SpaceToDepth", space_to_depth).infer(depth_infer),
    op("DepthToSpace", depth_to_space).infer(depth_infer),
];

/// Block sizes (`[M]`, each ≥ 1) and `(before, after)` padding or crop pairs (`[M, 2]`,
/// each ≥ 0).
type Blocks = (Vec<i64>, Vec<(i64, i64)>);

/// The blocks of an input of `rank`, which must hold the batch, the M block axes and
/// anything after.
fn geometry(block: &Tensor, pairs: &Tensor, rank: usize) -> Result<Blocks, String> {
    let b = block.to_i64().ok_or("block_shape must be integers")?;
    let p = pairs.to_i64().ok_or("paddings/crops must be integers")?;
    if block.rank() != 1
        || b.is_empty()
        || b.len() >= rank
        || b.iter().any(|&x| !(1..=i32::MAX as i64).contains(&x))
    {
        return Err(format!("block_shape {b:?} does not fit an input of rank {rank}"));
    }
    if pairs.shape != [b.len(), 2] || p.iter().any(|&x| !(0..=i32::MAX as i64).contains(&x)) {
        return Err(format!(
            "paddings/crops of shape {:?} do not fit block_shape {b:?}",
            pairs.shape
        ));
    }
    Ok((b, p.chunks(2).map(|c| (c[0], c[1])).collect()))
}

/// The shape when the block or its pads (crops) are known only at run time: the batch and
/// the `M` block axes unknown, the axes after them (channels) as the input's.
fn run_time_blocks(inp: &OpInputs, shape: &[Option<usize>]) -> Vec<Option<usize>> {
    let m = inp.infos.get(1).and_then(|b| b.shape.as_ref()?.first().copied().flatten());
    match m {
        Some(m) if m < shape.len() => {
            let mut out = vec![None; m + 1];
            out.extend_from_slice(&shape[m + 1..]);
            out
        }
        _ => vec![None; shape.len()],
    }
}

fn space_to_batch_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let (Some(block), Some(pads)) = (inp.consts.get(1).copied()?, inp.consts.get(2).copied()?)
    else {
        return Some(vec![ValueInfo { dtype: x.dtype, shape: Some(run_time_blocks(inp, shape)) }]);
    };
    let (b, p) = geometry(block, pads, shape.len()).ok()?;
    let mut out = shape.clone();
    let prod: i64 = b.iter().product();
    out[0] = shape[0].and_then(|n| n.checked_mul(usize::try_from(prod).ok()?));
    for (i, (&b, &(lo, hi))) in b.iter().zip(&p).enumerate() {
        out[i + 1] = shape[i + 1].and_then(|n| {
            let padded = i64::try_from(n).ok()?.checked_add(lo)?.checked_add(hi)?;
            (padded % b == 0).then(|| usize::try_from(padded / b).ok()).flatten()
        });
    }
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

fn batch_to_space_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let (Some(block), Some(crops)) = (inp.consts.get(1).copied()?, inp.consts.get(2).copied()?)
    else {
        return Some(vec![ValueInfo { dtype: x.dtype, shape: Some(run_time_blocks(inp, shape)) }]);
    };
    let (b, c) = geometry(block, crops, shape.len()).ok()?;
    let mut out = shape.clone();
    let prod = usize::try_from(b.iter().product::<i64>()).ok()?;
    out[0] = shape[0].and_then(|n| (n % prod == 0).then_some(n / prod));
    for (i, (&b, &(lo, hi))) in b.iter().zip(&c).enumerate() {
        out[i + 1] = shape[i + 1].and_then(|n| {
            let full = i64::try_from(n).ok()?.checked_mul(b)?;
            usize::try_from(full.checked_sub(lo)?.checked_sub(hi)?).ok()
        });
    }
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// Paddings or crops: known here, or read at run time as `p[i][0]`, `p[i][1]` (TF computes
/// them from the input's size for a dilated conv on an image of any size).
enum Pairs {
    Known(Vec<(i64, i64)>),
    RunTime(Vec<(Expr, Expr)>),
}

impl Pairs {
    fn all_zero(&self) -> bool {
        matches!(self, Pairs::Known(p) if p.iter().all(|&q| q == (0, 0)))
    }

    fn exprs(&self) -> Vec<(Expr, Expr)> {
        match self {
            Pairs::Known(p) => p.iter().map(|&(lo, hi)| (Expr::int(lo), Expr::int(hi))).collect(),
            Pairs::RunTime(p) => p.clone(),
        }
    }
}

/// The input's rank, its block sizes (constant) and its paddings or crops.
fn read_geometry(ctx: &mut Ctx) -> OpResult<(usize, Vec<i64>, Pairs)> {
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    if !ctx.is_const(1) {
        return Err("block sizes computed at run time".into());
    }
    if ctx.is_const(2) {
        let (b, p) = geometry(ctx.const_input(1)?, ctx.const_input(2)?, rank)?;
        return Ok((rank, b, Pairs::Known(p)));
    }
    let m = ctx.const_input(1)?.numel();
    let zeros = crate::tensor::Tensor::from_i64(vec![m, 2], &vec![0; 2 * m]);
    let (b, _) = geometry(ctx.const_input(1)?, &zeros, rank)?;
    if ctx.info(2).shape.is_some_and(|s| s != [Some(m), Some(2)]) {
        return Err(format!("paddings/crops must be [{m}, 2]").into());
    }
    let whole = ctx.input_in(2, Layout::Host)?;
    let at = |i: usize, j: i64| whole.clone().index(Expr::int(i as i64)).index(Expr::int(j));
    Ok((rank, b, Pairs::RunTime((0..m).map(|i| (at(i, 0), at(i, 1))).collect())))
}

/// `a + b`, done here when both are numbers, and without a `+ 0`.
fn add(a: Expr, b: Expr) -> Expr {
    match (a.as_int(), b.as_int()) {
        (Some(x), Some(y)) => Expr::int(x + y),
        (_, Some(0)) => a,
        (Some(0), _) => b,
        _ => a.binop(crate::py::BinOp::Add, b),
    }
}

/// TF axis `a` of input 0: its static size, or `x.shape[..]` read at run time from `x`
/// held in `layout`.
fn size_in(ctx: &Ctx, x: &Expr, a: usize, layout: Layout) -> Expr {
    match ctx.info(0).shape.as_ref().and_then(|s| s[a]) {
        Some(n) => Expr::int(n as i64),
        None => {
            let rank = ctx.rank(0).unwrap_or(a + 1);
            x.clone().attr("shape").index(Expr::int(phys_axis(a, layout, rank) as i64))
        }
    }
}

fn size(ctx: &Ctx, x: &Expr, a: usize) -> Expr {
    size_in(ctx, x, a, Layout::Tf)
}

/// `n + k` and `n * k` with the arithmetic done here when `n` is a number.
fn plus(n: Expr, k: i64) -> Expr {
    add(n, Expr::int(k))
}

fn times(n: Expr, k: i64) -> Expr {
    match n.as_int() {
        Some(v) => Expr::int(v * k),
        None if k == 1 => n,
        None => n.binop(crate::py::BinOp::Mul, Expr::int(k)),
    }
}

fn floor_div(n: Expr, k: i64) -> Expr {
    match n.as_int() {
        Some(v) => Expr::int(v / k),
        None if k == 1 => n,
        None => n.binop(crate::py::BinOp::FloorDiv, Expr::int(k)),
    }
}

/// `[N, H, W, C]`, blocks `[bh, bw]`: pad, `reshape(N, H/bh, bh, W/bw, bw, C)`, move the block
/// axes to the front, `reshape(bh·bw·N, H/bh, W/bw, C)`.
fn space_to_batch(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (rank, b, p) = read_geometry(ctx)?;
    let m = b.len();
    let x = ctx.input_tf(0)?;
    let sizes: Vec<Expr> = (0..rank).map(|a| size(ctx, &x, a)).collect();
    let pairs = p.exprs();
    let padded: Vec<Expr> = match &p {
        Pairs::Known(k) => (0..m).map(|i| plus(sizes[i + 1].clone(), k[i].0 + k[i].1)).collect(),
        Pairs::RunTime(_) => (0..m)
            .map(|i| add(add(sizes[i + 1].clone(), pairs[i].0.clone()), pairs[i].1.clone()))
            .collect(),
    };
    let mut y = x.clone();
    if !p.all_zero() {
        // F.pad's order: last axis first, from the last block axis down.
        let mut all = vec![Expr::int(0); 2 * (rank - 1 - m)];
        all.extend(pairs.iter().rev().flat_map(|(lo, hi)| [lo.clone(), hi.clone()]));
        y = Expr::call("F.pad", vec![y, Expr::Tuple(all)]);
    }
    let mut split = vec![Expr::int(-1)];
    let mut merged = vec![Expr::int(-1)];
    for i in 0..m {
        let q = floor_div(padded[i].clone(), b[i]);
        split.extend([q.clone(), Expr::int(b[i])]);
        merged.push(q);
    }
    split.extend(sizes[m + 1..].iter().cloned());
    merged.extend(sizes[m + 1..].iter().cloned());
    // Block axes (2, 4, ...) first, then the batch, then the reduced spatial axes, then the rest.
    let mut perm: Vec<i64> = (1..=m as i64).map(|i| 2 * i).collect();
    perm.push(0);
    perm.extend((1..=m as i64).map(|i| 2 * i - 1));
    perm.extend((2 * m as i64 + 1)..(m as i64 + rank as i64));
    let expr = regroup(y, split, &perm, merged);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The inverse: `reshape(bh, bw, N, H, W, C)`, interleave, `reshape(N, H·bh, W·bw, C)`, crop.
fn batch_to_space(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (rank, b, c) = read_geometry(ctx)?;
    let m = b.len();
    let x = ctx.input_tf(0)?;
    let sizes: Vec<Expr> = (0..rank).map(|a| size(ctx, &x, a)).collect();
    let mut split: Vec<Expr> = b.iter().map(|&k| Expr::int(k)).collect();
    split.push(Expr::int(-1));
    split.extend(sizes[1..].iter().cloned());
    let mut merged = vec![Expr::int(-1)];
    merged.extend((0..m).map(|i| times(sizes[i + 1].clone(), b[i])));
    merged.extend(sizes[m + 1..].iter().cloned());
    // The batch (axis m), then each spatial axis followed by its block axis.
    let mut perm = vec![m as i64];
    for i in 0..m as i64 {
        perm.extend([m as i64 + 1 + i, i]);
    }
    perm.extend((2 * m as i64 + 1)..(m as i64 + rank as i64));
    let full: Vec<Expr> = merged[1..=m].to_vec();
    let mut expr = regroup(x, split, &perm, merged);
    match &c {
        Pairs::Known(k) if k.iter().any(|&q| q != (0, 0)) => {
            let mut index = vec![Expr::slice(None, None, None)];
            for &(lo, hi) in k {
                let lower = (lo != 0).then(|| Expr::int(lo));
                let upper = (hi != 0).then(|| Expr::int(-hi));
                index.push(Expr::slice(lower, upper, None));
            }
            expr = expr.index(Expr::index_of(index));
        }
        Pairs::Known(_) => {}
        // A crop read at run time may be 0: the end is counted from the start.
        Pairs::RunTime(pairs) => {
            let mut index = vec![Expr::slice(None, None, None)];
            for ((lo, hi), n) in pairs.iter().zip(full) {
                let end = n.binop(crate::py::BinOp::Sub, hi.clone());
                index.push(Expr::slice(Some(lo.clone()), Some(end), None));
            }
            expr = expr.index(Expr::index_of(index));
        }
    }
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The block size of a depth move on `[N, H, W, C]` (NHWC only, as TF's CPU kernels).
fn depth_block(node: &crate::ir::Node) -> OpResult<i64> {
    let b = node.attr_int("block_size")?;
    if !(2..=i32::MAX as i64).contains(&b) {
        return Err(format!("block_size {b} must be at least 2").into());
    }
    let df = node.attr_str_or("data_format", "NHWC")?;
    if df != "NHWC" {
        return Err(format!("data_format {df} is not supported").into());
    }
    Ok(b)
}

fn depth_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let s = x.shape.as_ref()?;
    let b = usize::try_from(depth_block(inp.node).ok()?).ok()?;
    if s.len() != 4 {
        return None;
    }
    let bb = b.checked_mul(b)?;
    let out = if inp.node.op == "SpaceToDepth" {
        let div = |d: Option<usize>| d.and_then(|d| (d % b == 0).then_some(d / b));
        vec![s[0], div(s[1]), div(s[2]), s[3].and_then(|c| c.checked_mul(bb))]
    } else {
        let mul = |d: Option<usize>| d.and_then(|d| d.checked_mul(b));
        vec![s[0], mul(s[1]), mul(s[2]), s[3].and_then(|c| (c % bb == 0).then_some(c / bb))]
    };
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// `x.reshape(split).permute(perm).reshape(merged)`.
fn regroup(x: Expr, split: Vec<Expr>, perm: &[i64], merged: Vec<Expr>) -> Expr {
    x.method("reshape", split)
        .method("permute", perm.iter().map(|&a| Expr::int(a)).collect())
        .method("reshape", merged)
}

/// The input's layout for a depth move: channels-first when it is held so, else TF's.
fn depth_layout(ctx: &mut Ctx) -> OpResult<Layout> {
    if ctx.rank(0) != Some(4) {
        return Err(TranslateError::UnknownRank);
    }
    Ok(match ctx.layout(0)? {
        Layout::ChannelsFirst => Layout::ChannelsFirst,
        _ => Layout::Tf,
    })
}

/// `[N, H, W, C]` → `[N, H/b, W/b, b·b·C]`, channel `(i·b + j)·C + c` from pixel
/// `(h·b + i, w·b + j)`.
fn space_to_depth(ctx: &mut Ctx) -> OpResult<Lowered> {
    let b = depth_block(ctx.node())?;
    let layout = depth_layout(ctx)?;
    let x = ctx.input_in(0, layout)?;
    let [h, w, c] = [1, 2, 3].map(|a| size_in(ctx, &x, a, layout));
    let (h, w) = (floor_div(h, b), floor_div(w, b));
    let bi = Expr::int(b);
    let m1 = Expr::int(-1);
    let expr = match layout {
        Layout::ChannelsFirst => regroup(
            x,
            vec![m1.clone(), c.clone(), h.clone(), bi.clone(), w.clone(), bi],
            &[0, 3, 5, 1, 2, 4],
            vec![m1, times(c, b * b), h, w],
        ),
        _ => regroup(
            x,
            vec![m1.clone(), h.clone(), bi.clone(), w.clone(), bi, c.clone()],
            &[0, 1, 3, 2, 4, 5],
            vec![m1, h, w, times(c, b * b)],
        ),
    };
    Ok(Lowered::Expr { expr, layout })
}

/// The inverse of [`space_to_depth`]: `[N, H, W, b·b·C]` → `[N, H·b, W·b, C]`.
fn depth_to_space(ctx: &mut Ctx) -> OpResult<Lowered> {
    let b = depth_block(ctx.node())?;
    let layout = depth_layout(ctx)?;
    let x = ctx.input_in(0, layout)?;
    let [h, w, c] = [1, 2, 3].map(|a| size_in(ctx, &x, a, layout));
    let c = floor_div(c, b * b);
    let bi = Expr::int(b);
    let m1 = Expr::int(-1);
    let expr = match layout {
        Layout::ChannelsFirst => regroup(
            x,
            vec![m1.clone(), bi.clone(), bi, c.clone(), h.clone(), w.clone()],
            &[0, 3, 4, 1, 5, 2],
            vec![m1, c, times(h, b), times(w, b)],
        ),
        _ => regroup(
            x,
            vec![m1.clone(), h.clone(), w.clone(), bi.clone(), bi, c.clone()],
            &[0, 1, 3, 2, 4, 5],
            vec![m1, times(h, b), times(w, b), c],
        ),
    };
    Ok(Lowered::Expr { expr, layout })
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A dilated conv on an image of any size: TF computes the paddings and crops from the
    /// size, read here as `p[i][j]`; a run-time crop's end is counted from the start.
    #[test]
    fn paddings_and_crops_read_at_run_time() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, -1, 3]);
        let block = g.constant("block", int_tensor(&[2], &[2, 2]));
        let pads = g.typed_input("pads", &[2, 2], crate::tensor::DType::I32);
        let s = g.op("s2b", "SpaceToBatchND", &[x, block, pads], &[]);
        let y = g.op("b2s", "BatchToSpaceND", &[s, block, pads], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        pads_sizes = pads.tolist()
        x = (
            F.pad(
                x,
                (
                    0,
                    0,
                    pads_sizes[1][0],
                    pads_sizes[1][1],
                    pads_sizes[0][0],
                    pads_sizes[0][1],
                ),
            )
            .reshape(
                -1,
                (x.shape[1] + pads_sizes[0][0] + pads_sizes[0][1]) // 2,
                2,
                (x.shape[2] + pads_sizes[1][0] + pads_sizes[1][1]) // 2,
                2,
                3,
            )
            .permute(2, 4, 0, 1, 3, 5)
            .reshape(
                -1,
                (x.shape[1] + pads_sizes[0][0] + pads_sizes[0][1]) // 2,
                (x.shape[2] + pads_sizes[1][0] + pads_sizes[1][1]) // 2,
                3,
            )
        )
        x = (
            x.reshape(2, 2, -1, x.shape[1], x.shape[2], 3)
            .permute(2, 3, 0, 4, 1, 5)
            .reshape(-1, x.shape[1] * 2, x.shape[2] * 2, 3)[
                :,
                pads_sizes[0][0] : x.shape[1] * 2 - pads_sizes[0][1],
                pads_sizes[1][0] : x.shape[2] * 2 - pads_sizes[1][1],
            ]
        )
        return x
        ");
    }
}
