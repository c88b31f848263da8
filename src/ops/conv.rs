//! Convolutions → `nn.Conv2d` (grouped and depthwise too), `nn.Conv1d` and
//! `nn.ConvTranspose2d`, running in NCHW. Weights are converted at conversion time (HWIO →
//! OIHW, depthwise `[H, W, C, M]` → `[C·M, 1, H, W]`); TF's SAME padding becomes the layer's
//! own `padding` or one `F.pad` when it is asymmetric. A fused bias (`passes::fuse_bias`) is the
//! layer's bias.

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Fused};
use crate::ops::contract::{Access, Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{
    Pads, classify, f_pad, float_weight, hw, known_ints, pair, require_nhwc, same_pads,
    spatial_pair, window_out, window_pads,
};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::weights::Weight;

pub const OPS: &[OpDef] = &[
    op("Conv2D", conv2d).infer(conv_infer).bias_slot(2),
    op("DepthwiseConv2dNative", depthwise).infer(conv_infer).bias_slot(2),
    op("Conv2DBackpropInput", conv_transpose).infer(conv_transpose_infer).bias_slot(3),
    // Produced by passes::fuse_conv1d.
    op(fused::CONV1D, conv1d).bias_slot(2),
];

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
    let bias = ctx.bias(out_ch)?;
    let x = ctx.input_channels_first(0)?;
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
        params.push(("bias", Weight::plain(b)));
    }
    Ok(Lowered::Layer { post: vec![], ctor, params, args: vec![x], layout: Layout::ChannelsFirst })
}

fn conv2d(ctx: &mut Ctx) -> OpResult<Lowered> {
    let w = float_weight(ctx, 1, 4)?;
    let (kh, kw, ci, co) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let channels = ctx.info(0).shape.and_then(|s| s.get(3).copied().flatten()).unwrap_or(ci);
    if ci == 0 || channels == 0 || !channels.is_multiple_of(ci) {
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
    let bias = ctx.bias(c_out)?;
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
        params.push(("bias", Weight::plain(b)));
    }
    let x = ctx.input_channels_first(2)?;
    // TF puts the odd padding pixel at the end: keep the first `o` rows and columns.
    let post = if crop_h || crop_w {
        let upto = |n: i64| Expr::slice(None, Some(Expr::int(n)), None);
        let all = Expr::full_slice();
        vec![Access::Item(Expr::Tuple(vec![all.clone(), all, upto(oh), upto(ow)]))]
    } else {
        vec![]
    };
    Ok(Lowered::Layer { post, ctor, params, args: vec![x], layout: Layout::ChannelsFirst })
}

fn conv_transpose_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let sizes = inp.ints(0)?;
    let x = inp.infos.get(2)?;
    let shape = sizes.into_iter().map(|d| d.filter(|&d| d >= 0).map(|d| d as usize)).collect();
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(shape) }])
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
            (_, 1) => same_pads(k as i64, k as i64, 1, d),
            (Some(n), _) => same_pads(n as i64, k as i64, s, d),
            (None, _) => return Err("SAME padding with a stride needs a static length".into()),
        }
    } else {
        (0, 0)
    };
    let bias = ctx.bias(co)?;
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
        params.push(("bias", Weight::plain(b)));
    }
    let mut x = ctx.input_tf(0)?.method("transpose", vec![Expr::int(1), Expr::int(2)]);
    if l != r {
        x = Expr::call("F.pad", vec![x, Expr::ints(&[l, r])]);
    }
    // The result is transposed back to TF's [N, W, C].
    let post = vec![Access::Method("transpose", vec![Expr::int(1), Expr::int(2)])];
    Ok(Lowered::Layer { post, ctor, params, args: vec![x], layout: Layout::Tf })
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
        x = custom_ops.conv2d(x, self.w_const)
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
        x = self.dw(F.pad(x, (0, 1, 0, 1))).permute(0, 2, 3, 1)
        return x
        ");
    }
}
