//! Writing a block into a tensor: `XlaDynamicUpdateSlice` (what Keras 3's `ops.slice_update`
//! becomes on TensorFlow; Swin builds its shifted-window mask with it) → the
//! `dynamic_update_slice` helper (templates/dynamic_update_slice.py), or a constant when
//! every input is one.

use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::items;
use crate::ops::util::same_as_input;
use crate::ops::{Folded, OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::Tensor;

pub const OPS: &[OpDef] = &[op("XlaDynamicUpdateSlice", dynamic_update_slice)
    .infer(same_as_input)
    .fold(dynamic_update_slice_fold)];

fn dynamic_update_slice(ctx: &mut Ctx) -> OpResult<Lowered> {
    // Starts known at conversion are written out (`(0, 1, 2, 0)`), not stored as a buffer.
    let starts = match ctx.rank(0) {
        Some(rank) if ctx.is_const(2) || ctx.partial(2).is_some() => {
            Expr::Tuple(items(ctx, 2, rank)?.into_iter().map(|i| i.expr).collect())
        }
        _ => ctx.input_tf(2)?,
    };
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?, starts];
    ctx.require_class(
        "dynamic_update_slice",
        include_str!("../../templates/dynamic_update_slice.py"),
    );
    Ok(Lowered::Expr { expr: Expr::call("dynamic_update_slice", args), layout: Layout::Tf })
}

/// XLA clamps each start to `[0, size - update size]`; `None` when the update does not fit
/// (TF fails at run time, and so will the helper).
fn clamped_starts(x: &Tensor, update: &Tensor, starts: &[i64]) -> Option<Vec<usize>> {
    if update.rank() != x.rank() || starts.len() != x.rank() || update.dtype != x.dtype {
        return None;
    }
    let mut out = Vec::with_capacity(starts.len());
    for ((&s, &n), &m) in starts.iter().zip(&x.shape).zip(&update.shape) {
        let room = n.checked_sub(m)?;
        out.push(s.clamp(0, i64::try_from(room).ok()?) as usize);
    }
    Some(out)
}

/// Every input a constant (a mask built from literals): the updated constant, copied row by
/// row (rows along the last axis are contiguous in both tensors).
fn dynamic_update_slice_fold(inp: &OpInputs) -> Option<Folded> {
    let [Some(x), Some(update), Some(starts)] = inp.consts[..] else { return None };
    let starts = clamped_starts(x, update, &starts.to_i64()?)?;
    if update.numel() == 0 {
        return Some(Folded::Tensor(x.clone()));
    }
    let size = x.dtype.size()?;
    let rank = x.rank();
    let mut data = x.data.to_vec();
    let row = update.shape.last().copied().unwrap_or(1) * size;
    // Strides of `x` in elements, for the offset of each row of `update`.
    let mut strides = vec![1usize; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * x.shape[k + 1];
    }
    let outer = &update.shape[..rank.saturating_sub(1)];
    let rows: usize = outer.iter().product();
    let mut at = vec![0usize; outer.len()];
    for r in 0..rows {
        let offset: usize =
            (0..rank).map(|k| (starts[k] + at.get(k).copied().unwrap_or(0)) * strides[k]).sum();
        let dst = offset * size;
        data[dst..dst + row].copy_from_slice(&update.data[r * row..(r + 1) * row]);
        // The next row's index in `update` (the last outer axis fastest).
        for k in (0..outer.len()).rev() {
            at[k] += 1;
            if at[k] < outer[k] {
                break;
            }
            at[k] = 0;
        }
    }
    Some(Folded::Tensor(Tensor { dtype: x.dtype, shape: x.shape.clone(), data: data.into() }))
}

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn a_block_written_at_run_time_is_the_helper() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 6, 3]);
        let starts = g.typed_input("starts", &[4], DType::I32);
        let block = g.constant("block", weights(&[1, 2, 3, 3]));
        let fixed = g.constant("at", int_tensor(&[4], &[0, 1, 2, 0]));
        let a = g.op("a", "XlaDynamicUpdateSlice", &[x, block, fixed], &[]);
        let b = g.op("b", "XlaDynamicUpdateSlice", &[x, block, starts], &[]);
        assert_snapshot!(g.lower(&[a, b]), @"
        self.block_const: [1, 2, 3, 3] float32
        # block_const: [1, 2, 3, 3]
        ---
        h = dynamic_update_slice(x, self.block_const, (0, 1, 2, 0))
        b = dynamic_update_slice(x, self.block_const, starts)
        return h, b
        ");
    }

    /// Every input constant: the result is one, each start clamped so that the block fits
    /// (a start of -1 on rows becomes 0, a start of 9 on 4 columns becomes 2).
    #[test]
    fn a_constant_mask_folds_with_clamped_starts() {
        let mut g = TestGraph::new();
        let zeros = g.constant("zeros", Tensor::from_i32(vec![3, 4], &[0; 12]));
        let ones = g.constant("ones", Tensor::from_i32(vec![2, 2], &[1, 2, 3, 4]));
        let at = g.constant("at", int_tensor(&[2], &[-1, 9]));
        let y = g.op("y", "XlaDynamicUpdateSlice", &[zeros, ones, at], &[]);
        let graph = g.finish(&[y]);
        let value = graph.node(graph.outputs[0].node).value.as_ref().expect("folded");
        assert_eq!(value.shape, [3, 4]);
        assert_eq!(value.to_i64().unwrap(), [0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0]);
    }
}
