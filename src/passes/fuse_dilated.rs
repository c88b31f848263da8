//! Dilated (atrous) convolutions as TF builds them: `SpaceToBatchND(x, block, pads) → conv
//! (VALID, stride 1) → BatchToSpaceND(·, block, crops)` (`tf.nn.convolution` with dilation,
//! `tf.nn.atrous_conv2d`, Keras' dilated `Conv1D`/`SeparableConv2D`). Folding every `b`-th
//! pixel into the batch and running the kernel undilated is the same as running it with
//! dilation `b`; the pads and crops, which TF chooses to make sizes divisible by `b`, become
//! explicit padding `pads − crops` (stride 1: cropping `c` outputs from a side is padding `c`
//! less on that side). One conv node with `dilations` and `padding="EXPLICIT"` (or VALID)
//! replaces the three, so it lowers to one `nn.Conv*d(dilation=b)`.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::{CONV_1D, DEPTHWISE_1D};
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{const_ints, single_consumer};

/// Convolutions and their spatial rank.
fn spatial_rank(op: &str) -> Option<usize> {
    Some(match op {
        CONV_1D | DEPTHWISE_1D => 1,
        "Conv2D" | "DepthwiseConv2dNative" => 2,
        "Conv3D" => 3,
        _ => return None,
    })
}

pub fn fuse_dilated(g: &mut Graph) -> Result<()> {
    let mut b2s: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "BatchToSpaceND").collect();
    b2s.sort_by_key(|&n| g.node(n).ordinal);
    for n in b2s {
        if let Some(plan) = plan(g, n) {
            apply(g, n, plan);
        }
    }
    Ok(())
}

struct Plan {
    conv: NodeIndex,
    s2b: NodeIndex,
    /// The value before `SpaceToBatchND`.
    x: ValueRef,
    dilations: Vec<i64>,
    /// `(before, after)` per spatial axis.
    pads: Vec<(i64, i64)>,
}

/// `[M, 2]` integer pairs of a constant.
fn pairs(g: &Graph, v: ValueRef, m: usize) -> Option<Vec<(i64, i64)>> {
    let t = g.const_value(v)?;
    let p = t.to_i64()?;
    (t.shape == [m, 2]).then(|| p.chunks(2).map(|c| (c[0], c[1])).collect())
}

fn plan(g: &Graph, n: NodeIndex) -> Option<Plan> {
    let ins = g.inputs(n);
    let conv_out = *ins.first()?;
    let conv = conv_out.node;
    let spatial = spatial_rank(&g.node(conv).op)?;
    if conv_out.port != 0 || single_consumer(g, conv_out)? != n {
        return None;
    }
    let block = const_ints(g, *ins.get(1)?)?;
    let crops = pairs(g, *ins.get(2)?, spatial)?;
    let c = g.node(conv);
    let unit = vec![1; spatial + 2];
    let undilated = c.attr_ints_or("dilations", &unit).ok()? == unit;
    if c.attr_str("padding").ok()? != "VALID" || c.attr_ints("strides").ok()? != unit || !undilated
    {
        return None;
    }
    let s2b_out = *g.inputs(conv).first()?;
    let s2b = s2b_out.node;
    if g.node(s2b).op != "SpaceToBatchND" || single_consumer(g, s2b_out)? != conv {
        return None;
    }
    let s_ins = g.inputs(s2b);
    if const_ints(g, *s_ins.get(1)?)? != block
        || block.len() != spatial
        || block.iter().any(|&b| b < 1)
    {
        return None;
    }
    let pads = pairs(g, *s_ins.get(2)?, spatial)?;
    let net: Vec<(i64, i64)> = pads
        .iter()
        .zip(&crops)
        .map(|(&(pb, pa), &(cb, ca))| Some((pb.checked_sub(cb)?, pa.checked_sub(ca)?)))
        .collect::<Option<_>>()?;
    if net.iter().any(|&(b, a)| b < 0 || a < 0) {
        return None;
    }
    let mut dilations = vec![1];
    dilations.extend(&block);
    dilations.push(1);
    Some(Plan { conv, s2b, x: *s_ins.first()?, dilations, pads: net })
}

fn apply(g: &mut Graph, b2s: NodeIndex, p: Plan) {
    g.set_input(p.conv, 0, p.x);
    let outputs = g.node(b2s).outputs.clone();
    let node = g.node_mut(p.conv);
    node.set_attr_ints("dilations", &p.dilations);
    if p.pads.iter().all(|&q| q == (0, 0)) {
        node.set_attr_str("padding", "VALID");
    } else {
        let mut explicit = vec![0, 0];
        explicit.extend(p.pads.iter().flat_map(|&(b, a)| [b, a]));
        explicit.extend([0, 0]);
        node.set_attr_str("padding", "EXPLICIT");
        node.set_attr_ints("explicit_paddings", &explicit);
    }
    node.outputs = outputs;
    g.replace_uses(ValueRef { node: b2s, port: 0 }, ValueRef { node: p.conv, port: 0 });
    g.g.remove_node(b2s);
    g.g.remove_node(p.s2b);
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `tf.nn.atrous_conv2d(rate=2)` on a 5×5 input with SAME padding, as TF writes it.
    fn atrous(g: &mut TestGraph, strides: &[i64]) -> crate::ir::ValueRef {
        let x = g.input("x", &[-1, 5, 5, 4]);
        let block = g.constant("block", int_tensor(&[2], &[2, 2]));
        let pads = g.constant("pads", int_tensor(&[2, 2], &[2, 3, 2, 3]));
        let crops = g.constant("crops", int_tensor(&[2, 2], &[0, 1, 0, 1]));
        let w = g.constant("conv/kernel", weights(&[3, 3, 4, 4]));
        let s2b = g.op("conv/SpaceToBatchND", "SpaceToBatchND", &[x, block, pads], &[]);
        let a = [("strides", ints(strides)), ("padding", string("VALID"))];
        let c = g.op("conv/Conv2D", "Conv2D", &[s2b, w], &a);
        g.op("conv/BatchToSpaceND", "BatchToSpaceND", &[c, block, crops], &[])
    }

    #[test]
    fn space_to_batch_conv_batch_to_space_is_one_dilated_conv() {
        let mut g = TestGraph::new();
        let y = atrous(&mut g, &[1, 1, 1, 1]);
        assert_snapshot!(g.lower(&[y]), @"
        self.conv2d = nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False)
        # conv2d.weight: [4, 4, 3, 3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.conv2d(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn a_strided_conv_between_is_left_alone() {
        // Striding inside the batch-folded space is not a dilated conv: the three ops stay.
        let mut g = TestGraph::new();
        let y = atrous(&mut g, &[1, 2, 2, 1]);
        assert_snapshot!(g.lower(&[y]), @"
        self.conv2d = nn.Conv2d(4, 4, 3, stride=2, bias=False)
        # conv2d.weight: [4, 4, 3, 3]
        ---
        x = (
            F.pad(x, (0, 0, 2, 3, 2, 3))
            .reshape(-1, 5, 2, 5, 2, 4)
            .permute(2, 4, 0, 1, 3, 5)
            .reshape(-1, 5, 5, 4)
        )
        x = x.permute(0, 3, 1, 2)
        x = self.conv2d(x).permute(0, 2, 3, 1)
        x = (
            x.reshape(2, 2, -1, 2, 2, 4)
            .permute(2, 3, 0, 4, 1, 5)
            .reshape(-1, 4, 4, 4)[:, :-1, :-1]
        )
        return x
        ");
    }
}
