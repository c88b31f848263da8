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

/// How deep [`same_value`] compares: TF's run-time paddings are a few ops from the shape.
const SAME_DEPTH: usize = 16;

/// Whether `a` and `b` are one value or computed alike (same ops, attributes and inputs;
/// constants by value), looking `depth` nodes up at most.
fn same_value(g: &Graph, a: ValueRef, b: ValueRef, depth: usize) -> bool {
    if a == b {
        return true;
    }
    if depth == 0 || a.port != b.port {
        return false;
    }
    let (x, y) = (g.node(a.node), g.node(b.node));
    if let (Some(s), Some(t)) = (g.const_value(a), g.const_value(b)) {
        return s == t;
    }
    let (xs, ys) = (g.inputs(a.node), g.inputs(b.node));
    x.op == y.op
        && x.value.is_none()
        && y.value.is_none()
        && x.op != "Placeholder"
        && x.attrs == y.attrs
        && xs.len() == ys.len()
        && xs.iter().zip(&ys).all(|(&p, &q)| same_value(g, p, q, depth - 1))
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
    let net: Vec<(i64, i64)> = if same_value(g, pads_ref, crops_ref, SAME_DEPTH) {
        // One value for both, computed at run time from the input's size (a VALID dilated
        // conv on a sequence of any length): what is padded is cropped again.
        vec![(0, 0); spatial]
    } else {
        let (pads, crops) = (pairs(g, pads_ref, spatial)?, pairs(g, crops_ref, spatial)?);
        pads.iter()
            .zip(&crops)
            .map(|(&(pb, pa), &(cb, ca))| Some((pb.checked_sub(cb)?, pa.checked_sub(ca)?)))
            .collect::<Option<_>>()?
    };
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
        let w = g.constant("conv/kernel", weights(&[3, 3, 4, 4]));
        let s2b = g.op("conv/SpaceToBatchND", "SpaceToBatchND", &[x, block, pads], &[]);
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let c = g.op("conv/Conv2D", "Conv2D", &[s2b, w], &a);
        let y = g.op("conv/BatchToSpaceND", "BatchToSpaceND", &[c, block, crops], &[]);
        assert_snapshot!(g.lower(&[y]), @"
            self.conv2d = nn.Conv2d(4, 4, 3, dilation=2, bias=False)
            # conv2d.weight: [4, 4, 3, 3]
            ---
            x = x.permute(0, 3, 1, 2)
            x = self.conv2d(x).permute(0, 2, 3, 1)
            return x
            ");
    }
}
