//! Attention: the [`Fused::Attention`] node `passes::fuse_attention` builds →
//! `F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=...)`, and rotary
//! embeddings' half turn → a `rotate_half(x)` helper (`rotate_every_two(x)` where the pairs
//! are neighbours, `rotate_pairs(x, cos, sin)` where the whole turn of each pair is written).

use crate::ir::fused::{self, Fused};
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::same_as_input;
use crate::ops::{OpDef, op};
use crate::py::{BinOp, Expr};

pub const OPS: &[OpDef] = &[
    // Produced by passes::fuse_attention; its output shape is the matmul's it replaced.
    op(fused::ATTENTION, attention),
    // Produced by passes::fuse_rotary.
    op(fused::ROTATE_HALF, rotate_half).infer(same_as_input),
    op(fused::ROTATE_EVERY_TWO, rotate_every_two).infer(same_as_input),
    op(fused::ROTATE_PAIRS, rotate_pairs).infer(same_as_input),
    op(fused::APPLY_ROTARY, apply_rotary),
    op(fused::APPLY_ROTARY_EVERY_TWO, apply_rotary_every_two),
    // Produced by passes::fuse_causal; its output shape is the comparison's it replaced.
    op(fused::CAUSAL_MASK, causal_mask),
];

/// `torch.ones(n, n, dtype=torch.bool).tril()`, or with `m` keys for `n` queries,
/// `torch.ones(n, m, dtype=torch.bool).tril(m - n)`.
fn causal_mask(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = ctx.input_in(0, Layout::Host)?;
    let (m, diagonal) = match ctx.num_inputs() {
        2 => {
            let m = ctx.input_in(1, Layout::Host)?;
            (m.clone(), vec![m.binop(BinOp::Sub, n.clone())])
        }
        _ => (n.clone(), vec![]),
    };
    let ones = Expr::call_kw("torch.ones", vec![n, m], vec![("dtype", Expr::path("torch.bool"))]);
    Ok(Lowered::Expr { expr: ones.method("tril", diagonal), layout: Layout::Tf })
}

/// Its output shape is the addition's it replaced (`x`'s, broadcast with the angles').
fn apply_rotary(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("rotate_half", include_str!("../../templates/rotate_half.py"));
    ctx.require_class("apply_rotary", include_str!("../../templates/apply_rotary.py"));
    let expr = Expr::call("apply_rotary", vec![ctx.input_tf(0)?, ctx.input_tf(1)?]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// As [`apply_rotary`], in the interleaved layout.
fn apply_rotary_every_two(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("rotate_every_two", include_str!("../../templates/rotate_every_two.py"));
    let source = include_str!("../../templates/apply_rotary_every_two.py");
    ctx.require_class("apply_rotary_every_two", source);
    let expr = Expr::call("apply_rotary_every_two", vec![ctx.input_tf(0)?, ctx.input_tf(1)?]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn rotate_half(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("rotate_half", include_str!("../../templates/rotate_half.py"));
    let expr = Expr::call("rotate_half", vec![ctx.input_tf(0)?]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn rotate_every_two(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("rotate_every_two", include_str!("../../templates/rotate_every_two.py"));
    let expr = Expr::call("rotate_every_two", vec![ctx.input_tf(0)?]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn rotate_pairs(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("rotate_pairs", include_str!("../../templates/rotate_pairs.py"));
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?];
    Ok(Lowered::Expr { expr: Expr::call("rotate_pairs", args), layout: Layout::Tf })
}

fn attention(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::Attention { scale, mask, gqa } = ctx.fused()? else {
        return Err("not an attention".into());
    };
    let (scale, mask, gqa) = (*scale, *mask, *gqa);
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?];
    let mut kwargs = Vec::new();
    if mask.is_some() {
        kwargs.push(("attn_mask", ctx.input_tf(3)?));
    }
    // SDPA's default scale is 1 / sqrt(E): written only when TF's differs.
    let depth = ctx.info(0).shape.and_then(|s| s.last().copied().flatten());
    let default = depth.map(|e| (1.0 / (e as f64).sqrt()) as f32);
    if default != Some(scale) {
        kwargs.push(("scale", Expr::f32(scale)));
    }
    if gqa {
        kwargs.push(("enable_gqa", Expr::boolean(true)));
    }
    let expr = Expr::call_kw("F.scaled_dot_product_attention", args, kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}
