//! Image adjustments (`tf.image.adjust_*`) on `[.., height, width, channels]` images, in TF
//! layout: `AdjustContrastv2` → each channel's mean over the image, the image moved away
//! from it by the factor; `AdjustHue` and `AdjustSaturation` → `adjust_hsv`
//! (templates/adjust_hsv.py: RGB to HSV and back with TF's formulas); `RGBToHSV` and
//! `HSVToRGB` → `rgb_to_hsv`, `hsv_to_rgb` (templates/, the kernels' arithmetic);
//! `ExtractImagePatches` → `Tensor.unfold` over height and width, and so `Dilation2D`
//! (grayscale morphological dilation): the max of each window plus the filter.

use crate::ir::{Node, Shape, ValueInfo};
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::same_as_input;
use crate::ops::window::{Window, spatial_attr};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr, Lit};

pub const OPS: &[OpDef] = &[
    op("AdjustContrastv2", adjust_contrast).infer(same_as_input),
    op("AdjustHue", |c| adjust_hsv(c, "hue")).infer(same_as_input),
    op("AdjustSaturation", |c| adjust_hsv(c, "saturation")).infer(same_as_input),
    op("RGBToHSV", |c| {
        colour_space(c, "rgb_to_hsv", include_str!("../../templates/rgb_to_hsv.py"))
    })
    .infer(same_as_input),
    op("HSVToRGB", |c| {
        colour_space(c, "hsv_to_rgb", include_str!("../../templates/hsv_to_rgb.py"))
    })
    .infer(same_as_input),
    op("ExtractImagePatches", extract_patches).infer(extract_patches_infer),
    op("Dilation2D", dilation).infer(dilation_infer),
];

/// The window of a grayscale dilation: the filter's `[kh, kw, C]` sizes, `rates` apart.
fn dilation_window(node: &Node, shape: &Shape, filter: &Shape) -> OpResult<Window> {
    let Some([Some(kh), Some(kw), _]) = filter.as_deref() else {
        return Err("the filter needs a static [height, width, channels] shape".into());
    };
    let kernel = vec![*kh as i64, *kw as i64];
    let rates = spatial_attr(node, "rates", 2, true)?;
    Window::dilated(node, shape, kernel, rates)
}

/// `tf.nn.dilation2d` (morphological dilation): the max over each window of the image plus
/// the filter, `x[y·s + dy·r, x·s + dx·r, c] + filter[dy, dx, c]`. Channels-first patches as
/// for [`extract_patches`] (`[N, C, OH, OW, kh, kw]`), padded with -inf, which no max takes.
fn dilation(ctx: &mut Ctx) -> OpResult<Lowered> {
    let shape = ctx.info(0).shape;
    if shape.as_ref().is_some_and(|s| s.len() != 4) {
        return Err("images must be [batch, height, width, channels]".into());
    }
    let g = dilation_window(ctx.node(), &shape, &ctx.info(1).shape)?;
    let x = ctx.input_channels_first(0)?;
    let x = windows(ctx, &g, x, Some(Expr::f32(f32::NEG_INFINITY)));
    // The filter `[kh, kw, C]` as `[C, 1, 1, kh, kw]`.
    let filter = ctx.input_tf(1)?.method("permute", [2, 0, 1].map(Expr::int).to_vec());
    let none = || Expr::Lit(Lit::None);
    let filter = filter.index(Expr::index_of(vec![Expr::slice(None, None, None), none(), none()]));
    let window = Expr::Tuple(vec![Expr::int(-2), Expr::int(-1)]);
    let expr = x.binop(BinOp::Add, filter).method("amax", vec![window]);
    Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst })
}

fn dilation_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (x, f) = (inp.infos.first()?, inp.infos.get(1)?);
    let shape = x.shape.as_ref().filter(|s| s.len() == 4)?;
    let g = dilation_window(inp.node, &x.shape, &f.shape).ok()?;
    let mut out = vec![shape[0]];
    out.extend(g.out_sizes(&shape[1..3]));
    out.push(shape[3]);
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// The patch geometry: sizes `ksizes`, strides, dilations `rates`, TF's padding.
fn patch_window(node: &Node, shape: &Shape) -> OpResult<Window> {
    let kernel = spatial_attr(node, "ksizes", 2, false)?;
    let rates = spatial_attr(node, "rates", 2, true)?;
    Window::dilated(node, shape, kernel, rates)
}

/// `tf.image.extract_patches`: each `kh × kw` patch (taps `rates` apart) of a padded image,
/// flattened in TF's order (row, column, channel) into the channels of one output pixel:
/// `x.unfold(2, kh, sh).unfold(3, kw, sw)` on channels-first `x` gives `[N, C, OH, OW, kh,
/// kw]`, then the channels go last and the patch axes merge.
fn extract_patches(ctx: &mut Ctx) -> OpResult<Lowered> {
    let shape = ctx.info(0).shape;
    if shape.as_ref().is_some_and(|s| s.len() != 4) {
        return Err("images must be [batch, height, width, channels]".into());
    }
    let g = patch_window(ctx.node(), &shape)?;
    let x = ctx.input_channels_first(0)?;
    let x = windows(ctx, &g, x, None);
    let to_last = [0, 2, 3, 4, 5, 1].map(Expr::int).to_vec();
    let expr = x.method("permute", to_last).method("flatten", vec![Expr::int(3)]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The windows of channels-first `x` (padded with `pad`, zeros by default), taps `rates`
/// apart: `[N, C, OH, OW, kh, kw]`.
fn windows(ctx: &mut Ctx, g: &Window, x: Expr, pad: Option<Expr>) -> Expr {
    let mut x = g.padded(ctx, x, pad);
    for axis in 0..2 {
        let span = (g.kernel[axis] - 1) * g.dilations[axis] + 1;
        let args = vec![Expr::int(axis as i64 + 2), Expr::int(span), Expr::int(g.strides[axis])];
        x = x.method("unfold", args);
    }
    if g.dilations.iter().any(|&d| d != 1) {
        let step = |d: i64| (d != 1).then(|| Expr::int(d));
        // After `...` a trailing `:` still counts: it keeps `::2` on the axis before it.
        let mut parts = vec![Expr::Lit(Lit::Ellipsis)];
        parts.extend(g.dilations.iter().map(|&d| Expr::slice(None, None, step(d))));
        x = x.index(Expr::index_of(parts));
    }
    x
}

fn extract_patches_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref().filter(|s| s.len() == 4)?;
    let g = patch_window(inp.node, &x.shape).ok()?;
    let mut out = vec![shape[0]];
    out.extend(g.out_sizes(&shape[1..3]));
    let taps = usize::try_from(g.kernel[0].checked_mul(g.kernel[1])?).ok()?;
    out.push(shape[3].and_then(|c| c.checked_mul(taps)));
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// `(x - mean) * factor + mean`, the mean over height and width: `torch.lerp(mean, x,
/// factor)` says exactly that.
fn adjust_contrast(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.rank(0).is_some_and(|r| r < 3) {
        return Err("images must have rank 3 or more".into());
    }
    let x = ctx.input_tf(0)?;
    let factor = ctx.input_tf(1)?;
    let axes = Expr::Tuple(vec![Expr::int(-3), Expr::int(-2)]);
    let mean = x.clone().method_kw("mean", vec![axes], vec![("keepdim", Expr::boolean(true))]);
    let expr = Expr::call("torch.lerp", vec![mean, x, factor]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// An error unless input 0 has 3 channels (or an unknown number) in its last axis.
fn three_channels(ctx: &Ctx) -> OpResult<()> {
    let shape = ctx.info(0).shape;
    if shape.as_ref().and_then(|s| s.last().copied().flatten()).is_some_and(|c| c != 3) {
        return Err("images must have 3 channels (RGB or HSV) in the last axis".into());
    }
    Ok(())
}

/// `rgb_to_hsv(images)` or `hsv_to_rgb(images)`: `helper`, defined by `source`.
fn colour_space(ctx: &mut Ctx, helper: &'static str, source: &'static str) -> OpResult<Lowered> {
    three_channels(ctx)?;
    ctx.require_class(helper, source);
    let expr = Expr::call(helper, vec![ctx.input_tf(0)?]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// `adjust_hsv(images, hue=delta)` or `adjust_hsv(images, saturation=scale)`.
fn adjust_hsv(ctx: &mut Ctx, what: &'static str) -> OpResult<Lowered> {
    three_channels(ctx)?;
    ctx.require_class("adjust_hsv", include_str!("../../templates/adjust_hsv.py"));
    let (x, amount) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let expr = Expr::call_kw("adjust_hsv", vec![x], vec![(what, amount)]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn contrast_is_a_lerp_from_the_mean() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 6, 3]);
        let f = g.input("factor", &[]);
        let y = g.op("contrast", "AdjustContrastv2", &[x, f], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = torch.lerp(x.mean((-3, -2), keepdim=True), x, factor)
        return x
        ");
    }

    #[test]
    fn patches_unfold_height_then_width() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 9, 11, 3]);
        let y = g.op(
            "patches",
            "ExtractImagePatches",
            &[x],
            &[
                ("ksizes", ints(&[1, 3, 2, 1])),
                ("strides", ints(&[1, 2, 1, 1])),
                ("rates", ints(&[1, 1, 2, 1])),
                ("padding", string("SAME")),
            ],
        );
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.permute(0, 3, 1, 2)
        x = (
            F.pad(x, (1, 1, 1, 1))
            .unfold(2, 3, 2)
            .unfold(3, 3, 1)[..., :, ::2]
            .permute(0, 2, 3, 4, 5, 1)
            .flatten(3)
        )
        return x
        ");
    }

    /// ViT's patches ('VALID', strides the size of the patch): nothing to pad.
    #[test]
    fn valid_patches_pad_nothing() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 32, 32, 3]);
        let y = g.op(
            "patches",
            "ExtractImagePatches",
            &[x],
            &[
                ("ksizes", ints(&[1, 8, 8, 1])),
                ("strides", ints(&[1, 8, 8, 1])),
                ("rates", ints(&[1, 1, 1, 1])),
                ("padding", string("VALID")),
            ],
        );
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.permute(0, 3, 1, 2)
        x = x.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 4, 5, 1).flatten(3)
        return x
        ");
    }

    #[test]
    fn hue_and_saturation_go_through_hsv() {
        for (op, out) in [("AdjustHue", "hue"), ("AdjustSaturation", "saturation")] {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 5, 6, 3]);
            let f = g.input("amount", &[]);
            let y = g.op("adjust", op, &[x, f], &[]);
            assert_eq!(g.lower(&[y]), format!("---\nx = adjust_hsv(x, {out}=amount)\nreturn x\n"));
        }
    }
}
