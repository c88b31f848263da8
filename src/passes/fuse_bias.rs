//! Conv2D / DepthwiseConv2dNative / MatMul followed by a per-channel constant add (BiasAdd, or
//! Add/AddV2 as Keras 3 emits it) become one node with the bias as a third input, so that the
//! layer is one `nn.Conv2d`/`nn.Linear` with `bias=True`.

use crate::error::Result;
use crate::ir::{Graph, ValueRef};

pub fn fuse_bias(g: &mut Graph) -> Result<()> {
    let order = g.topo_order().unwrap_or_default();
    for n in order {
        if !g.g.contains_node(n) {
            continue;
        }
        let op = g.node(n).op.as_str();
        let channels = match op {
            "Conv2D"
            | "DepthwiseConv2dNative"
            | "MatMul"
            | "BatchMatMulV2"
            | "BatchMatMulV3"
            | "Conv2DBackpropInput"
            | "_Conv1D" => {
                let Some(s) = g.info(ValueRef { node: n, port: 0 }).shape else {
                    continue;
                };
                let Some(Some(c)) = s.last().copied() else {
                    continue;
                };
                c
            }
            _ => continue,
        };
        let inputs = g.inputs(n);
        let arity = if op == "Conv2DBackpropInput" { 3 } else { 2 };
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
        // Only a per-channel bias: every dim 1 except the last (= channels).
        let per_channel = bias.numel() == channels
            && bias.shape.last() == Some(&channels)
            && bias.dtype == crate::tensor::DType::F32;
        if !per_channel {
            continue;
        }
        g.connect(bias_ref, n, arity);
        g.replace_uses(ValueRef { node: add, port: 0 }, out);
        g.g.remove_node(add);
    }
    Ok(())
}
