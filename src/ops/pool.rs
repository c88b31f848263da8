//! Pooling → `nn.MaxPool2d` / `nn.AvgPool2d` in NCHW, with TF's SAME padding: padded positions
//! never win a max, and averages count only the valid elements.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{
    Pads, classify, f_pad, hw, pair, require_nhwc, spatial_pair, valid_out, window_out, window_pads,
};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::Tensor;

pub const OPS: &[OpDef] =
    &[op("MaxPool", max_pool).infer(pool_infer), op("AvgPool", avg_pool).infer(pool_infer)];

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
    let x = ctx.input_channels_first(0)?;
    // Padded positions never win a max: torch's implicit padding is -inf, as TF's.
    let (x, padding) = match classify(g.pads) {
        Pads::Symmetric(p) => (x, Some(p)),
        Pads::Explicit(p) => (f_pad(x, p, Some(Expr::f32(f32::NEG_INFINITY))), None),
    };
    let ctor = pool_ctor("nn.MaxPool2d", &g, padding, vec![]);
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
    match classify(g.pads) {
        Pads::Symmetric(p) => {
            let x = ctx.input_channels_first(0)?;
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
                layout: Layout::ChannelsFirst,
            })
        }
        Pads::Explicit(p) => {
            // Asymmetric: sum over the zero-padded input, divided by the per-window count of
            // valid elements, which is static and computed here.
            let (Some(h), Some(w)) = hw(&info.shape) else {
                return Err("asymmetric SAME average pooling needs a static input size".into());
            };
            let counts = window_counts(h as i64, w as i64, &g, p);
            let x = ctx.input_channels_first(0)?;
            let div = ctx.buffer("count", counts)?;
            let sum = Expr::call_kw(
                "F.avg_pool2d",
                vec![f_pad(x, p, None), pair(g.k), pair(g.s)],
                vec![("divisor_override", Expr::int(1))],
            );
            Ok(Lowered::Expr { expr: sum.binop(BinOp::Div, div), layout: Layout::ChannelsFirst })
        }
    }
}

/// Number of unpadded input elements under each pooling window, shape `[1, 1, OH, OW]`.
fn window_counts(h: i64, w: i64, g: &PoolGeometry, p: [i64; 4]) -> Tensor {
    let axis = |n: i64, k: i64, s: i64, before: i64, after: i64| -> Vec<f32> {
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
    let ch = axis(h, g.k.0, g.s.0, p[0], p[1]);
    let cw = axis(w, g.k.1, g.s.1, p[2], p[3]);
    let vals: Vec<f32> = ch.iter().flat_map(|a| cw.iter().map(move |b| a * b)).collect();
    Tensor::from_f32(vec![1, 1, ch.len(), cw.len()], &vals)
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

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
        x = x.permute(0, 3, 1, 2)
        x = self.pool(F.pad(x, (0, 1, 1, 1), value=float("-inf"))).permute(0, 2, 3, 1)
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
