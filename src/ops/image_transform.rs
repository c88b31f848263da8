//! Geometric image transforms: `ImageProjectiveTransformV2`/`V3` (`tf.raw_ops` behind Keras'
//! `affine_transform`, `RandomRotation`/`RandomZoom`-style layers and TF Addons' `transform`)
//! → `projective_transform` (templates/projective_transform.py: TF's sampling, fill modes
//! and interpolations exactly, in TF layout).

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;

pub const OPS: &[OpDef] = &[
    op("ImageProjectiveTransformV2", projective).infer(projective_infer),
    op("ImageProjectiveTransformV3", projective).infer(projective_infer),
];

/// `(images, transforms, output_shape[, fill_value])` → `projective_transform(images,
/// transforms, (h, w), fill=..., mode=..., method=...)`.
fn projective(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.rank(0).is_some_and(|r| r != 4) {
        return Err("images must be [batch, height, width, channels]".into());
    }
    let method = ctx.node().attr_str("interpolation")?.to_ascii_lowercase();
    if method != "bilinear" && method != "nearest" {
        return Err(format!("interpolation {method:?} is not supported").into());
    }
    let mode = ctx.node().attr_str_or("fill_mode", "CONSTANT")?.to_ascii_lowercase();
    if !matches!(mode.as_str(), "constant" | "reflect" | "wrap" | "nearest") {
        return Err(format!("fill_mode {mode:?} is not supported").into());
    }
    let size = crate::ops::sizes::sizes(ctx, 2)?.tuple();
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, size];
    let mut kwargs = Vec::new();
    if ctx.node().op == "ImageProjectiveTransformV3" {
        let fill = match ctx.const_input(3).ok().and_then(|t| t.scalar_f64()) {
            Some(0.0) => None,
            Some(v) => Some(Expr::f32(v as f32)),
            None => Some(ctx.input_tf(3)?),
        };
        kwargs.extend(fill.map(|f| ("fill", f)));
    }
    if mode != "constant" {
        kwargs.push(("mode", Expr::str_lit(&mode)));
    }
    if method == "nearest" {
        kwargs.push(("method", Expr::str_lit("nearest")));
    }
    ctx.require_class(
        "projective_transform",
        include_str!("../../templates/projective_transform.py"),
    );
    let expr = Expr::call_kw("projective_transform", args, kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn projective_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let images = inp.infos.first()?;
    let shape = images.shape.as_ref().filter(|s| s.len() == 4)?;
    let size = inp.sizes(2).unwrap_or_else(|| vec![None; 2]);
    let out = vec![shape[0], *size.first()?, *size.get(1)?, shape[3]];
    Some(vec![ValueInfo { dtype: images.dtype, shape: Some(out) }])
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// One helper call, its fill mode and interpolation as TF names them, lower-cased.
    #[test]
    fn a_projective_transform_is_one_helper_call() {
        let mut g = TestGraph::new();
        let x = g.input("images", &[-1, 8, 9, 3]);
        let t = g.input("transforms", &[-1, 8]);
        let size = g.constant("size", int_tensor(&[2], &[5, 6]));
        let fill = g.constant("fill", crate::tensor::Tensor::from_f32(vec![], &[0.5]));
        let a = [("interpolation", string("NEAREST")), ("fill_mode", string("REFLECT"))];
        let y = g.op("warp", "ImageProjectiveTransformV3", &[x, t, size, fill], &a);
        assert_snapshot!(g.lower(&[y]), @r#"
        ---
        x = projective_transform(
            images, transforms, (5, 6), fill=0.5, mode="reflect", method="nearest"
        )
        return x
        "#);
    }
}
