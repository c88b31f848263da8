//! Image resizing → `F.interpolate` where a torch mode matches TF's coordinate rule exactly
//! (tf-formats.md §4.7), else constant interpolation matrices built with TF's rule: legacy
//! corners, area, bicubic (TF's cubic differs from torch's: a = -0.5 or -0.75, a 1024-step
//! weight table, edge handling) and `ScaleAndTranslate`'s kernels (lanczos, gaussian,
//! mitchellcubic, antialiasing).

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
    op("ResizeBicubic", |c| {
        let align = c.node().attr_bool_or("align_corners", false)?;
        let half = c.node().attr_bool_or("half_pixel_centers", false)?;
        resize_by_matrices(c, "bicubic", align, half)
    })
    .infer(resize_infer),
    op("ScaleAndTranslate", scale_and_translate).infer(resize_infer),
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
    if !ctx.info(0).dtype.is_some_and(|d| d == DType::F32 || d.is_int()) {
        return Err("matrix resize needs a float32 or integer input".into());
    }
    let size = known_ints(ctx, 1).unwrap_or_default();
    let ([Some(oh), Some(ow)], (Some(h), Some(w))) = (&size[..], hw(&ctx.info(0).shape)) else {
        if kind == "area" {
            return Err("area resizing needs static input and output sizes".into());
        }
        if kind == "bicubic" {
            // The same weights, built at run time (templates/resize_bicubic.py).
            ctx.require_class("resize_bicubic", include_str!("../../templates/resize_bicubic.py"));
            let (x, size) =
                (ctx.input_channels_first(0)?, crate::ops::sizes::sizes(ctx, 1)?.tuple());
            let x =
                if ctx.info(0).dtype == Some(DType::F32) { x } else { x.method("float", vec![]) };
            let mut kwargs = Vec::new();
            if align {
                kwargs.push(("align_corners", Expr::boolean(true)));
            }
            if half {
                kwargs.push(("half_pixel_centers", Expr::boolean(true)));
            }
            let expr = Expr::call_kw("resize_bicubic", vec![x, size], kwargs);
            return Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst });
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
    let [oh, ow] = matrix_sizes([*oh, *ow], [h, w])?;
    let rule = |n: usize, o: usize| {
        match kind {
            "area" => Rule::Area,
            "nearest" => Rule::Nearest,
            "bicubic" => Rule::Bicubic { half },
            _ => Rule::Linear,
        }
        .with_scale(resize_scale(n, o, align))
    };
    let matrix = |n: usize, o: usize| interpolation_matrix(&rule(n, o), n, o);
    matrices_applied(ctx, [matrix(h, oh), matrix(w, ow)], [h, w], [oh, ow])
}

/// The output size as matrix dimensions: positive, and matrices `[OH, H]` and `[OW, W]` of a
/// size this machine can hold (the sizes come from the file).
fn matrix_sizes([oh, ow]: [i64; 2], [h, w]: [usize; 2]) -> OpResult<[usize; 2]> {
    let positive = |o: i64| usize::try_from(o).ok().filter(|&o| o > 0);
    let (Some(oh), Some(ow)) = (positive(oh), positive(ow)) else {
        return Err(format!("output size [{oh}, {ow}] must be positive").into());
    };
    let fits = |o: usize, n: usize| n > 0 && crate::tensor::computed_fits(&[o, n]);
    if !(fits(oh, h) && fits(ow, w)) {
        return Err(format!("resizing [{h}, {w}] to [{oh}, {ow}] needs matrices too large").into());
    }
    Ok([oh, ow])
}

/// `rows @ x @ cols` with `rows` `[OH, H]` and `cols` `[W, OW]` as buffers.
fn matrices_applied(
    ctx: &mut Ctx,
    [rows, cols]: [Vec<f32>; 2],
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
) -> OpResult<Lowered> {
    let rows = Tensor::from_f32(vec![oh, h], &rows);
    let cols = Tensor::from_f32(vec![ow, w], &cols).permute(&[1, 0]);
    let rows = ctx.buffer("rows", rows)?;
    let cols = ctx.buffer("cols", cols)?;
    let mut x = ctx.input_channels_first(0)?;
    if ctx.info(0).dtype.is_some_and(|d| d != DType::F32) {
        x = x.method("float", vec![]);
    }
    Ok(Lowered::Expr {
        expr: rows.binop(BinOp::MatMul, x).binop(BinOp::MatMul, cols),
        layout: Layout::ChannelsFirst,
    })
}

/// TF's scale from output to input coordinates (`CalculateResizeScale`).
fn resize_scale(n: usize, o: usize, align: bool) -> f32 {
    if align && o > 1 { (n as f32 - 1.0) / (o as f32 - 1.0) } else { n as f32 / o as f32 }
}

/// How output positions read input positions along one axis.
enum Rule {
    Area,
    Nearest,
    Linear,
    /// TF's ResizeBicubic: Keys' cubic (a = -0.5) with half-pixel centres, else the legacy
    /// a = -0.75 with the edge pixel repeated.
    Bicubic {
        half: bool,
    },
    /// ScaleAndTranslate: a sampling kernel, widened by the scale when antialiasing a
    /// reduction.
    Kernel {
        kernel: Kernel,
        scale: f32,
        translate: f32,
        antialias: bool,
    },
}

/// A rule with its output-to-input scale (the legacy rules).
struct Scaled {
    rule: Rule,
    scale: f32,
}

impl Rule {
    fn with_scale(self, scale: f32) -> Scaled {
        Scaled { rule: self, scale }
    }
}

/// ScaleAndTranslate's kernels (`kernel_type`), as TF defines them (sampling_kernels.h).
#[derive(Clone, Copy)]
enum Kernel {
    Lanczos(f32),
    Gaussian,
    Box,
    Triangle,
    KeysCubic,
    MitchellCubic,
}

impl Kernel {
    fn from_name(name: &str) -> Option<Kernel> {
        Some(match name {
            "lanczos1" => Kernel::Lanczos(1.0),
            "lanczos3" => Kernel::Lanczos(3.0),
            "lanczos5" => Kernel::Lanczos(5.0),
            "gaussian" => Kernel::Gaussian,
            "box" => Kernel::Box,
            "triangle" => Kernel::Triangle,
            "keyscubic" => Kernel::KeysCubic,
            "mitchellcubic" => Kernel::MitchellCubic,
            _ => return None,
        })
    }

    fn radius(self) -> f32 {
        match self {
            Kernel::Lanczos(r) => r,
            Kernel::Gaussian => 1.5,
            Kernel::Box | Kernel::Triangle => 1.0,
            Kernel::KeysCubic | Kernel::MitchellCubic => 2.0,
        }
    }

    fn weight(self, x: f32) -> f32 {
        let x = x.abs();
        match self {
            Kernel::Lanczos(r) => {
                // TF's 3.14159265359 rounds to the same float.
                use std::f32::consts::PI;
                if x > r {
                    0.0
                } else if x <= 1e-3 {
                    1.0
                } else {
                    r * (PI * x).sin() * (PI * x / r).sin() / (PI * PI * x * x)
                }
            }
            Kernel::Gaussian => {
                let sigma = 1.5f32 / 3.0;
                if x >= 1.5 { 0.0 } else { (-x * x / (2.0 * sigma * sigma)).exp() }
            }
            Kernel::Box => {
                if x < 0.5 {
                    1.0
                } else if x == 0.5 {
                    0.5
                } else {
                    0.0
                }
            }
            Kernel::Triangle => (1.0 - x).max(0.0),
            Kernel::KeysCubic => cubic(-0.5, x),
            Kernel::MitchellCubic => {
                if x >= 2.0 {
                    0.0
                } else if x >= 1.0 {
                    (((-7.0 / 18.0) * x + 2.0) * x - 10.0 / 3.0) * x + 16.0 / 9.0
                } else {
                    (((7.0 / 6.0) * x - 2.0) * x) * x + 8.0 / 9.0
                }
            }
        }
    }
}

/// The cubic convolution kernel with coefficient `a` at distance `x >= 0`.
fn cubic(a: f32, x: f32) -> f32 {
    if x >= 2.0 {
        0.0
    } else if x >= 1.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    }
}

/// The `[o, n]` matrix taking `n` input positions to `o` output positions.
fn interpolation_matrix(rule: &Scaled, n: usize, o: usize) -> Vec<f32> {
    let mut m = vec![0f32; o * n];
    let scale = rule.scale;
    for i in 0..o {
        let row = &mut m[i * n..(i + 1) * n];
        match &rule.rule {
            Rule::Area => {
                // The mean over the input span [i, i + 1) * scale covers, partial pixels
                // weighted by the part covered (TF's ResizeArea).
                let (scale, src) = (scale as f64, i as f64 * scale as f64);
                let end = (i + 1) as f64 * scale;
                let mut j = src.floor();
                while j < end.ceil() {
                    let part = (j + 1.0).min(end) - j.max(src);
                    row[(j as usize).min(n - 1)] += (part / scale) as f32;
                    j += 1.0;
                }
            }
            Rule::Nearest => {
                // align_corners: round half away from zero.
                let src = i as f64 * scale as f64;
                row[(src.round() as usize).min(n - 1)] = 1.0;
            }
            Rule::Linear => {
                let src = i as f64 * scale as f64;
                let lo = (src.floor() as usize).min(n - 1);
                let hi = (lo + 1).min(n - 1);
                let frac = (src - lo as f64) as f32;
                row[lo] += 1.0 - frac;
                row[hi] += frac;
            }
            Rule::Bicubic { half } => bicubic_row(row, i, scale, *half),
            Rule::Kernel { kernel, scale, translate, antialias } => {
                kernel_row(row, i, *kernel, *scale, *translate, *antialias)
            }
        }
    }
    m
}

/// One output row of TF's ResizeBicubic. TF reads its weights from a table of 1024 steps
/// per pixel, so the distance is rounded to a step first (the rounding is visible at 1e-4).
fn bicubic_row(row: &mut [f32], i: usize, scale: f32, half: bool) {
    const STEPS: f32 = 1024.0;
    let n = row.len() as i64;
    let a = if half { -0.5 } else { -0.75 };
    let src = if half { (i as f32 + 0.5) * scale - 0.5 } else { i as f32 * scale };
    let base = src.floor();
    let step = ((src - base) * STEPS).round_ties_even();
    let at = |k: f32| {
        let x = k / STEPS;
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    };
    let far = |k: f32| {
        let x = k / STEPS + 1.0;
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    };
    let weights = [far(step), at(step), at(STEPS - step), far(STEPS - step)];
    let base = base as i64;
    let taps: Vec<(i64, f32)> = (0..4).map(|t| (base - 1 + t, weights[t as usize])).collect();
    if half {
        // Keys' rule: taps outside the image weigh nothing; the rest are renormalised.
        let inside: Vec<&(i64, f32)> = taps.iter().filter(|(j, _)| (0..n).contains(j)).collect();
        let sum: f32 = inside.iter().map(|(_, w)| w).sum();
        let norm = if sum.abs() >= 1000.0 * f32::MIN_POSITIVE { 1.0 / sum } else { 1.0 };
        for (j, w) in inside {
            row[*j as usize] += w * norm;
        }
    } else {
        // Legacy: a tap past the edge reads the edge pixel.
        for (j, w) in taps {
            row[j.clamp(0, n - 1) as usize] += w;
        }
    }
}

/// One output row of ScaleAndTranslate (TF's `ComputeSpansCore`): the kernel centred on the
/// sample position, over the input pixels within its radius, normalised to sum to one; a
/// sample outside the image reads nothing.
fn kernel_row(row: &mut [f32], i: usize, kernel: Kernel, scale: f32, translate: f32, aa: bool) {
    let n = row.len();
    let inv_scale = 1.0 / scale;
    let inv_translate = -inv_scale * translate;
    let kernel_scale = if aa { inv_scale.max(1.0) } else { 1.0 };
    let sample = (i as f32 + 0.5) * inv_scale + inv_translate;
    if sample < 0.0 || sample > n as f32 {
        return;
    }
    let reach = kernel.radius() * kernel_scale;
    let start = ((sample - reach - 0.5).ceil() as i64).clamp(0, n as i64 - 1) as usize;
    let end = ((sample + reach - 0.5).floor() as i64).clamp(0, n as i64 - 1) as usize + 1;
    let weights: Vec<f32> =
        (start..end).map(|j| kernel.weight((j as f32 + 0.5 - sample) / kernel_scale)).collect();
    let sum: f32 = weights.iter().sum();
    if sum.abs() >= 1000.0 * f32::MIN_POSITIVE {
        for (j, w) in (start..end).zip(weights) {
            row[j] = w / sum;
        }
    }
}

/// ScaleAndTranslate(images, size, scale, translation) (what `tf.image.resize` writes for
/// lanczos, gaussian and mitchellcubic, and for any method with `antialias=True`) → constant
/// interpolation matrices, so every input but the images must be known at conversion.
fn scale_and_translate(ctx: &mut Ctx) -> OpResult<Lowered> {
    let name = ctx.node().attr_str("kernel_type").unwrap_or_else(|_| "lanczos3".into());
    let kernel = Kernel::from_name(&name).ok_or_else(|| format!("unknown kernel_type {name:?}"))?;
    let antialias = ctx.node().attr_bool_or("antialias", true)?;
    let floats = |ctx: &Ctx, i: usize| -> OpResult<[f32; 2]> {
        let v = ctx.const_input(i)?.to_f32().ok_or("scale and translation must be float")?;
        <[f32; 2]>::try_from(v).map_err(|_| "scale and translation take two entries".into())
    };
    let ([sy, sx], [ty, tx]) = (floats(ctx, 2)?, floats(ctx, 3)?);
    if !(sy > 0.0 && sx > 0.0 && sy.is_finite() && sx.is_finite()) {
        return Err(format!("scale [{sy}, {sx}] must be positive").into());
    }
    let size = known_ints(ctx, 1).unwrap_or_default();
    let ([Some(oh), Some(ow)], (Some(h), Some(w))) = (&size[..], hw(&ctx.info(0).shape)) else {
        return Err("ScaleAndTranslate needs static input and output sizes".into());
    };
    let [oh, ow] = matrix_sizes([*oh, *ow], [h, w])?;
    let rule =
        |scale, translate| Rule::Kernel { kernel, scale, translate, antialias }.with_scale(1.0);
    let rows = interpolation_matrix(&rule(sy, ty), h, oh);
    let cols = interpolation_matrix(&rule(sx, tx), w, ow);
    matrices_applied(ctx, [rows, cols], [h, w], [oh, ow])
}

fn resize_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let [n, _, _, c] = x.shape.as_deref()? else { return None };
    let size = inp.sizes(1)?;
    let float = matches!(
        inp.node.op.as_str(),
        "ResizeBilinear" | "ResizeArea" | "ResizeBicubic" | "ScaleAndTranslate"
    );
    let dtype = if float { Some(DType::F32) } else { x.dtype };
    let hw = |i: usize| size.get(i).copied().flatten();
    Some(vec![ValueInfo { dtype, shape: Some(vec![*n, hw(0), hw(1), *c]) }])
}

#[cfg(test)]
mod tests {
    use super::{Kernel, Rule, interpolation_matrix};
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn bicubic_is_two_interpolation_matrices() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 6, 3]);
        let size = g.constant("size", int_tensor(&[2], &[8, 3]));
        let attrs = [("half_pixel_centers", boolean(true))];
        let y = g.op("resize/ResizeBicubic", "ResizeBicubic", &[x, size], &attrs);
        assert_snapshot!(g.lower(&[y]), @"
        self.resize_bicubic_rows: [8, 4] float32
        self.resize_bicubic_cols: [6, 3] float32
        # resize_bicubic_rows: [8, 4]
        # resize_bicubic_cols: [6, 3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.resize_bicubic_rows @ x @ self.resize_bicubic_cols
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Sizes known only at run time: the same weights, built then by a helper.
    #[test]
    fn bicubic_at_run_time_sizes_is_the_helper() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 6, 3]);
        let size = g.typed_input("size", &[2], crate::tensor::DType::I32);
        let y = g.op("resize/ResizeBicubic", "ResizeBicubic", &[x, size], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.permute(0, 3, 1, 2)
        size_sizes = size.tolist()
        x = resize_bicubic(x, size_sizes).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// TF's Keys weights at half-pixel centres: growing 2 → 4, the first output sits a quarter
    /// pixel before the first input, whose left taps fall outside and are dropped.
    #[test]
    fn keys_cubic_rows_sum_to_one_inside_the_image() {
        let m = interpolation_matrix(&Rule::Bicubic { half: true }.with_scale(0.5), 2, 4);
        for row in m.chunks(2) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
        }
        // A sample outside the image reads nothing (ScaleAndTranslate).
        let rule =
            Rule::Kernel { kernel: Kernel::Triangle, scale: 1.0, translate: 3.0, antialias: false };
        let m = interpolation_matrix(&rule.with_scale(1.0), 3, 3);
        assert_eq!(&m[..3], &[0.0; 3]);
    }
}
