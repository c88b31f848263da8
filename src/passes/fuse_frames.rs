//! `tf.signal.frame` (and so `tf.signal.stft`, Keras' `MelSpectrogram` and `ops.stft`) along
//! the last axis, as TF builds it for a signal of any length: the signal cut to whole
//! subframes of `gcd(frame_length, frame_step)` samples, reshaped to `[.., subframes, sub]`,
//! the subframes of each frame gathered by an index table `range(frames) * hop + range(per
//! frame)`, and the gathered `[.., frames, per_frame, sub]` merged back to `[.., frames,
//! frame_length]`:
//!
//! ```text
//! Reshape(GatherV2(Reshape(StridedSlice(x, 0, ..)), Reshape(Range(0, n, 1) * hop, [-1, 1])
//!                                                   + [[0, 1, .., per_frame - 1]]))
//! ```
//!
//! One [`Fused::Frames`] replaces it: `x.unfold(-1, frame_length, frame_step)`, as a person
//! frames a signal in PyTorch, instead of about twenty lines of size arithmetic, `.tolist()`
//! and reshapes. TF computes the frame count `n` as `max(0, 1 + (len - frame_length) //
//! frame_step)` (after padding the end when `pad_end`), which is `unfold`'s count; where the
//! count is known here it is checked. The one difference: a signal shorter than one frame
//! gives no frames in TF and an error in PyTorch.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{both_orders, const_ints, inputs_of, replace_with_fused};

pub fn fuse_frames(g: &mut Graph) -> Result<()> {
    let reshapes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Reshape").collect();
    for n in reshapes {
        if let Some((x, length, step)) = frames(g, ValueRef { node: n, port: 0 }) {
            replace_with_fused(g, n, Fused::Frames { length, step }, &[x]);
        }
    }
    Ok(())
}

/// Known sizes of a value, all of them.
fn known_shape(g: &Graph, v: ValueRef) -> Option<Vec<Option<usize>>> {
    g.info(v).shape
}

/// `(x, frame_length, frame_step)` when `out` merges frames gathered from `x`'s subframes.
fn frames(g: &Graph, out: ValueRef) -> Option<(ValueRef, i64, i64)> {
    let gathered = *inputs_of(g, out, &["Reshape"])?.first()?;
    let [subframes, indices, axis] = inputs_of(g, gathered, &["GatherV2"])?[..] else {
        return None;
    };
    if g.use_count(gathered) != 1 || g.node(gathered.node).attr_int_or("batch_dims", 0).ok()? != 0 {
        return None;
    }
    let [cut, _] = inputs_of(g, subframes, &["Reshape"])?[..] else { return None };
    let sub_shape = known_shape(g, subframes)?;
    let rank = sub_shape.len().checked_sub(1).filter(|&r| r >= 1)?;
    // Gathered along the subframe axis, the one before the last.
    let axis = match const_ints(g, axis)?[..] {
        [a] if a == rank as i64 - 1 || a == -2 => rank - 1,
        _ => return None,
    };
    let sub = (*sub_shape.last()?)?;
    let (hop, per_frame, count) = selector(g, indices)?;
    let (length, step) = (per_frame.checked_mul(sub)?, hop.checked_mul(sub)?);
    // The merge: the gathered `[.., n, per_frame, sub]` as `[.., n, length]`.
    let out_shape = known_shape(g, out)?;
    if out_shape.len() != rank + 1 || *out_shape.last()? != Some(length) {
        return None;
    }
    let x = signal(g, cut, rank)?;
    let x_shape = known_shape(g, x)?;
    let agree = |a: &[Option<usize>], b: &[Option<usize>]| {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.is_none() || q.is_none() || p == q)
    };
    // The sizes before the framed axis stay as they were.
    if !agree(&x_shape[..axis], &sub_shape[..axis]) || !agree(&x_shape[..axis], &out_shape[..axis])
    {
        return None;
    }
    // Where both are known, the count is unfold's.
    if let (Some(len), Some(n)) = (x_shape[axis], count.or(out_shape[axis])) {
        let full = if len >= length { (len - length) / step + 1 } else { 0 };
        if n != full || n == 0 {
            return None;
        }
    }
    Some((x, i64::try_from(length).ok()?, i64::try_from(step).ok()?))
}

/// The signal the subframes were cut from: `cut` itself, or `x` when `cut` is a slice of
/// `x` from 0 with step 1 (whole subframes of its last axis) of the same rank.
fn signal(g: &Graph, cut: ValueRef, rank: usize) -> Option<ValueRef> {
    let ins = inputs_of(g, cut, &["StridedSlice", "Slice"]);
    let Some(ins) = ins else {
        return (known_shape(g, cut)?.len() == rank).then_some(cut);
    };
    let node = g.node(cut.node);
    let x = *ins.first()?;
    let from_zero = const_ints(g, *ins.get(1)?)?.iter().all(|&b| b == 0);
    let plain = if node.op == "StridedSlice" {
        let unit = const_ints(g, *ins.get(3)?)?.iter().all(|&s| s == 1);
        let masks = ["ellipsis_mask", "new_axis_mask", "shrink_axis_mask"];
        unit && masks.iter().all(|m| node.attr_int_or(m, 0).ok() == Some(0))
    } else {
        true
    };
    (from_zero && plain && known_shape(g, x)?.len() == rank).then_some(x)
}

/// The frame selector `range(n)[:, None] * hop + range(per_frame)`: `(hop, per_frame, n if
/// known)`, hop at least 1. Either as TF computes it at run time, or folded to a table.
fn selector(g: &Graph, indices: ValueRef) -> Option<(usize, usize, Option<usize>)> {
    if let Some(t) = g.const_value(indices) {
        let [n, per_frame] = t.shape[..] else { return None };
        let v = t.to_i64()?;
        // Two frames at least tell the hop.
        let hop = usize::try_from(*v.get(per_frame)? - *v.first()?).ok().filter(|&h| h >= 1)?;
        let table =
            (0..n).all(|f| (0..per_frame).all(|j| v[f * per_frame + j] == (f * hop + j) as i64));
        return (n >= 2 && table).then_some((hop, per_frame, Some(n)));
    }
    both_orders(g, indices, &["AddV2", "Add"]).into_iter().find_map(|(starts, offsets)| {
        let t = g.const_value(offsets)?;
        let per_frame = match t.shape[..] {
            [1, k] => k,
            _ => return None,
        };
        let counting = t.to_i64()?.iter().enumerate().all(|(j, &v)| v == j as i64);
        let column = column(g, starts)?;
        let (range, hop) = scaled(g, column)?;
        let [start, _, delta] = inputs_of(g, range, &["Range"])?[..] else { return None };
        let zero_one = const_ints(g, start)? == [0] && const_ints(g, delta)? == [1];
        let n = known_shape(g, range)?.first().copied().flatten();
        (counting && per_frame >= 1 && zero_one).then_some((hop, per_frame, n))
    })
}

/// `v` as a column: `Reshape(v, [-1, 1])` or `ExpandDims(v, 1)` of a vector.
fn column(g: &Graph, c: ValueRef) -> Option<ValueRef> {
    let [v, how] = inputs_of(g, c, &["Reshape", "ExpandDims"])?[..] else { return None };
    let shape = known_shape(g, c)?;
    (shape.len() == 2
        && shape[1] == Some(1)
        && known_shape(g, v)?.len() == 1
        && g.const_value(how).is_some())
    .then_some(v)
}

/// `range * hop` (hop a positive constant), or `range` itself (hop 1).
fn scaled(g: &Graph, v: ValueRef) -> Option<(ValueRef, usize)> {
    for (range, hop) in both_orders(g, v, &["Mul"]) {
        if let Some(&[h]) = const_ints(g, hop).as_deref() {
            return Some((range, usize::try_from(h).ok().filter(|&h| h >= 1)?));
        }
    }
    Some((v, 1))
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// TF's `frame(x, 8, 4)` on a signal whose frame count `n` is computed at run time: 4-sample
    /// subframes, two per frame, the next frame one subframe on.
    fn frame(g: &mut TestGraph, offsets: &[i32]) -> ValueRef {
        let x = g.input("x", &[-1, 40]);
        let n = g.typed_input("n", &[], DType::I32);
        let split = g.constant("frame/split", int_tensor(&[3], &[-1, 10, 4]));
        let subframes = g.op("frame/Reshape_1", "Reshape", &[x, split], &[]);
        let start = g.constant("frame/start", int_tensor(&[], &[0]));
        let delta = g.constant("frame/delta", int_tensor(&[], &[1]));
        let range = g.op("frame/range", "Range", &[start, n, delta], &[]);
        let col = g.constant("frame/col", int_tensor(&[2], &[-1, 1]));
        let starts = g.op("frame/Reshape_2", "Reshape", &[range, col], &[]);
        let per_frame = g.constant("frame/Reshape_3", Tensor::from_i32(vec![1, 2], offsets));
        let indices = g.op("frame/add_1", "AddV2", &[starts, per_frame], &[]);
        let axis = g.constant("frame/axis", int_tensor(&[], &[1]));
        let gathered = g.op("frame/GatherV2", "GatherV2", &[subframes, indices, axis], &[]);
        let merged = g.constant("frame/merged", int_tensor(&[3], &[-1, 9, 8]));
        g.op("frame/Reshape_4", "Reshape", &[gathered, merged], &[])
    }

    #[test]
    fn gathered_subframes_are_unfold() {
        let mut g = TestGraph::new();
        let y = frame(&mut g, &[0, 1]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.unfold(-1, 8, 4)
        return x
        ");
    }

    #[test]
    fn subframes_not_in_order_are_not_frames() {
        let mut g = TestGraph::new();
        let y = frame(&mut g, &[1, 0]);
        assert_snapshot!(g.lower(&[y]), @"
        self.reshape_3_const: [1, 2] int32
        # reshape_3_const: [1, 2]
        ---
        n_value = n.item()
        y = torch.arange(n_value, dtype=torch.int32).reshape(-1, 1)
        x = x.reshape(-1, 10, 4)
        x = x[:, y + self.reshape_3_const].reshape(-1, 9, 8)
        return x
        ");
    }

    /// With the count known, the index table is folded; it is read back as the hop.
    #[test]
    fn a_folded_index_table_is_unfold_too() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 24]);
        let split = g.constant("frame/split", int_tensor(&[3], &[-1, 6, 4]));
        let subframes = g.op("frame/Reshape_1", "Reshape", &[x, split], &[]);
        // frame(x, 8, 8): two subframes a frame, two subframes on.
        let table = g.constant("frame/add_1", Tensor::from_i32(vec![3, 2], &[0, 1, 2, 3, 4, 5]));
        let axis = g.constant("frame/axis", int_tensor(&[], &[1]));
        let gathered = g.op("frame/GatherV2", "GatherV2", &[subframes, table, axis], &[]);
        let merged = g.constant("frame/merged", int_tensor(&[3], &[-1, 3, 8]));
        let y = g.op("frame/Reshape_4", "Reshape", &[gathered, merged], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.unfold(-1, 8, 8)
        return x
        ");
    }
}
