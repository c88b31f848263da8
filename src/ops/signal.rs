//! Signal framing: [`Fused::Frames`] (`tf.signal.frame` along the last axis, see
//! `passes::fuse_frames`) → `x.unfold(-1, frame_length, frame_step)`, the frames `[..,
//! frames, frame_length]` as TF lays them out.

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Fused};
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;

pub const OPS: &[OpDef] = &[
    // Produced by passes::fuse_frames.
    op(fused::FRAMES, frames).infer(frames_infer),
];

fn frames(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::Frames { length, step } = *ctx.fused()? else {
        return Err("expected a framing node".into());
    };
    let x = ctx.input_tf(0)?;
    let args = vec![Expr::int(-1), Expr::int(length), Expr::int(step)];
    Ok(Lowered::Expr { expr: x.method("unfold", args), layout: Layout::Tf })
}

/// `[.., len]` → `[.., frames, length]`, the count known where `len` is.
fn frames_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let Some(Fused::Frames { length, step }) = &inp.node.fused else { return None };
    let (length, step) = (usize::try_from(*length).ok()?, usize::try_from(*step).ok()?);
    let x = inp.infos.first()?;
    let shape = x.shape.as_ref().map(|s| {
        let (len, outer) = s.split_last().map_or((None, &s[..0]), |(l, o)| (*l, o));
        let count = len.filter(|&l| l >= length && step > 0).map(|l| (l - length) / step + 1);
        outer.iter().copied().chain([count, Some(length)]).collect()
    });
    Some(vec![ValueInfo { dtype: x.dtype, shape }])
}
