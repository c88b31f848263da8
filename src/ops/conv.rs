//! Convolutions at any spatial rank → `nn.Conv1d` / `nn.Conv2d` / `nn.Conv3d` (grouped and
//! depthwise too) and `nn.ConvTranspose1d/2d/3d`, running channels-first. Weights are
//! converted at conversion time (`[k.., I, O]` → `[O, I, k..]`, depthwise `[k.., C, M]` →
//! `[C·M, 1, k..]`); TF's SAME padding becomes the layer's own `padding` or one `F.pad` when it
//! is asymmetric. A fused bias (`passes::fuse_bias`) is the layer's bias. 1-D ops are TF's 2-D
//! ops on a unit axis, made 1-D by `passes::fuse_1d`.

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Fused, Window1D};
use crate::ops::contract::{Access, Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::{Item, items};
use crate::ops::util::float_weight;
use crate::ops::window::{Window, dims, f_pad, layer, per_axis, require_channels_last};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::weights::Weight;

pub const OPS: &[OpDef] = &[
    op("Conv2D", |c| conv(c, 2)).infer(conv_infer).bias_slot(2),
    op("Conv3D", |c| conv(c, 3)).infer(conv_infer).bias_slot(2),
    op("DepthwiseConv2dNative", |c| depthwise(c, 2)).infer(conv_infer).bias_slot(2),
    op("Conv2DBackpropInput", |c| conv_transpose(c, 2)).infer(conv_transpose_infer).bias_slot(3),
    op("Conv3DBackpropInputV2", |c| conv_transpose(c, 3)).infer(conv_transpose_infer).bias_slot(3),
    // Produced by passes::fuse_1d.
    op(fused::CONV_1D, |c| conv(c, 1)).infer(conv_infer).bias_slot(2),
    op(fused::DEPTHWISE_1D, |c| depthwise(c, 1)).infer(conv_infer).bias_slot(2),
    op(fused::CONV_TRANSPOSE_1D, |c| conv_transpose(c, 1)).infer(conv_transpose_infer).bias_slot(3),
];

/// The spatial rank of a conv node: its filter's rank less the two channel axes.
fn spatial_of(node: &crate::ir::Node) -> usize {
    match (&node.fused, node.op.as_str()) {
        (Some(Fused::Window1D(_)), _) => 1,
        (_, "Conv3D" | "Conv3DBackpropInputV2") => 3,
        _ => 2,
    }
}

/// `[O, I, k..]` from TF's `[k.., I, O]` (also a transposed conv's `[k.., O, I]` →
/// `[I, O, k..]`, which is the same permutation).
fn oi_first(spatial: usize) -> Vec<usize> {
    [spatial + 1, spatial].into_iter().chain(0..spatial).collect()
}

/// `[C, M, k..]` from a depthwise filter's `[k.., C, M]`: output channel c·M + m once `C`
/// and `M` are merged.
fn cm_first(spatial: usize) -> Vec<usize> {
    [spatial, spatial + 1].into_iter().chain(0..spatial).collect()
}

fn ints_of(v: Vec<usize>) -> Vec<Expr> {
    v.into_iter().map(|a| Expr::int(a as i64)).collect()
}

/// A filter: constant weights (a layer's parameter), or a value computed at run time (an
/// input, a dequantized weight), used as it is by the functional op.
enum Filter {
    Weight(Weight),
    Data(Expr),
}

/// A conv with a run-time filter: `F.conv2d(x, w.permute(3, 2, 0, 1), ...)`, any fused bias a
/// parameter (a buffer if no variable).
fn functional(
    ctx: &mut Ctx,
    func: String,
    (x, w): (Expr, Expr),
    mut kwargs: Vec<(&str, Expr)>,
    out_ch: usize,
) -> OpResult<Expr> {
    if let Some(b) = ctx.bias_expr(out_ch)? {
        kwargs.insert(0, ("bias", b));
    }
    Ok(Expr::call_kw(&func, vec![x, w], kwargs))
}

/// The filter input: constant weights as `[O, I, k..]` through `permute`, or the run-time
/// value permuted so.
fn filter(ctx: &mut Ctx, spatial: usize) -> OpResult<Result<crate::tensor::Tensor, Expr>> {
    if ctx.is_const(1) {
        return Ok(Ok(float_weight(ctx, 1, spatial + 2)?));
    }
    Ok(Err(ctx.input_tf(1)?.method("permute", ints_of(oi_first(spatial)))))
}

/// The filter's shape: the constant's, or the run-time value's when known.
fn filter_shape(ctx: &Ctx, spatial: usize) -> OpResult<Vec<usize>> {
    let shape = ctx.info(1).shape.filter(|s| s.len() == spatial + 2);
    shape
        .and_then(|s| s.into_iter().collect::<Option<Vec<_>>>())
        .ok_or_else(|| "the filter's shape must be known".into())
}

/// `nn.ConvNd(...)` plus the forward call, shared by the convs and depthwise.
fn conv_layer(
    ctx: &mut Ctx,
    (in_ch, out_ch, groups): (usize, usize, usize),
    g: Window,
    filter: Filter,
) -> OpResult<Lowered> {
    let spatial = g.kernel.len();
    let bias = ctx.bias(out_ch)?;
    let x = ctx.input_channels_first(0)?;
    let mut kwargs: Vec<(&str, Expr)> = Vec::new();
    if g.strides.iter().any(|&s| s != 1) {
        kwargs.push(("stride", dims(&g.strides)));
    }
    let x = match g.symmetric() {
        Some(p) if p.iter().all(|&p| p == 0) => x,
        Some(p) => {
            kwargs.push(("padding", dims(&p)));
            x
        }
        None => g.padded(ctx, x, None),
    };
    if g.dilations.iter().any(|&d| d != 1) {
        kwargs.push(("dilation", dims(&g.dilations)));
    }
    if groups != 1 {
        kwargs.push(("groups", Expr::int(groups as i64)));
    }
    let weight = match filter {
        Filter::Weight(w) => w,
        Filter::Data(w) => {
            let expr = functional(ctx, format!("F.conv{spatial}d"), (x, w), kwargs, out_ch)?;
            return Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst });
        }
    };
    if bias.is_none() {
        kwargs.push(("bias", Expr::boolean(false)));
    }
    let ctor = Expr::call_kw(
        &layer("Conv", spatial),
        vec![Expr::int(in_ch as i64), Expr::int(out_ch as i64), dims(&g.kernel)],
        kwargs,
    );
    let mut params = vec![("weight", weight)];
    if let Some(b) = bias {
        params.push(("bias", Weight::plain(b)));
    }
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout: Layout::ChannelsFirst })
}

/// A filter computed at run time whose shape is unknown here: `F.conv2d` with TF's strides
/// and dilations, groups from the channel counts then (`x.shape[1] // w.shape[2]`, or the
/// channels for a depthwise filter, its `[k.., C, M]` made `[C·M, 1, k..]`). SAME padding
/// is `padding="same"`, which pads as TF does (the odd pixel after) but only at stride 1:
/// at other strides the pads depend on the kernel size, so that is an error.
fn conv_of_unknown_filter(ctx: &mut Ctx, spatial: usize, depthwise: bool) -> OpResult<Lowered> {
    if ctx.has_bias() {
        return Err("a fused bias on a filter of unknown shape".into());
    }
    let g = Window::of(ctx.node(), &ctx.info(0).shape, vec![1; spatial], true)?;
    let same = ctx.node().attr_str("padding")? == "SAME";
    if same && g.strides.iter().any(|&s| s != 1) {
        return Err("SAME padding at a stride above 1 with a filter of unknown shape".into());
    }
    let x = ctx.input_channels_first(0)?;
    let channels = x.clone().attr("shape").index(Expr::int(1));
    let x = if same || g.pads.iter().all(|&p| p == (0, 0)) { x } else { f_pad(x, &g.pads, None) };
    let w = ctx.input_tf(1)?;
    let mut kwargs: Vec<(&str, Expr)> = Vec::new();
    if g.strides.iter().any(|&s| s != 1) {
        kwargs.push(("stride", dims(&g.strides)));
    }
    if same {
        kwargs.push(("padding", Expr::str_lit("same")));
    }
    if g.dilations.iter().any(|&d| d != 1) {
        kwargs.push(("dilation", dims(&g.dilations)));
    }
    let w = if depthwise {
        kwargs.push(("groups", channels));
        let w = w.method("permute", ints_of(cm_first(spatial)));
        w.method("flatten", vec![Expr::int(0), Expr::int(1)])
            .method("unsqueeze", vec![Expr::int(1)])
    } else {
        let filter_channels = w.clone().attr("shape").index(Expr::int(spatial as i64));
        kwargs.push(("groups", channels.binop(BinOp::FloorDiv, filter_channels)));
        w.method("permute", ints_of(oi_first(spatial)))
    };
    let expr = Expr::call_kw(&format!("F.conv{spatial}d"), vec![x, w], kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst })
}

fn conv(ctx: &mut Ctx, spatial: usize) -> OpResult<Lowered> {
    require_channels_last(ctx.node(), spatial)?;
    if !ctx.is_const(1) && filter_shape(ctx, spatial).is_err() {
        return conv_of_unknown_filter(ctx, spatial, false);
    }
    let wshape = filter_shape(ctx, spatial)?;
    let (ci, co) = (wshape[spatial], wshape[spatial + 1]);
    let channels =
        ctx.info(0).shape.and_then(|s| s.get(spatial + 1).copied().flatten()).unwrap_or(ci);
    if ci == 0 || channels == 0 || !channels.is_multiple_of(ci) {
        return Err(
            format!("input has {channels} channels, filter expects a multiple of {ci}").into()
        );
    }
    let groups = channels / ci;
    if co % groups != 0 {
        return Err(format!("{co} output channels cannot be split into {groups} groups").into());
    }
    let kernel = wshape[..spatial].iter().map(|&k| k as i64).collect();
    let g = Window::of(ctx.node(), &ctx.info(0).shape, kernel, true)?;
    let filter = match filter(ctx, spatial)? {
        Ok(w) => {
            Filter::Weight(Weight { tensor: w, permute: Some(oi_first(spatial)), reshape: None })
        }
        Err(w) => Filter::Data(w),
    };
    conv_layer(ctx, (channels, co, groups), g, filter)
}

fn depthwise(ctx: &mut Ctx, spatial: usize) -> OpResult<Lowered> {
    require_channels_last(ctx.node(), spatial)?;
    if !ctx.is_const(1) && filter_shape(ctx, spatial).is_err() {
        return conv_of_unknown_filter(ctx, spatial, true);
    }
    let wshape = filter_shape(ctx, spatial)?;
    let (c, m) = (wshape[spatial], wshape[spatial + 1]);
    let kernel: Vec<i64> = wshape[..spatial].iter().map(|&k| k as i64).collect();
    let g = Window::of(ctx.node(), &ctx.info(0).shape, kernel, true)?;
    let mut shape = vec![c * m, 1];
    shape.extend(&wshape[..spatial]);
    let permute = cm_first(spatial);
    let filter = if ctx.is_const(1) {
        let w = float_weight(ctx, 1, spatial + 2)?;
        Filter::Weight(Weight { tensor: w, permute: Some(permute), reshape: Some(shape) })
    } else {
        let w = ctx.input_tf(1)?.method("permute", ints_of(permute));
        Filter::Data(w.method("reshape", ints_of(shape)))
    };
    conv_layer(ctx, (c, c * m, c), g, filter)
}

fn conv_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let spatial = spatial_of(inp.node);
    let known: Option<Vec<usize>> =
        inp.infos.get(1)?.shape.clone().and_then(|s| s.into_iter().collect());
    let Some(wshape) = known else {
        // A filter of unknown shape: the rank and batch are still known.
        let mut out = vec![None; spatial + 2];
        out[0] = *shape.first()?;
        return (shape.len() == spatial + 2)
            .then(|| vec![ValueInfo { dtype: x.dtype, shape: Some(out) }]);
    };
    if shape.len() != spatial + 2 || wshape.len() != spatial + 2 {
        return None;
    }
    let kernel = wshape[..spatial].iter().map(|&k| k as i64).collect();
    let g = Window::of(inp.node, &x.shape, kernel, true).ok()?;
    let depthwise = matches!(inp.node.op.as_str(), "DepthwiseConv2dNative")
        || matches!(inp.node.fused, Some(Fused::Window1D(Window1D::Depthwise)));
    let co = if depthwise { wshape[spatial] * wshape[spatial + 1] } else { wshape[spatial + 1] };
    let mut out = vec![shape[0]];
    out.extend(g.out_sizes(&shape[1..=spatial]));
    out.push(Some(co));
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

/// Per axis of a transposed conv: `(padding, output_padding, crop)` reproducing TF's output
/// size `o` exactly (tf-formats.md §4.2).
fn transpose_axis(
    padding: &str,
    (n, o, k, s, d): (i64, i64, i64, i64, i64),
) -> OpResult<(i64, i64, bool)> {
    let full = (n - 1) * s + (k - 1) * d + 1;
    let total = match padding {
        "SAME" => (full - o).max(0),
        "VALID" => 0,
        other => return Err(format!("padding {other} is not supported").into()),
    };
    let before = total / 2;
    let out_pad = (o - (full - 2 * before)).max(0);
    if out_pad >= s.max(d) {
        return Err(format!("output size {o} needs output_padding {out_pad} >= stride {s}").into());
    }
    Ok((before, out_pad, full - 2 * before + out_pad > o))
}

/// `Conv2DBackpropInput(input_sizes, filter, out_backprop[, bias])` (and its 1-D and 3-D
/// forms) = `nn.ConvTranspose2d`, with TF's padding reproduced exactly; when the sizes are
/// only known at run time, [`conv_transpose_sized`].
fn conv_transpose(ctx: &mut Ctx, spatial: usize) -> OpResult<Lowered> {
    let node = ctx.node();
    require_channels_last(node, spatial)?;
    let strides = crate::ops::window::spatial_attr(node, "strides", spatial, false)?;
    let dilations = crate::ops::window::spatial_attr(node, "dilations", spatial, true)?;
    let padding = node.attr_str("padding")?;
    let wshape = filter_shape(ctx, spatial)?;
    let (c_out, c_in) = (wshape[spatial], wshape[spatial + 1]);
    let rank = if spatial == 1 { 4 } else { spatial + 2 };
    let sizes: Vec<Item> = one_d_sizes(items(ctx, 0, rank)?, spatial);
    let input = ctx.info(2).shape.filter(|s| s.len() == spatial + 2);
    let mut geometry = Vec::with_capacity(spatial);
    let mut outs = Vec::with_capacity(spatial);
    for a in 0..spatial {
        let n = input.as_ref().and_then(|s| s[a + 1]);
        let (Some(o), Some(n)) = (sizes[a + 1].known, n) else {
            let size = sizes[1..=spatial].iter().map(|i| i.expr.clone()).collect();
            let channels = (c_in, c_out);
            let window = (strides, dilations);
            return conv_transpose_sized(ctx, channels, window, &padding, Expr::Tuple(size));
        };
        let k = wshape[a] as i64;
        geometry.push(transpose_axis(&padding, (n as i64, o, k, strides[a], dilations[a]))?);
        outs.push(o);
    }
    let bias = ctx.bias(c_out)?;
    let mut kwargs: Vec<(&str, Expr)> = Vec::new();
    if strides.iter().any(|&s| s != 1) {
        kwargs.push(("stride", dims(&strides)));
    }
    let before: Vec<i64> = geometry.iter().map(|g| g.0).collect();
    if before.iter().any(|&p| p != 0) {
        kwargs.push(("padding", dims(&before)));
    }
    let out_pad: Vec<i64> = geometry.iter().map(|g| g.1).collect();
    if out_pad.iter().any(|&p| p != 0) {
        kwargs.push(("output_padding", dims(&out_pad)));
    }
    if dilations.iter().any(|&d| d != 1) {
        kwargs.push(("dilation", dims(&dilations)));
    }
    let x = ctx.input_channels_first(2)?;
    // TF puts the odd padding pixel at the end: keep the first `o` along each axis.
    let post = if geometry.iter().any(|g| g.2) {
        let mut index = vec![Expr::full_slice(), Expr::full_slice()];
        index.extend(outs.iter().map(|&o| Expr::slice(None, Some(Expr::int(o)), None)));
        vec![Access::Item(Expr::Tuple(index))]
    } else {
        vec![]
    };
    let w = match filter(ctx, spatial)? {
        Ok(w) => w,
        Err(w) => {
            let func = format!("F.conv_transpose{spatial}d");
            let mut expr = functional(ctx, func, (x, w), kwargs, c_out)?;
            for a in post {
                if let Access::Item(i) = a {
                    expr = expr.index(i);
                }
            }
            return Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst });
        }
    };
    let (ctor, params) = transpose_layer((c_in, c_out), w, bias, kwargs);
    Ok(Lowered::Layer { post, ctor, params, args: vec![x], layout: Layout::ChannelsFirst })
}

/// `nn.ConvTransposeNd(c_in, c_out, kernel, **kwargs)` for TF's filter `w` `[k.., O, I]`, and
/// its state_dict entries.
fn transpose_layer(
    (c_in, c_out): (usize, usize),
    w: crate::tensor::Tensor,
    bias: Option<crate::tensor::Tensor>,
    mut kwargs: Vec<(&'static str, Expr)>,
) -> (Expr, Vec<(&'static str, Weight)>) {
    let spatial = w.rank() - 2;
    if bias.is_none() {
        kwargs.push(("bias", Expr::boolean(false)));
    }
    let kernel: Vec<i64> = w.shape[..spatial].iter().map(|&k| k as i64).collect();
    let ctor = Expr::call_kw(
        &layer("ConvTranspose", spatial),
        vec![Expr::int(c_in as i64), Expr::int(c_out as i64), dims(&kernel)],
        kwargs,
    );
    let mut params =
        vec![("weight", Weight { tensor: w, permute: Some(oi_first(spatial)), reshape: None })];
    if let Some(b) = bias {
        params.push(("bias", Weight::plain(b)));
    }
    (ctor, params)
}

/// A transposed conv whose output size is read at run time: the geometry TF derives from it
/// is computed there too, by `conv_transpose_sized` (templates/conv_transpose_sized.py). A
/// constant filter is still an `nn.ConvTransposeNd` layer, its weights passed to the helper.
fn conv_transpose_sized(
    ctx: &mut Ctx,
    (c_in, c_out): (usize, usize),
    (strides, dilations): (Vec<i64>, Vec<i64>),
    padding: &str,
    size: Expr,
) -> OpResult<Lowered> {
    let same = match padding {
        "SAME" => true,
        "VALID" => false,
        other => return Err(format!("padding {other} is not supported").into()),
    };
    let spatial = strides.len();
    let bias = ctx.bias(c_out)?;
    let x = ctx.input_channels_first(2)?;
    ctx.require_class(
        "conv_transpose_sized",
        include_str!("../../templates/conv_transpose_sized.py"),
    );
    let call = move |weight: Expr, bias: Expr| {
        let kwargs = vec![
            ("stride", per_axis(&strides)),
            ("dilation", per_axis(&dilations)),
            ("same", Expr::boolean(same)),
        ];
        Expr::call_kw("conv_transpose_sized", vec![x, weight, bias, size], kwargs)
    };
    let w = match filter(ctx, spatial)? {
        Ok(w) => w,
        Err(w) => {
            let b = ctx.bias_expr(c_out)?.unwrap_or_else(Expr::none);
            return Ok(Lowered::Expr { expr: call(w, b), layout: Layout::ChannelsFirst });
        }
    };
    let has_bias = bias.is_some();
    let (ctor, params) = transpose_layer((c_in, c_out), w, bias, Vec::new());
    let call: crate::ops::contract::LayerUse = Box::new(move |layer: Expr| {
        let b = if has_bias { layer.clone().attr("bias") } else { Expr::none() };
        call(layer.attr("weight"), b)
    });
    Ok(Lowered::LayerWith { ctor, params, call, layout: Layout::ChannelsFirst })
}

fn conv_transpose_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.get(2)?;
    let spatial = spatial_of(inp.node);
    // Sizes read at run time still give the rank, and the filter the channels.
    let rank = if spatial == 1 { 4 } else { spatial + 2 };
    let mut shape = one_d_sizes(inp.sizes(0).unwrap_or_else(|| vec![None; rank]), spatial);
    let channels = inp.infos.get(1).and_then(|w| w.shape.as_ref()?.get(spatial).copied()?);
    if let (Some(last), Some(c)) = (shape.last_mut(), channels) {
        *last = last.or(Some(c));
    }
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(shape) }])
}

/// A 1-D transposed conv's output sizes are still its 2-D op's, `[N, 1, W, C]`: the unit axis
/// dropped.
fn one_d_sizes<T>(mut sizes: Vec<T>, spatial: usize) -> Vec<T> {
    if spatial == 1 && sizes.len() == 4 {
        sizes.remove(1);
    }
    sizes
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

    /// A filter computed at run time, its shape unknown here: functional, groups read then.
    #[test]
    fn a_filter_of_unknown_shape_is_functional() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 9, 9, 3]);
        let w = g.unranked_input("w");
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("VALID"))];
        let y = g.op("conv", "Conv2D", &[x, w], &a);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.permute(0, 3, 1, 2)
        x = F.conv2d(
            x, w.permute(3, 2, 0, 1), stride=2, groups=x.shape[1] // w.shape[2]
        )
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// A depthwise filter computed at run time (Keras' `gaussian_blur` from a traced sigma):
    /// `[k.., C, M]` made `[C·M, 1, k..]` in forward, SAME at stride 1 as torch's "same".
    #[test]
    fn a_depthwise_filter_of_unknown_shape_is_functional() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 9, 9, 3]);
        let w = g.unranked_input("w");
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("SAME"))];
        let y = g.op("blur", "DepthwiseConv2dNative", &[x, w], &a);
        assert_snapshot!(g.lower(&[y]), @r#"
        ---
        x = x.permute(0, 3, 1, 2)
        x = F.conv2d(
            x,
            w.permute(2, 3, 0, 1).flatten(0, 1).unsqueeze(1),
            padding="same",
            groups=x.shape[1],
        )
        x = x.permute(0, 2, 3, 1)
        return x
        "#);
    }

    /// SAME's pads depend on the kernel size at a stride above 1: refused, not guessed.
    #[test]
    fn same_at_stride_2_with_a_filter_of_unknown_shape_is_a_stub() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 9, 9, 3]);
        let w = g.unranked_input("w");
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("SAME"))];
        let y = g.op("conv", "Conv2D", &[x, w], &a);
        let code = g.lower(&[y]);
        assert!(code.contains("custom_ops.conv2d(x, w)"), "{code}");
    }

    /// Found by fuzzing: an input with no channels made zero groups (a division by zero).
    #[test]
    fn an_input_without_channels_is_a_stub() {
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        assert_snapshot!(conv(&a, &[1, 1, 3, 2], &[-1, 4, 4, 0]), @"
        self.w_const: [1, 1, 3, 2] float32
        # w_const: [1, 1, 3, 2]
        ---
        x = custom_ops.conv2d(x, self.w_const)
        return x
        stub conv2d
        ");
    }

    #[test]
    fn conv_same_stride2_pads_asymmetrically() {
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("SAME"))];
        assert_snapshot!(conv(&a, &[3, 3, 3, 8], &[-1, 224, 224, 3]), @"
        self.conv = nn.Conv2d(3, 8, 3, stride=2, bias=False)
        # conv.weight: [8, 3, 3, 3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = F.pad(x, (0, 1, 0, 1))
        x = self.conv(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Images of any size: TF's SAME pads depend on each one's size, so they are computed
    /// in `forward` (`pad_same`) and the layer pads nothing.
    #[test]
    fn conv_same_stride2_on_run_time_sizes_pads_in_forward() {
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("SAME"))];
        assert_snapshot!(conv(&a, &[3, 3, 3, 8], &[-1, -1, -1, 3]), @"
        self.conv = nn.Conv2d(3, 8, 3, stride=2, bias=False)
        # conv.weight: [8, 3, 3, 3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.conv(pad_same(x, (3, 3), (2, 2))).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// Keras' Conv2DTranspose on images of any size: the output size is shape arithmetic, read
    /// at run time and handed to `conv_transpose_sized` with the layer's weights.
    #[test]
    fn conv_transpose_to_a_run_time_size() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, -1, 3]);
        let size = g.typed_input("size", &[4], crate::tensor::DType::I32);
        let w = g.constant("up/w", weights(&[3, 3, 5, 3]));
        let b = g.constant("up/b", weights(&[5]));
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("SAME"))];
        let y = g.op("up/conv_transpose", "Conv2DBackpropInput", &[size, w, x], &a);
        let y = g.op("up/BiasAdd", "BiasAdd", &[y, b], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.conv_transpose = nn.ConvTranspose2d(3, 5, 3)
        # conv_transpose.weight: [3, 5, 3, 3]
        # conv_transpose.bias: [5]
        ---
        size_sizes = size.tolist()
        x = x.permute(0, 3, 1, 2)
        x = conv_transpose_sized(
            x,
            self.conv_transpose.weight,
            self.conv_transpose.bias,
            (size_sizes[1], size_sizes[2]),
            stride=(2, 2),
            dilation=(1, 1),
            same=True,
        )
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// A filter that is data too (no layer): the helper gets it directly.
    #[test]
    fn conv_transpose_of_a_run_time_filter_to_a_run_time_size() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[1, 4, 4, 3]);
        let size = g.typed_input("size", &[4], crate::tensor::DType::I32);
        let w = g.input("w", &[2, 2, 5, 3]);
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("VALID"))];
        let y = g.op("up", "Conv2DBackpropInput", &[size, w, x], &a);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        size_sizes = size.tolist()
        x = x.permute(0, 3, 1, 2)
        x = conv_transpose_sized(
            x,
            w.permute(3, 2, 0, 1),
            None,
            (size_sizes[1], size_sizes[2]),
            stride=(2, 2),
            dilation=(1, 1),
            same=False,
        )
        x = x.permute(0, 2, 3, 1)
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
        x = x.permute(0, 3, 1, 2)
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
        x = x.permute(0, 3, 1, 2)
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
        x = x.permute(0, 3, 1, 2)
        x = F.pad(x, (0, 1, 1, 2))
        x = self.conv(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn conv_nchw_data_format_reads_its_input_as_it_is() {
        let a = [
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", string("VALID")),
            ("data_format", string("NCHW")),
        ];
        assert_snapshot!(conv(&a, &[1, 1, 3, 2], &[-1, 3, 5, 5]), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = self.conv(x)
        return x
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
        x = x.permute(0, 3, 1, 2)
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
        x = x.permute(0, 3, 1, 2)
        x = F.pad(x, (0, 1, 0, 1))
        x = self.dw(x).permute(0, 2, 3, 1)
        return x
        ");
    }
}
