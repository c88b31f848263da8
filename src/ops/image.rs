//! Image adjustments (`tf.image.adjust_*`) on `[.., height, width, channels]` images, in TF
//! layout: `AdjustContrastv2` → each channel's mean over the image, the image moved away
//! from it by the factor; `AdjustHue` and `AdjustSaturation` → `adjust_hsv`
//! (templates/adjust_hsv.py: RGB to HSV and back with TF's formulas).

use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::same_as_input;
use crate::ops::{OpDef, op};
use crate::py::Expr;

pub const OPS: &[OpDef] = &[
    op("AdjustContrastv2", adjust_contrast).infer(same_as_input),
    op("AdjustHue", |c| adjust_hsv(c, "hue")).infer(same_as_input),
    op("AdjustSaturation", |c| adjust_hsv(c, "saturation")).infer(same_as_input),
];

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

/// `adjust_hsv(images, hue=delta)` or `adjust_hsv(images, saturation=scale)`.
fn adjust_hsv(ctx: &mut Ctx, what: &'static str) -> OpResult<Lowered> {
    let shape = ctx.info(0).shape;
    if shape.as_ref().and_then(|s| s.last().copied().flatten()).is_some_and(|c| c != 3) {
        return Err("images must have 3 channels (RGB) in the last axis".into());
    }
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
