//! Slice bounds packed from scalars: `x[i:2]` or `x[:, t]` in TF is a `StridedSlice` whose
//! begin is `Pack(i, 0, 0)`, a vector the graph builds at run time from a loop counter or an
//! input. Without help the slice reads that vector back as Python ints
//! (`sizes = torch.stack([i, torch.tensor(0), ...]).tolist()`, then `x[sizes[0] : 2]`); a
//! person indexes with the scalar itself.
//!
//! Each run-time scalar of such a `Pack` becomes an extra input of the slice, after the op's
//! own, so that it is still alive where the slice reads it: `ops::sizes::items` takes an
//! entry it cannot resolve from the packed scalar when the slice reads that scalar too.

use crate::error::Result;
use crate::ir::{Dim, Graph, ValueRef};

/// The slices and the input slots of their bounds (begin, end or size).
fn bound_slots(op: &str) -> &'static [usize] {
    match op {
        "StridedSlice" | "Slice" => &[1, 2],
        _ => &[],
    }
}

pub fn slice_bounds_from_scalars(g: &mut Graph) -> Result<()> {
    let mut slices: Vec<_> =
        g.g.node_indices().filter(|&n| !bound_slots(&g.node(n).op).is_empty()).collect();
    slices.sort_by_key(|&n| g.node(n).ordinal);
    for n in slices {
        let inputs = g.inputs(n);
        let mut extra: Vec<ValueRef> = Vec::new();
        for &slot in bound_slots(&g.node(n).op) {
            let Some(&bound) = inputs.get(slot) else { continue };
            // Entries known or read off a shape already resolve without the scalar.
            let partial = g.node(bound.node).partial.as_ref();
            let unresolved = |k: usize| {
                partial.is_none_or(|p| matches!(p.values.get(k), None | Some(Dim::Unknown)))
            };
            let entries = g.packed_entries(bound).unwrap_or_default().into_iter().enumerate();
            let run_time = entries.filter(|&(k, v)| g.const_value(v).is_none() && unresolved(k));
            for (_, scalar) in run_time {
                if !inputs.contains(&scalar) && !extra.contains(&scalar) {
                    extra.push(scalar);
                }
            }
        }
        for (k, v) in extra.into_iter().enumerate() {
            g.connect(v, n, inputs.len() + k);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// The counter a slice's begin packs is an input of the slice too; a constant entry is
    /// not, nor is anything packed with a vector.
    #[test]
    fn a_packed_scalar_bound_is_read_by_the_slice() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[3, 2, 3]);
        let i = g.typed_input("i", &[], crate::tensor::DType::I32);
        let zero = g.constant("zero", int_tensor(&[], &[0]));
        let begin = g.op("begin", "Pack", &[i, zero], &[("N", int(2))]);
        let end = g.constant("end", int_tensor(&[2], &[2, 0]));
        let one = g.constant("one", int_tensor(&[2], &[1, 1]));
        let y = g.op("y", "StridedSlice", &[x, begin, end, one], &[("end_mask", int(2))]);
        let passes = [crate::passes::fold_and_infer, super::slice_bounds_from_scalars];
        assert_snapshot!(g.after_passes(&[y], &passes), @"
        inputs: x:0, i:0
        outputs: y:0
        x = Placeholder -> float32 [3, 2, 3]
        i = Placeholder -> int32 []
        zero = Const -> int32 []
        begin = Pack(i:0, zero:0) {N=2} -> int32 [2] = [?, 0]
        end = Const -> int32 [2]
        one = Const -> int32 [2]
        y = StridedSlice(x:0, begin:0, end:0, one:0, i:0) {end_mask=2} -> float32 [?, 2, 3]
        ");
    }
}
