//! A layer op (Conv2D, DepthwiseConv2dNative, MatMul, ..., those whose registry row declares a
//! bias slot) followed by a per-channel constant add (BiasAdd, or Add/AddV2 as Keras 3 emits
//! it) becomes one node with the bias in that slot, so that the layer is one
//! `nn.Conv2d`/`nn.Linear` with `bias=True`.

use crate::error::Result;
use crate::ir::{Graph, ValueRef};

pub fn fuse_bias(g: &mut Graph) -> Result<()> {
    let order = g.topo_order().unwrap_or_default();
    for n in order {
        if !g.g.contains_node(n) {
            continue;
        }
        // Ops that take a fused bias, in the input slot their registry row declares.
        let Some(arity) = crate::ops::lookup(&g.node(n).op).and_then(|d| d.bias_slot) else {
            continue;
        };
        let Some(Some(channels)) =
            g.info(ValueRef { node: n, port: 0 }).shape.and_then(|s| s.last().copied())
        else {
            continue;
        };
        let inputs = g.inputs(n);
        // The weights (input 1) are constants, and no bias is there yet.
        if inputs.len() != arity || g.const_value(inputs[1]).is_none() {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        let consumers = g.consumers(out);
        if consumers.len() != 1 || g.outputs.contains(&out) {
            continue;
        }
        let (add, slot) = consumers[0];
        let add_node = g.node(add);
        let is_add = match add_node.op.as_str() {
            "BiasAdd" => {
                add_node.attr_str_or("data_format", "NHWC").ok().as_deref() == Some("NHWC")
            }
            "Add" | "AddV2" => true,
            _ => false,
        };
        if !is_add {
            continue;
        }
        let add_inputs = g.inputs(add);
        let Some(&bias_ref) = add_inputs.get(1 - slot) else {
            continue;
        };
        let Some(bias) = g.const_value(bias_ref) else {
            continue;
        };
        // Only a per-channel bias: every dim 1 except the last (= channels); for a multi-head
        // projection (an einsum into `[.., heads, dim]`), one per output feature.
        let per_channel = bias.numel() == channels
            && bias.shape.last() == Some(&channels)
            && bias.dtype.is_float();
        let per_feature = || {
            let eq = g.node(n).attr_str("equation").ok()?;
            let (_, free) = crate::ops::einsum_dense_form(&eq)?;
            let out = g.info(out).shape?;
            let tail = out.get(out.len().checked_sub(free)?..)?;
            let fits = bias.rank() == free
                && tail.iter().zip(&bias.shape).all(|(o, b)| *o == Some(*b))
                && bias.dtype.is_float();
            fits.then_some(())
        };
        let per_channel = if g.node(n).op == "Einsum" {
            // Only the projection form takes a bias (any other einsum stays `torch.einsum`).
            let dense = g.node(n).attr_str("equation").ok().and_then(|e| {
                let (c, d) = crate::ops::einsum_dense_form(&e)?;
                g.const_value(inputs[1]).is_some_and(|w| w.rank() == c + d).then_some(())
            });
            dense.is_some() && (per_channel || per_feature().is_some())
        } else {
            per_channel
        };
        if !per_channel {
            continue;
        }
        g.connect(bias_ref, n, arity);
        g.replace_uses(ValueRef { node: add, port: 0 }, out);
        g.g.remove_node(add);
    }
    Ok(())
}

/// An addition whose bias may broadcast along the last axis: Add, or a channels-last BiasAdd.
fn is_bias_add(node: &crate::ir::Node) -> bool {
    match node.op.as_str() {
        "Add" | "AddV2" => true,
        "BiasAdd" => node.attr_str_or("data_format", "NHWC").is_ok_and(|f| f != "NCHW"),
        _ => false,
    }
}

/// Multi-head projections (Keras EinsumDense, keras-hub attention) add their `[heads, dim]`
/// bias after splitting the heads: `Reshape(x @ W, [.., H, D]) + b`. The bias moves into the
/// projection (`b` flattened to `[H·D]`), so the layer is one `nn.Linear` with its bias and
/// the head split follows.
pub fn fuse_head_bias(g: &mut Graph) -> Result<()> {
    let order = g.topo_order().unwrap_or_default();
    for n in order {
        if !g.g.contains_node(n) || !is_bias_add(g.node(n)) {
            continue;
        }
        let add_inputs = g.inputs(n);
        if add_inputs.len() != 2 {
            continue;
        }
        // A BiasAdd's bias is its second operand (Keras' one-head attention adds its `[1, D]`
        // bias squeezed, by BiasAdd); an Add's either.
        let slots = if g.node(n).op == "BiasAdd" { 0..1 } else { 0..2 };
        for (slot, &r) in add_inputs.iter().enumerate().take(slots.end).skip(slots.start) {
            let Some(&b) = add_inputs.get(1 - slot) else { continue };
            let Some(bias) = g.const_value(b).cloned() else { continue };
            if g.node(r.node).op != "Reshape" || r.port != 0 || g.use_count(r) != 1 {
                continue;
            }
            let Some(&proj) = g.inputs(r.node).first() else { continue };
            let pn = g.node(proj.node);
            let is_projection = matches!(pn.op.as_str(), "MatMul" | "BatchMatMulV2" | "Einsum")
                && proj.port == 0
                && g.use_count(proj) == 1
                && g.inputs(proj.node).len() == 2
                && g.inputs(proj.node)
                    .get(1)
                    .and_then(|&w| g.const_value(w))
                    .is_some_and(|w| w.rank() == 2);
            let Some(out_shape) = g.info(ValueRef { node: r.node, port: 0 }).shape else {
                continue;
            };
            let features = g.info(proj).shape.and_then(|s| s.last().copied().flatten());
            // The bias covers exactly the trailing axes the projection's features were split into.
            let trailing: Option<usize> =
                out_shape.iter().rev().take(bias.rank()).copied().product::<Option<usize>>();
            let fits = bias.rank() >= 1
                && bias.shape.iter().rev().zip(out_shape.iter().rev()).all(|(a, b)| Some(*a) == *b)
                && trailing == features
                && features == Some(bias.numel())
                && bias.dtype.is_float();
            if !is_projection || !fits {
                continue;
            }
            let flat = bias.reshaped(vec![bias.numel()]);
            let name = format!("{}/bias", g.node(proj.node).name);
            let ordinal = g.node(proj.node).ordinal;
            let mut c = crate::ir::Node::constant(name, flat, ordinal);
            c.trained_from = g.node(b.node).trained_name();
            let c = g.add_node(c);
            g.connect(ValueRef { node: c, port: 0 }, proj.node, 2);
            g.replace_uses(ValueRef { node: n, port: 0 }, ValueRef { node: r.node, port: 0 });
            g.g.remove_node(n);
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, fuse_bias, fuse_head_bias};
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn a_per_channel_bias_joins_its_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3]);
        let w = g.constant("dense/kernel", weights(&[3, 4]));
        let b = g.constant("dense/bias", weights(&[4]));
        let m = g.op("dense/MatMul", "MatMul", &[x, w], &[]);
        let y = g.op("dense/BiasAdd", "BiasAdd", &[m, b], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_bias]), @"
        inputs: x:0
        outputs: dense/MatMul:0
        x = Placeholder -> float32 [?, 3]
        dense/kernel = Const -> float32 [3, 4]
        dense/bias = Const -> float32 [4]
        dense/MatMul = MatMul(x:0, dense/kernel:0, dense/bias:0) -> float32 [?, 4]
        ");
    }

    /// A bias of another shape (one value per row) is not a layer's bias.
    #[test]
    fn other_additions_stay() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 3]);
        let w = g.constant("dense/kernel", weights(&[3, 4]));
        let b = g.constant("rows", weights(&[2, 1]));
        let m = g.op("dense/MatMul", "MatMul", &[x, w], &[]);
        let y = g.op("add", "AddV2", &[m, b], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_bias]), @"
        inputs: x:0
        outputs: add:0
        x = Placeholder -> float32 [2, 3]
        dense/kernel = Const -> float32 [3, 4]
        rows = Const -> float32 [2, 1]
        dense/MatMul = MatMul(x:0, dense/kernel:0) -> float32 [2, 4]
        add = AddV2(dense/MatMul:0, rows:0) -> float32 [2, 4]
        ");
    }

    /// `x @ W` (8 features to 6) split into heads by `shape`, then a `bias` of that shape
    /// added by `add` (name, op).
    fn head_projection(
        g: &mut TestGraph,
        shape: &[i64],
        bias: &[usize],
        (name, op): (&str, &str),
    ) -> crate::ir::ValueRef {
        let x = g.input("x", &[-1, 8]);
        let w = g.constant("query/kernel", weights(&[8, 6]));
        let shape = g.constant("query/shape", int_tensor(&[3], shape));
        let b = g.constant("query/bias", weights(bias));
        let m = g.op("query/MatMul", "MatMul", &[x, w], &[]);
        let r = g.op("query/Reshape", "Reshape", &[m, shape], &[]);
        g.op(name, op, &[r, b], &[])
    }

    /// `Reshape(x @ W, [.., H, D]) + b[H, D]`: the bias moves into the projection.
    #[test]
    fn a_head_bias_moves_into_the_projection() {
        let mut g = TestGraph::new();
        let y = head_projection(&mut g, &[-1, 2, 3], &[2, 3], ("query/add", "AddV2"));
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_head_bias]), @"
        inputs: x:0
        outputs: query/Reshape:0
        x = Placeholder -> float32 [?, 8]
        query/kernel = Const -> float32 [8, 6]
        query/shape = Const -> int32 [3]
        query/MatMul/bias = Const -> float32 [6]
        query/MatMul = MatMul(x:0, query/kernel:0, query/MatMul/bias:0) -> float32 [?, 6]
        query/Reshape = Reshape(query/MatMul:0, query/shape:0) -> float32 [?, 2, 3]
        ");
    }

    /// Keras' one-head attention squeezes its `[1, D]` bias and adds it by BiasAdd.
    #[test]
    fn a_one_head_bias_added_by_bias_add_moves_into_the_projection() {
        let mut g = TestGraph::new();
        let y = head_projection(&mut g, &[-1, 1, 6], &[6], ("query/BiasAdd", "BiasAdd"));
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_head_bias]), @"
        inputs: x:0
        outputs: query/Reshape:0
        x = Placeholder -> float32 [?, 8]
        query/kernel = Const -> float32 [8, 6]
        query/shape = Const -> int32 [3]
        query/MatMul/bias = Const -> float32 [6]
        query/MatMul = MatMul(x:0, query/kernel:0, query/MatMul/bias:0) -> float32 [?, 6]
        query/Reshape = Reshape(query/MatMul:0, query/shape:0) -> float32 [?, 1, 6]
        ");
    }
}
