//! `Conv1D` as TF graphs spell it, `ExpandDims(x, 1) → Conv2D(filter [1, k, Cin, Cout]) →
//! Squeeze([1])`, becomes one [`Fused::Conv1D`] node (inputs `x`, filter `[k, Cin, Cout]`),
//! lowered to `nn.Conv1d`.

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, Node, ValueRef};
use crate::passes::pattern::{const_ints, single_consumer};

pub fn fuse_conv1d(g: &mut Graph) -> Result<()> {
    let convs: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "Conv2D").collect();
    for conv in convs {
        let inputs = g.inputs(conv);
        let (Some(&expand), Some(&filter)) = (inputs.first(), inputs.get(1)) else { continue };
        let Some(w) = g.const_value(filter).filter(|t| t.rank() == 4 && t.shape[0] == 1).cloned()
        else {
            continue;
        };
        let e = g.node(expand.node);
        if e.op != "ExpandDims" || g.use_count(expand) != 1 {
            continue;
        }
        let e_in = g.inputs(expand.node);
        let dim = e_in.get(1).and_then(|&d| const_ints(g, d));
        if !matches!(dim.as_deref(), Some([1]) | Some([-3])) || e_in.is_empty() {
            continue;
        }
        let Some(sq) = single_consumer(g, ValueRef { node: conv, port: 0 }) else { continue };
        let squeeze = g.node(sq);
        let dims = squeeze.attr_ints_or("squeeze_dims", &[]).unwrap_or_default();
        if squeeze.op != "Squeeze" || !(dims == [1] || dims == [-3]) {
            continue;
        }
        let c = g.node(conv);
        let (Ok(strides), Ok(dilations), Ok(padding)) = (
            c.attr_ints("strides"),
            c.attr_ints_or("dilations", &[1, 1, 1, 1]),
            c.attr_str("padding"),
        ) else {
            continue;
        };
        let df = c.attr_str_or("data_format", "NHWC").unwrap_or_default();
        if df != "NHWC" || strides.len() != 4 || dilations.len() != 4 || padding == "EXPLICIT" {
            continue;
        }
        let (name, ordinal) = (c.name.clone(), c.ordinal);
        let conv1d = Fused::Conv1D {
            stride: strides[2],
            dilation: dilations[2],
            same_padding: padding == "SAME",
        };
        let mut node = Node::fused(name.clone(), conv1d, ordinal);
        node.outputs = g.node(sq).outputs.clone();
        let fused = g.add_node(node);
        let k = w.shape[1..].to_vec();
        let wc = g.add_node(Node::constant(format!("{name}/kernel"), w.reshaped(k), ordinal));
        g.connect(e_in[0], fused, 0);
        g.connect(ValueRef { node: wc, port: 0 }, fused, 1);
        g.replace_uses(ValueRef { node: sq, port: 0 }, ValueRef { node: fused, port: 0 });
        g.g.remove_node(sq);
        g.g.remove_node(conv);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, fuse_conv1d};
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn expand_conv2d_squeeze_is_one_conv1d() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 10, 3]);
        let dim = g.constant("conv/dim", int_tensor(&[], &[1]));
        let w = g.constant("conv/kernel", weights(&[1, 5, 3, 4]));
        let e = g.op("conv/ExpandDims", "ExpandDims", &[x, dim], &[]);
        let a = [
            ("strides", ints(&[1, 1, 2, 1])),
            ("dilations", ints(&[1, 1, 1, 1])),
            ("padding", string("SAME")),
        ];
        let c = g.op("conv/Conv2D", "Conv2D", &[e, w], &a);
        let y = g.op("conv/Squeeze", "Squeeze", &[c], &[("squeeze_dims", ints(&[1]))]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_conv1d]), @r#"
        inputs: x:0
        outputs: conv/Conv2D:0
        x = Placeholder -> float32 [?, 10, 3]
        conv/Conv2D/kernel = Const -> float32 [5, 3, 4]
        conv/Conv2D = _Conv1D(x:0, conv/Conv2D/kernel:0) {dilation=1, padding="SAME", stride=2} -> float32 [?, 5, 4]
        "#);
    }
}
