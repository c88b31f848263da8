//! Convolutions, pooling, normalisation and dense layers: the ops that become `nn.*` layers.
//!
//! These run in NCHW. Weights are converted at conversion time (HWIO → OIHW, depthwise
//! `[H, W, C, M]` → `[C·M, 1, H, W]`, Dense `[in, out]` → `[out, in]`). A third input on
//! Conv2D/DepthwiseConv2dNative/MatMul is a bias folded in by `passes::fuse_bias`.

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Fused};
use crate::ops::contract::{Access, Ctx, Layout, Lowered};
use crate::ops::contract::{OpResult, TranslateError};
use crate::ops::util::{hw, require_nhwc, spatial_pair, window_out, window_pads};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::{DType, Tensor};
use crate::weights::Weight;

pub const OPS: &[OpDef] = &[
    op("Conv2D", conv2d).infer(conv_infer).bias_slot(2),
    op("DepthwiseConv2dNative", depthwise).infer(conv_infer).bias_slot(2),
    op("BiasAdd", bias_add).infer(crate::ops::util::same_as_input).per_row(bias_add_per_row),
    op("MatMul", matmul).infer(matmul_infer).bias_slot(2).per_row(matmul_per_row),
    op("FusedBatchNorm", batch_norm).infer(crate::ops::util::same_as_input),
    op("FusedBatchNormV3", batch_norm).infer(crate::ops::util::same_as_input),
    op("MaxPool", max_pool).infer(pool_infer),
    op("AvgPool", avg_pool).infer(pool_infer),
    op("LRN", lrn).infer(crate::ops::util::same_as_input),
    op("Conv2DBackpropInput", conv_transpose).infer(conv_transpose_infer).bias_slot(3),
    op("ResizeBilinear", |c| resize(c, "bilinear")).infer(resize_infer),
    op("ResizeNearestNeighbor", |c| resize(c, "nearest")).infer(resize_infer),
    // Produced by passes::fuse_conv1d.
    op(fused::CONV1D, conv1d).bias_slot(2),
    // Produced by passes::fuse_layernorm.
    op(fused::LAYER_NORM, layer_norm).infer(crate::ops::util::same_as_input),
];

/// A MatMul without transposes multiplies each row of its input.
fn matmul_per_row(node: &crate::ir::Node) -> bool {
    !node.attr_bool_or("transpose_a", false).unwrap_or(true)
        && !node.attr_bool_or("transpose_b", false).unwrap_or(true)
}

/// A BiasAdd in NHWC adds to the last axis.
fn bias_add_per_row(node: &crate::ir::Node) -> bool {
    node.attr_str_or("data_format", "NHWC").is_ok_and(|f| f == "NHWC")
}

/// `3` for a square pair, `(3, 5)` otherwise.
fn pair(p: (i64, i64)) -> Expr {
    if p.0 == p.1 { Expr::int(p.0) } else { Expr::ints(&[p.0, p.1]) }
}

/// `F.pad` arguments for asymmetric `[top, bottom, left, right]` pads, or the symmetric
/// `(h, w)` that torch layers take themselves.
enum Pads {
    Symmetric((i64, i64)),
    Explicit([i64; 4]),
}

fn classify(p: [i64; 4]) -> Pads {
    if p[0] == p[1] && p[2] == p[3] { Pads::Symmetric((p[0], p[2])) } else { Pads::Explicit(p) }
}

fn f_pad(x: Expr, p: [i64; 4], value: Option<Expr>) -> Expr {
    let args = vec![x, Expr::ints(&[p[2], p[3], p[0], p[1]])];
    let kwargs = value.map(|v| vec![("value", v)]).unwrap_or_default();
    Expr::call_kw("F.pad", args, kwargs)
}

struct ConvGeometry {
    k: (i64, i64),
    s: (i64, i64),
    d: (i64, i64),
    pads: [i64; 4],
}

fn conv_geometry(ctx: &Ctx, kh: usize, kw: usize) -> OpResult<ConvGeometry> {
    let node = ctx.node();
    require_nhwc(node)?;
    let s = spatial_pair(node, "strides", None)?;
    let d = spatial_pair(node, "dilations", Some(&[1, 1, 1, 1]))?;
    let k = (kh as i64, kw as i64);
    let pads = window_pads(node, hw(&ctx.info(0).shape), k, s, d)?;
    Ok(ConvGeometry { k, s, d, pads })
}

/// `nn.Conv2d(...)` plus the forward call, shared by Conv2D and depthwise.
fn conv_layer(
    ctx: &mut Ctx,
    in_ch: usize,
    out_ch: usize,
    groups: usize,
    g: ConvGeometry,
    weight: Weight,
) -> OpResult<Lowered> {
    let bias = ctx.bias()?;
    let x = ctx.input_nchw(0)?;
    let mut kwargs: Vec<(&str, Expr)> = Vec::new();
    if g.s != (1, 1) {
        kwargs.push(("stride", pair(g.s)));
    }
    let x = match classify(g.pads) {
        Pads::Symmetric((0, 0)) => x,
        Pads::Symmetric(p) => {
            kwargs.push(("padding", pair(p)));
            x
        }
        Pads::Explicit(p) => f_pad(x, p, None),
    };
    if g.d != (1, 1) {
        kwargs.push(("dilation", pair(g.d)));
    }
    if groups != 1 {
        kwargs.push(("groups", Expr::int(groups as i64)));
    }
    if bias.is_none() {
        kwargs.push(("bias", Expr::boolean(false)));
    }
    let ctor = Expr::call_kw(
        "nn.Conv2d",
        vec![Expr::int(in_ch as i64), Expr::int(out_ch as i64), pair(g.k)],
        kwargs,
    );
    let mut params = vec![("weight", weight)];
    if let Some(b) = bias {
        params.push(("bias", Weight::plain(b.reshaped(vec![out_ch]))));
    }
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout: Layout::Nchw })
}

fn float_weight(ctx: &Ctx, i: usize, rank: usize) -> OpResult<Tensor> {
    let w = ctx.const_input(i)?;
    if w.rank() != rank || w.dtype != DType::F32 {
        return Err(format!("weight input #{i} must be a float32 tensor of rank {rank}").into());
    }
    Ok(w.clone())
}

fn conv2d(ctx: &mut Ctx) -> OpResult<Lowered> {
    let w = float_weight(ctx, 1, 4)?;
    let (kh, kw, ci, co) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let channels = ctx.info(0).shape.and_then(|s| s.get(3).copied().flatten()).unwrap_or(ci);
    if ci == 0 || !channels.is_multiple_of(ci) {
        return Err(
            format!("input has {channels} channels, filter expects a multiple of {ci}").into()
        );
    }
    let groups = channels / ci;
    if co % groups != 0 {
        return Err(format!("{co} output channels cannot be split into {groups} groups").into());
    }
    let g = conv_geometry(ctx, kh, kw)?;
    let weight = Weight { tensor: w, permute: Some(vec![3, 2, 0, 1]), reshape: None };
    conv_layer(ctx, channels, co, groups, g, weight)
}

fn depthwise(ctx: &mut Ctx) -> OpResult<Lowered> {
    let w = float_weight(ctx, 1, 4)?;
    let (kh, kw, c, m) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let g = conv_geometry(ctx, kh, kw)?;
    // Output channel c·M + m is filter [.., c, m]: permute to [C, M, H, W], then merge C, M.
    let weight = Weight {
        tensor: w,
        permute: Some(vec![2, 3, 0, 1]),
        reshape: Some(vec![c * m, 1, kh, kw]),
    };
    conv_layer(ctx, c, c * m, c, g, weight)
}

fn conv_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let w = inp.consts.get(1).copied().flatten()?;
    let shape = x.shape.as_ref()?;
    if shape.len() != 4 || w.rank() != 4 {
        return None;
    }
    let node = inp.node;
    let s = spatial_pair(node, "strides", None).ok()?;
    let d = spatial_pair(node, "dilations", Some(&[1, 1, 1, 1])).ok()?;
    let k = (w.shape[0] as i64, w.shape[1] as i64);
    let pads = window_pads(node, (shape[1], shape[2]), k, s, d).ok()?;
    let co = if node.op == "DepthwiseConv2dNative" { w.shape[2] * w.shape[3] } else { w.shape[3] };
    let h = window_out(shape[1], k.0, s.0, d.0, (pads[0], pads[1]));
    let wd = window_out(shape[2], k.1, s.1, d.1, (pads[2], pads[3]));
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(vec![shape[0], h, wd, Some(co)]) }])
}

fn bias_add(ctx: &mut Ctx) -> OpResult<Lowered> {
    let df = ctx.node().attr_str_or("data_format", "NHWC")?;
    if !ctx.is_const(1) && df == "NHWC" {
        // A bias computed at run time (a loop invariant) broadcasts over the last axis.
        let (x, b) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
        return Ok(Lowered::Expr { expr: x.binop(BinOp::Add, b), layout: Layout::Tf });
    }
    let b = ctx.const_input(1)?.clone();
    let c = b.numel();
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let layout = if rank == 4 && df == "NHWC" { ctx.layout(0)? } else { Layout::Tf };
    let channels_first = df == "NCHW" || layout == Layout::Nchw;
    let b = if channels_first && rank >= 3 {
        let mut s = vec![c];
        s.extend(std::iter::repeat_n(1, rank - 2));
        b.reshaped(s)
    } else {
        b
    };
    let x = ctx.input_in(0, layout)?;
    let bias = ctx.buffer("bias", b)?;
    Ok(Lowered::Expr { expr: x.binop(BinOp::Add, bias), layout })
}

fn matmul(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let ta = node.attr_bool_or("transpose_a", false)?;
    let tb = node.attr_bool_or("transpose_b", false)?;
    if ctx.is_const(1) && !ta {
        let w = float_weight(ctx, 1, 2)?;
        return crate::ops::util::linear_layer(ctx, w, tb);
    }
    if ctx.bias()?.is_some() {
        return Err("fused bias on a non-constant MatMul".into());
    }
    let mut a = ctx.input_tf(0)?;
    let mut b = ctx.input_tf(1)?;
    if ta {
        a = a.attr("T");
    }
    if tb {
        b = b.attr("T");
    }
    Ok(Lowered::Expr { expr: a.binop(BinOp::MatMul, b), layout: Layout::Tf })
}

fn matmul_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let a = inp.infos.first()?.shape.clone()?;
    let b = inp.infos.get(1)?.shape.clone()?;
    if a.len() != 2 || b.len() != 2 {
        return None;
    }
    let ta = inp.node.attr_bool_or("transpose_a", false).ok()?;
    let tb = inp.node.attr_bool_or("transpose_b", false).ok()?;
    let m = if ta { a[1] } else { a[0] };
    let n = if tb { b[0] } else { b[1] };
    Some(vec![ValueInfo { dtype: inp.infos[0].dtype, shape: Some(vec![m, n]) }])
}

fn batch_norm(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    if node.attr_bool_or("is_training", true)? {
        return Err("is_training=true (a graph exported in training mode) is not supported".into());
    }
    require_nhwc(node)?;
    let eps = node.attr_float_or("epsilon", 1e-4)?;
    let mut params = Vec::new();
    let mut channels = 0;
    for (i, name) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
        let t = ctx.const_input(i)?;
        if t.rank() != 1 || t.dtype != DType::F32 {
            return Err(format!("{name} (input #{i}) must be a float32 vector").into());
        }
        channels = t.numel();
        params.push((name, Weight::plain(t.clone())));
    }
    params.push(("num_batches_tracked", Weight::plain(Tensor::from_i64(vec![], &[0]))));
    let (class, x, layout) = match ctx.rank(0) {
        Some(4) => ("nn.BatchNorm2d", ctx.input_nchw(0)?, Layout::Nchw),
        Some(2) => ("nn.BatchNorm1d", ctx.input_tf(0)?, Layout::Tf),
        _ => return Err("batch norm input must have rank 2 or 4".into()),
    };
    let mut kwargs = Vec::new();
    if eps != 1e-5 {
        kwargs.push(("eps", Expr::f32(eps)));
    }
    let ctor = Expr::call_kw(class, vec![Expr::int(channels as i64)], kwargs);
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout })
}

struct PoolGeometry {
    k: (i64, i64),
    s: (i64, i64),
    pads: [i64; 4],
}

fn pool_geometry(node: &crate::ir::Node, input: &crate::ir::Shape) -> OpResult<PoolGeometry> {
    require_nhwc(node)?;
    let k = spatial_pair(node, "ksize", None)?;
    let s = spatial_pair(node, "strides", None)?;
    let pads = window_pads(node, hw(input), k, s, (1, 1))?;
    Ok(PoolGeometry { k, s, pads })
}

fn pool_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    if shape.len() != 4 {
        return None;
    }
    let g = pool_geometry(inp.node, &x.shape).ok()?;
    let h = window_out(shape[1], g.k.0, g.s.0, 1, (g.pads[0], g.pads[1]));
    let w = window_out(shape[2], g.k.1, g.s.1, 1, (g.pads[2], g.pads[3]));
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(vec![shape[0], h, w, shape[3]]) }])
}

fn pool_ctor(
    class: &str,
    g: &PoolGeometry,
    padding: Option<(i64, i64)>,
    extra: Vec<(&str, Expr)>,
) -> Expr {
    let mut args = vec![pair(g.k)];
    if g.s != g.k {
        args.push(pair(g.s));
    }
    let mut kwargs = Vec::new();
    if let Some(p) = padding.filter(|&p| p != (0, 0)) {
        kwargs.push(("padding", pair(p)));
    }
    kwargs.extend(extra);
    Expr::call_kw(class, args, kwargs)
}

fn max_pool(ctx: &mut Ctx) -> OpResult<Lowered> {
    let g = pool_geometry(ctx.node(), &ctx.info(0).shape)?;
    let x = ctx.input_nchw(0)?;
    // Padded positions never win a max: torch's implicit padding is -inf, as TF's.
    let (x, padding) = match classify(g.pads) {
        Pads::Symmetric(p) => (x, Some(p)),
        Pads::Explicit(p) => (f_pad(x, p, Some(Expr::f32(f32::NEG_INFINITY))), None),
    };
    let ctor = pool_ctor("nn.MaxPool2d", &g, padding, vec![]);
    Ok(Lowered::Layer { post: vec![], ctor, params: vec![], args: vec![x], layout: Layout::Nchw })
}

fn avg_pool(ctx: &mut Ctx) -> OpResult<Lowered> {
    let info = ctx.info(0);
    let g = pool_geometry(ctx.node(), &info.shape)?;
    match classify(g.pads) {
        Pads::Symmetric(p) => {
            let x = ctx.input_nchw(0)?;
            // TF averages over the valid (unpadded) elements only.
            let extra = if p != (0, 0) {
                vec![("count_include_pad", Expr::boolean(false))]
            } else {
                vec![]
            };
            let ctor = pool_ctor("nn.AvgPool2d", &g, Some(p), extra);
            Ok(Lowered::Layer {
                post: vec![],
                ctor,
                params: vec![],
                args: vec![x],
                layout: Layout::Nchw,
            })
        }
        Pads::Explicit(p) => {
            // Asymmetric: sum over the zero-padded input, divided by the per-window count of
            // valid elements, which is static and computed here.
            let (Some(h), Some(w)) = hw(&info.shape) else {
                return Err("asymmetric SAME average pooling needs a static input size".into());
            };
            let counts = window_counts(h as i64, w as i64, &g, p);
            let x = ctx.input_nchw(0)?;
            let div = ctx.buffer("count", counts)?;
            let sum = Expr::call_kw(
                "F.avg_pool2d",
                vec![f_pad(x, p, None), pair(g.k), pair(g.s)],
                vec![("divisor_override", Expr::int(1))],
            );
            Ok(Lowered::Expr { expr: sum.binop(BinOp::Div, div), layout: Layout::Nchw })
        }
    }
}

/// Number of unpadded input elements under each pooling window, shape `[1, 1, OH, OW]`.
fn window_counts(h: i64, w: i64, g: &PoolGeometry, p: [i64; 4]) -> Tensor {
    let axis = |n: i64, k: i64, s: i64, before: i64, after: i64| -> Vec<f32> {
        let out = crate::ops::util::valid_out(n + before + after, k, s, 1);
        (0..out)
            .map(|o| {
                let start = o * s - before;
                let lo = start.max(0);
                let hi = (start + k).min(n);
                (hi - lo).max(0) as f32
            })
            .collect()
    };
    let ch = axis(h, g.k.0, g.s.0, p[0], p[1]);
    let cw = axis(w, g.k.1, g.s.1, p[2], p[3]);
    let vals: Vec<f32> = ch.iter().flat_map(|a| cw.iter().map(move |b| a * b)).collect();
    Tensor::from_f32(vec![1, 1, ch.len(), cw.len()], &vals)
}

/// Known integer values of input `i`: a constant, or shape arithmetic folded in part.
fn known_ints(ctx: &Ctx, i: usize) -> OpResult<Vec<Option<i64>>> {
    if let Ok(v) = ctx.const_ints(i) {
        return Ok(v.into_iter().map(Some).collect());
    }
    let p = ctx.partial(i).ok_or_else(|| format!("input #{i} must be known at conversion time"))?;
    Ok(p.values.iter().map(|d| d.known()).collect())
}

/// `Conv2DBackpropInput(input_sizes, filter, out_backprop[, bias])` = `nn.ConvTranspose2d`,
/// with TF's padding reproduced exactly (tf-formats.md §4.2).
fn conv_transpose(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    require_nhwc(node)?;
    let s = spatial_pair(node, "strides", None)?;
    let d = spatial_pair(node, "dilations", Some(&[1, 1, 1, 1]))?;
    let padding = node.attr_str("padding")?;
    let w = float_weight(ctx, 1, 4)?;
    let (kh, kw, c_out, c_in) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let sizes = known_ints(ctx, 0)?;
    let (Some(Some(oh)), Some(Some(ow))) = (sizes.get(1).copied(), sizes.get(2).copied()) else {
        return Err("the output height and width must be known at conversion time".into());
    };
    let (Some(n_h), Some(n_w)) = hw(&ctx.info(2).shape) else {
        return Err("the input height and width must be static".into());
    };
    let axis = |n: i64, o: i64, k: i64, s: i64, d: i64| -> OpResult<(i64, i64, bool)> {
        let full = (n - 1) * s + (k - 1) * d + 1;
        let total = match padding.as_str() {
            "SAME" => (full - o).max(0),
            "VALID" => 0,
            other => return Err(format!("padding {other} is not supported").into()),
        };
        let before = total / 2;
        let out_pad = (o - (full - 2 * before)).max(0);
        if out_pad >= s.max(d) {
            return Err(
                format!("output size {o} needs output_padding {out_pad} >= stride {s}").into()
            );
        }
        Ok((before, out_pad, full - 2 * before + out_pad > o))
    };
    let (bh, oph, crop_h) = axis(n_h as i64, oh, kh as i64, s.0, d.0)?;
    let (bw, opw, crop_w) = axis(n_w as i64, ow, kw as i64, s.1, d.1)?;
    let bias = ctx.bias()?;
    let mut kwargs: Vec<(&str, Expr)> = Vec::new();
    if s != (1, 1) {
        kwargs.push(("stride", pair(s)));
    }
    if (bh, bw) != (0, 0) {
        kwargs.push(("padding", pair((bh, bw))));
    }
    if (oph, opw) != (0, 0) {
        kwargs.push(("output_padding", pair((oph, opw))));
    }
    if d != (1, 1) {
        kwargs.push(("dilation", pair(d)));
    }
    if bias.is_none() {
        kwargs.push(("bias", Expr::boolean(false)));
    }
    let ctor = Expr::call_kw(
        "nn.ConvTranspose2d",
        vec![Expr::int(c_in as i64), Expr::int(c_out as i64), pair((kh as i64, kw as i64))],
        kwargs,
    );
    let mut params =
        vec![("weight", Weight { tensor: w, permute: Some(vec![3, 2, 0, 1]), reshape: None })];
    if let Some(b) = bias {
        params.push(("bias", Weight::plain(b.reshaped(vec![c_out]))));
    }
    let x = ctx.input_nchw(2)?;
    // TF puts the odd padding pixel at the end: keep the first `o` rows and columns.
    let post = if crop_h || crop_w {
        let upto = |n: i64| Expr::slice(None, Some(Expr::int(n)), None);
        let all = Expr::full_slice();
        vec![Access::Item(Expr::Tuple(vec![all.clone(), all, upto(oh), upto(ow)]))]
    } else {
        vec![]
    };
    Ok(Lowered::Layer { post, ctor, params, args: vec![x], layout: Layout::Nchw })
}

fn conv_transpose_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let sizes = inp.ints(0)?;
    let x = inp.infos.get(2)?;
    let shape = sizes.into_iter().map(|d| d.filter(|&d| d >= 0).map(|d| d as usize)).collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(shape) }])
}

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
    let size = known_ints(ctx, 1)?;
    let [Some(h), Some(w)] = size[..] else { return Err("the output size must be known".into()) };
    let mut x = ctx.input_nchw(0)?;
    if kind == "bilinear" && ctx.info(0).dtype.is_some_and(|d| !d.is_float()) {
        x = x.method("float", vec![]);
    }
    let mut kwargs = vec![("size", Expr::ints(&[h, w])), ("mode", Expr::str_lit(mode))];
    if let Some(a) = align_kw {
        kwargs.push(("align_corners", Expr::boolean(a)));
    }
    Ok(Lowered::Expr {
        expr: Expr::call_kw("F.interpolate", vec![x], kwargs),
        layout: Layout::Nchw,
    })
}

/// Resize modes with no `F.interpolate` twin (TF1's legacy corner rule, nearest with
/// align_corners) as two constant interpolation matrices: `rows @ x @ cols`, rows `[OH, H]`
/// and cols `[W, OW]` built here with TF's coordinate rule (tf-formats.md §4.7).
fn resize_by_matrices(ctx: &mut Ctx, kind: &str, align: bool, half: bool) -> OpResult<Lowered> {
    if align && half {
        return Err("align_corners and half_pixel_centers together (TF rejects it)".into());
    }
    if ctx.info(0).dtype != Some(DType::F32) {
        return Err("matrix resize needs a float32 input".into());
    }
    let size = known_ints(ctx, 1)?;
    let [Some(oh), Some(ow)] = size[..] else { return Err("the output size must be known".into()) };
    let (Some(h), Some(w)) = hw(&ctx.info(0).shape) else {
        return Err("the input height and width must be static".into());
    };
    let matrix = |n: usize, o: usize| -> Vec<f32> {
        let scale =
            if align && o > 1 { (n as f64 - 1.0) / (o as f64 - 1.0) } else { n as f64 / o as f64 };
        let mut m = vec![0f32; o * n];
        for i in 0..o {
            let src = i as f64 * scale;
            if kind == "nearest" {
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
    let (oh, ow) = (oh as usize, ow as usize);
    let rows = Tensor::from_f32(vec![oh, h], &matrix(h, oh));
    let cols = Tensor::from_f32(vec![ow, w], &matrix(w, ow)).permute(&[1, 0]);
    let rows = ctx.buffer("rows", rows)?;
    let cols = ctx.buffer("cols", cols)?;
    let x = ctx.input_nchw(0)?;
    Ok(Lowered::Expr {
        expr: rows.binop(BinOp::MatMul, x).binop(BinOp::MatMul, cols),
        layout: Layout::Nchw,
    })
}

fn resize_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let s = x.shape.as_ref()?;
    let size = inp.ints(1)?;
    let dtype = if inp.node.op == "ResizeBilinear" { Some(DType::F32) } else { x.dtype };
    let hw = |i: usize| size.get(i).copied().flatten().map(|v| v as usize);
    Some(vec![ValueInfo { dtype, shape: Some(vec![s[0], hw(0), hw(1), s[3]]) }])
}

/// `nn.Conv1d` on a TF `[N, W, C]` value: channels moved to dim 1 around the layer.
fn conv1d(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::Conv1D { stride: s, dilation: d, same_padding } = *ctx.fused()? else {
        return Err("not a Conv1D".into());
    };
    let w = float_weight(ctx, 1, 3)?;
    let (k, ci, co) = (w.shape[0], w.shape[1], w.shape[2]);
    let (l, r) = if same_padding {
        let n = ctx.info(0).shape.and_then(|s| s.get(1).copied().flatten());
        match (n, s) {
            (_, 1) => crate::ops::util::same_pads(k as i64, k as i64, 1, d),
            (Some(n), _) => crate::ops::util::same_pads(n as i64, k as i64, s, d),
            (None, _) => return Err("SAME padding with a stride needs a static length".into()),
        }
    } else {
        (0, 0)
    };
    let bias = ctx.bias()?;
    let mut kwargs: Vec<(&str, Expr)> = Vec::new();
    if s != 1 {
        kwargs.push(("stride", Expr::int(s)));
    }
    if l == r && l != 0 {
        kwargs.push(("padding", Expr::int(l)));
    }
    if d != 1 {
        kwargs.push(("dilation", Expr::int(d)));
    }
    if bias.is_none() {
        kwargs.push(("bias", Expr::boolean(false)));
    }
    let ctor = Expr::call_kw(
        "nn.Conv1d",
        vec![Expr::int(ci as i64), Expr::int(co as i64), Expr::int(k as i64)],
        kwargs,
    );
    let mut params =
        vec![("weight", Weight { tensor: w, permute: Some(vec![2, 1, 0]), reshape: None })];
    if let Some(b) = bias {
        params.push(("bias", Weight::plain(b.reshaped(vec![co]))));
    }
    let mut x = ctx.input_tf(0)?.method("transpose", vec![Expr::int(1), Expr::int(2)]);
    if l != r {
        x = Expr::call("F.pad", vec![x, Expr::ints(&[l, r])]);
    }
    // The result is transposed back to TF's [N, W, C].
    let post = vec![Access::Method("transpose", vec![Expr::int(1), Expr::int(2)])];
    Ok(Lowered::Layer { post, ctor, params, args: vec![x], layout: Layout::Tf })
}

fn layer_norm(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::LayerNorm { epsilon: eps, affine } = ctx.fused()? else {
        return Err("not a layer norm".into());
    };
    let eps = *eps;
    let shape = ctx.info(0).shape.ok_or(TranslateError::UnknownRank)?;
    let c = shape.last().copied().flatten().ok_or("the normalised axis must have a static size")?;
    let mut kwargs = Vec::new();
    if eps != 1e-5 {
        kwargs.push(("eps", Expr::f32(eps)));
    }
    let mut params = Vec::new();
    if let Some(a) = affine {
        params.push(("weight", Weight::plain(a.gamma.clone())));
        params.push(("bias", Weight::plain(a.beta.clone())));
    } else {
        kwargs.push(("elementwise_affine", Expr::boolean(false)));
    }
    let ctor = Expr::call_kw("nn.LayerNorm", vec![Expr::int(c as i64)], kwargs);
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout: Layout::Tf })
}

fn lrn(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let r = node.attr_int_or("depth_radius", 5)?;
    let bias = node.attr_float_or("bias", 1.0)?;
    let alpha = node.attr_float_or("alpha", 1.0)?;
    let beta = node.attr_float_or("beta", 0.5)?;
    if r < 0 {
        return Err(format!("depth_radius {r} is negative").into());
    }
    let size = 2 * r + 1;
    // TF sums squares over the window; torch averages them: torch alpha = TF alpha · size.
    let ctor = Expr::call_kw(
        "nn.LocalResponseNorm",
        vec![Expr::int(size)],
        vec![
            ("alpha", Expr::f64(alpha as f64 * size as f64)),
            ("beta", Expr::f32(beta)),
            ("k", Expr::f32(bias)),
        ],
    );
    let x = ctx.input_nchw(0)?;
    Ok(Lowered::Layer { post: vec![], ctor, params: vec![], args: vec![x], layout: Layout::Nchw })
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    fn conv(attrs: &[(&str, crate::proto::AttrValue)], filter: &[usize], input: &[i64]) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", input);
        let w = g.constant("w", weights(filter));
        let y = g.op("conv", "Conv2D", &[x, w], attrs);
        g.lower(&[y])
    }

    #[test]
    fn conv_same_stride2_pads_asymmetrically() {
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("SAME"))];
        assert_snapshot!(conv(&a, &[3, 3, 3, 8], &[-1, 224, 224, 3]), @"
        self.conv = nn.Conv2d(3, 8, 3, stride=2, bias=False)
        # conv.weight: [8, 3, 3, 3]
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.conv(F.pad(x, (0, 1, 0, 1))).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn conv_same_stride1_is_symmetric() {
        let a = [
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", string("SAME")),
            ("dilations", ints(&[1, 2, 2, 1])),
        ];
        assert_snapshot!(conv(&a, &[3, 3, 4, 4], &[-1, 8, 8, 4]), @"
        self.conv = nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False)
        # conv.weight: [4, 4, 3, 3]
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn conv_valid_grouped() {
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        assert_snapshot!(conv(&a, &[1, 2, 2, 6], &[-1, 5, 5, 4]), @"
        self.conv = nn.Conv2d(4, 6, (1, 2), groups=2, bias=False)
        # conv.weight: [6, 2, 1, 2]
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn conv_explicit_padding() {
        let a = [
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", string("EXPLICIT")),
            ("explicit_paddings", ints(&[0, 0, 1, 2, 0, 1, 0, 0])),
        ];
        assert_snapshot!(conv(&a, &[3, 3, 3, 2], &[-1, 5, 5, 3]), @"
        self.conv = nn.Conv2d(3, 2, 3, bias=False)
        # conv.weight: [2, 3, 3, 3]
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.conv(F.pad(x, (0, 1, 1, 2))).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn conv_nchw_data_format_becomes_a_stub() {
        let a = [
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", string("VALID")),
            ("data_format", string("NCHW")),
        ];
        assert_snapshot!(conv(&a, &[1, 1, 3, 2], &[-1, 3, 5, 5]), @"
        self.w_const: [1, 1, 3, 2] float32
        # w_const: [1, 1, 3, 2]
        ---
        x = custom_ops.conv2d(x_2, self.w_const)
        return x
        stub conv2d
        ");
    }

    #[test]
    fn conv_with_bias_add_is_one_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4, 3]);
        let w = g.constant("conv/w", weights(&[1, 1, 3, 2]));
        let b = g.constant("conv/b", weights(&[2]));
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("conv/Conv2D", "Conv2D", &[x, w], &a);
        let y = g.op("conv/BiasAdd", "BiasAdd", &[y, b], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.conv2d = nn.Conv2d(3, 2, 1)
        # conv2d.weight: [2, 3, 1, 1]
        # conv2d.bias: [2]
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.conv2d(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn depthwise_with_multiplier() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 6, 6, 3]);
        let w = g.constant("w", weights(&[3, 3, 3, 2]));
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("SAME"))];
        let y = g.op("dw", "DepthwiseConv2dNative", &[x, w], &a);
        assert_snapshot!(g.lower(&[y]), @"
        self.dw = nn.Conv2d(3, 6, 3, stride=2, groups=3, bias=False)
        # dw.weight: [6, 1, 3, 3]
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.dw(F.pad(x, (0, 1, 0, 1))).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn matmul_on_constant_is_linear() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5]);
        let w = g.constant("dense/kernel", weights(&[3, 5]));
        let b = g.constant("dense/bias", weights(&[3]));
        let y = g.op("dense/MatMul", "MatMul", &[x, w], &[("transpose_b", boolean(true))]);
        let y = g.op("dense/add", "AddV2", &[y, b], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.mat_mul = nn.Linear(5, 3)
        # mat_mul.weight: [3, 5]
        # mat_mul.bias: [3]
        ---
        x = self.mat_mul(x_2)
        return x
        ");
    }

    #[test]
    fn matmul_of_two_tensors() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[4, 5]);
        let b = g.input("b", &[4, 3]);
        let y = g.op("mm", "MatMul", &[a, b], &[("transpose_a", boolean(true))]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = a.T @ b
        return x
        ");
    }

    fn batch_norm(input: &[i64], training: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", input);
        let c = *input.last().unwrap() as usize;
        let p: Vec<_> = ["scale", "offset", "mean", "var"]
            .iter()
            .map(|n| g.constant(n, weights(&[c])))
            .collect();
        let a = [("epsilon", float(0.001)), ("is_training", boolean(training))];
        let y = g.op("bn", "FusedBatchNormV3", &[x, p[0], p[1], p[2], p[3]], &a);
        g.lower(&[y])
    }

    #[test]
    fn batch_norm_2d_and_1d() {
        assert_snapshot!(batch_norm(&[-1, 4, 4, 3], false), @"
        self.bn = nn.BatchNorm2d(3, eps=0.001)
        # bn.weight: [3]
        # bn.bias: [3]
        # bn.running_mean: [3]
        # bn.running_var: [3]
        # bn.num_batches_tracked: []
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.bn(x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(batch_norm(&[-1, 3], false), @"
        self.bn = nn.BatchNorm1d(3, eps=0.001)
        # bn.weight: [3]
        # bn.bias: [3]
        # bn.running_mean: [3]
        # bn.running_var: [3]
        # bn.num_batches_tracked: []
        ---
        x = self.bn(x_2)
        return x
        ");
    }

    #[test]
    fn batch_norm_in_training_mode_becomes_a_stub() {
        assert_snapshot!(batch_norm(&[-1, 4, 4, 3], true), @"
        self.scale_const: [3] float32
        self.offset_const: [3] float32
        self.mean_const: [3] float32
        self.var_const: [3] float32
        # scale_const: [3]
        # offset_const: [3]
        # mean_const: [3]
        # var_const: [3]
        ---
        x = custom_ops.fused_batch_norm_v3(
        x_2, self.scale_const, self.offset_const, self.mean_const, self.var_const
        )
        return x
        stub fused_batch_norm_v3
        ");
    }

    fn pool(op: &str, k: i64, s: i64, padding: &str) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 7, 8, 2]);
        let a = [
            ("ksize", ints(&[1, k, k, 1])),
            ("strides", ints(&[1, s, s, 1])),
            ("padding", string(padding)),
        ];
        let y = g.op("pool", op, &[x], &a);
        g.lower(&[y])
    }

    #[test]
    fn max_pool() {
        assert_snapshot!(pool("MaxPool", 3, 2, "SAME"), @r#"
        self.pool = nn.MaxPool2d(3, 2)
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.pool(F.pad(x, (0, 1, 1, 1), value=float("-inf"))).permute(0, 2, 3, 1)
        return x
        "#);
        assert_snapshot!(pool("MaxPool", 3, 1, "SAME"), @"
        self.pool = nn.MaxPool2d(3, 1, padding=1)
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(pool("MaxPool", 2, 2, "VALID"), @"
        self.pool = nn.MaxPool2d(2)
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn avg_pool() {
        assert_snapshot!(pool("AvgPool", 3, 2, "SAME"), @"
        self.pool_count: [1, 1, 4, 4] float32
        # pool_count: [1, 1, 4, 4]
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = (
        F.avg_pool2d(F.pad(x, (0, 1, 1, 1)), 3, 2, divisor_override=1)
        / self.pool_count
        )
        x = x.permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(pool("AvgPool", 3, 1, "SAME"), @"
        self.pool = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(pool("AvgPool", 2, 2, "VALID"), @"
        self.pool = nn.AvgPool2d(2)
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn lrn() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4, 8]);
        let a = [
            ("depth_radius", int(2)),
            ("alpha", float(0.001)),
            ("beta", float(0.75)),
            ("bias", float(2.0)),
        ];
        let y = g.op("lrn", "LRN", &[x], &a);
        assert_snapshot!(g.lower(&[y]), @"
        self.lrn = nn.LocalResponseNorm(5, alpha=0.0050000002374872565, beta=0.75, k=2.0)
        ---
        x = x_2.permute(0, 3, 1, 2)
        x = self.lrn(x).permute(0, 2, 3, 1)
        return x
        ");
    }
}
