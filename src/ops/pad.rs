//! Padding: `Pad`/`PadV2` → `F.pad` (constant), `MirrorPad` → `F.pad(mode="reflect")` or, for
//! SYMMETRIC (the edge repeated, which torch has no mode for), an index gather. Pads are
//! remapped to the NCHW axes when the input runs in NCHW.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult, TranslateError, channels_first_rank};
use crate::ops::util::phys_axis;
use crate::ops::{Folded, OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::{Tensor, Values};

pub const OPS: &[OpDef] = &[
    op("Pad", pad).infer(pad_infer).fold(pad_fold),
    op("PadV2", pad).infer(pad_infer).fold(pad_fold),
    op("MirrorPad", pad).infer(pad_infer),
];

fn pad_pairs(t: &Tensor, rank: usize) -> OpResult<Vec<(i64, i64)>> {
    let v = t.to_i64().ok_or("paddings must be integers")?;
    if t.shape != [rank, 2] || v.iter().any(|&p| p < 0) {
        return Err(format!("paddings of shape {:?} do not fit rank {rank}", t.shape).into());
    }
    Ok(v.chunks(2).map(|c| (c[0], c[1])).collect())
}

fn pad(ctx: &mut Ctx) -> OpResult<Lowered> {
    // The paddings, `[rank, 2]`, give the rank of an input whose shape is unknown.
    let from_paddings = || ctx.info(1).shape.and_then(|s| s.first().copied().flatten());
    let rank = ctx.rank(0).or_else(from_paddings).ok_or(TranslateError::UnknownRank)?;
    if rank > crate::ops::MAX_RANK {
        return Err(format!("paddings for {rank} axes, more than any tensor has").into());
    }
    if !ctx.is_const(1) {
        return run_time_pad(ctx, rank);
    }
    let pairs = pad_pairs(ctx.const_input(1)?, rank)?;
    let node = ctx.node();
    let mode = if node.op == "MirrorPad" { node.attr_str("mode")? } else { "CONSTANT".into() };
    let value = if node.op == "PadV2" {
        Some(ctx.const_input(2)?.scalar_f64().ok_or("constant_values must be a scalar")?)
    } else {
        None
    };
    let layout = if channels_first_rank(Some(rank)) { ctx.layout(0)? } else { Layout::Tf };
    // An image padded for the convolution or pool after it (Keras' `correct_pad` before a
    // strided conv, the stem of MobileNetV2 and EfficientNet) is padded channels-first, as
    // that reader takes it: `F.pad(x, (0, 1, 0, 1))` after the permute, not a pad of NHWC
    // data permuted after.
    let spatial_only = pairs.first() == Some(&(0, 0)) && pairs.last() == Some(&(0, 0));
    let for_windows = {
        let readers = ctx.readers();
        !readers.is_empty()
            && readers.iter().all(|&(op, slot)| slot == 0 && WINDOWED_READERS.contains(&op))
    };
    let layout = if layout == Layout::Tf
        && channels_first_rank(Some(rank))
        && spatial_only
        && for_windows
        && value.is_none()
        && mode == "CONSTANT"
    {
        Layout::ChannelsFirst
    } else {
        layout
    };
    // Physical pairs, then F.pad's order: last dim first, trailing unpadded dims dropped.
    let mut phys = vec![(0, 0); rank];
    for (a, p) in pairs.iter().enumerate() {
        phys[phys_axis(a, layout, rank)] = *p;
    }
    let first = phys.iter().position(|&p| p != (0, 0));
    let Some(first) = first else {
        return Ok(Lowered::Alias(0));
    };
    let mut flat = Vec::new();
    for p in phys[first..].iter().rev() {
        flat.extend([p.0, p.1]);
    }
    let x = ctx.input_in(0, layout)?;
    // torch's reflect mode pads the last k <= 3 axes of a tensor of rank k + 1 or k + 2.
    let reflect_fits = rank - first <= 3 && (1..=2).contains(&first);
    if mode == "SYMMETRIC" || (mode == "REFLECT" && !reflect_fits) {
        return mirror_pad(ctx, x, &phys, layout, mode == "SYMMETRIC");
    }
    let args = vec![x, Expr::ints(&flat)];
    let mut kwargs = Vec::new();
    match mode.as_str() {
        "CONSTANT" => {
            if let Some(v) = value.filter(|&v| v != 0.0) {
                kwargs.push(("value", Expr::f64(v)));
            }
        }
        "REFLECT" => kwargs.push(("mode", Expr::str_lit("reflect"))),
        other => return Err(format!("MirrorPad mode {other} is not supported").into()),
    }
    Ok(Lowered::Expr { expr: Expr::call_kw("F.pad", args, kwargs), layout })
}

/// Ops that read their data channels-first (see [`pad`]'s layout).
const WINDOWED_READERS: &[&str] =
    &["Conv2D", "Conv3D", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D"];

/// Paddings computed at run time (pad to a multiple of 8): `F.pad(x, (*p[2], *p[1], *p[0]))`
/// with `p` as Python ints, TF layout; mirrored, `mirror_pad(x, p, symmetric)`
/// (templates/mirror_pad.py).
fn run_time_pad(ctx: &mut Ctx, rank: usize) -> OpResult<Lowered> {
    let node = ctx.node();
    if node.op == "MirrorPad" {
        let symmetric = match node.attr_str("mode")?.as_str() {
            "SYMMETRIC" => true,
            "REFLECT" => false,
            other => return Err(format!("MirrorPad mode {other} is not supported").into()),
        };
        ctx.require_class("mirror_pad", include_str!("../../templates/mirror_pad.py"));
        let args = vec![ctx.input_tf(0)?, ctx.input_in(1, Layout::Host)?, Expr::boolean(symmetric)];
        return Ok(Lowered::Expr { expr: Expr::call("mirror_pad", args), layout: Layout::Tf });
    }
    let value = match node.op.as_str() {
        "PadV2" => ctx.const_input(2)?.scalar_f64().ok_or("constant_values must be a scalar")?,
        _ => 0.0,
    };
    let p = ctx.input_in(1, Layout::Host)?;
    let flat = (0..rank)
        .rev()
        .map(|a| Expr::Starred(Box::new(p.clone().index(Expr::int(a as i64)))))
        .collect();
    let x = ctx.input_tf(0)?;
    let kwargs = if value != 0.0 { vec![("value", Expr::f64(value))] } else { Vec::new() };
    Ok(Lowered::Expr {
        expr: Expr::call_kw("F.pad", vec![x, Expr::Tuple(flat)], kwargs),
        layout: Layout::Tf,
    })
}

/// Mirror padding torch has no mode for (SYMMETRIC, the edge repeated; REFLECT on axes
/// torch's reflect mode does not pad): gather along each padded axis with a constant index,
/// e.g. pads (2, 1) on size 3 → SYMMETRIC [1, 0, 0, 1, 2, 2], REFLECT [2, 1, 0, 1, 2, 1].
fn mirror_pad(
    ctx: &mut Ctx,
    x: Expr,
    phys: &[(i64, i64)],
    layout: Layout,
    symmetric: bool,
) -> OpResult<Lowered> {
    let shape = ctx.info(0).shape.ok_or("input shape must be known")?;
    let mut expr = x;
    for (d, &(b, a)) in phys.iter().enumerate() {
        if (b, a) == (0, 0) {
            continue;
        }
        let tf_axis = (0..phys.len()).find(|&a| phys_axis(a, layout, phys.len()) == d).unwrap_or(d);
        let n = shape[tf_axis].ok_or("padded axis must have a static size")? as i64;
        // The index is computed here: its size comes from the file.
        let len = n.checked_add(b).and_then(|v| v.checked_add(a));
        let len = len.and_then(|v| usize::try_from(v).ok()).unwrap_or(usize::MAX);
        if !crate::tensor::computed_fits(&[len]) {
            return Err(format!("a mirror pad index of {len} entries is too large").into());
        }
        // TF's limits: up to the axis's size (SYMMETRIC), one less (REFLECT).
        let edge = i64::from(!symmetric);
        if b > n - edge || a > n - edge {
            return Err(format!("mirror padding ({b}, {a}) too large for an axis of {n}").into());
        }
        let idx: Vec<i64> =
            (edge..b + edge).rev().chain(0..n).chain((n - a - edge..n - edge).rev()).collect();
        let buf = ctx.buffer(&format!("pad_index_{d}"), Tensor::from_i64(vec![idx.len()], &idx))?;
        // Nested calls rather than a method chain: ruff lays these out predictably.
        expr = Expr::call("torch.index_select", vec![expr, Expr::int(d as i64), buf]);
    }
    Ok(Lowered::Expr { expr, layout })
}

fn pad_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let Some(t) = inp.consts.get(1).copied().flatten() else {
        // Amounts known at run time: the rank stays.
        return Some(vec![ValueInfo { dtype: x.dtype, shape: Some(vec![None; shape.len()]) }]);
    };
    let pairs = pad_pairs(t, shape.len()).ok()?;
    let out = shape
        .iter()
        .zip(&pairs)
        .map(|(d, p)| d.and_then(|d| d.checked_add(usize::try_from(p.0.checked_add(p.1)?).ok()?)))
        .collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// The most elements a padded constant is folded to.
const MAX_FOLDED: usize = 1 << 22;

/// `Pad`/`PadV2` of a constant by constant amounts (a mel filter bank's zero DC row).
fn pad_fold(inp: &OpInputs) -> Option<Folded> {
    if inp.reads_variable() {
        return None;
    }
    let t = inp.consts.first().copied().flatten()?;
    let pairs = pad_pairs(inp.consts.get(1).copied().flatten()?, t.rank()).ok()?;
    let fill = match inp.consts.get(2).copied().flatten() {
        Some(v) if v.numel() == 1 => v.values()?,
        Some(_) => return None,
        None if t.dtype.is_float() => Values::F(vec![0.0]),
        None => Values::I(vec![0]),
    };
    let shape: Vec<usize> = t
        .shape
        .iter()
        .zip(&pairs)
        .map(|(&d, &(b, a))| d.checked_add(usize::try_from(b.checked_add(a)?).ok()?))
        .collect::<Option<_>>()?;
    let numel = crate::tensor::checked_numel(&shape).filter(|&n| n <= MAX_FOLDED)?;
    // For each output element, the input element it copies, if any.
    let source = |mut flat: usize| -> Option<usize> {
        let mut from = 0;
        let mut stride = 1;
        for axis in (0..shape.len()).rev() {
            let i = (flat % shape[axis]) as i64 - pairs[axis].0;
            flat /= shape[axis];
            let n = t.shape[axis] as i64;
            if !(0..n).contains(&i) {
                return None;
            }
            from += i as usize * stride;
            stride *= t.shape[axis];
        }
        Some(from)
    };
    let values = match (t.values()?, fill) {
        (Values::F(v), Values::F(f)) => {
            Values::F((0..numel).map(|o| source(o).map_or(f[0], |i| v[i])).collect())
        }
        (Values::I(v), Values::I(f)) => {
            Values::I((0..numel).map(|o| source(o).map_or(f[0], |i| v[i])).collect())
        }
        _ => return None,
    };
    Tensor::with_values_like(t.dtype, shape, &values).map(Folded::Tensor)
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn pads_are_remapped_to_nchw() {
        let p = |g: &mut TestGraph, y, op: &str, mode: Option<&str>| {
            let c = g.constant("p", int_tensor(&[4, 2], &[0, 0, 1, 2, 3, 0, 0, 0]));
            let attrs: Vec<_> = mode.map(|m| ("mode", string(m))).into_iter().collect();
            g.op("pad", op, &[y, c], &attrs)
        };
        assert_snapshot!(after_conv(|g, y| p(g, y, "Pad", None)), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.pad(x, (3, 0, 1, 2)).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(after_conv(|g, y| p(g, y, "MirrorPad", Some("REFLECT"))), @r#"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = F.pad(x, (3, 0, 1, 2), mode="reflect").permute(0, 2, 3, 1)
        return x
        "#);
        assert_snapshot!(after_conv(|g, y| p(g, y, "MirrorPad", Some("SYMMETRIC"))), @"
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = torch.index_select(
            torch.index_select(x, 2, self.pad_pad_index_2), 3, self.pad_pad_index_3
        )
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// An image padded for the strided convolution after it (Keras' `correct_pad`) is padded
    /// as the convolution reads it, channels-first; padded for anything else, as TF holds it.
    #[test]
    fn an_image_padded_for_a_convolution_is_padded_channels_first() {
        let padded = |conv: bool| {
            let mut g = TestGraph::new();
            let x = g.input("image", &[-1, 8, 8, 3]);
            let p = g.constant("p", int_tensor(&[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]));
            let y = g.op("pad", "Pad", &[x, p], &[]);
            let y = if conv {
                let w = g.constant("w", weights(&[3, 3, 3, 2]));
                let attrs = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("VALID"))];
                g.op("conv", "Conv2D", &[y, w], &attrs)
            } else {
                g.op("relu", "Relu", &[y], &[])
            };
            g.lower(&[y])
        };
        let code = padded(true);
        assert!(code.contains("F.pad(x, (0, 1, 0, 1))") && !code.contains("(0, 0, 0, 1"), "{code}");
        assert!(padded(false).contains("F.pad(image, (0, 0, 0, 1, 0, 1))"), "{}", padded(false));
    }
}
