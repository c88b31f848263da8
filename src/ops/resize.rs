//! Image resizing → `F.interpolate` where a torch mode matches TF's coordinate rule exactly
//! (tf-formats.md §4.7), else constant interpolation matrices.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{hw, known_ints};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::{DType, Tensor};

pub const OPS: &[OpDef] = &[
    op("ResizeBilinear", |c| resize(c, "bilinear")).infer(resize_infer),
    op("ResizeNearestNeighbor", |c| resize(c, "nearest")).infer(resize_infer),
    op("ResizeArea", |c| {
        let align = c.node().attr_bool_or("align_corners", false)?;
        resize_by_matrices(c, "area", align, false)
    })
    .infer(resize_infer),
];

/// ResizeBilinear / ResizeNearestNeighbor → `F.interpolate` where a torch mode matches TF's
/// coordinate rule exactly (tf-formats.md §4.7).
fn resize(ctx: &mut Ctx, kind: &str) -> OpResult<Lowered> {
    let node = ctx.node();
    let align = node.attr_bool_or("align_corners", false)?;
    let half = node.attr_bool_or("half_pixel_centers", false)?;
    let (mode, align_kw) = match (kind, align, half) {
        ("bilinear", false, true) => ("bilinear", Some(false)),
        ("bilinear", true, false) => ("bilinear", Some(true)),
        ("nearest", false, true) => ("nearest-exact", None),
        ("nearest", false, false) => ("nearest", None),
        _ => return resize_by_matrices(ctx, kind, align, half),
    };
    // The size may be read at run time (another map's height and width).
    let size = crate::ops::sizes::sizes(ctx, 1)?.tuple();
    let mut x = ctx.input_channels_first(0)?;
    if kind == "bilinear" && ctx.info(0).dtype.is_some_and(|d| !d.is_float()) {
        x = x.method("float", vec![]);
    }
    let mut kwargs = vec![("size", size), ("mode", Expr::str_lit(mode))];
    if let Some(a) = align_kw {
        kwargs.push(("align_corners", Expr::boolean(a)));
    }
    Ok(Lowered::Expr {
        expr: Expr::call_kw("F.interpolate", vec![x], kwargs),
        layout: Layout::ChannelsFirst,
    })
}

/// Resize modes with no `F.interpolate` twin (TF1's legacy corner rule, nearest with
/// align_corners) as two constant interpolation matrices: `rows @ x @ cols`, rows `[OH, H]`
/// and cols `[W, OW]` built here with TF's coordinate rule (tf-formats.md §4.7); with sizes
/// known only at run time, `resize_legacy` (templates/resize_legacy.py) applies that rule.
fn resize_by_matrices(ctx: &mut Ctx, kind: &str, align: bool, half: bool) -> OpResult<Lowered> {
    if align && half {
        return Err("align_corners and half_pixel_centers together (TF rejects it)".into());
    }
    if ctx.info(0).dtype != Some(DType::F32) {
        return Err("matrix resize needs a float32 input".into());
    }
    let size = known_ints(ctx, 1).unwrap_or_default();
    let ([Some(oh), Some(ow)], (Some(h), Some(w))) = (&size[..], hw(&ctx.info(0).shape)) else {
        if kind == "area" {
            return Err("area resizing needs static input and output sizes".into());
        }
        // Sizes known only at run time: the same rule, computed then.
        ctx.require_class("resize_legacy", include_str!("../../templates/resize_legacy.py"));
        let (x, size) = (ctx.input_channels_first(0)?, crate::ops::sizes::sizes(ctx, 1)?.tuple());
        let mut kwargs = Vec::new();
        if align {
            kwargs.push(("align_corners", Expr::boolean(true)));
        }
        if kind == "nearest" {
            kwargs.push(("nearest", Expr::boolean(true)));
        }
        let expr = Expr::call_kw("resize_legacy", vec![x, size], kwargs);
        return Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst });
    };
    let (oh, ow) = (*oh, *ow);
    let in_range = |o: i64| usize::try_from(o).ok().filter(|&o| o > 0);
    let (Some(oh), Some(ow)) = (in_range(oh), in_range(ow)) else {
        return Err(format!("output size [{oh}, {ow}] must be positive").into());
    };
    if h == 0
        || w == 0
        || !crate::tensor::computed_fits(&[oh, h])
        || !crate::tensor::computed_fits(&[ow, w])
    {
        return Err(format!("resizing [{h}, {w}] to [{oh}, {ow}] needs matrices too large").into());
    }
    let matrix = |n: usize, o: usize| -> Vec<f32> {
        let scale =
            if align && o > 1 { (n as f64 - 1.0) / (o as f64 - 1.0) } else { n as f64 / o as f64 };
        let mut m = vec![0f32; o * n];
        for i in 0..o {
            let src = i as f64 * scale;
            if kind == "area" {
                // The mean over the input span [i, i + 1) * scale covers, partial pixels
                // weighted by the part covered (TF's ResizeArea).
                let end = (i + 1) as f64 * scale;
                let mut j = src.floor();
                while j < end.ceil() {
                    let part = (j + 1.0).min(end) - j.max(src);
                    m[i * n + (j as usize).min(n - 1)] += (part / scale) as f32;
                    j += 1.0;
                }
            } else if kind == "nearest" {
                // align_corners: round half away from zero.
                let j = (src.round() as usize).min(n - 1);
                m[i * n + j] = 1.0;
            } else {
                let lo = (src.floor() as usize).min(n - 1);
                let hi = (lo + 1).min(n - 1);
                let frac = (src - lo as f64) as f32;
                m[i * n + lo] += 1.0 - frac;
                m[i * n + hi] += frac;
            }
        }
        m
    };
    let rows = Tensor::from_f32(vec![oh, h], &matrix(h, oh));
    let cols = Tensor::from_f32(vec![ow, w], &matrix(w, ow)).permute(&[1, 0]);
    let rows = ctx.buffer("rows", rows)?;
    let cols = ctx.buffer("cols", cols)?;
    let x = ctx.input_channels_first(0)?;
    Ok(Lowered::Expr {
        expr: rows.binop(BinOp::MatMul, x).binop(BinOp::MatMul, cols),
        layout: Layout::ChannelsFirst,
    })
}

fn resize_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let [n, _, _, c] = x.shape.as_deref()? else { return None };
    let size = inp.sizes(1)?;
    let float = matches!(inp.node.op.as_str(), "ResizeBilinear" | "ResizeArea");
    let dtype = if float { Some(DType::F32) } else { x.dtype };
    let hw = |i: usize| size.get(i).copied().flatten();
    Some(vec![ValueInfo { dtype, shape: Some(vec![*n, hw(0), hw(1), *c]) }])
}
