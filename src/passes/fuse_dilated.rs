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
use crate::passes::difference::constant_difference;
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

fn plan(g: &Graph, n: NodeIndex) -> Option<Plan> {
    let ins = g.inputs(n);
    let conv_out = *ins.first()?;
    let conv = conv_out.node;
    let spatial = spatial_rank(&g.node(conv).op)?;
    if conv_out.port != 0 || single_consumer(g, conv_out)? != n {
        return None;
    }
    let block = const_ints(g, *ins.get(1)?)?;
    let crops_ref = *ins.get(2)?;
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
    let pads_ref = *s_ins.get(2)?;
    // Pads minus crops, also when both are computed from the input's size at run time (an
    // image or sequence of any size): what is padded only to make the size divisible by the
    // block is cropped again.
    let net = constant_difference(g, pads_ref, crops_ref)?;
    if net.shape != [spatial, 2] {
        return None;
    }
    let net: Vec<(i64, i64)> = net.to_i64()?.chunks(2).map(|c| (c[0], c[1])).collect();
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
    use crate::ir::ValueRef;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `tf.nn.atrous_conv2d(rate=2)` on a 5×5 input with SAME padding, as TF writes it.
    fn atrous(g: &mut TestGraph, strides: &[i64]) -> ValueRef {
        let x = g.input("x", &[-1, 5, 5, 4]);
        let block = g.constant("block", int_tensor(&[2], &[2, 2]));
        let pads = g.constant("pads", int_tensor(&[2, 2], &[2, 3, 2, 3]));
        let crops = g.constant("crops", int_tensor(&[2, 2], &[0, 1, 0, 1]));
        folded_conv(g, [x, block, pads, crops], strides)
    }

    /// `SpaceToBatchND(x, block, pads) → Conv2D(3×3, VALID, strides) →
    /// BatchToSpaceND(·, block, crops)`.
    fn folded_conv(
        g: &mut TestGraph,
        [x, block, pads, crops]: [ValueRef; 4],
        strides: &[i64],
    ) -> ValueRef {
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

    /// On an image of any size TF computes the paddings from the size, once for the pads and
    /// once, alike, for the crops (a VALID dilated conv): what is padded is cropped, and the
    /// three are one dilated conv.
    #[test]
    fn run_time_pads_cropped_alike_are_one_dilated_conv() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, -1, 4]);
        let block = g.constant("block", int_tensor(&[2], &[2, 2]));
        let extra = |g: &mut TestGraph, name: &str| {
            let shape = g.op(&format!("{name}/Shape"), "Shape", &[x], &[]);
            let two = g.constant(&format!("{name}/two"), int_tensor(&[], &[2]));
            let r = g.op(&format!("{name}/mod"), "FloorMod", &[shape, two], &[]);
            let zero = g.constant(&format!("{name}/zero"), int_tensor(&[4], &[0, 0, 0, 0]));
            let both = g.op(
                &format!("{name}/pack"),
                "Pack",
                &[zero, r],
                &[("N", int(2)), ("axis", int(1))],
            );
            let (b, e) = (int_tensor(&[2], &[1, 0]), int_tensor(&[2], &[3, 0]));
            let (b, e) = (g.constant(&format!("{name}/b"), b), g.constant(&format!("{name}/e"), e));
            let one = g.constant(&format!("{name}/s"), int_tensor(&[2], &[1, 1]));
            let attrs = [("begin_mask", int(2)), ("end_mask", int(2))];
            g.op(&format!("{name}/slice"), "StridedSlice", &[both, b, e, one], &attrs)
        };
        let pads = extra(&mut g, "paddings");
        let crops = extra(&mut g, "crops");
        let y = folded_conv(&mut g, [x, block, pads, crops], &[1, 1, 1, 1]);
        assert_snapshot!(g.lower(&[y]), @"
            self.conv2d = nn.Conv2d(4, 4, 3, dilation=2, bias=False)
            # conv2d.weight: [4, 4, 3, 3]
            ---
            x = x.permute(0, 3, 1, 2)
            x = self.conv2d(x).permute(0, 2, 3, 1)
            return x
            ");
    }
    /// TF's `required_space_to_batch_paddings` on an image of any size, as a SAME dilated
    /// conv (Keras' `Conv2D(dilation_rate=2, padding="same")` on `(None, None, C)`): pads are
    /// the base padding plus a run-time remainder, crops that remainder. `remainder_block`
    /// is the block the crops' remainder is computed for.
    fn same_padded_any_size(remainder_block: i64) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, -1, 4]);
        let c = |g: &mut TestGraph, name: &str, shape: &[usize], v: &[i64]| {
            g.constant(name, int_tensor(shape, v))
        };
        let (block, base) = (c(&mut g, "block", &[2], &[2, 2]), c(&mut g, "base", &[2], &[2, 2]));
        let shape = g.op("Shape", "Shape", &[x], &[]);
        let (b, e, one) =
            (c(&mut g, "b", &[1], &[1]), c(&mut g, "e", &[1], &[3]), c(&mut g, "s", &[1], &[1]));
        let hw = g.op("hw", "StridedSlice", &[shape, b, e, one], &[]);
        let start = g.op("full/start", "AddV2", &[hw, base], &[]);
        let full = g.op("full", "AddV2", &[start, base], &[]);
        let remainder = |g: &mut TestGraph, name: &str, block: ValueRef| {
            let m = g.op(&format!("{name}/mod"), "FloorMod", &[full, block], &[]);
            let s = g.op(&format!("{name}/sub"), "Sub", &[block, m], &[]);
            g.op(&format!("{name}/extra"), "FloorMod", &[s, block], &[])
        };
        let extra = remainder(&mut g, "pads", block);
        let pad_end = g.op("pad_end", "AddV2", &[base, extra], &[]);
        let crop_block = c(&mut g, "crop_block", &[2], &[remainder_block; 2]);
        let crop_extra = remainder(&mut g, "crops", crop_block);
        let element = |g: &mut TestGraph, name: &str, v: ValueRef, i: i64| {
            let (b, e) = (
                c(g, &format!("{name}/b"), &[1], &[i]),
                c(g, &format!("{name}/e"), &[1], &[i + 1]),
            );
            let one = c(g, &format!("{name}/s"), &[1], &[1]);
            g.op(name, "StridedSlice", &[v, b, e, one], &[("shrink_axis_mask", int(1))])
        };
        let pair = |g: &mut TestGraph, name: &str, a: ValueRef, b: ValueRef| {
            g.op(name, "Pack", &[a, b], &[("N", int(2)), ("axis", int(0))])
        };
        let zero = c(&mut g, "zero", &[], &[0]);
        let mut pads = Vec::new();
        let mut crops = Vec::new();
        for i in 0..2 {
            let s = element(&mut g, &format!("pads/{i}/start"), base, i);
            let e = element(&mut g, &format!("pads/{i}/end"), pad_end, i);
            pads.push(pair(&mut g, &format!("pads/{i}"), s, e));
            let e = element(&mut g, &format!("crops/{i}/end"), crop_extra, i);
            crops.push(pair(&mut g, &format!("crops/{i}"), zero, e));
        }
        let pads = pair(&mut g, "paddings", pads[0], pads[1]);
        let crops = pair(&mut g, "crops", crops[0], crops[1]);
        let y = folded_conv(&mut g, [x, block, pads, crops], &[1, 1, 1, 1]);
        g.lower(&[y])
    }

    #[test]
    fn run_time_same_padding_is_a_padded_dilated_conv() {
        assert_snapshot!(same_padded_any_size(2), @"
        self.conv2d = nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False)
        # conv2d.weight: [4, 4, 3, 3]
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.conv2d(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn crops_that_do_not_undo_the_pads_leave_the_three_ops() {
        // The crops' remainder is for a block of 3: pads minus crops depends on the size.
        let code = same_padded_any_size(3);
        assert!(code.contains("reshape"), "{code}");
        assert!(!code.contains("dilation=2"), "{code}");
    }
    /// Keras' dilated `SeparableConv1D` on a sequence of any length: the space-to-batch
    /// (block `[1, 2]`, sizes from the expanded value's shape) sits inside the unit axis the
    /// 1-D pass drops, so that pass can only match once this one has run.
    #[test]
    fn a_dilated_separable_conv1d_is_two_conv1ds() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 3]);
        let dim = g.constant("sep/dim", int_tensor(&[], &[1]));
        let e = g.op("sep/ExpandDims", "ExpandDims", &[x, dim], &[]);
        let block = g.constant("block", int_tensor(&[2], &[1, 2]));
        let shape = g.op("sep/Shape", "Shape", &[e], &[]);
        let (b, end) = (int_tensor(&[1], &[1]), int_tensor(&[1], &[3]));
        let (b, end) = (g.constant("hw/b", b), g.constant("hw/e", end));
        let one = g.constant("hw/s", int_tensor(&[1], &[1]));
        let hw = g.op("hw", "StridedSlice", &[shape, b, end, one], &[]);
        let r = g.op("mod", "FloorMod", &[hw, block], &[]);
        let zero = g.constant("zero", int_tensor(&[2], &[0, 0]));
        let pads = g.op("pads", "Pack", &[zero, r], &[("N", int(2)), ("axis", int(1))]);
        let dw = g.constant("sep/depthwise_kernel", weights(&[1, 3, 3, 1]));
        let pw = g.constant("sep/pointwise_kernel", weights(&[1, 1, 3, 8]));
        let s2b = g.op("sep/SpaceToBatchND", "SpaceToBatchND", &[e, block, pads], &[]);
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let d = g.op("sep/depthwise", "DepthwiseConv2dNative", &[s2b, dw], &a);
        let d = g.op("sep/BatchToSpaceND", "BatchToSpaceND", &[d, block, pads], &[]);
        let c = g.op("sep/pointwise", "Conv2D", &[d, pw], &a);
        let y = g.op("sep/Squeeze", "Squeeze", &[c], &[("squeeze_dims", ints(&[1]))]);
        assert_snapshot!(g.lower(&[y]), @"
        self.depthwise = nn.Conv1d(3, 3, 3, dilation=2, groups=3, bias=False)
        self.pointwise = nn.Conv1d(3, 8, 1, bias=False)
        # depthwise.weight: [3, 1, 3]
        # pointwise.weight: [8, 3, 1]
        ---
        x = x.permute(0, 2, 1)
        x = self.depthwise(x)
        x = self.pointwise(x).permute(0, 2, 1)
        return x
        ");
    }
}
