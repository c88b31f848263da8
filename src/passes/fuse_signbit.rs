//! The sign bit of a float32, as Keras 3's `ops.signbit` computes it (and so every Keras
//! `ops.argmax`/`argmin` on floats, which tells `-0.0` from `0.0` as NumPy does):
//!
//! ```text
//! Less(BitwiseAnd(Bitcast(x, int32), INT32_MIN), 0)     or     Less(Bitcast(x, int32), 0)
//! ```
//!
//! becomes one [`Fused::SignBit`]: `torch.signbit(x)`, rather than a reinterpreting view, a
//! mask and a comparison a reader has to decode.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{both_orders, const_scalar, inputs_of, replace_with_fused};
use crate::tensor::DType;

pub fn fuse_signbit(g: &mut Graph) -> Result<()> {
    let less: Vec<NodeIndex> = g.g.node_indices().filter(|&n| g.node(n).op == "Less").collect();
    for n in less {
        let inputs = g.inputs(n);
        let [bits, zero] = inputs[..] else { continue };
        if const_scalar(g, zero) != Some(0.0) {
            continue;
        }
        if let Some(x) = float_bits(g, bits).or_else(|| sign_of_bits(g, bits)) {
            replace_with_fused(g, n, Fused::SignBit, &[x]);
        }
    }
    Ok(())
}

/// `x` when `v` is `x & INT32_MIN` and `x` a float32's bits.
fn sign_of_bits(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    both_orders(g, v, &["BitwiseAnd"]).into_iter().find_map(|(bits, mask)| {
        (const_scalar(g, mask)? == f64::from(i32::MIN)).then_some(())?;
        float_bits(g, bits)
    })
}

/// `x` when `v` is a float32 `x` reinterpreted as int32.
fn float_bits(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let x = *inputs_of(g, v, &["Bitcast"])?.first()?;
    let node = g.node(v.node);
    let from_float = node.attr_type("T").ok()? == DType::F32;
    let to_int = node.attr_type("type").ok()? == DType::I32;
    (from_float && to_int).then_some(x)
}

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras' `signbit`, as its `argmax` reads it before telling `-0.0` from `0.0`.
    fn keras_signbit(g: &mut TestGraph, mask: i32, to: DType) -> crate::ir::ValueRef {
        let x = g.input("x", &[-1, 4]);
        let bits =
            g.op("Bitcast", "Bitcast", &[x], &[("T", dtype(DType::F32)), ("type", dtype(to))]);
        let min = g.constant("min", Tensor::from_i32(vec![], &[mask]));
        let and = g.op("BitwiseAnd", "BitwiseAnd", &[bits, min], &[]);
        let zero = g.constant("zero", Tensor::from_i32(vec![], &[0]));
        g.op("Less", "Less", &[and, zero], &[])
    }

    #[test]
    fn the_masked_sign_of_the_bits_is_signbit() {
        let mut g = TestGraph::new();
        let y = keras_signbit(&mut g, i32::MIN, DType::I32);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = torch.signbit(x)
        return x
        ");
    }

    #[test]
    fn another_bit_is_not_the_sign() {
        let mut g = TestGraph::new();
        let y = keras_signbit(&mut g, 1 << 30, DType::I32);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.view(torch.int32)
        x = torch.bitwise_and(x, 1073741824)
        x = x < 0
        return x
        ");
    }
}
