//! Detection heads: `CropAndResize` (TF's ROI crops), `NonMaxSuppressionV2`-`V5` (hard
//! suppression) and `CombinedNonMaxSuppression` (per class, then merged), each a small helper
//! in `model.py` with TF's exact rules and output contract (padded outputs and valid counts),
//! written in torch alone.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::scalar;
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("CropAndResize", crop_and_resize).infer(crop_and_resize_infer),
    op("NonMaxSuppressionV2", nms).infer(nms_infer),
    op("NonMaxSuppressionV3", nms).infer(nms_infer),
    op("NonMaxSuppressionV4", nms).infer(nms_infer),
    op("NonMaxSuppressionV5", nms).infer(nms_infer),
    op("CombinedNonMaxSuppression", combined_nms).infer(combined_nms_infer),
];

/// `CropAndResize(image, boxes, box_ind, crop_size)` → `crop_and_resize(...)`
/// (templates/crop_and_resize.py): TF's sampling grid and extrapolation exactly, in TF layout.
fn crop_and_resize(ctx: &mut Ctx) -> OpResult<Lowered> {
    let method = ctx.node().attr_str_or("method", "bilinear")?;
    if method != "bilinear" && method != "nearest" {
        return Err(format!("method {method:?} is not supported").into());
    }
    let extrapolate = ctx.node().attr_float_or("extrapolation_value", 0.0)?;
    let size = crate::ops::sizes::sizes(ctx, 3)?.tuple();
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?, size];
    let mut kwargs = vec![];
    if method == "nearest" {
        kwargs.push(("method", Expr::str_lit("nearest")));
    }
    if extrapolate != 0.0 {
        kwargs.push(("extrapolate", Expr::f32(extrapolate)));
    }
    ctx.require_class("crop_and_resize", include_str!("../../templates/crop_and_resize.py"));
    let expr = Expr::call_kw("crop_and_resize", args, kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn crop_and_resize_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let boxes = inp.infos.get(1)?.shape.as_ref()?.first().copied()?;
    let image = inp.infos.first()?.shape.as_ref()?;
    let size = inp.sizes(3).unwrap_or_else(|| vec![None; 2]);
    let (h, w) = (*size.first()?, *size.get(1)?);
    let shape = vec![boxes, h, w, *image.get(3)?];
    Some(vec![ValueInfo { dtype: Some(DType::F32), shape: Some(shape) }])
}

/// `NonMaxSuppressionV2(boxes, scores, max_output_size, iou_threshold)`; V3 adds
/// `score_threshold`, V4 `pad_to_max_output_size` and a valid count, V5 the kept scores
/// (soft suppression, `soft_nms_sigma` > 0, is not translated).
fn nms(ctx: &mut Ctx) -> OpResult<Lowered> {
    let version = nms_version(ctx.node());
    if version == 5 {
        let sigma = ctx.const_input(5).ok().and_then(|t| t.scalar_f64());
        if sigma != Some(0.0) {
            return Err("soft suppression (soft_nms_sigma other than 0) is not supported".into());
        }
    }
    let (boxes, scores) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let limit = scalar(ctx, 2)?.expr;
    let mut args = vec![boxes, scores, limit, ctx.input_tf(3)?];
    if version >= 3 {
        args.push(ctx.input_tf(4)?);
    }
    let mut kwargs = vec![];
    if version >= 4 && ctx.node().attr_bool_or("pad_to_max_output_size", false)? {
        kwargs.push(("pad", Expr::boolean(true)));
    }
    if version == 5 {
        kwargs.push(("with_scores", Expr::boolean(true)));
    }
    require_nms(ctx);
    let expr = Expr::call_kw("non_max_suppression", args, kwargs);
    if version <= 3 {
        // Only the indices.
        return Ok(Lowered::Expr { expr: expr.index(Expr::int(0)), layout: Layout::Tf });
    }
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

fn require_nms(ctx: &mut Ctx) {
    ctx.require_class(
        "non_max_suppression",
        include_str!("../../templates/non_max_suppression.py"),
    );
}

/// `CombinedNonMaxSuppression(boxes, scores, max_output_size_per_class, max_total_size,
/// iou_threshold, score_threshold)` → `combined_non_max_suppression(...)`, the sizes as ints.
fn combined_nms(ctx: &mut Ctx) -> OpResult<Lowered> {
    let pad_per_class = ctx.node().attr_bool_or("pad_per_class", false)?;
    let clip_boxes = ctx.node().attr_bool_or("clip_boxes", true)?;
    let (boxes, scores) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let (per_class, total) = (scalar(ctx, 2)?.expr, scalar(ctx, 3)?.expr);
    let args = vec![boxes, scores, per_class, total, ctx.input_tf(4)?, ctx.input_tf(5)?];
    let mut kwargs = vec![];
    if pad_per_class {
        kwargs.push(("pad_per_class", Expr::boolean(true)));
    }
    if !clip_boxes {
        kwargs.push(("clip_boxes", Expr::boolean(false)));
    }
    require_nms(ctx);
    ctx.require_class(
        "combined_non_max_suppression",
        include_str!("../../templates/combined_non_max_suppression.py"),
    );
    let expr = Expr::call_kw("combined_non_max_suppression", args, kwargs);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

/// Boxes `[batch, size, 4]`, scores and classes `[batch, size]`, counts `[batch]` (int32).
fn combined_nms_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let scores = inp.infos.get(1)?;
    let batch = scores.dim(0);
    let dtype = scores.dtype;
    let (per_class, total) = (inp.scalar_int(2), inp.scalar_int(3));
    let classes = scores.dim(2);
    let size = if inp.node.attr_bool_or("pad_per_class", false).ok()? {
        let all = per_class.zip(classes).and_then(|(p, c)| p.checked_mul(i64::try_from(c).ok()?));
        total.zip(all).map(|(t, all)| t.min(all))
    } else {
        total
    };
    let size = size.and_then(|s| usize::try_from(s).ok());
    Some(vec![
        ValueInfo { dtype, shape: Some(vec![batch, size, Some(4)]) },
        ValueInfo { dtype, shape: Some(vec![batch, size]) },
        ValueInfo { dtype, shape: Some(vec![batch, size]) },
        ValueInfo { dtype: Some(DType::I32), shape: Some(vec![batch]) },
    ])
}

/// 2 to 5, from the op's name (`NonMaxSuppressionV4`).
fn nms_version(node: &crate::ir::Node) -> u32 {
    node.op.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(2)
}

fn nms_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let version = nms_version(inp.node);
    let padded = inp.node.attr_bool_or("pad_to_max_output_size", false).ok()?;
    let limit = inp.const_ints(2).and_then(|v| usize::try_from(*v.first()?).ok());
    let count = if padded { limit } else { None };
    let indices = ValueInfo { dtype: Some(DType::I32), shape: Some(vec![count]) };
    let valid = ValueInfo { dtype: Some(DType::I32), shape: Some(vec![]) };
    Some(match version {
        5 => {
            let kept = ValueInfo { dtype: inp.infos.get(1)?.dtype, shape: Some(vec![count]) };
            vec![indices, kept, valid]
        }
        4 => vec![indices, valid],
        _ => vec![indices],
    })
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// V4 pads its indices and counts them; V3 keeps only the indices.
    #[test]
    fn non_max_suppression_keeps_tf_outputs() {
        let mut g = TestGraph::new();
        let boxes = g.input("boxes", &[-1, 4]);
        let scores = g.input("scores", &[-1]);
        let limit = g.constant("limit", int_tensor(&[], &[20]));
        let iou = g.constant("iou", crate::tensor::Tensor::from_f32(vec![], &[0.5]));
        let floor = g.constant("floor", crate::tensor::Tensor::from_f32(vec![], &[0.1]));
        let ins = [boxes, scores, limit, iou, floor];
        let v3 = g.op("v3", "NonMaxSuppressionV3", &ins, &[]);
        let v4 =
            g.op("v4", "NonMaxSuppressionV4", &ins, &[("pad_to_max_output_size", boolean(true))]);
        let count = TestGraph::port(v4, 1);
        assert_snapshot!(g.lower(&[v3, v4, count]), @"
        ---
        x = non_max_suppression(boxes, scores, 20, 0.5, 0.1)[0]
        v4, v4_1 = non_max_suppression(boxes, scores, 20, 0.5, 0.1, pad=True)
        return x, v4, v4_1
        ");
    }

    /// ROI crops with TF's grid: nearest sampling and an extrapolation value are keywords.
    #[test]
    fn crop_and_resize_is_one_helper_call() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 9, 11, 3]);
        let boxes = g.input("boxes", &[-1, 4]);
        let index = g.typed_input("index", &[-1], crate::tensor::DType::I32);
        let size = g.constant("size", int_tensor(&[2], &[5, 4]));
        let a = [("method", string("nearest")), ("extrapolation_value", float(-1.0))];
        let y = g.op("crop", "CropAndResize", &[x, boxes, index, size], &a);
        assert_snapshot!(g.lower(&[y]), @r#"
        ---
        x = crop_and_resize(x, boxes, index, (5, 4), method="nearest", extrapolate=-1.0)
        return x
        "#);
    }

    /// Combined NMS keeps TF's four outputs; the sizes are Python ints.
    #[test]
    fn combined_nms_returns_padded_detections_and_counts() {
        let mut g = TestGraph::new();
        let boxes = g.input("boxes", &[-1, 24, 1, 4]);
        let scores = g.input("scores", &[-1, 24, 3]);
        let per_class = g.constant("per_class", int_tensor(&[], &[4]));
        let total = g.constant("total", int_tensor(&[], &[7]));
        let iou = g.input("iou", &[]);
        let low = g.input("low", &[]);
        let a = [("pad_per_class", boolean(true)), ("clip_boxes", boolean(false))];
        let inputs = [boxes, scores, per_class, total, iou, low];
        let y = g.op("nms", "CombinedNonMaxSuppression", &inputs, &a);
        let outs = [y, TestGraph::port(y, 1), TestGraph::port(y, 2), TestGraph::port(y, 3)];
        assert_snapshot!(g.lower(&outs), @"
        ---
        x, nms_1, nms_2, nms_3 = combined_non_max_suppression(
            boxes, scores, 4, 7, iou, low, pad_per_class=True, clip_boxes=False
        )
        return x, nms_1, nms_2, nms_3
        ");
    }
}
