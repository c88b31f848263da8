//! Pooling at any spatial rank → `nn.MaxPool1d/2d/3d` / `nn.AvgPool1d/2d/3d` channels-first,
//! with TF's SAME padding: padded positions never win a max, and averages count only the valid
//! elements.

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Fused};
use crate::ops::contract::{Access, Ctx, Layout, Lowered, OpResult};
use crate::ops::window::{
    Window, dims, f_pad, layer, require_channels_last, spatial_attr, valid_out,
};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::Tensor;

pub const OPS: &[OpDef] = &[
    op("MaxPool", max_pool).infer(pool_infer),
    op("AvgPool", avg_pool).infer(pool_infer),
    op("MaxPool3D", max_pool).infer(pool_infer),
    op("AvgPool3D", avg_pool).infer(pool_infer),
    // Produced by passes::fuse_1d.
    op(fused::MAX_POOL_1D, max_pool).infer(pool_infer),
    op(fused::AVG_POOL_1D, avg_pool).infer(pool_infer),
    op("MaxPoolWithArgmax", max_pool_with_argmax).infer(max_pool_with_argmax_infer),
];

/// `values, argmax = _max_pool_with_argmax(x, ...)` (templates/max_pool_with_argmax.py):
/// torch's indices count within one channel's plane, TF's across the NHWC tensor.
fn max_pool_with_argmax(ctx: &mut Ctx) -> OpResult<Lowered> {
    let g = pool_geometry(ctx.node(), &ctx.info(0).shape)?;
    if g.same_at_run_time {
        return Err("MaxPoolWithArgmax with SAME padding needs static spatial sizes".into());
    }
    let batch = ctx.node().attr_bool_or("include_batch_in_index", false)?;
    let int32 = ctx.node().attr_type("Targmax").is_ok_and(|d| d == crate::tensor::DType::I32);
    let x = ctx.input_tf(0)?;
    ctx.require_class(
        "_max_pool_with_argmax",
        include_str!("../../templates/max_pool_with_argmax.py"),
    );
    let pads = Expr::Tuple(
        g.pads.iter().map(|&(b, a)| Expr::Tuple(vec![Expr::int(b), Expr::int(a)])).collect(),
    );
    let expr = Expr::call(
        "_max_pool_with_argmax",
        vec![x, dims(&g.kernel), dims(&g.strides), pads, Expr::boolean(batch)],
    );
    let views = if int32 {
        vec![vec![], vec![Access::Method("int", vec![])]]
    } else {
        vec![vec![], vec![]]
    };
    Ok(Lowered::MultiViews { expr, views })
}

fn max_pool_with_argmax_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let mut out = pool_infer(inp)?;
    let int32 = inp.node.attr_type("Targmax").is_ok_and(|d| d == crate::tensor::DType::I32);
    let dtype = Some(if int32 { crate::tensor::DType::I32 } else { crate::tensor::DType::I64 });
    out.push(ValueInfo { dtype, shape: out[0].shape.clone() });
    Some(out)
}

fn spatial_of(node: &crate::ir::Node) -> usize {
    match (&node.fused, node.op.as_str()) {
        (Some(Fused::Window1D(_)), _) => 1,
        (_, "MaxPool3D" | "AvgPool3D") => 3,
        _ => 2,
    }
}

fn pool_geometry(node: &crate::ir::Node, input: &crate::ir::Shape) -> OpResult<Window> {
    let spatial = spatial_of(node);
    require_channels_last(node, spatial)?;
    let kernel = spatial_attr(node, "ksize", spatial, false)?;
    Window::of(node, input, kernel, false)
}

fn pool_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref()?;
    let spatial = spatial_of(inp.node);
    if shape.len() != spatial + 2 {
        return None;
    }
    let g = pool_geometry(inp.node, &x.shape).ok()?;
    let mut out = vec![shape[0]];
    out.extend(g.out_sizes(&shape[1..=spatial]));
    out.push(shape[spatial + 1]);
    Some(vec![ValueInfo { dtype: x.dtype, shape: Some(out) }])
}

fn pool_ctor(class: &str, g: &Window, padding: Option<&[i64]>, extra: Vec<(&str, Expr)>) -> Expr {
    let mut args = vec![dims(&g.kernel)];
    if g.strides != g.kernel {
        args.push(dims(&g.strides));
    }
    let mut kwargs = Vec::new();
    if let Some(p) = padding.filter(|p| p.iter().any(|&x| x != 0)) {
        kwargs.push(("padding", dims(p)));
    }
    kwargs.extend(extra);
    Expr::call_kw(class, args, kwargs)
}

fn max_pool(ctx: &mut Ctx) -> OpResult<Lowered> {
    let g = pool_geometry(ctx.node(), &ctx.info(0).shape)?;
    let x = ctx.input_channels_first(0)?;
    // Padded positions never win a max: torch's implicit padding is -inf, as TF's.
    let (x, padding) = match g.symmetric() {
        Some(p) => (x, Some(p)),
        None => (g.padded(ctx, x, Some(Expr::f32(f32::NEG_INFINITY))), None),
    };
    let ctor = pool_ctor(&layer("MaxPool", g.kernel.len()), &g, padding.as_deref(), vec![]);
    Ok(Lowered::Layer {
        post: vec![],
        ctor,
        params: vec![],
        args: vec![x],
        layout: Layout::ChannelsFirst,
    })
}

fn avg_pool(ctx: &mut Ctx) -> OpResult<Lowered> {
    let info = ctx.info(0);
    let g = pool_geometry(ctx.node(), &info.shape)?;
    let spatial = g.kernel.len();
    if let Some(p) = g.symmetric() {
        let x = ctx.input_channels_first(0)?;
        // TF averages over the valid (unpadded) elements only.
        let extra = if p.iter().any(|&x| x != 0) {
            vec![("count_include_pad", Expr::boolean(false))]
        } else {
            vec![]
        };
        let ctor = pool_ctor(&layer("AvgPool", spatial), &g, Some(&p), extra);
        return Ok(Lowered::Layer {
            post: vec![],
            ctor,
            params: vec![],
            args: vec![x],
            layout: Layout::ChannelsFirst,
        });
    }
    // Asymmetric: sum over the zero-padded input, divided by the per-window count of valid
    // elements, which is static and computed here.
    let sizes: Option<Vec<usize>> = info
        .shape
        .as_ref()
        .filter(|s| s.len() == spatial + 2)
        .and_then(|s| s[1..=spatial].iter().copied().collect());
    let Some(sizes) = sizes else {
        if !g.same_at_run_time {
            return Err("asymmetric average pooling needs static spatial sizes".into());
        }
        // Padded by size at run time: the sums over the zero-padded input divided by those
        // over padded ones (how many input elements each window covers).
        let x = ctx.input_channels_first(0)?;
        let first = || Expr::slice(None, Some(Expr::int(1)), None);
        let ones = Expr::call(
            "torch.ones_like",
            vec![x.clone().index(Expr::index_of(vec![first(), first()]))],
        );
        let mut sum = |v: Expr| window_sums(g.padded(ctx, v, None), &g);
        let expr = sum(x).binop(BinOp::Div, sum(ones));
        return Ok(Lowered::Expr { expr, layout: Layout::ChannelsFirst });
    };
    let outs: Vec<usize> = g
        .out_sizes(&sizes.iter().map(|&n| Some(n)).collect::<Vec<_>>())
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .collect();
    if !crate::tensor::computed_fits(&outs) {
        return Err(
            format!("a pooling output of {outs:?} is too large to count windows for").into()
        );
    }
    let counts = window_counts(&sizes, &g);
    let x = ctx.input_channels_first(0)?;
    let div = ctx.buffer("count", counts)?;
    let sum = window_sums(f_pad(x, &g.pads, None), &g);
    Ok(Lowered::Expr { expr: sum.binop(BinOp::Div, div), layout: Layout::ChannelsFirst })
}

/// The sum over each window of channels-first `x` (padded already): an average pooling
/// that divides by 1; `F.avg_pool1d` has no divisor to set, so a 1-D window is unfolded and
/// summed.
fn window_sums(x: Expr, g: &Window) -> Expr {
    if let ([k], [s]) = (&g.kernel[..], &g.strides[..]) {
        let unfolded = x.method("unfold", vec![Expr::int(2), Expr::int(*k), Expr::int(*s)]);
        return unfolded.method("sum", vec![Expr::int(-1)]);
    }
    let func = format!("F.avg_pool{}d", g.kernel.len());
    let args = vec![x, dims(&g.kernel), dims(&g.strides)];
    Expr::call_kw(&func, args, vec![("divisor_override", Expr::int(1))])
}

/// Number of unpadded input elements under each pooling window, shape `[1, 1, out..]`.
fn window_counts(sizes: &[usize], g: &Window) -> Tensor {
    let axis = |a: usize| -> Vec<f32> {
        let (n, k, s, (before, after)) = (sizes[a] as i64, g.kernel[a], g.strides[a], g.pads[a]);
        let out = valid_out(n + before + after, k, s, 1);
        (0..out)
            .map(|o| {
                let start = o * s - before;
                let lo = start.max(0);
                let hi = (start + k).min(n);
                (hi - lo).max(0) as f32
            })
            .collect()
    };
    let per_axis: Vec<Vec<f32>> = (0..sizes.len()).map(axis).collect();
    let mut vals = vec![1.0f32];
    for counts in &per_axis {
        vals = vals.iter().flat_map(|v| counts.iter().map(move |c| v * c)).collect();
    }
    let mut shape = vec![1, 1];
    shape.extend(per_axis.iter().map(Vec::len));
    Tensor::from_f32(shape, &vals)
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    fn pool(op: &str, k: i64, s: i64, padding: &str) -> String {
        pool_on(&[-1, 7, 8, 2], op, k, s, padding)
    }

    fn pool_on(input: &[i64], op: &str, k: i64, s: i64, padding: &str) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", input);
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
        x = x.permute(0, 3, 1, 2)
        x = F.pad(x, (0, 1, 1, 1), value=float("-inf"))
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        "#);
        assert_snapshot!(pool("MaxPool", 3, 1, "SAME"), @"
        self.pool = nn.MaxPool2d(3, 1, padding=1)
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(pool("MaxPool", 2, 2, "VALID"), @"
        self.pool = nn.MaxPool2d(2)
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// On images of any size the SAME pads are computed in `forward`; what they add never
    /// wins a max, and an average counts only the input's elements (sums over padded ones).
    #[test]
    fn max_pool_same_on_run_time_sizes() {
        assert_snapshot!(pool_on(&[-1, -1, -1, 2], "MaxPool", 3, 2, "SAME"), @r#"
        self.pool = nn.MaxPool2d(3, 2)
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.pool(pad_same(x, (3, 3), (2, 2), value=float("-inf")))
        x = x.permute(0, 2, 3, 1)
        return x
        "#);
        assert_snapshot!(pool_on(&[-1, -1, -1, 2], "AvgPool", 3, 2, "SAME"), @"
            ---
            x = x.permute(0, 3, 1, 2)
            x = F.avg_pool2d(
                pad_same(x, (3, 3), (2, 2)), 3, 2, divisor_override=1
            ) / F.avg_pool2d(
                pad_same(torch.ones_like(x[:1, :1]), (3, 3), (2, 2)),
                3,
                2,
                divisor_override=1,
            )
            x = x.permute(0, 2, 3, 1)
            return x
            ");
    }

    #[test]
    fn avg_pool() {
        assert_snapshot!(pool("AvgPool", 3, 2, "SAME"), @"
        self.pool_count: [1, 1, 4, 4] float32
        # pool_count: [1, 1, 4, 4]
        ---
        x = x.permute(0, 3, 1, 2)
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
        x = x.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(pool("AvgPool", 2, 2, "VALID"), @"
        self.pool = nn.AvgPool2d(2)
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
    }
}
